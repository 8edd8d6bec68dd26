//! Who waits for what: the in-memory registry of persisted, unfinished
//! invocations and of their pending awaitable entries, and the wakes that tell
//! the runtime what to do after a commit.
//!
//! Pure state (no I/O). The store consults and changes it in the same critical
//! section in which it queues the matching commit, so the registry always
//! describes the queued prefix of the log; recovery rebuilds it from the
//! journal ("jn") and completion ("jc") rows of unfinished invocations.
//!
//! An awakeable can be resolved before its entry is journaled (its id was
//! handed out by a handler whose AWAKEABLE entry is still in memory): such an
//! *early* completion is kept (a completion row beyond the journal, and here)
//! until the entry at its index is journaled.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::invocation::InvocationMeta;

/// Start an admitted invocation, or resume a suspended one by replay.
pub const WAKE_RUN: i32 = 1;
/// A completion for an invocation running in memory.
pub const WAKE_DELIVER: i32 = 2;
/// Cancellation requested for an invocation running in memory.
pub const WAKE_CANCEL: i32 = 3;
/// An invocation running in memory was killed (it is already completed).
pub const WAKE_KILL: i32 = 4;
/// Completed inside the store (killed, or cancelled before it started).
pub const WAKE_DONE: i32 = 5;

/// What the runtime must do once commit `seq` is durable.
#[derive(Clone, Debug)]
pub struct Wake {
    pub what: i32,
    pub inv: Arc<InvocationMeta>,
    pub index: u32,
    pub value: Option<Vec<u8>>,
    pub code: u32,
    pub message: Option<String>,
    pub seq: u64,
}

/// What a pending entry waits on, beyond its completion row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wait {
    /// AWAKEABLE, GET_PROMISE: someone else completes it.
    Other,
    /// SLEEP: its timer row fires at this time.
    Timer(u64),
    /// CALL: the callee's result (cancel and kill follow this edge).
    Callee(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The awaited entry's kind (the completion row carries it too).
    pub kind: i32,
    pub wait: Wait,
}

/// A completion for an entry index not journaled yet (only awakeables get them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Early {
    pub value: Option<Vec<u8>>,
    pub code: u32,
    pub message: Option<String>,
    /// The commit that wrote its completion row (0: read at recovery).
    pub seq: u64,
}

#[derive(Debug)]
pub struct Live {
    pub meta: Arc<InvocationMeta>,
    /// Pending awaitable entries by journal index.
    pub pending: BTreeMap<u32, Pending>,
    /// Early completions by (future) journal index.
    pub early: BTreeMap<u32, Early>,
}

#[derive(Default, Debug)]
pub struct Registry {
    live: HashMap<String, Live>,
    /// How many invocations hold early completions: journaling checks for them
    /// only when some exist.
    with_early: usize,
}

impl Registry {
    /// Track `meta` (no-op if tracked already).
    pub fn insert(&mut self, meta: &Arc<InvocationMeta>) {
        if !self.live.contains_key(&meta.id) {
            self.live.insert(meta.id.clone(), Live { meta: meta.clone(), pending: BTreeMap::new(), early: BTreeMap::new() });
        }
    }

    pub fn remove(&mut self, id: &str) -> Option<Live> {
        let l = self.live.remove(id)?;
        if !l.early.is_empty() {
            self.with_early -= 1;
        }
        Some(l)
    }

    /// Keep an early completion for entry `index` of `id`. False if `id` is not
    /// tracked or already has one for `index`.
    pub fn add_early(&mut self, id: &str, index: u32, e: Early) -> bool {
        let Some(l) = self.live.get_mut(id) else { return false };
        if l.early.contains_key(&index) {
            return false;
        }
        if l.early.is_empty() {
            self.with_early += 1;
        }
        l.early.insert(index, e);
        true
    }

    pub fn early(&self, id: &str, index: u32) -> Option<&Early> {
        self.live.get(id)?.early.get(&index)
    }

    /// Take the early completions of `id` for indices in `from..to` (the entries
    /// being journaled now), in index order.
    pub fn take_early(&mut self, id: &str, from: u32, to: u32) -> Vec<(u32, Early)> {
        if self.with_early == 0 || from >= to {
            return Vec::new();
        }
        let Some(l) = self.live.get_mut(id) else { return Vec::new() };
        if l.early.is_empty() {
            return Vec::new();
        }
        let rest = l.early.split_off(&to);
        let mut taken = std::mem::replace(&mut l.early, rest);
        let keep = taken.split_off(&from); // taken: below `from`, kept
        l.early.extend(taken);
        if l.early.is_empty() {
            self.with_early -= 1;
        }
        keep.into_iter().collect()
    }

    pub fn get(&self, id: &str) -> Option<&Live> {
        self.live.get(id)
    }

    pub fn meta(&self, id: &str) -> Option<&Arc<InvocationMeta>> {
        self.live.get(id).map(|l| &l.meta)
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Entry `index` of `id` now waits. False if `id` is not tracked.
    pub fn await_entry(&mut self, id: &str, index: u32, p: Pending) -> bool {
        match self.live.get_mut(id) {
            Some(l) => {
                l.pending.insert(index, p);
                true
            }
            None => false,
        }
    }

    /// Entry `index` of `id` got its completion: it no longer waits.
    pub fn take(&mut self, id: &str, index: u32) -> Option<Pending> {
        self.live.get_mut(id)?.pending.remove(&index)
    }

    pub fn is_pending(&self, id: &str, index: u32) -> bool {
        self.live.get(id).is_some_and(|l| l.pending.contains_key(&index))
    }

    /// `root` (if tracked) and every tracked invocation it awaits through pending
    /// CALL entries, transitively; callers before their callees, each once.
    pub fn call_tree(&self, root: &str) -> Vec<Arc<InvocationMeta>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut todo = std::collections::VecDeque::from([root.to_string()]);
        while let Some(id) = todo.pop_front() {
            let Some(l) = self.live.get(&id) else { continue };
            if !seen.insert(id) {
                continue;
            }
            out.push(l.meta.clone());
            for p in l.pending.values() {
                if let Wait::Callee(c) = &p.wait {
                    todo.push_back(c.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry;
    use crate::invocation::KIND_SERVICE;

    fn meta(id: &str) -> Arc<InvocationMeta> {
        InvocationMeta::new(id.into(), "S".into(), "h".into(), "".into(), KIND_SERVICE, b"", vec![], 0).unwrap()
    }

    fn call(callee: &str) -> Pending {
        Pending { kind: entry::CALL, wait: Wait::Callee(callee.into()) }
    }

    #[test]
    fn pending_entries_are_taken_once() {
        let mut r = Registry::default();
        assert!(!r.await_entry("a", 1, call("b")), "untracked");
        r.insert(&meta("a"));
        r.insert(&meta("a"));
        assert_eq!(r.len(), 1);
        assert!(r.await_entry("a", 1, Pending { kind: entry::SLEEP, wait: Wait::Timer(5) }));
        assert!(r.is_pending("a", 1));
        assert!(!r.is_pending("a", 2));
        assert_eq!(r.take("a", 1).unwrap().wait, Wait::Timer(5));
        assert!(r.take("a", 1).is_none());
        assert!(r.remove("a").is_some());
        assert!(r.is_empty());
    }

    fn early(seq: u64) -> Early {
        Early { value: Some(b"v".to_vec()), code: 0, message: None, seq }
    }

    #[test]
    fn early_completions_are_taken_by_index_range() {
        let mut r = Registry::default();
        assert!(!r.add_early("a", 3, early(1)), "untracked");
        r.insert(&meta("a"));
        assert!(r.take_early("a", 0, 10).is_empty());
        for i in [2, 5, 9] {
            assert!(r.add_early("a", i, early(i as u64)));
        }
        assert!(!r.add_early("a", 5, early(7)), "one per index");
        assert_eq!(r.early("a", 5).unwrap().seq, 5);
        let got: Vec<u32> = r.take_early("a", 3, 9).into_iter().map(|(i, _)| i).collect();
        assert_eq!(got, [5]);
        assert!(r.early("a", 2).is_some() && r.early("a", 9).is_some() && r.early("a", 5).is_none());
        assert_eq!(r.take_early("a", 0, 100).len(), 2);
        assert_eq!(r.with_early, 0);
        r.add_early("a", 1, early(1));
        assert_eq!(r.with_early, 1);
        r.remove("a");
        assert_eq!(r.with_early, 0);
    }

    #[test]
    fn call_tree_follows_pending_calls_once_callers_first() {
        let mut r = Registry::default();
        for id in ["a", "b", "c", "d", "x"] {
            r.insert(&meta(id));
        }
        r.await_entry("a", 1, call("b"));
        r.await_entry("a", 2, call("c"));
        r.await_entry("b", 0, call("d"));
        r.await_entry("d", 0, call("a")); // a cycle is visited once
        r.await_entry("c", 0, call("gone")); // finished callees are not tracked
        r.await_entry("c", 1, Pending { kind: entry::AWAKEABLE, wait: Wait::Other });
        let ids: Vec<String> = r.call_tree("a").iter().map(|m| m.id.clone()).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        assert!(r.call_tree("nope").is_empty());
        assert_eq!(r.call_tree("x").len(), 1);
    }
}
