//! The `timers` table: what fires when, keyed (fire_ms, invocation id, entry
//! index). A retry timer uses entry index `keys::RETRY_TIMER_ENTRY`, a
//! delayed send `keys::SCHEDULED_TIMER_ENTRY`, a sleep its SLEEP entry's index.
//! The value is empty (the invocation record and journal say the rest).

use crate::commit::Commit;
use crate::db::{Cf, Db};
use crate::error::Result;
use crate::keys;

pub fn put(c: &mut Commit, fire_ms: u64, inv_id: &str, entry: u32) {
    c.put_with(Cf::Timers, |b| keys::timer_into(b, fire_ms, inv_id, entry), |_| {});
}

pub fn delete(c: &mut Commit, fire_ms: u64, inv_id: &str, entry: u32) {
    c.delete_with(Cf::Timers, |b| keys::timer_into(b, fire_ms, inv_id, entry));
}

/// Every timer, earliest first.
pub fn scan(db: &Db, mut f: impl FnMut(u64, &str, u32) -> Result<bool>) -> Result<()> {
    db.scan_table(Cf::Timers, &keys::TIMER, &keys::TIMER, |k, _| {
        let (fire_ms, id, entry) = keys::decode_timer(k)?;
        f(fire_ms, id, entry)
    })
}
