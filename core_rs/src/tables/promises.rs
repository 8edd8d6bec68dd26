//! The `promises` table: one `PromiseRecord` per (workflow, key, promise name):
//! its outcome once completed (the first completion wins), its waiters before.

use prost::Message;

use crate::commit::Commit;
use crate::db::{Cf, Db};
use crate::error::Result;
use crate::keys;
use crate::proto::PromiseRecord;

pub fn put(c: &mut Commit, key: &[u8], rec: &PromiseRecord) {
    c.put_with(Cf::Promises, |b| b.extend_from_slice(key), |b| rec.encode(b).expect("a Vec grows"));
}

/// The record at `key` (`keys::promise`), or an empty (pending, unknown) one.
pub fn get(db: &Db, key: &[u8]) -> Result<PromiseRecord> {
    match db.get(Cf::Promises, key)? {
        Some(v) => Ok(PromiseRecord::decode(v.as_slice())?),
        None => Ok(PromiseRecord::default()),
    }
}

/// Every record whose key starts with `prefix` (`keys::PROMISE`,
/// `keys::promise_workflow_prefix` or `keys::promise_prefix`): (workflow, key, name, record).
pub fn scan(db: &Db, prefix: &[u8], mut f: impl FnMut(&str, &str, &str, PromiseRecord) -> Result<bool>) -> Result<()> {
    db.scan_prefix(Cf::Promises, prefix, |k, v| {
        let (workflow, key, name) = keys::decode_promise(k)?;
        f(workflow, key, name, PromiseRecord::decode(v)?)
    })
}

/// Delete every promise of one workflow key.
pub fn delete_all(c: &mut Commit, workflow: &str, key: &str) {
    let prefix = keys::promise_prefix(workflow, key);
    let end = keys::prefix_end(&prefix).expect("promise prefix has an end");
    c.delete_range(Cf::Promises, &prefix, &end);
}
