//! Journal entries as they cross the store's API, and their on-disk encoding
//! (`stead.v1.JournalEntry`, proto/stead/journal.proto).
//!
//! Writes take borrowed entries ([`EntryRef`]) and encode them straight into a
//! commit's arena with prost's wire helpers, so that journaling an entry copies
//! its bytes once and allocates nothing. Reads decode with the generated prost
//! type, keeping the schema in one place.

use prost::encoding::{encode_key, encode_varint, WireType};
use prost::Message;

use crate::error::{Error, Result};
use crate::proto::{EntryKind, JournalEntry};

pub const GET_STATE: i32 = EntryKind::GetState as i32;
pub const SET_STATE: i32 = EntryKind::SetState as i32;
pub const CLEAR_STATE: i32 = EntryKind::ClearState as i32;
pub const CLEAR_ALL: i32 = EntryKind::ClearAll as i32;
pub const STATE_KEYS: i32 = EntryKind::StateKeys as i32;
pub const RUN: i32 = EntryKind::Run as i32;
pub const SLEEP: i32 = EntryKind::Sleep as i32;
pub const CALL: i32 = EntryKind::Call as i32;
pub const SEND: i32 = EntryKind::Send as i32;
pub const AWAKEABLE: i32 = EntryKind::Awakeable as i32;
pub const COMPLETE_AWAKEABLE: i32 = EntryKind::CompleteAwakeable as i32;
pub const GET_PROMISE: i32 = EntryKind::GetPromise as i32;
pub const PEEK_PROMISE: i32 = EntryKind::PeekPromise as i32;
pub const COMPLETE_PROMISE: i32 = EntryKind::CompletePromise as i32;
pub const CANCEL: i32 = EntryKind::Cancel as i32;
pub const COMBINATOR: i32 = EntryKind::Combinator as i32;
pub const CANCEL_INVOCATION: i32 = EntryKind::CancelInvocation as i32;
pub const ATTACH_INVOCATION: i32 = EntryKind::AttachInvocation as i32;

/// Kinds that stay pending once journaled until a completion row arrives.
/// (COMPLETE_PROMISE is awaitable too, but completed in the commit that journals it.)
pub fn waits(kind: i32) -> bool {
    matches!(kind, SLEEP | CALL | AWAKEABLE | GET_PROMISE | ATTACH_INVOCATION)
}

/// The fire time of a SLEEP entry: its value, 8 bytes big-endian.
pub fn sleep_fire_ms(value: Option<&[u8]>) -> Option<u64> {
    value.and_then(|v| <[u8; 8]>::try_from(v).ok()).map(u64::from_be_bytes)
}

/// A journal entry borrowed from the caller: (kind, name, value, code, message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub kind: i32,
    pub name: Option<&'a str>,
    pub value: Option<&'a [u8]>,
    pub code: u32,
    pub message: Option<&'a str>,
}

/// An owned journal entry, as read back from the journal table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: i32,
    pub name: Option<String>,
    pub value: Option<Vec<u8>>,
    pub code: u32,
    pub message: Option<String>,
}

impl Entry {
    pub fn as_ref(&self) -> EntryRef<'_> {
        EntryRef {
            kind: self.kind,
            name: self.name.as_deref(),
            value: self.value.as_deref(),
            code: self.code,
            message: self.message.as_deref(),
        }
    }
}

/// Kinds that carry a name; for the others an empty name on disk reads as None.
fn has_name(kind: i32) -> bool {
    matches!(
        kind,
        GET_STATE
            | SET_STATE
            | CLEAR_STATE
            | RUN
            | CALL
            | SEND
            | COMPLETE_AWAKEABLE
            | GET_PROMISE
            | PEEK_PROMISE
            | COMPLETE_PROMISE
            | CANCEL_INVOCATION
            | ATTACH_INVOCATION
    )
}

pub fn check_kind(kind: i32) -> Result<()> {
    match EntryKind::try_from(kind) {
        Ok(k) if k != EntryKind::Unspecified => Ok(()),
        _ => Err(Error::InvalidArgument(format!("unknown journal entry kind {kind}"))),
    }
}

fn put_len_delimited(tag: u32, b: &[u8], buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(b.len() as u64, buf);
    buf.extend_from_slice(b);
}

/// Append the protobuf encoding of `e` (identical to prost's for the same
/// message: proto3 defaults omitted, `value` present whenever it is Some).
pub fn encode_into(e: &EntryRef<'_>, buf: &mut Vec<u8>) {
    if e.kind != 0 {
        encode_key(1, WireType::Varint, buf);
        encode_varint(e.kind as i64 as u64, buf);
    }
    if let Some(n) = e.name.filter(|n| !n.is_empty()) {
        put_len_delimited(2, n.as_bytes(), buf);
    }
    if let Some(v) = e.value {
        put_len_delimited(3, v, buf);
    }
    if e.code != 0 {
        encode_key(4, WireType::Varint, buf);
        encode_varint(e.code as u64, buf);
    }
    if let Some(m) = e.message.filter(|m| !m.is_empty()) {
        put_len_delimited(5, m.as_bytes(), buf);
    }
}

/// Decode a journal or completion row's value. Garbage is `Error::Corrupt` naming
/// it, and so is an entry of a kind no Stead writes (`encode_into`'s callers
/// check the kind first): it could only be replayed as a mismatch.
pub fn decode(bytes: &[u8]) -> Result<Entry> {
    let je = JournalEntry::decode(bytes).map_err(|e| Error::corrupt(format_args!("journal entry: {e}")))?;
    if check_kind(je.kind).is_err() {
        return Err(Error::corrupt(format_args!("journal entry of unknown kind {}", je.kind)));
    }
    let name = if has_name(je.kind) || !je.name.is_empty() { Some(je.name) } else { None };
    // A failure message is meaningful with a failure code; keep a stray one too.
    let message = if je.failure_code != 0 || !je.failure_message.is_empty() { Some(je.failure_message) } else { None };
    Ok(Entry { kind: je.kind, name, value: je.value, code: je.failure_code, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prost_bytes(e: &Entry) -> Vec<u8> {
        JournalEntry {
            kind: e.kind,
            name: e.name.clone().unwrap_or_default(),
            value: e.value.clone(),
            failure_code: e.code,
            failure_message: e.message.clone().unwrap_or_default(),
        }
        .encode_to_vec()
    }

    #[test]
    fn hand_encoding_matches_prost_and_round_trips() {
        let cases = [
            Entry { kind: GET_STATE, name: Some("count".into()), value: None, code: 0, message: None },
            Entry { kind: GET_STATE, name: Some("count".into()), value: Some(b"".to_vec()), code: 0, message: None },
            Entry { kind: SET_STATE, name: Some("count".into()), value: Some(b"42".to_vec()), code: 0, message: None },
            Entry { kind: CLEAR_STATE, name: Some("x".into()), value: None, code: 0, message: None },
            Entry { kind: CLEAR_ALL, name: None, value: None, code: 0, message: None },
            Entry { kind: STATE_KEYS, name: None, value: Some(b"[\"a\"]".to_vec()), code: 0, message: None },
            Entry { kind: RUN, name: Some("charge".into()), value: Some(vec![0; 300]), code: 0, message: None },
            Entry { kind: RUN, name: Some("charge".into()), value: None, code: 409, message: Some("declined".into()) },
            Entry { kind: SLEEP, name: None, value: Some(1000u64.to_be_bytes().to_vec()), code: 0, message: None },
            Entry { kind: CALL, name: Some("Svc/h".into()), value: Some(b"inv_x".to_vec()), code: 0, message: None },
            Entry { kind: AWAKEABLE, name: None, value: None, code: 0, message: None },
            Entry { kind: GET_PROMISE, name: Some("".into()), value: None, code: 0, message: None },
            Entry { kind: COMPLETE_PROMISE, name: Some("p".into()), value: None, code: 500, message: Some("no".into()) },
            Entry { kind: CANCEL_INVOCATION, name: Some("inv_y".into()), value: None, code: 0, message: None },
            Entry { kind: ATTACH_INVOCATION, name: Some("inv_z".into()), value: None, code: 0, message: None },
        ];
        for e in &cases {
            let mut buf = Vec::new();
            encode_into(&e.as_ref(), &mut buf);
            assert_eq!(buf, prost_bytes(e), "{e:?}");
            assert_eq!(&decode(&buf).unwrap(), e);
        }
    }

    #[test]
    fn garbage_is_corrupt_and_named() {
        let unknown = JournalEntry { kind: 99, ..Default::default() }.encode_to_vec();
        assert!(matches!(decode(&unknown), Err(Error::Corrupt(m)) if m == "journal entry of unknown kind 99"));
        assert!(matches!(decode(b""), Err(Error::Corrupt(m)) if m == "journal entry of unknown kind 0"));
        assert!(matches!(decode(b"\x12\x05ab"), Err(Error::Corrupt(m)) if m.starts_with("journal entry: ")));
    }

    #[test]
    fn kinds_are_checked() {
        assert!(check_kind(RUN).is_ok());
        assert!(check_kind(0).is_err());
        assert!(check_kind(CANCEL_INVOCATION).is_ok());
        assert!(check_kind(ATTACH_INVOCATION).is_ok());
        assert_eq!(ATTACH_INVOCATION, 18, "on disk: never renumbered");
        assert!(check_kind(19).is_err());
        assert!(check_kind(99).is_err());
        assert_eq!(sleep_fire_ms(Some(&5u64.to_be_bytes())), Some(5));
        assert_eq!(sleep_fire_ms(Some(b"123")), None);
    }
}
