//! The `idempotency` table: (service, key, handler, idempotency key) -> the
//! invocation id that holds the key (a workflow run uses key "").

use crate::commit::Commit;
use crate::db::{Cf, Db};
use crate::error::{Error, Result};

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
