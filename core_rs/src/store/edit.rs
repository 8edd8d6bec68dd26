//! The admin's edit of an object key's state (Restate's `POST
//! /services/{name}/state`): the key's whole state replaced in one commit,
//! guarded by an optional expected version (optimistic concurrency).
//!
//! A version names a state's content: the same rows give the same version, in
//! any process and after any restart, so a client may keep one between reading
//! the state and editing it.
//!
//! An edit never races a handler: it is refused while an exclusive or workflow
//! invocation owns the key or waits for it. Once the key is free, the rows the
//! version is checked against must be the latest: RocksDB has them unless the
//! key's last commits are queued and not written yet. Those are known in memory
//! when they came from a purge or an edit (`Inner::state`); when they came from
//! the key's last owner, whose finishing commit freed the key (`Inner::freed`),
//! the rows are unknown here (the runtime's state cache has them) and a checked
//! edit is refused as busy until that commit is durable, a matter of one group
//! commit.

use sha2::{Digest, Sha256};

use crate::commit::Commit;
use crate::error::{Error, Result};
use crate::invocation::now_ms;
use crate::keys;
use crate::tables::state;

use super::effects::Tx;
use super::Store;

/// The version of one key's state: lowercase hex of a SHA-256 over its rows in name
/// order, each as (u32 BE name length, name, u64 BE value length, value), so that no
/// two different states share an input. `rows` must come in name order.
pub fn state_version_of<'a>(rows: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut h = Sha256::new();
    for (name, value) in rows {
        h.update((name.len() as u32).to_be_bytes());
        h.update(name.as_bytes());
        h.update((value.len() as u64).to_be_bytes());
        h.update(value);
    }
    let digest = h.finalize();
    let mut out = String::with_capacity(2 * digest.len());
    for b in digest {
        out.push(char::from_digit((b >> 4) as u32, 16).expect("a nibble"));
        out.push(char::from_digit((b & 15) as u32, 16).expect("a nibble"));
    }
    out
}

fn of_rows(rows: &state::Rows) -> String {
    state_version_of(rows.iter().map(|(n, v)| (n.as_str(), v.as_slice())))
}

impl Store {
    /// The version of the key's state as `load_state` sees it.
    pub fn state_version(&self, service: &str, key: &str) -> Result<String> {
        let (rows, _) = self.load_state(service, key)?;
        Ok(state_version_of(rows.iter()))
    }

    /// Replace the key's whole state by `rows` (a name given twice: the last value) in
    /// one commit; returns (the new version, seq). `Error::KeyBusy` while the key is
    /// owned (or, with `expected`, while its last owner's commit is not durable);
    /// `Error::VersionMismatch` if `expected` is not the current version. Nothing is
    /// written on an error. Never waits for the writer.
    pub fn overwrite_state(
        &self,
        service: &str,
        key: &str,
        rows: Vec<(String, Vec<u8>)>,
        expected: Option<&str>,
    ) -> Result<(String, u64)> {
        let rows: state::Rows = rows.into_iter().collect();
        let version = of_rows(&rows);
        let prefix = keys::state_prefix(service, key);
        let mut inner = self.inner.lock();
        if let Some(owner) = inner.admission.owner_of(service, key) {
            return Err(Error::KeyBusy(format!("object {service}/{key} is held by invocation {}", owner.id)));
        }
        let waiting = inner.admission.inbox_len(service, key);
        if waiting > 0 {
            return Err(Error::KeyBusy(format!("object {service}/{key} has {waiting} invocation(s) waiting for it")));
        }
        let durable = self.writer.durable_seq();
        inner.state.prune(durable);
        if let Some(expected) = expected {
            inner.freed.prune(durable);
            let current = match inner.state.get_with_seq(&prefix) {
                Some((known, _)) => of_rows(known),
                None if inner.freed.get_with_seq(&prefix).is_some() => {
                    return Err(Error::KeyBusy(format!(
                        "object {service}/{key} was just released by its last invocation, whose commit is not durable yet; retry"
                    )))
                }
                // One key's rows, read under the lock (like the point reads of `progress`):
                // nothing can change them between this check and the commit below.
                None => state_version_of(state::load(&self.db, service, key)?.iter()),
            };
            if current != expected {
                return Err(Error::VersionMismatch {
                    service: service.to_string(),
                    key: key.to_string(),
                    expected: expected.to_string(),
                    found: current,
                });
            }
        }
        let bytes: usize = rows.iter().map(|(n, v)| prefix.len() + n.len() + v.len()).sum();
        let mut tx = Tx::new(&mut inner, &self.writer, Commit::with_capacity(bytes + 2 * prefix.len() + 16, rows.len() + 1), now_ms());
        let seq = tx.next_seq();
        state::replace(&mut tx.c, service, key, &rows);
        // Until it is durable, `load_state` answers from these rows (RocksDB may still
        // have the old ones), and later handler commits keep them up to date (`track_state`).
        tx.inner.state.put(prefix, rows, seq);
        Ok((version, tx.push()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_stable_and_unambiguous() {
        let empty = state_version_of(std::iter::empty());
        // SHA-256 of nothing: the version of an empty state is fixed forever.
        assert_eq!(empty, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let a = state_version_of([("ab", &b"c"[..])]);
        assert_eq!(a.len(), 64);
        assert_eq!(a, state_version_of([("ab", &b"c"[..])]));
        // The same bytes split differently are another state.
        assert_ne!(a, state_version_of([("a", &b"bc"[..])]));
        assert_ne!(a, state_version_of([("ab", &b"c"[..]), ("", &b""[..])]));
        assert_ne!(empty, state_version_of([("", &b""[..])]));
    }
}
