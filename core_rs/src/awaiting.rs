//! Who waits for what: the in-memory registry of persisted, unfinished
//! invocations and of their pending awaitable entries, and the wakes that tell
//! the runtime what to do after a commit.
//!
//! Pure state (no I/O). The store consults and changes it in the same critical
//! section in which it queues the matching commit, so the registry always
//! describes the queued prefix of the log; recovery rebuilds it from the
//! journal ("jn") and completion ("jc") rows of unfinished invocations.
//!
//! An ATTACH_INVOCATION entry waits for another invocation's result: the
//! registry indexes such waiters by their target too, so that the target's
//! finishing commit completes them (as a callee completes its caller's CALL).
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
/// An invocation running in memory was paused: close its attempt (like a suspension);
/// a resume starts it again by replay (WAKE_RUN).
pub const WAKE_PAUSE: i32 = 6;

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
    /// ATTACH_INVOCATION: the result of this (unfinished) invocation. Cancel and
    /// kill do not follow it: attaching does not own the target.
    Attach(String),
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
    /// Pending ATTACH_INVOCATION entries by target: target id -> (attacher id, entry index).
    /// Kept in step with the attachers' `pending` entries.
    attached: HashMap<String, Vec<(String, u32)>>,
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
        for (index, p) in &l.pending {
            self.unlink_attach(id, *index, p);
        }
        Some(l)
    }

    /// Drop the reverse index row of a pending entry that no longer waits.
    fn unlink_attach(&mut self, id: &str, index: u32, p: &Pending) {
        let Wait::Attach(target) = &p.wait else { return };
        if let Some(waiters) = self.attached.get_mut(target) {
            waiters.retain(|(w, i)| !(w == id && *i == index));
            if waiters.is_empty() {
                self.attached.remove(target);
            }
        }
    }

    /// The pending ATTACH_INVOCATION entries waiting for `target`'s result, taken from
    /// the index (the entries stay pending until completed).
    pub fn take_attachers(&mut self, target: &str) -> Vec<(String, u32)> {
        if self.attached.is_empty() {
            return Vec::new(); // every finish asks: skip the hashing when nobody attaches
        }
        self.attached.remove(target).unwrap_or_default()
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

    /// Every tracked invocation.
    pub fn metas(&self) -> impl Iterator<Item = &Arc<InvocationMeta>> {
        self.live.values().map(|l| &l.meta)
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
        let Some(l) = self.live.get_mut(id) else { return false };
        let target = match &p.wait {
            Wait::Attach(target) => Some(target.clone()),
            _ => None,
        };
        if let Some(old) = l.pending.insert(index, p) {
            self.unlink_attach(id, index, &old);
        }
        if let Some(target) = target {
            self.attached.entry(target).or_default().push((id.to_string(), index));
        }
        true
    }

    /// Entry `index` of `id` got its completion: it no longer waits.
    pub fn take(&mut self, id: &str, index: u32) -> Option<Pending> {
        let p = self.live.get_mut(id)?.pending.remove(&index)?;
        self.unlink_attach(id, index, &p);
        Some(p)
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

    fn attach(target: &str) -> Pending {
        Pending { kind: entry::ATTACH_INVOCATION, wait: Wait::Attach(target.into()) }
    }

    #[test]
    fn attachers_are_indexed_by_target_while_pending() {
        let mut r = Registry::default();
        for id in ["a", "b", "t"] {
            r.insert(&meta(id));
        }
        r.await_entry("a", 1, attach("t"));
        r.await_entry("a", 2, attach("t"));
        r.await_entry("b", 0, attach("t"));
        r.await_entry("b", 3, attach("u"));
        assert!(r.take("a", 2).is_some(), "completed otherwise: leaves the index");
        r.remove("b"); // finished: its waits leave the index
        assert_eq!(r.take_attachers("t"), [("a".to_string(), 1)]);
        assert!(r.take_attachers("t").is_empty());
        assert!(r.take_attachers("u").is_empty());
        assert!(r.is_pending("a", 1), "still pending until completed");
        assert!(r.call_tree("a").len() == 1, "cancel and kill do not follow attaches");
        r.await_entry("a", 5, attach("t"));
        r.await_entry("a", 5, attach("v")); // the same index again replaces its wait
        assert!(r.take_attachers("t").is_empty());
        assert_eq!(r.take_attachers("v"), [("a".to_string(), 5)]);
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
