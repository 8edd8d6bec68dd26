//! The `invocations` table: one `InvocationRecord` per invocation id.

use prost::Message;

use crate::commit::Commit;
use crate::db::{Cf, Db};
use crate::error::Result;
use crate::invocation::{Completion, InvState, InvocationMeta};
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

/// Every record in id order, until `f` returns `Ok(false)`.
pub fn scan(db: &Db, mut f: impl FnMut(InvocationRecord) -> Result<bool>) -> Result<()> {
    db.scan_prefix(Cf::Invocations, &keys::INVOCATION, |_, v| f(InvocationRecord::decode(v)?))
}
