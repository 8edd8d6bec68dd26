//! The `state` table: the value of state `name` of object (service, key).

use std::collections::BTreeMap;

use crate::commit::Commit;
use crate::db::{Cf, Db};
use crate::entry::{self, EntryRef};
use crate::error::{Error, Result};
use crate::keys;

/// Queue the state effects of journal entries, in journal order.
///
/// CLEAR_ALL is a range delete over the object's prefix: it covers rows on
/// disk and rows set by commits still queued ahead of this one (a scan would
/// miss those), and later SETs of the same batch still apply after it.
pub fn apply(c: &mut Commit, service: &str, key: &str, entries: &[EntryRef<'_>]) {
    for e in entries {
        match e.kind {
            entry::SET_STATE => c.put_with(
                Cf::State,
                |b| keys::state_into(b, service, key, e.name.unwrap_or("")),
                |b| b.extend_from_slice(e.value.unwrap_or(b"")),
            ),
            entry::CLEAR_STATE => c.delete_with(Cf::State, |b| keys::state_into(b, service, key, e.name.unwrap_or(""))),
            entry::CLEAR_ALL => {
                let prefix = keys::state_prefix(service, key);
                let end = keys::prefix_end(&prefix).expect("state prefix has an end");
                c.delete_range(Cf::State, &prefix, &end);
            }
            _ => {}
        }
    }
}

/// The state rows of one object kept in memory, by name (the order of the table).
pub type Rows = BTreeMap<String, Vec<u8>>;

/// Apply the state effects of journal entries to rows kept in memory, as `apply`
/// does to the table.
pub fn apply_to(rows: &mut Rows, entries: &[EntryRef<'_>]) {
    for e in entries {
        match e.kind {
            entry::SET_STATE => {
                rows.insert(e.name.unwrap_or("").to_string(), e.value.unwrap_or(b"").to_vec());
            }
            entry::CLEAR_STATE => {
                rows.remove(e.name.unwrap_or(""));
            }
            entry::CLEAR_ALL => rows.clear(),
            _ => {}
        }
    }
}

/// Whether any of the entries changes state.
pub fn writes(entries: &[EntryRef<'_>]) -> bool {
    entries.iter().any(|e| matches!(e.kind, entry::SET_STATE | entry::CLEAR_STATE | entry::CLEAR_ALL))
}

/// Every state row of one object, names and values in one buffer.
#[derive(Default, Debug)]
pub struct StateRows {
    buf: Vec<u8>,
    /// (name start, value start, value end) into `buf`.
    rows: Vec<(u32, u32, u32)>,
}

impl StateRows {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// A copy of rows kept in memory.
    pub fn from_rows(rows: &Rows) -> StateRows {
        let bytes = rows.iter().map(|(n, v)| n.len() + v.len()).sum();
        let mut out = StateRows { buf: Vec::with_capacity(bytes), rows: Vec::with_capacity(rows.len()) };
        for (name, value) in rows {
            out.push(name.as_bytes(), value);
        }
        out
    }

    fn push(&mut self, name: &[u8], value: &[u8]) {
        let n = self.buf.len() as u32;
        self.buf.extend_from_slice(name);
        let vs = self.buf.len() as u32;
        self.buf.extend_from_slice(value);
        self.rows.push((n, vs, self.buf.len() as u32));
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &[u8])> + '_ {
        self.rows.iter().map(|&(n, v, e)| {
            let name = std::str::from_utf8(&self.buf[n as usize..v as usize]).expect("validated in load");
            (name, &self.buf[v as usize..e as usize])
        })
    }
}

pub fn load(db: &Db, service: &str, key: &str) -> Result<StateRows> {
    let prefix = keys::state_prefix(service, key);
    let mut out = StateRows::default();
    db.scan_prefix(Cf::State, &prefix, |k, v| {
        let name = &k[prefix.len()..];
        std::str::from_utf8(name).map_err(|_| Error::corrupt("state name is not UTF-8"))?;
        out.push(name, v);
        Ok(true)
    })?;
    Ok(out)
}

/// Every row whose key starts with `prefix` (`keys::STATE`, `keys::state_service_prefix`
/// or `keys::state_prefix`): (service, key, name, value), in key order.
pub fn scan(db: &Db, prefix: &[u8], mut f: impl FnMut(&str, &str, &str, &[u8]) -> Result<bool>) -> Result<()> {
    db.scan_prefix(Cf::State, prefix, |k, v| {
        let (service, key, name) = keys::decode_state(k)?;
        f(service, key, name, v)
    })
}

/// Replace every state row of one object by `rows` (the admin's edit of its state).
pub fn replace(c: &mut Commit, service: &str, key: &str, rows: &Rows) {
    delete_all(c, service, key);
    for (name, value) in rows {
        c.put_with(Cf::State, |b| keys::state_into(b, service, key, name), |b| b.extend_from_slice(value));
    }
}

/// Delete every state row of one object (purge of a workflow key).
pub fn delete_all(c: &mut Commit, service: &str, key: &str) {
    let prefix = keys::state_prefix(service, key);
    let end = keys::prefix_end(&prefix).expect("state prefix has an end");
    c.delete_range(Cf::State, &prefix, &end);
}
