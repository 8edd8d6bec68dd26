//! The `journal` table: entry `i` of invocation `id` at key (id, i).

use crate::commit::Commit;
use crate::db::{Cf, Db};
use crate::entry::{self, Entry, EntryRef};
use crate::error::{Error, Result};
use crate::keys;

/// Queue `entries` as rows `start, start+1, ...`.
pub fn append(c: &mut Commit, inv_id: &str, start: u32, entries: &[EntryRef<'_>]) {
    for (i, e) in entries.iter().enumerate() {
        c.put_with(Cf::Journal, |b| keys::journal_into(b, inv_id, start + i as u32), |b| entry::encode_into(e, b));
    }
}

pub fn load(db: &Db, inv_id: &str) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    db.scan_prefix(Cf::Journal, &keys::journal_prefix(inv_id), |k, v| {
        let (_, index) = keys::decode_journal(k)?;
        out.push(decode(inv_id, index, v)?);
        Ok(true)
    })?;
    Ok(out)
}

/// One journal row's value; a value that does not decode is reported with the
/// invocation and the entry it belongs to.
pub(crate) fn decode(inv_id: &str, index: u32, v: &[u8]) -> Result<Entry> {
    entry::decode(v).map_err(|e| Error::corrupt(format_args!("journal entry {index} of invocation {inv_id} is damaged: {}", cause(e))))
}

/// What a decoder said, without the "corrupt data: " of its own Display.
pub(crate) fn cause(e: Error) -> String {
    match e {
        Error::Corrupt(m) => m,
        other => other.to_string(),
    }
}

/// The index after the last stored entry (0 for none).
pub fn len(db: &Db, inv_id: &str) -> Result<u32> {
    match db.last_key_with_prefix(Cf::Journal, &keys::journal_prefix(inv_id))? {
        Some(k) => Ok(keys::decode_journal(&k)?.1 + 1),
        None => Ok(0),
    }
}

/// Every entry whose key starts with `prefix` (`keys::journal_prefix` of one
/// invocation, or `keys::JOURNAL` for all): (invocation id, index, entry), in key order.
pub fn scan(db: &Db, prefix: &[u8], mut f: impl FnMut(&str, u32, Entry) -> Result<bool>) -> Result<()> {
    db.scan_prefix(Cf::Journal, prefix, |k, v| {
        let (id, index) = keys::decode_journal(k)?;
        f(id, index, decode(id, index, v)?)
    })
}

pub fn delete_all(c: &mut Commit, inv_id: &str) {
    let prefix = keys::journal_prefix(inv_id);
    let end = keys::prefix_end(&prefix).expect("journal prefix has an end");
    c.delete_range(Cf::Journal, &prefix, &end);
}
