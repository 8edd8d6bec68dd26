//! Completions of awaitable journal entries: the result of entry `i` of
//! invocation `id` at key "jc" (id, i) in the journal column family. The value
//! is a `JournalEntry` of the awaited entry's kind carrying the value, or the
//! failure code and message. Journal rows themselves stay append-only.

use crate::commit::Commit;
use crate::db::{Cf, Db};
use crate::entry::{self, Entry, EntryRef};
use crate::error::{Error, Result};
use crate::keys;

/// The result of an awaitable entry: (value, failure code, failure message).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome<'a> {
    pub value: Option<&'a [u8]>,
    pub code: u32,
    pub message: Option<&'a str>,
}

impl<'a> Outcome<'a> {
    pub fn ok(value: &'a [u8]) -> Self {
        Outcome { value: Some(value), code: 0, message: None }
    }

    pub fn failed(code: u32, message: &'a str) -> Self {
        Outcome { value: None, code, message: Some(message) }
    }
}

pub fn put(c: &mut Commit, inv_id: &str, index: u32, kind: i32, o: &Outcome<'_>) {
    let e = EntryRef { kind, name: None, value: o.value, code: o.code, message: o.message };
    c.put_with(Cf::Journal, |b| keys::completion_into(b, inv_id, index), |b| entry::encode_into(&e, b));
}

/// Drop the completion of entry `index` (an early one whose index was taken by another kind of entry).
pub fn delete(c: &mut Commit, inv_id: &str, index: u32) {
    c.delete_with(Cf::Journal, |b| keys::completion_into(b, inv_id, index));
}

/// Every completion of `inv_id`, by entry index.
pub fn load(db: &Db, inv_id: &str) -> Result<Vec<(u32, Entry)>> {
    let mut out = Vec::new();
    db.scan_prefix(Cf::Journal, &keys::completion_prefix(inv_id), |k, v| {
        let (_, index) = keys::decode_completion(k)?;
        out.push((index, decode(inv_id, index, v)?));
        Ok(true)
    })?;
    Ok(out)
}

/// Every completion whose key starts with `prefix` (`keys::completion_prefix` of one
/// invocation, or `keys::COMPLETION` for all): (invocation id, entry index, completion).
pub fn scan(db: &Db, prefix: &[u8], mut f: impl FnMut(&str, u32, Entry) -> Result<bool>) -> Result<()> {
    db.scan_prefix(Cf::Journal, prefix, |k, v| {
        let (id, index) = keys::decode_completion(k)?;
        f(id, index, decode(id, index, v)?)
    })
}

fn decode(inv_id: &str, index: u32, v: &[u8]) -> Result<Entry> {
    entry::decode(v).map_err(|e| {
        Error::corrupt(format_args!(
            "the completion of journal entry {index} of invocation {inv_id} is damaged: {}",
            super::journal::cause(e)
        ))
    })
}

pub fn delete_all(c: &mut Commit, inv_id: &str) {
    let prefix = keys::completion_prefix(inv_id);
    let end = keys::prefix_end(&prefix).expect("completion prefix has an end");
    c.delete_range(Cf::Journal, &prefix, &end);
}
