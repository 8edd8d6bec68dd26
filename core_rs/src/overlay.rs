//! Rows queued for the writer but perhaps not written yet, overlaying RocksDB
//! for reads that must see every queued commit (idempotency keys, promises,
//! invocations finished or purged since open).
//!
//! Each row remembers the sequence number of the commit that wrote it; once
//! that commit is durable RocksDB has the same row, so the entry may be
//! dropped. Pruning is amortized: it runs when the map has doubled since the
//! last prune. A read that finds a row also gets that sequence number: the
//! commit the caller must wait for before it acts on what it read (0 for a row
//! read from RocksDB, which is durable).
//!
//! A reader that looks at RocksDB first and at the overlay later (to hold the
//! store lock only for the second part) compares [`Overlay::generation`] before
//! and after: if no prune ran in between, every row queued since its RocksDB
//! read is still in the overlay.

use std::collections::HashMap;

const MIN_PRUNE: usize = 1024;

#[derive(Debug)]
pub struct Overlay<V> {
    rows: HashMap<Vec<u8>, (V, u64)>,
    prune_at: usize,
    generation: u64,
}

impl<V> Default for Overlay<V> {
    fn default() -> Self {
        Overlay { rows: HashMap::new(), prune_at: MIN_PRUNE, generation: 0 }
    }
}

impl<V> Overlay<V> {
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.rows.get(key).map(|(v, _)| v)
    }

    /// The row and the sequence number of the commit that wrote it.
    pub fn get_with_seq(&self, key: &[u8]) -> Option<(&V, u64)> {
        self.rows.get(key).map(|(v, seq)| (v, *seq))
    }

    /// Counts the prunes that dropped rows.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        self.rows.get_mut(key).map(|(v, _)| v)
    }

    /// The row as written by commit `seq` (0: read from RocksDB, not written).
    pub fn put(&mut self, key: Vec<u8>, v: V, seq: u64) {
        self.rows.insert(key, (v, seq));
    }

    /// Mark an entry as written again by commit `seq`.
    pub fn touch(&mut self, key: &[u8], seq: u64) {
        if let Some(e) = self.rows.get_mut(key) {
            e.1 = seq;
        }
    }

    /// Replace every row whose key starts with `prefix` by `empty()`, written by `seq`.
    pub fn reset_prefix(&mut self, prefix: &[u8], empty: impl Fn() -> V, seq: u64) {
        for (k, e) in self.rows.iter_mut() {
            if k.starts_with(prefix) {
                *e = (empty(), seq);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Drop rows whose commit is durable (RocksDB has them), if the map grew enough.
    pub fn maybe_prune(&mut self, durable_seq: u64) {
        if self.rows.len() < self.prune_at {
            return;
        }
        let before = self.rows.len();
        self.rows.retain(|_, (_, seq)| *seq > durable_seq);
        if self.rows.len() != before {
            self.generation += 1;
        }
        self.prune_at = (2 * self.rows.len()).max(MIN_PRUNE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prunes_only_durable_rows_when_grown() {
        let mut o = Overlay::default();
        for i in 0..MIN_PRUNE as u64 - 1 {
            o.put(i.to_be_bytes().to_vec(), i, i);
        }
        o.maybe_prune(u64::MAX);
        assert_eq!(o.len(), MIN_PRUNE - 1, "below the threshold nothing is pruned");
        o.put(b"last".to_vec(), 7, 5000);
        o.touch(&3u64.to_be_bytes(), 6000);
        assert_eq!(o.generation(), 0);
        o.maybe_prune(4000);
        assert_eq!(o.generation(), 1);
        assert_eq!(o.len(), 2);
        assert_eq!(o.get_with_seq(b"last"), Some((&7, 5000)));
        assert_eq!(o.get(b"last"), Some(&7));
        assert_eq!(o.get(&3u64.to_be_bytes()), Some(&3));
        *o.get_mut(b"last").unwrap() = 8;
        assert_eq!(o.get(b"last"), Some(&8));
    }
}
