//! The `idempotency` table: (service, key, handler, idempotency key) -> the
//! invocation id that holds the key (a workflow run uses key "").

use crate::commit::Commit;
use crate::db::{Cf, Db};
use crate::error::{Error, Result};
use crate::keys;

pub fn put(c: &mut Commit, key: &[u8], inv_id: &str) {
    c.put(Cf::Idempotency, key, inv_id.as_bytes());
}

pub fn delete(c: &mut Commit, key: &[u8]) {
    c.delete(Cf::Idempotency, key);
}

pub fn get(db: &Db, key: &[u8]) -> Result<Option<String>> {
    db.get(Cf::Idempotency, key)?
        .map(|v| String::from_utf8(v).map_err(|_| Error::corrupt("idempotency value is not an invocation id")))
        .transpose()
}

/// Every row: ((service, key, handler, idempotency key), invocation id), in key order.
pub fn scan(db: &Db, mut f: impl FnMut((&str, &str, &str, &str), &str) -> Result<bool>) -> Result<()> {
    db.scan_table(Cf::Idempotency, &keys::IDEMPOTENCY, &keys::IDEMPOTENCY, |k, v| {
        let id = std::str::from_utf8(v).map_err(|_| Error::corrupt("idempotency value is not an invocation id"))?;
        f(keys::decode_idempotency(k)?, id)
    })
}
