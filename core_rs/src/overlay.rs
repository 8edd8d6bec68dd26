//! Rows queued for the writer but perhaps not written yet, overlaying RocksDB
//! for reads that must see every queued commit (idempotency keys, promises,
//! invocations finished or purged since open). [`Overlay`] keeps rows until it
//! has grown enough to prune; [`Recent`] drops each as soon as it is durable.
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

use std::collections::{HashMap, VecDeque};

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

/// Rows of commits that are not durable yet, each dropped as soon as its commit
/// is (in commit order, O(1) amortized per row), unlike [`Overlay`], which keeps
/// durable rows until the map has doubled. For values that may be large (an
/// invocation's output) and are needed only until RocksDB has them.
#[derive(Debug)]
pub struct Recent<V> {
    rows: HashMap<Vec<u8>, (V, u64)>,
    /// Keys in the order of their commits, to drop them as commits become durable.
    order: VecDeque<(u64, Vec<u8>)>,
}

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Recent { rows: HashMap::new(), order: VecDeque::new() }
    }
}

impl<V> Recent<V> {
    /// The row written by commit `seq` (increasing from one put to the next). Rows
    /// leave only through `prune`, so a reader that found a row in a critical section
    /// finds it again later in it.
    pub fn put(&mut self, key: Vec<u8>, v: V, seq: u64) {
        self.order.push_back((seq, key.clone()));
        self.rows.insert(key, (v, seq));
    }

    /// Change the row in place as written again by commit `seq` (not lower than its
    /// last); false if there is no row (nothing is changed then).
    pub fn update(&mut self, key: &[u8], seq: u64, f: impl FnOnce(&mut V)) -> bool {
        let Some((v, s)) = self.rows.get_mut(key) else {
            return false;
        };
        f(v);
        if *s != seq {
            *s = seq;
            self.order.push_back((seq, key.to_vec()));
        }
        true
    }

    /// The row and the commit that wrote it; None once that commit is durable and
    /// the row dropped (RocksDB has it then).
    pub fn get_with_seq(&self, key: &[u8]) -> Option<(&V, u64)> {
        self.rows.get(key).map(|(v, seq)| (v, *seq))
    }

    /// Forget a row before its commit is durable (its subject is gone: a purged
    /// invocation). Its place in the commit order is skipped by `prune`.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        self.rows.remove(key).map(|(v, _)| v)
    }

    /// Drop the rows whose commits are durable (RocksDB has them).
    pub fn prune(&mut self, durable_seq: u64) {
        while let Some((seq, _)) = self.order.front() {
            if *seq > durable_seq {
                break;
            }
            let (seq, key) = self.order.pop_front().expect("front exists");
            // A key put again later keeps its newer row.
            if self.rows.get(&key).is_some_and(|(_, s)| *s == seq) {
                self.rows.remove(&key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_rows_leave_as_their_commits_become_durable() {
        let mut r = Recent::default();
        r.put(b"a".to_vec(), 1, 5);
        r.put(b"b".to_vec(), 2, 6);
        r.put(b"a".to_vec(), 3, 7); // written again by a later commit
        assert_eq!(r.get_with_seq(b"a"), Some((&3, 7)));
        r.prune(6);
        assert_eq!(r.get_with_seq(b"a"), Some((&3, 7)), "the newer row stays");
        assert_eq!(r.get_with_seq(b"b"), None);
        r.put(b"c".to_vec(), 4, 8);
        r.prune(7);
        assert_eq!(r.len(), 1);
        assert_eq!(r.get_with_seq(b"c"), Some((&4, 8)));
        r.prune(100);
        assert!(r.is_empty() && r.order.is_empty());
        r.put(b"d".to_vec(), 5, 9);
        assert_eq!(r.remove(b"d"), Some(5));
        assert_eq!(r.get_with_seq(b"d"), None);
        r.put(b"d".to_vec(), 6, 10);
        r.prune(9);
        assert_eq!(r.get_with_seq(b"d"), Some((&6, 10)), "a removed row's old commit does not drop a new row");
        r.prune(10);
        assert!(r.is_empty() && r.order.is_empty());
    }

    #[test]
    fn an_updated_row_stays_until_its_last_commit_is_durable() {
        let mut r = Recent::default();
        r.put(b"a".to_vec(), vec![1], 5);
        assert!(!r.update(b"b", 6, |v: &mut Vec<i32>| v.push(9)), "no row: nothing to update");
        assert!(r.update(b"a", 7, |v| v.push(2)));
        assert!(r.update(b"a", 7, |v| v.push(3)), "the same commit again");
        r.prune(6);
        assert_eq!(r.get_with_seq(b"a"), Some((&vec![1, 2, 3], 7)));
        r.prune(7);
        assert!(r.is_empty() && r.order.is_empty());
        assert_eq!(r.get_with_seq(b"b"), None);
    }

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
