//! The one key-encoding module: every RocksDB key Stead writes is built and
//! parsed here, so the on-disk layout is visible in one place.
//!
//! A key is a fixed 2-byte kind prefix naming its table, then big-endian
//! fields: integers in big-endian so that byte order is numeric order (journal
//! by index, inbox by sequence, timers by fire time), strings prefixed with
//! their length (u32 BE) so that the prefix of one (service, key) can never
//! match another ("a" vs "ab"). The last string of a key (a state name, a meta
//! name) is written raw: nothing follows it. Kind prefixes are never reused for
//! another meaning once released; a change bumps `SCHEMA_VERSION`.
//!
//! Writers append into a caller's buffer (`*_into`) so that a commit builds all
//! its keys in one allocation; the `Vec`-returning forms are for reads.

use crate::error::{Error, Result};

pub const INVOCATION: [u8; 2] = *b"iv";
pub const JOURNAL: [u8; 2] = *b"jn";
/// Completions of awaitable journal entries; in the journal column family,
/// beside the entries they complete (an invocation's rows are purged together).
pub const COMPLETION: [u8; 2] = *b"jc";
pub const STATE: [u8; 2] = *b"st";
pub const INBOX: [u8; 2] = *b"ib";
pub const TIMER: [u8; 2] = *b"tm";
pub const IDEMPOTENCY: [u8; 2] = *b"id";
pub const PROMISE: [u8; 2] = *b"pr";
pub const META: [u8; 2] = *b"mt";

/// Entry index of a timer that retries the whole invocation (not a journal entry).
pub const RETRY_TIMER_ENTRY: u32 = u32::MAX;
/// Entry index of a timer that admits a delayed send (a scheduled invocation).
pub const SCHEDULED_TIMER_ENTRY: u32 = u32::MAX - 1;

#[inline]
fn put_lp(buf: &mut Vec<u8>, s: &[u8]) {
    buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
    buf.extend_from_slice(s);
}

fn with(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = Vec::with_capacity(48);
    f(&mut v);
    v
}

// ---- invocations: "iv" + inv_id bytes

pub fn invocation_into(buf: &mut Vec<u8>, inv_id: &str) {
    buf.extend_from_slice(&INVOCATION);
    buf.extend_from_slice(inv_id.as_bytes());
}

pub fn invocation(inv_id: &str) -> Vec<u8> {
    with(|b| invocation_into(b, inv_id))
}

pub fn decode_invocation(key: &[u8]) -> Result<&str> {
    let mut r = Reader::new(key, INVOCATION, "invocation")?;
    r.rest_str()
}

// ---- journal: "jn" + lp(inv_id) + u32 index

pub fn journal_prefix_into(buf: &mut Vec<u8>, inv_id: &str) {
    buf.extend_from_slice(&JOURNAL);
    put_lp(buf, inv_id.as_bytes());
}

pub fn journal_prefix(inv_id: &str) -> Vec<u8> {
    with(|b| journal_prefix_into(b, inv_id))
}

pub fn journal_into(buf: &mut Vec<u8>, inv_id: &str, index: u32) {
    journal_prefix_into(buf, inv_id);
    buf.extend_from_slice(&index.to_be_bytes());
}

pub fn journal(inv_id: &str, index: u32) -> Vec<u8> {
    with(|b| journal_into(b, inv_id, index))
}

pub fn decode_journal(key: &[u8]) -> Result<(&str, u32)> {
    let mut r = Reader::new(key, JOURNAL, "journal")?;
    let id = r.lp_str()?;
    let index = r.u32()?;
    r.end()?;
    Ok((id, index))
}

// ---- completions: "jc" + lp(inv_id) + u32 index (journal column family)

pub fn completion_prefix_into(buf: &mut Vec<u8>, inv_id: &str) {
    buf.extend_from_slice(&COMPLETION);
    put_lp(buf, inv_id.as_bytes());
}

pub fn completion_prefix(inv_id: &str) -> Vec<u8> {
    with(|b| completion_prefix_into(b, inv_id))
}

pub fn completion_into(buf: &mut Vec<u8>, inv_id: &str, index: u32) {
    completion_prefix_into(buf, inv_id);
    buf.extend_from_slice(&index.to_be_bytes());
}

pub fn completion(inv_id: &str, index: u32) -> Vec<u8> {
    with(|b| completion_into(b, inv_id, index))
}

pub fn decode_completion(key: &[u8]) -> Result<(&str, u32)> {
    let mut r = Reader::new(key, COMPLETION, "completion")?;
    let id = r.lp_str()?;
    let index = r.u32()?;
    r.end()?;
    Ok((id, index))
}

// ---- state: "st" + lp(service) + lp(key) + name bytes

/// Every state row of one service (all its object keys).
pub fn state_service_prefix(service: &str) -> Vec<u8> {
    with(|b| {
        b.extend_from_slice(&STATE);
        put_lp(b, service.as_bytes());
    })
}

pub fn state_prefix_into(buf: &mut Vec<u8>, service: &str, key: &str) {
    buf.extend_from_slice(&STATE);
    put_lp(buf, service.as_bytes());
    put_lp(buf, key.as_bytes());
}

pub fn state_prefix(service: &str, key: &str) -> Vec<u8> {
    with(|b| state_prefix_into(b, service, key))
}

pub fn state_into(buf: &mut Vec<u8>, service: &str, key: &str, name: &str) {
    state_prefix_into(buf, service, key);
    buf.extend_from_slice(name.as_bytes());
}

pub fn state(service: &str, key: &str, name: &str) -> Vec<u8> {
    with(|b| state_into(b, service, key, name))
}

pub fn decode_state(key: &[u8]) -> Result<(&str, &str, &str)> {
    let mut r = Reader::new(key, STATE, "state")?;
    let service = r.lp_str()?;
    let object = r.lp_str()?;
    Ok((service, object, r.rest_str()?))
}

// ---- inbox: "ib" + lp(service) + lp(key) + u64 seq

pub fn inbox_prefix_into(buf: &mut Vec<u8>, service: &str, key: &str) {
    buf.extend_from_slice(&INBOX);
    put_lp(buf, service.as_bytes());
    put_lp(buf, key.as_bytes());
}

pub fn inbox_prefix(service: &str, key: &str) -> Vec<u8> {
    with(|b| inbox_prefix_into(b, service, key))
}

pub fn inbox_into(buf: &mut Vec<u8>, service: &str, key: &str, seq: u64) {
    inbox_prefix_into(buf, service, key);
    buf.extend_from_slice(&seq.to_be_bytes());
}

pub fn inbox(service: &str, key: &str, seq: u64) -> Vec<u8> {
    with(|b| inbox_into(b, service, key, seq))
}

pub fn decode_inbox(key: &[u8]) -> Result<(&str, &str, u64)> {
    let mut r = Reader::new(key, INBOX, "inbox")?;
    let service = r.lp_str()?;
    let object = r.lp_str()?;
    let seq = r.u64()?;
    r.end()?;
    Ok((service, object, seq))
}

// ---- timers: "tm" + u64 fire_ms + lp(inv_id) + u32 entry index

pub fn timer_into(buf: &mut Vec<u8>, fire_ms: u64, inv_id: &str, entry: u32) {
    buf.extend_from_slice(&TIMER);
    buf.extend_from_slice(&fire_ms.to_be_bytes());
    put_lp(buf, inv_id.as_bytes());
    buf.extend_from_slice(&entry.to_be_bytes());
}

pub fn timer(fire_ms: u64, inv_id: &str, entry: u32) -> Vec<u8> {
    with(|b| timer_into(b, fire_ms, inv_id, entry))
}

pub fn decode_timer(key: &[u8]) -> Result<(u64, &str, u32)> {
    let mut r = Reader::new(key, TIMER, "timer")?;
    let fire_ms = r.u64()?;
    let id = r.lp_str()?;
    let entry = r.u32()?;
    r.end()?;
    Ok((fire_ms, id, entry))
}

// ---- idempotency: "id" + lp(service) + lp(key) + lp(handler) + lp(idempotency key)

pub fn idempotency(service: &str, key: &str, handler: &str, idem: &str) -> Vec<u8> {
    with(|b| {
        b.extend_from_slice(&IDEMPOTENCY);
        put_lp(b, service.as_bytes());
        put_lp(b, key.as_bytes());
        put_lp(b, handler.as_bytes());
        put_lp(b, idem.as_bytes());
    })
}

pub fn decode_idempotency(key: &[u8]) -> Result<(&str, &str, &str, &str)> {
    let mut r = Reader::new(key, IDEMPOTENCY, "idempotency")?;
    let out = (r.lp_str()?, r.lp_str()?, r.lp_str()?, r.lp_str()?);
    r.end()?;
    Ok(out)
}

// ---- promises: "pr" + lp(workflow) + lp(key) + name bytes

/// Every promise of one workflow (all its keys).
pub fn promise_workflow_prefix(workflow: &str) -> Vec<u8> {
    with(|b| {
        b.extend_from_slice(&PROMISE);
        put_lp(b, workflow.as_bytes());
    })
}

pub fn promise_prefix(workflow: &str, key: &str) -> Vec<u8> {
    with(|b| {
        b.extend_from_slice(&PROMISE);
        put_lp(b, workflow.as_bytes());
        put_lp(b, key.as_bytes());
    })
}

pub fn promise(workflow: &str, key: &str, name: &str) -> Vec<u8> {
    let mut b = promise_prefix(workflow, key);
    b.extend_from_slice(name.as_bytes());
    b
}

pub fn decode_promise(key: &[u8]) -> Result<(&str, &str, &str)> {
    let mut r = Reader::new(key, PROMISE, "promise")?;
    Ok((r.lp_str()?, r.lp_str()?, r.rest_str()?))
}

// ---- meta: "mt" + name bytes

pub fn meta(name: &str) -> Vec<u8> {
    with(|b| {
        b.extend_from_slice(&META);
        b.extend_from_slice(name.as_bytes());
    })
}

/// The smallest key greater than every key starting with `prefix`: the
/// exclusive upper bound of a prefix scan or range delete. `None` only for a
/// prefix of all 0xFF bytes, which no kind prefix is.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Cursor over one key; every error names the table whose key is malformed.
struct Reader<'a> {
    rest: &'a [u8],
    table: &'static str,
}

impl<'a> Reader<'a> {
    fn new(key: &'a [u8], kind: [u8; 2], table: &'static str) -> Result<Self> {
        match key.strip_prefix(&kind[..]) {
            Some(rest) => Ok(Reader { rest, table }),
            None => Err(Error::corrupt(format_args!("{table} key without its kind prefix: {key:?}"))),
        }
    }

    fn bad(&self) -> Error {
        Error::corrupt(format_args!("malformed {} key", self.table))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(self.bad());
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn str(&self, b: &'a [u8]) -> Result<&'a str> {
        std::str::from_utf8(b).map_err(|_| self.bad())
    }

    fn lp_str(&mut self) -> Result<&'a str> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        self.str(b)
    }

    fn rest_str(&mut self) -> Result<&'a str> {
        let b = std::mem::take(&mut self.rest);
        self.str(b)
    }

    fn end(&self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.bad())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(decode_invocation(&invocation("inv_1")).unwrap(), "inv_1");
        assert_eq!(decode_journal(&journal("inv_1", 7)).unwrap(), ("inv_1", 7));
        assert_eq!(decode_completion(&completion("inv_1", 7)).unwrap(), ("inv_1", 7));
        assert!(decode_journal(&completion("inv_1", 7)).is_err());
        assert!(!completion("inv_1", 0).starts_with(&journal_prefix("inv_1")));
        assert_eq!(decode_state(&state("Cart", "k", "items")).unwrap(), ("Cart", "k", "items"));
        assert_eq!(decode_inbox(&inbox("Cart", "k", 42)).unwrap(), ("Cart", "k", 42));
        assert_eq!(
            decode_timer(&timer(1_700_000, "inv_1", RETRY_TIMER_ENTRY)).unwrap(),
            (1_700_000, "inv_1", RETRY_TIMER_ENTRY)
        );
        assert_eq!(
            decode_idempotency(&idempotency("S", "", "h", "abc")).unwrap(),
            ("S", "", "h", "abc")
        );
        assert_eq!(decode_promise(&promise("W", "k", "p")).unwrap(), ("W", "k", "p"));
        assert_eq!(meta("schema_version"), b"mtschema_version");
        // Empty strings and unicode survive.
        assert_eq!(decode_state(&state("", "", "")).unwrap(), ("", "", ""));
        assert_eq!(decode_state(&state("Ω", "ключ", "名")).unwrap(), ("Ω", "ключ", "名"));
    }

    #[test]
    fn rejects_malformed_and_foreign_keys() {
        assert!(decode_journal(&state("a", "b", "c")).is_err());
        assert!(decode_journal(&journal("inv", 1)[..10]).is_err());
        let mut long = inbox("a", "b", 1);
        long.push(0);
        assert!(decode_inbox(&long).is_err());
        assert!(decode_invocation(b"x").is_err());
    }

    #[test]
    fn journal_orders_by_index() {
        let mut keys: Vec<Vec<u8>> = [300u32, 2, 1, 256, 0, 65536].iter().map(|i| journal("inv", *i)).collect();
        keys.sort();
        let idx: Vec<u32> = keys.iter().map(|k| decode_journal(k).unwrap().1).collect();
        assert_eq!(idx, vec![0, 1, 2, 256, 300, 65536]);
    }

    #[test]
    fn inbox_orders_by_seq() {
        let mut keys: Vec<Vec<u8>> = [9u64, 1 << 40, 10, 0, 255, 256].iter().map(|s| inbox("S", "k", *s)).collect();
        keys.sort();
        let seqs: Vec<u64> = keys.iter().map(|k| decode_inbox(k).unwrap().2).collect();
        assert_eq!(seqs, vec![0, 9, 10, 255, 256, 1 << 40]);
    }

    #[test]
    fn timers_order_by_fire_time_first() {
        let mut keys = [
            timer(2000, "a", 0),
            timer(1000, "zzzz", 5),
            timer(1000, "b", RETRY_TIMER_ENTRY),
            timer(1 << 33, "a", 0),
            timer(999, "zz", 1),
        ];
        keys.sort();
        let fires: Vec<(u64, String)> = keys
            .iter()
            .map(|k| {
                let (f, id, _) = decode_timer(k).unwrap();
                (f, id.to_string())
            })
            .collect();
        assert_eq!(fires[0].0, 999);
        assert_eq!(fires[1].0, 1000);
        assert_eq!(fires[2].0, 1000);
        assert_eq!(fires[3].0, 2000);
        assert_eq!(fires[4].0, 1 << 33);
    }

    #[test]
    fn object_prefix_never_matches_another_object() {
        let a = state_prefix("S", "a");
        let ab_row = state("S", "ab", "x");
        assert!(!ab_row.starts_with(&a));
        // And the service boundary: ("S", "ab") vs ("Sa", "b").
        assert!(!state("Sa", "b", "x").starts_with(&state_prefix("S", "ab")));
        assert!(state("S", "a", "x").starts_with(&a));
        // A service's prefix holds its keys and no other service's.
        assert!(state("S", "ab", "x").starts_with(&state_service_prefix("S")));
        assert!(!state("Sa", "b", "x").starts_with(&state_service_prefix("S")));
        assert!(promise("W", "k", "p").starts_with(&promise_workflow_prefix("W")));
        assert!(!promise("Wx", "k", "p").starts_with(&promise_workflow_prefix("W")));
        let ia = inbox_prefix("S", "a");
        assert!(!inbox("S", "ab", 1).starts_with(&ia));
        let ja = journal_prefix("inv_1");
        assert!(!journal("inv_12", 0).starts_with(&ja));
        // Every row of the prefix sorts below prefix_end.
        let end = prefix_end(&a).unwrap();
        assert!(state("S", "a", "\u{10FFFF}\u{10FFFF}").as_slice() < end.as_slice());
    }

    #[test]
    fn prefix_end_carries() {
        assert_eq!(prefix_end(b"ab").unwrap(), b"ac");
        assert_eq!(prefix_end(b"a\xff\xff").unwrap(), b"b");
        assert_eq!(prefix_end(b"\xff"), None);
    }
}
