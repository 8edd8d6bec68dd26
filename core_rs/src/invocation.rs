//! One invocation as the store tracks it in memory, and its record in the
//! `invocations` table (`stead.v1.InvocationRecord`).
//!
//! The immutable fields (id, target, input, headers, creation time) are
//! encoded once, when the invocation is built; every later write of its record
//! (running, backing-off, completed) copies those bytes and appends the few
//! mutable fields. Protobuf decodes a message whose fields arrive in any order,
//! so the record reads back as one `InvocationRecord`, while a status change
//! never re-encodes a possibly large input.
//!
//! The Python `Invocation` object wraps an `Arc<InvocationMeta>`: the store and
//! the runtime see the same mutable part (status, journal length, ...).
//!
//! The deployment an invocation is pinned to (`deployment_id`) is mutable too,
//! but set once in practice (`Store::pin_deployment`); it is kept apart from
//! the `Copy` [`InvState`] and written by every encoding of the record, so that
//! no rewrite (a status change, a suspension, a backoff, the completion) drops it.
//!
//! Reading a record back: [`decode_record`] (all of it) or [`peek`] (the fields
//! recovery and purge filter on, without copying input and output); garbage is
//! `Error::Corrupt` naming the record (fuzzed by core_rs/fuzz/).

use std::sync::Arc;

use parking_lot::Mutex;
use prost::bytes::Buf;
use prost::encoding::{decode_key, decode_varint, encode_key, encode_varint, WireType};
use prost::Message;

use crate::error::{Error, Result};
use crate::proto::{HandlerKind, InvocationRecord, InvocationStatus};

pub const STATUS_INBOXED: i32 = InvocationStatus::Inboxed as i32;
pub const STATUS_RUNNING: i32 = InvocationStatus::Running as i32;
pub const STATUS_BACKING_OFF: i32 = InvocationStatus::BackingOff as i32;
pub const STATUS_COMPLETED: i32 = InvocationStatus::Completed as i32;
pub const STATUS_SUSPENDED: i32 = InvocationStatus::Suspended as i32;
pub const STATUS_SCHEDULED: i32 = InvocationStatus::Scheduled as i32;
/// Started, and runs nothing until resumed (`Store::pause`, or retries run out with
/// on_max_attempts "pause"): it keeps its key, its journal and its pending entries.
pub const STATUS_PAUSED: i32 = InvocationStatus::Paused as i32;

/// A status for messages ("running", "suspended", ...).
pub fn status_name(status: i32) -> &'static str {
    match status {
        STATUS_INBOXED => "inboxed",
        STATUS_RUNNING => "running",
        STATUS_BACKING_OFF => "backing off",
        STATUS_COMPLETED => "completed",
        STATUS_SUSPENDED => "suspended",
        STATUS_SCHEDULED => "scheduled",
        STATUS_PAUSED => "paused",
        _ => "not admitted",
    }
}

pub const KIND_SERVICE: i32 = HandlerKind::Service as i32;
pub const KIND_EXCLUSIVE: i32 = HandlerKind::Exclusive as i32;
pub const KIND_SHARED: i32 = HandlerKind::Shared as i32;
pub const KIND_WORKFLOW: i32 = HandlerKind::Workflow as i32;

/// The mutable part, kept by the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InvState {
    /// An `InvocationStatus` value; 0 until admitted.
    pub status: i32,
    pub retry_count: u32,
    /// Journal entries written or queued: the index of the next one.
    pub journal_len: u32,
    /// Whether the record has been queued for the invocations table.
    pub persisted: bool,
    /// While backing off or scheduled: when its timer fires.
    pub next_retry_ms: u64,
    /// While inboxed: its row in the inbox table.
    pub inbox_seq: u64,
    /// Cancellation requested and not yet observed (journaled CANCEL) by the handler.
    pub cancel_requested: bool,
}

/// Where an invocation came from, beyond its target: the caller awaiting its
/// result (a callee of a CALL entry) and the idempotency key it was sent with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Links {
    pub caller_id: String,
    pub caller_entry: u32,
    pub idempotency_key: String,
}

/// How an invocation ended, for its completed record.
#[derive(Clone, Copy, Debug, Default)]
pub struct Completion<'a> {
    pub output: Option<&'a [u8]>,
    pub failure_code: u32,
    pub failure_message: Option<&'a str>,
    pub completed_ms: u64,
    /// How long the completed invocation is kept; None: the server's default (purge's).
    pub retention_ms: Option<u64>,
}

#[derive(Debug)]
pub struct InvocationMeta {
    pub id: String,
    pub service: String,
    pub handler: String,
    pub key: String,
    pub kind: i32,
    pub headers: Vec<(String, String)>,
    pub created_ms: u64,
    pub caller_id: String,
    pub caller_entry: u32,
    pub idempotency_key: String,
    /// Encoded immutable fields; the input's bytes live here.
    fixed: Vec<u8>,
    input_at: (usize, usize),
    state: Mutex<InvState>,
    /// The deployment it runs on ("" : in-process handlers); see `Store::pin_deployment`.
    deployment: Mutex<String>,
}

fn put_varint(tag: u32, v: u64, buf: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(v, buf);
    }
}

fn put_bytes(tag: u32, b: &[u8], buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(b.len() as u64, buf);
    buf.extend_from_slice(b);
}

fn put_str(tag: u32, s: &str, buf: &mut Vec<u8>) {
    if !s.is_empty() {
        put_bytes(tag, s.as_bytes(), buf);
    }
}

impl InvocationMeta {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        service: String,
        handler: String,
        key: String,
        kind: i32,
        input: &[u8],
        headers: Vec<(String, String)>,
        created_ms: u64,
    ) -> Result<Arc<InvocationMeta>> {
        Self::with_links(id, service, handler, key, kind, input, headers, created_ms, Links::default())
    }

    /// Like [`InvocationMeta::new`], for a callee or an invocation with an idempotency key.
    #[allow(clippy::too_many_arguments)]
    pub fn with_links(
        id: String,
        service: String,
        handler: String,
        key: String,
        kind: i32,
        input: &[u8],
        headers: Vec<(String, String)>,
        created_ms: u64,
        links: Links,
    ) -> Result<Arc<InvocationMeta>> {
        if HandlerKind::try_from(kind).is_err() {
            return Err(Error::InvalidArgument(format!("unknown handler kind {kind}")));
        }
        let headers_len: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 8).sum();
        let mut fixed = Vec::with_capacity(id.len() + service.len() + handler.len() + key.len() + input.len() + headers_len + 32);
        put_str(1, &id, &mut fixed);
        put_str(2, &service, &mut fixed);
        put_str(3, &handler, &mut fixed);
        put_str(4, &key, &mut fixed);
        put_varint(5, kind as u64, &mut fixed);
        let mut input_at = (0, 0);
        if !input.is_empty() {
            put_bytes(6, input, &mut fixed);
            input_at = (fixed.len() - input.len(), fixed.len());
        }
        let mut header = Vec::new();
        for (name, value) in &headers {
            header.clear();
            put_str(1, name, &mut header);
            put_str(2, value, &mut header);
            put_bytes(7, &header, &mut fixed);
        }
        put_varint(10, created_ms, &mut fixed);
        let Links { caller_id, caller_entry, idempotency_key } = links;
        put_str(19, &caller_id, &mut fixed);
        put_varint(20, caller_entry as u64, &mut fixed);
        put_str(21, &idempotency_key, &mut fixed);
        Ok(Arc::new(InvocationMeta {
            id,
            service,
            handler,
            key,
            kind,
            headers,
            created_ms,
            caller_id,
            caller_entry,
            idempotency_key,
            fixed,
            input_at,
            state: Mutex::new(InvState::default()),
            deployment: Mutex::new(String::new()),
        }))
    }

    /// Rebuild from a stored record (recovery, `get_invocation`). A handler kind or a
    /// status that no Stead writes is `Error::Corrupt`: the bytes decoded, but are not
    /// a record (a caller's unknown kind is `InvalidArgument`, in `with_links`).
    pub fn from_record(rec: InvocationRecord) -> Result<Arc<InvocationMeta>> {
        if HandlerKind::try_from(rec.kind).is_err() {
            return Err(Error::corrupt(format_args!("invocation record {:?}: unknown handler kind {}", rec.id, rec.kind)));
        }
        if InvocationStatus::try_from(rec.status).is_err() {
            return Err(Error::corrupt(format_args!("invocation record {:?}: unknown status {}", rec.id, rec.status)));
        }
        let headers = rec.headers.into_iter().map(|h| (h.name, h.value)).collect();
        let links = Links { caller_id: rec.caller_id, caller_entry: rec.caller_entry, idempotency_key: rec.idempotency_key };
        let meta = InvocationMeta::with_links(rec.id, rec.service, rec.handler, rec.key, rec.kind, &rec.input, headers, rec.created_ms, links)?;
        *meta.state.lock() = InvState {
            status: rec.status,
            retry_count: rec.retry_count,
            journal_len: rec.journal_len,
            persisted: true,
            next_retry_ms: rec.next_retry_ms,
            inbox_seq: rec.inbox_seq,
            cancel_requested: rec.cancel_requested,
        };
        *meta.deployment.lock() = rec.deployment_id;
        Ok(meta)
    }

    pub fn input(&self) -> &[u8] {
        &self.fixed[self.input_at.0..self.input_at.1]
    }

    /// Exclusive on its object key (one at a time, may write state): virtual
    /// object exclusive handlers and workflow runs.
    pub fn is_exclusive(&self) -> bool {
        self.kind == KIND_EXCLUSIVE || self.kind == KIND_WORKFLOW
    }

    /// Registered in the idempotency table when admitted: an explicit key, or a
    /// workflow run (implicit key "": one run per workflow key).
    pub fn has_idempotency_row(&self) -> bool {
        self.kind == KIND_WORKFLOW || !self.idempotency_key.is_empty()
    }

    pub fn state(&self) -> InvState {
        *self.state.lock()
    }

    pub fn update<R>(&self, f: impl FnOnce(&mut InvState) -> R) -> R {
        f(&mut self.state.lock())
    }

    /// The deployment it is pinned to ("": none, in-process handlers).
    pub fn deployment(&self) -> String {
        self.deployment.lock().clone()
    }

    /// Pin it to `deployment_id` in memory; every later write of its record carries it.
    /// The store does this under its lock (`Store::pin_deployment`), which also writes
    /// the record of a persisted invocation.
    pub fn set_deployment(&self, deployment_id: &str) {
        let mut d = self.deployment.lock();
        d.clear();
        d.push_str(deployment_id);
    }

    /// Append the record for state `st` (and, once finished, its completion).
    pub fn encode_record_into(&self, st: &InvState, modified_ms: u64, done: Option<&Completion<'_>>, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.fixed);
        put_varint(8, st.status as u64, buf);
        put_varint(9, st.retry_count as u64, buf);
        put_varint(11, modified_ms, buf);
        if let Some(c) = done {
            put_varint(12, c.completed_ms, buf);
            if let Some(o) = c.output {
                put_bytes(13, o, buf);
            }
            put_varint(14, c.failure_code as u64, buf);
            if let Some(m) = c.failure_message {
                put_str(15, m, buf);
            }
            if let Some(r) = c.retention_ms {
                // A proto3 `optional` field: present even when 0 (purge at once).
                encode_key(23, WireType::Varint, buf);
                encode_varint(r, buf);
            }
        }
        put_varint(16, st.next_retry_ms, buf);
        put_varint(17, st.journal_len as u64, buf);
        put_varint(18, st.inbox_seq, buf);
        put_varint(22, st.cancel_requested as u64, buf);
        put_str(24, &self.deployment.lock(), buf);
    }
}

/// Decode a stored record (the `invocations` table's value); garbage is
/// `Error::Corrupt` naming it.
pub fn decode_record(bytes: &[u8]) -> Result<InvocationRecord> {
    InvocationRecord::decode(bytes).map_err(|e| Error::corrupt(format_args!("invocation record: {e}")))
}

/// The fields recovery and purge filter on, read without decoding (or
/// copying) the input and output of every record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Peek {
    pub status: i32,
    pub completed_ms: u64,
    /// Its own retention once completed (None: the server's default).
    pub retention_ms: Option<u64>,
}

impl Peek {
    /// Whether a completed invocation's retention has run out at `now_ms`.
    pub fn expired(&self, now_ms: u64, default_retention_ms: u64) -> bool {
        let keep = self.retention_ms.unwrap_or(default_retention_ms);
        self.completed_ms.saturating_add(keep) <= now_ms
    }
}

/// The peeked fields of a stored record: its wire format walked field by field,
/// length-delimited fields skipped (a record that `decode_record` reads gives the
/// same values; core_rs/fuzz/ checks it).
pub fn peek(mut buf: &[u8]) -> Result<Peek> {
    let bad = |e: prost::DecodeError| Error::corrupt(format_args!("invocation record: {e}"));
    let mut p = Peek::default();
    while buf.has_remaining() {
        let (tag, wire) = decode_key(&mut buf).map_err(bad)?;
        let skip = match wire {
            WireType::Varint => {
                let v = decode_varint(&mut buf).map_err(bad)?;
                match tag {
                    8 => p.status = v as i32,
                    12 => p.completed_ms = v,
                    23 => p.retention_ms = Some(v),
                    _ => {}
                }
                0
            }
            WireType::LengthDelimited => decode_varint(&mut buf).map_err(bad)? as usize,
            WireType::SixtyFourBit => 8,
            WireType::ThirtyTwoBit => 4,
            WireType::StartGroup | WireType::EndGroup => return Err(Error::corrupt("group in an invocation record")),
        };
        if skip > buf.len() {
            return Err(Error::corrupt("truncated invocation record"));
        }
        buf.advance(skip);
    }
    Ok(p)
}

/// Now, in milliseconds since the Unix epoch, by the injectable clock ([`crate::clock`]).
pub fn now_ms() -> u64 {
    crate::clock::now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Header;

    fn sample() -> Arc<InvocationMeta> {
        InvocationMeta::new(
            "inv_01".into(),
            "Cart".into(),
            "add".into(),
            "alice".into(),
            KIND_EXCLUSIVE,
            b"{\"item\":1}",
            vec![("content-type".into(), "application/json".into()), ("x".into(), "".into())],
            1234,
        )
        .unwrap()
    }

    #[test]
    fn record_decodes_as_one_message() {
        let m = sample();
        assert_eq!(m.input(), b"{\"item\":1}");
        let st = InvState { status: STATUS_COMPLETED, retry_count: 2, journal_len: 5, persisted: true, next_retry_ms: 0, inbox_seq: 0, cancel_requested: true };
        let done = Completion { output: Some(b""), failure_code: 0, failure_message: None, completed_ms: 99, retention_ms: Some(0) };
        let mut buf = Vec::new();
        m.encode_record_into(&st, 77, Some(&done), &mut buf);
        let rec = InvocationRecord::decode(buf.as_slice()).unwrap();
        let expected = InvocationRecord {
            id: "inv_01".into(),
            service: "Cart".into(),
            handler: "add".into(),
            key: "alice".into(),
            kind: KIND_EXCLUSIVE,
            input: b"{\"item\":1}".to_vec(),
            headers: vec![
                Header { name: "content-type".into(), value: "application/json".into() },
                Header { name: "x".into(), value: "".into() },
            ],
            status: STATUS_COMPLETED,
            retry_count: 2,
            created_ms: 1234,
            modified_ms: 77,
            completed_ms: 99,
            output: Some(vec![]),
            failure_code: 0,
            failure_message: String::new(),
            next_retry_ms: 0,
            journal_len: 5,
            inbox_seq: 0,
            caller_id: String::new(),
            caller_entry: 0,
            idempotency_key: String::new(),
            cancel_requested: true,
            retention_ms: Some(0),
            deployment_id: String::new(),
        };
        assert_eq!(rec, expected);
        let mut buf = Vec::new();
        m.encode_record_into(&st, 77, Some(&Completion { retention_ms: None, ..done }), &mut buf);
        assert_eq!(InvocationRecord::decode(buf.as_slice()).unwrap().retention_ms, None, "absent: the default");
        let back = InvocationMeta::from_record(rec).unwrap();
        assert_eq!(back.input(), m.input());
        assert_eq!(back.headers, m.headers);
        assert_eq!(back.state(), st);
        assert_eq!(back.deployment(), "");
    }

    #[test]
    fn deployment_round_trips_in_every_record() {
        let m = sample();
        m.set_deployment("dp_1");
        let st = InvState { status: STATUS_SUSPENDED, journal_len: 2, persisted: true, ..Default::default() };
        let mut buf = Vec::new();
        m.encode_record_into(&st, 5, None, &mut buf);
        let rec = InvocationRecord::decode(buf.as_slice()).unwrap();
        assert_eq!(rec.deployment_id, "dp_1");
        assert_eq!(InvocationMeta::from_record(rec).unwrap().deployment(), "dp_1");
        let done = Completion { output: Some(b"1"), completed_ms: 9, ..Default::default() };
        let mut buf = Vec::new();
        m.encode_record_into(&InvState { status: STATUS_COMPLETED, ..st }, 9, Some(&done), &mut buf);
        assert_eq!(InvocationRecord::decode(buf.as_slice()).unwrap().deployment_id, "dp_1", "kept by the completed record");
        m.set_deployment("");
        let mut buf = Vec::new();
        m.encode_record_into(&st, 5, None, &mut buf);
        assert_eq!(InvocationRecord::decode(buf.as_slice()).unwrap().deployment_id, "", "empty: absent");
    }

    #[test]
    fn links_round_trip() {
        let links = Links { caller_id: "inv_caller".into(), caller_entry: 7, idempotency_key: "idem".into() };
        let m = InvocationMeta::with_links("c".into(), "W".into(), "run".into(), "k".into(), KIND_WORKFLOW, b"x", vec![], 3, links.clone()).unwrap();
        assert!(m.is_exclusive() && m.has_idempotency_row());
        let mut buf = Vec::new();
        m.encode_record_into(&InvState { status: STATUS_SUSPENDED, ..Default::default() }, 1, None, &mut buf);
        let back = InvocationMeta::from_record(InvocationRecord::decode(buf.as_slice()).unwrap()).unwrap();
        assert_eq!((back.caller_id.as_str(), back.caller_entry, back.idempotency_key.as_str()), ("inv_caller", 7, "idem"));
        assert_eq!(back.state().status, STATUS_SUSPENDED);
    }

    #[test]
    fn records_no_stead_writes_are_corrupt() {
        // Bytes on disk that decode, but with a handler kind or a status no Stead writes.
        let rec = InvocationRecord { id: "i".into(), kind: 9, ..Default::default() };
        assert!(matches!(InvocationMeta::from_record(rec), Err(Error::Corrupt(m)) if m.contains("unknown handler kind 9")));
        let rec = InvocationRecord { id: "i".into(), status: 99, ..Default::default() };
        assert!(matches!(InvocationMeta::from_record(rec), Err(Error::Corrupt(m)) if m.contains("unknown status 99")));
    }

    #[test]
    fn empty_input_and_unknown_kind() {
        let m = InvocationMeta::new("i".into(), "S".into(), "h".into(), "".into(), KIND_SERVICE, b"", vec![], 0).unwrap();
        assert_eq!(m.input(), b"");
        assert!(InvocationMeta::new("i".into(), "S".into(), "h".into(), "".into(), 9, b"", vec![], 0).is_err());
    }
}
