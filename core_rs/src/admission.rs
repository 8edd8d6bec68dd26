//! Per-key exclusivity: which invocation owns each object key and who waits
//! in its inbox, in arrival order.
//!
//! This is the in-memory mirror of the `inbox` table and of the running
//! records. It is a plain state machine (no I/O): the store decides with it
//! and writes the matching rows in the same critical section, so the order of
//! decisions is the order of commits.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::invocation::InvocationMeta;
use crate::keys;

#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// May run now (nothing to write).
    RunNow,
    /// Queued behind the key's owner with this inbox sequence number.
    Inboxed(u64),
}

/// What finishing an invocation did to its key.
#[derive(Debug)]
pub enum Release {
    /// Not exclusive, or not the key's owner: nothing changed.
    Unchanged,
    /// It owned the key and no one waits: the key is free.
    Freed,
    /// It owned the key: the next inboxed invocation owns it now.
    Next(Arc<InvocationMeta>),
}

#[derive(Default, Debug)]
struct Object {
    owner: Option<Arc<InvocationMeta>>,
    inbox: VecDeque<Arc<InvocationMeta>>,
}

#[derive(Default, Debug)]
pub struct Admission {
    /// Keyed by `keys::inbox_prefix(service, key)`: unambiguous and cheap.
    objects: HashMap<Vec<u8>, Object>,
    next_inbox_seq: u64,
}

fn object_id(inv: &InvocationMeta) -> Vec<u8> {
    keys::inbox_prefix(&inv.service, &inv.key)
}

impl Admission {
    /// Services and shared handlers always run now; an exclusive handler runs
    /// now if its key is free (and then owns it), else joins the key's inbox.
    pub fn admit(&mut self, inv: &Arc<InvocationMeta>) -> Admit {
        if !inv.is_exclusive() {
            return Admit::RunNow;
        }
        let obj = self.objects.entry(object_id(inv)).or_default();
        match &obj.owner {
            None => {
                obj.owner = Some(inv.clone());
                return Admit::RunNow;
            }
            // Already the owner (e.g. admitted again after recovery): never queue
            // an invocation behind itself.
            Some(o) if o.id == inv.id => return Admit::RunNow,
            Some(_) => {}
        }
        let seq = self.next_inbox_seq;
        self.next_inbox_seq += 1;
        obj.inbox.push_back(inv.clone());
        Admit::Inboxed(seq)
    }

    /// `inv` finished: if it owns its key, the key passes to the next inboxed
    /// invocation, which is returned; with none waiting the key becomes free.
    pub fn release(&mut self, inv: &InvocationMeta) -> Release {
        if !inv.is_exclusive() {
            return Release::Unchanged;
        }
        let id = object_id(inv);
        let Some(obj) = self.objects.get_mut(&id) else { return Release::Unchanged };
        if obj.owner.as_ref().is_none_or(|o| o.id != inv.id) {
            return Release::Unchanged; // not the owner (a duplicate completion): change nothing
        }
        match obj.inbox.pop_front() {
            Some(next) => {
                obj.owner = Some(next.clone());
                Release::Next(next)
            }
            None => {
                self.objects.remove(&id);
                Release::Freed
            }
        }
    }

    /// Take a waiting invocation out of its key's inbox (it finished without
    /// running, e.g. cancelled). Returns whether it was there.
    pub fn remove_inboxed(&mut self, inv: &InvocationMeta) -> bool {
        let Some(obj) = self.objects.get_mut(&object_id(inv)) else { return false };
        let before = obj.inbox.len();
        obj.inbox.retain(|w| w.id != inv.id);
        before != obj.inbox.len()
    }

    pub fn owner_of(&self, service: &str, key: &str) -> Option<&Arc<InvocationMeta>> {
        self.objects.get(&keys::inbox_prefix(service, key))?.owner.as_ref()
    }

    pub fn inbox_len(&self, service: &str, key: &str) -> usize {
        self.objects.get(&keys::inbox_prefix(service, key)).map_or(0, |o| o.inbox.len())
    }

    // ---- recovery

    /// A running or backing-off exclusive invocation found on disk owns its key.
    pub fn set_owner(&mut self, inv: Arc<InvocationMeta>) {
        let id = object_id(&inv);
        self.objects.entry(id).or_default().owner = Some(inv);
    }

    /// Append an inboxed invocation found on disk; call in inbox-seq order.
    pub fn push_inboxed(&mut self, inv: Arc<InvocationMeta>) {
        let seq = inv.state().inbox_seq;
        self.next_inbox_seq = self.next_inbox_seq.max(seq + 1);
        let id = object_id(&inv);
        self.objects.entry(id).or_default().inbox.push_back(inv);
    }

    /// Keys with waiters but no owner (their owner completed or never got
    /// written before a crash): the first waiter of each becomes the owner and
    /// is returned, so that it can be written running and run.
    pub fn promote_unowned(&mut self) -> Vec<Arc<InvocationMeta>> {
        let mut promoted = Vec::new();
        for obj in self.objects.values_mut() {
            if obj.owner.is_none() {
                if let Some(next) = obj.inbox.pop_front() {
                    obj.owner = Some(next.clone());
                    promoted.push(next);
                }
            }
        }
        promoted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invocation::{KIND_EXCLUSIVE, KIND_SERVICE, KIND_SHARED};

    fn inv(id: &str, key: &str, kind: i32) -> Arc<InvocationMeta> {
        InvocationMeta::new(id.into(), "Obj".into(), "h".into(), key.into(), kind, b"", vec![], 0).unwrap()
    }

    #[test]
    fn exclusive_handlers_queue_per_key_in_arrival_order() {
        let mut a = Admission::default();
        let (a1, a2, a3, b1) = (inv("a1", "a", KIND_EXCLUSIVE), inv("a2", "a", KIND_EXCLUSIVE), inv("a3", "a", KIND_EXCLUSIVE), inv("b1", "ab", KIND_EXCLUSIVE));
        assert_eq!(a.admit(&a1), Admit::RunNow);
        assert_eq!(a.admit(&a2), Admit::Inboxed(0));
        assert_eq!(a.admit(&b1), Admit::RunNow); // "ab" is another key
        assert_eq!(a.admit(&a3), Admit::Inboxed(1));
        assert_eq!(a.admit(&inv("s", "a", KIND_SHARED)), Admit::RunNow);
        assert_eq!(a.admit(&inv("v", "", KIND_SERVICE)), Admit::RunNow);
        assert_eq!(a.inbox_len("Obj", "a"), 2);
        let next = |r: Release| match r {
            Release::Next(n) => n.id.clone(),
            other => panic!("expected a next owner, got {other:?}"),
        };
        assert!(matches!(a.release(&a2), Release::Unchanged)); // not the owner
        assert_eq!(next(a.release(&a1)), "a2");
        assert_eq!(next(a.release(&a2)), "a3");
        assert!(matches!(a.release(&a3), Release::Freed));
        assert!(matches!(a.release(&a3), Release::Unchanged), "freed already");
        assert!(a.owner_of("Obj", "a").is_none());
        assert_eq!(a.admit(&inv("a4", "a", KIND_EXCLUSIVE)), Admit::RunNow);
    }

    #[test]
    fn recovery_promotes_the_first_waiter_of_an_unowned_key() {
        let mut a = Admission::default();
        let w1 = inv("w1", "k", KIND_EXCLUSIVE);
        w1.update(|s| s.inbox_seq = 7);
        let w2 = inv("w2", "k", KIND_EXCLUSIVE);
        w2.update(|s| s.inbox_seq = 9);
        let o = inv("o", "m", KIND_EXCLUSIVE);
        let w3 = inv("w3", "m", KIND_EXCLUSIVE);
        w3.update(|s| s.inbox_seq = 8);
        a.set_owner(o);
        a.push_inboxed(w1);
        a.push_inboxed(w3);
        a.push_inboxed(w2);
        let promoted: Vec<String> = a.promote_unowned().into_iter().map(|m| m.id.clone()).collect();
        assert_eq!(promoted, vec!["w1"]);
        assert_eq!(a.owner_of("Obj", "k").unwrap().id, "w1");
        assert_eq!(a.inbox_len("Obj", "k"), 1);
        // The inbox counter continues after the highest recovered seq.
        assert_eq!(a.admit(&inv("n", "k", KIND_EXCLUSIVE)), Admit::Inboxed(10));
    }
}
