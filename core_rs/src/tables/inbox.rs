//! The `inbox` table: invocations waiting for an object key, in arrival
//! order (key (service, key, seq), value the invocation id).

use crate::commit::Commit;
use crate::db::{Cf, Db};
use crate::error::{Error, Result};
use crate::keys;

pub fn put(c: &mut Commit, service: &str, key: &str, seq: u64, inv_id: &str) {
    c.put_with(Cf::Inbox, |b| keys::inbox_into(b, service, key, seq), |b| b.extend_from_slice(inv_id.as_bytes()));
}

pub fn delete(c: &mut Commit, service: &str, key: &str, seq: u64) {
    c.delete_with(Cf::Inbox, |b| keys::inbox_into(b, service, key, seq));
}

fn inv_id(v: &[u8]) -> Result<&str> {
    std::str::from_utf8(v).map_err(|_| Error::corrupt("inbox value is not an invocation id"))
}

/// Every inbox row: (service, key, seq, invocation id), each key's rows in inbox order.
pub fn scan(db: &Db, mut f: impl FnMut(&str, &str, u64, &str) -> Result<bool>) -> Result<()> {
    db.scan_table(Cf::Inbox, &keys::INBOX, &keys::INBOX, |k, v| {
        let (service, key, seq) = keys::decode_inbox(k)?;
        f(service, key, seq, inv_id(v)?)
    })
}

/// The waiting invocation ids of one object, in inbox order.
pub fn load(db: &Db, service: &str, key: &str) -> Result<Vec<(u64, String)>> {
    let mut out = Vec::new();
    db.scan_prefix(Cf::Inbox, &keys::inbox_prefix(service, key), |k, v| {
        let (_, _, seq) = keys::decode_inbox(k)?;
        out.push((seq, inv_id(v)?.to_string()));
        Ok(true)
    })?;
    Ok(out)
}
