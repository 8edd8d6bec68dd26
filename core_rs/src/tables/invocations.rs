//! The `invocations` table: one `InvocationRecord` per invocation id.

use prost::Message;

use crate::commit::Commit;
use crate::db::{Cf, Db};
use crate::error::Result;
use crate::invocation::{Completion, InvState, InvocationMeta};
// The peek decodes bytes only (no RocksDB): it lives beside the record's encoder,
// where core_rs/fuzz/ reaches it without the `storage` feature.
pub use crate::invocation::{peek, Peek};
use crate::keys;
use crate::proto::InvocationRecord;

pub fn put(c: &mut Commit, inv: &InvocationMeta, st: &InvState, modified_ms: u64, done: Option<&Completion<'_>>) {
    c.put_with(Cf::Invocations, |b| keys::invocation_into(b, &inv.id), |b| inv.encode_record_into(st, modified_ms, done, b));
}

pub fn delete(c: &mut Commit, inv_id: &str) {
    c.delete_with(Cf::Invocations, |b| keys::invocation_into(b, inv_id));
}

pub fn get(db: &Db, inv_id: &str) -> Result<Option<InvocationRecord>> {
    match db.get(Cf::Invocations, &keys::invocation(inv_id))? {
        Some(v) => Ok(Some(InvocationRecord::decode(v.as_slice())?)),
        None => Ok(None),
    }
}

/// The peeked fields of one record, if it exists.
pub fn peek_one(db: &Db, inv_id: &str) -> Result<Option<Peek>> {
    db.get(Cf::Invocations, &keys::invocation(inv_id))?.map(|v| peek(&v)).transpose()
}

/// Every record in id order, until `f` returns `Ok(false)`.
pub fn scan(db: &Db, mut f: impl FnMut(InvocationRecord) -> Result<bool>) -> Result<()> {
    db.scan_table(Cf::Invocations, &keys::INVOCATION, &keys::INVOCATION, |_, v| f(InvocationRecord::decode(v)?))
}

/// Every record whose id sorts after `after` ("": from the first), in id order,
/// until `f` returns `Ok(false)`.
pub fn scan_after(db: &Db, after: &str, mut f: impl FnMut(InvocationRecord) -> Result<bool>) -> Result<()> {
    let mut from = keys::invocation(after);
    if !after.is_empty() {
        from.push(0); // the least key above `after`'s own
    }
    db.scan_table(Cf::Invocations, &keys::INVOCATION, &from, |_, v| f(InvocationRecord::decode(v)?))
}

/// Like [`scan`], but `f` sees the peeked fields and the raw record, and
/// decodes only the records it keeps.
pub fn scan_peek(db: &Db, mut f: impl FnMut(Peek, &[u8]) -> Result<bool>) -> Result<()> {
    db.scan_table(Cf::Invocations, &keys::INVOCATION, &keys::INVOCATION, |_, v| f(peek(v)?, v))
}

/// Every record with its id (from the key) and raw bytes, in id order.
pub fn scan_with_key(db: &Db, mut f: impl FnMut(&str, &[u8]) -> Result<bool>) -> Result<()> {
    db.scan_table(Cf::Invocations, &keys::INVOCATION, &keys::INVOCATION, |k, v| f(keys::decode_invocation(k)?, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invocation::{InvocationMeta, KIND_EXCLUSIVE, STATUS_COMPLETED};

    #[test]
    fn peek_agrees_with_a_full_decode() {
        let m = InvocationMeta::new("i".into(), "S".into(), "h".into(), "k".into(), KIND_EXCLUSIVE, &[7; 1000], vec![("a".into(), "b".into())], 5).unwrap();
        let st = InvState { status: STATUS_COMPLETED, journal_len: 3, persisted: true, ..Default::default() };
        let done = Completion {
            output: Some(&[1; 300]),
            failure_code: 2,
            failure_message: Some("m"),
            completed_ms: 1 << 40,
            retention_ms: Some(1000),
        };
        let mut buf = Vec::new();
        m.encode_record_into(&st, 9, Some(&done), &mut buf);
        let rec = InvocationRecord::decode(buf.as_slice()).unwrap();
        let expected = Peek { status: rec.status, completed_ms: rec.completed_ms, retention_ms: Some(1000) };
        assert_eq!(peek(&buf).unwrap(), expected);
        assert_eq!(peek(&rec.encode_to_vec()).unwrap(), Peek { status: STATUS_COMPLETED, completed_ms: 1 << 40, retention_ms: Some(1000) });
        assert!(!expected.expired((1 << 40) + 999, 0));
        assert!(expected.expired((1 << 40) + 1000, u64::MAX), "its own retention, not the default");
        let default = Peek { retention_ms: None, ..expected };
        assert!(!default.expired((1 << 40) + 1000, 5000));
        assert!(default.expired((1 << 40) + 5000, 5000));
        assert!(!default.expired(u64::MAX - 1, u64::MAX), "no overflow");
        assert!(peek(&buf[..buf.len() - 1]).is_err());
        assert!(peek(&buf[..20]).is_err());
    }
}
