//! Signals from outside an invocation: cancel, kill, awakeable completions and
//! due timers. Cancel and kill follow pending CALL entries to the callees an
//! invocation awaits, transitively.
//!
//! A signal's answer never waits for the writer (it is asked on the event
//! loop's thread): a live invocation is decided under the store lock; one that
//! finished since open is answered from the `finished` overlay, one purged since
//! open from the `purged` overlay (unknown, once that purge is durable); anything else
//! from one RocksDB point read. Each answer carries the commit whose
//! durability makes it true, for the caller to wait for before replying.

use std::collections::HashSet;

use parking_lot::MutexGuard;

use crate::awaiting::{Early, WAKE_CANCEL, WAKE_DELIVER, WAKE_DONE, WAKE_KILL, WAKE_RUN};
use crate::entry;
use crate::error::{Error, Result};
use crate::invocation::{
    now_ms, InvState, STATUS_BACKING_OFF, STATUS_COMPLETED, STATUS_INBOXED, STATUS_PAUSED, STATUS_RUNNING,
    STATUS_SCHEDULED, STATUS_SUSPENDED,
};
use crate::keys::{RETRY_TIMER_ENTRY, SCHEDULED_TIMER_ENTRY};
use crate::tables::completions::{self, Outcome};
use crate::tables::{invocations, timers};

use super::effects::Tx;
use super::{Inner, Store};

/// The signal was applied; the seq is its commit.
pub const SIGNAL_APPLIED: i64 = 1;
/// Not applicable: already completed (the awakeable, or the invocation).
pub const SIGNAL_ALREADY_COMPLETED: i64 = 0;
/// No such invocation is known (never persisted, or purged: then seq is the purge's commit).
pub const SIGNAL_UNKNOWN: i64 = -1;

/// What a signal returns: (one of SIGNAL_*, seq). For SIGNAL_APPLIED, seq is its
/// commit; for SIGNAL_ALREADY_COMPLETED, a commit whose durability makes that
/// answer durable (0: it is); for SIGNAL_UNKNOWN, 0, or the commit of the purge
/// that deleted it while that may not be durable.
pub type SignalResult = (i64, u64);

pub const CANCELLED: &str = "cancelled";
pub const KILLED: &str = "killed";
/// The failure code of a cancelled or killed invocation (Restate's).
pub const ABORTED_CODE: u32 = 409;

impl Tx<'_> {
    /// Cooperative cancel of `inv_id` and the callees it awaits. False if it is
    /// not a persisted, unfinished invocation.
    pub fn cancel(&mut self, inv_id: &str) -> bool {
        let tree = self.inner.live.call_tree(inv_id);
        for m in &tree {
            let st = m.state();
            match st.status {
                STATUS_INBOXED | STATUS_SCHEDULED => {
                    let o = Outcome::failed(ABORTED_CODE, CANCELLED);
                    self.wake(WAKE_DONE, m, 0, &o);
                    self.finish(m, st.journal_len, &o, None);
                }
                STATUS_RUNNING => {
                    self.set_state(m, InvState { cancel_requested: true, ..st });
                    self.wake(WAKE_CANCEL, m, 0, &Outcome::default());
                }
                // Not in memory: replay it now, so that it sees the request. A paused one is
                // resumed for it too (Restate's), with a fresh set of attempts as on resume.
                STATUS_SUSPENDED | STATUS_BACKING_OFF | STATUS_PAUSED => {
                    self.cancel_retry_timer(m, &st);
                    let retry_count = if st.status == STATUS_PAUSED { 0 } else { st.retry_count };
                    let next = InvState { status: STATUS_RUNNING, next_retry_ms: 0, cancel_requested: true, retry_count, ..st };
                    self.set_state(m, next);
                    self.wake(WAKE_RUN, m, 0, &Outcome::default());
                }
                _ => {}
            }
        }
        !tree.is_empty()
    }

    /// Complete `inv_id` and the callees it awaits with (409, "killed"). False if
    /// it is not a persisted, unfinished invocation.
    pub fn kill(&mut self, inv_id: &str) -> bool {
        let tree = self.inner.live.call_tree(inv_id);
        let o = Outcome::failed(ABORTED_CODE, KILLED);
        let wakes_from = self.inner.wakes.len();
        for m in &tree {
            let st = m.state();
            let what = if st.status == STATUS_RUNNING { WAKE_KILL } else { WAKE_DONE };
            self.wake(what, m, 0, &o);
            let next = self.finish(m, st.journal_len, &o, None);
            if let Some(n) = next {
                self.wake(WAKE_RUN, &n, 0, &Outcome::default());
            }
        }
        if tree.len() > 1 {
            // One of them may have completed another's entry (an attach) or handed it a
            // key before that one was killed too: nothing may run or deliver to it now.
            let killed: HashSet<&str> = tree.iter().map(|m| m.id.as_str()).collect();
            let tail = self.inner.wakes.split_off(wakes_from);
            self.inner.wakes.extend(
                tail.into_iter().filter(|w| !(matches!(w.what, WAKE_RUN | WAKE_DELIVER) && killed.contains(w.inv.id.as_str()))),
            );
        }
        !tree.is_empty()
    }

    /// Resolve awakeable entry `index` of `inv_id`. `Ok`: done in this commit: a
    /// pending awakeable is completed; an index not journaled yet (the handler
    /// handed out the id before its AWAKEABLE entry reached the store) gets an
    /// early completion, delivered when that entry is journaled. `Err(seq)`: not
    /// applicable (already completed, not an awakeable, the invocation is not live
    /// or has not started); `seq` makes that answer durable.
    pub fn resolve_awakeable(&mut self, inv_id: &str, index: u32, o: &Outcome<'_>) -> Result<(), u64> {
        let Some(live) = self.inner.live.get(inv_id) else { return Err(self.last_seq()) };
        if let Some(e) = live.early.get(&index) {
            return Err(e.seq);
        }
        let st = live.meta.state();
        match live.pending.get(&index).map(|p| p.kind) {
            Some(entry::AWAKEABLE) => {
                self.complete_entry(inv_id, index, o);
                return Ok(());
            }
            Some(_) => return Err(self.last_seq()),
            None => {}
        }
        // Journaled and not pending: completed (its commit may still be queued).
        // Never started (inboxed, scheduled): it cannot have made an awakeable.
        let started = matches!(st.status, STATUS_RUNNING | STATUS_SUSPENDED | STATUS_BACKING_OFF | STATUS_PAUSED);
        if index < st.journal_len || !started {
            return Err(self.last_seq());
        }
        completions::put(&mut self.c, inv_id, index, entry::AWAKEABLE, o);
        let early = Early {
            value: o.value.map(<[u8]>::to_vec),
            code: o.code,
            message: o.message.map(str::to_string),
            seq: self.next_seq(),
        };
        self.inner.live.add_early(inv_id, index, early);
        Ok(())
    }
}

impl Store {
    /// The store lock if `inv_id` is live (persisted, unfinished); else the answer
    /// for it, decided without waiting for the writer.
    fn lock_live(&self, inv_id: &str) -> Result<Result<MutexGuard<'_, Inner>, SignalResult>> {
        for _ in 0..2 {
            let mut inner = self.inner.lock();
            if inner.live.get(inv_id).is_some() {
                return Ok(Ok(inner));
            }
            // Purged (a queued delete RocksDB may not have yet): forgotten, as it will be.
            if let Some(((), seq)) = inner.purged.get_with_seq(inv_id.as_bytes()) {
                let seq = if seq > self.writer.durable_seq() { seq } else { 0 };
                return Ok(Err((SIGNAL_UNKNOWN, seq)));
            }
            inner.finished.prune(self.writer.durable_seq());
            if let Some((_, seq)) = inner.finished.get_with_seq(inv_id.as_bytes()) {
                return Ok(Err((SIGNAL_ALREADY_COMPLETED, seq)));
            }
            drop(inner);
            // Not finished since open, or finished and durable (pruned): the
            // record on disk decides, and what is on disk is durable.
            match invocations::peek_one(&self.db, inv_id)? {
                None => return Ok(Err((SIGNAL_UNKNOWN, 0))),
                Some(p) if p.status == STATUS_COMPLETED => return Ok(Err((SIGNAL_ALREADY_COMPLETED, 0))),
                // Persisted since the check above: it is live now.
                Some(_) => {}
            }
        }
        Err(Error::InvalidArgument(format!(
            "invocation {inv_id} is unfinished on disk but not tracked: call recover() after open"
        )))
    }

    /// Apply `f` to a live invocation in one commit: `Ok` -> (SIGNAL_APPLIED, its seq);
    /// `Err(answer)` -> that answer, nothing written. An invocation that is not live is
    /// answered by `lock_live`.
    pub(super) fn signal(&self, inv_id: &str, f: impl FnOnce(&mut Tx<'_>) -> Result<(), SignalResult>) -> Result<SignalResult> {
        let mut inner = match self.lock_live(inv_id)? {
            Ok(inner) => inner,
            Err(answer) => return Ok(answer),
        };
        let mut tx = Tx::new(&mut inner, &self.writer, Default::default(), now_ms());
        match f(&mut tx) {
            Ok(()) => Ok((SIGNAL_APPLIED, tx.push()?)),
            Err(answer) => Ok(answer),
        }
    }

    pub fn complete_awakeable(&self, inv_id: &str, index: u32, o: &Outcome<'_>) -> Result<SignalResult> {
        self.signal(inv_id, |tx| tx.resolve_awakeable(inv_id, index, o).map_err(|seq| (SIGNAL_ALREADY_COMPLETED, seq)))
    }

    /// A live invocation is always cancelled (again, if it already was).
    pub fn cancel(&self, inv_id: &str) -> Result<SignalResult> {
        self.signal(inv_id, |tx| if tx.cancel(inv_id) { Ok(()) } else { Err((SIGNAL_ALREADY_COMPLETED, tx.last_seq())) })
    }

    pub fn kill(&self, inv_id: &str) -> Result<SignalResult> {
        self.signal(inv_id, |tx| if tx.kill(inv_id) { Ok(()) } else { Err((SIGNAL_ALREADY_COMPLETED, tx.last_seq())) })
    }

    /// Handle every timer due at `now_ms`, earliest first, in one commit.
    pub fn fire_timers(&self, now_ms: u64) -> Result<usize> {
        let mut inner = self.inner.lock();
        let due = inner.timers.pop_due(now_ms);
        if due.is_empty() {
            return Ok(0);
        }
        let mut tx = Tx::new(&mut inner, &self.writer, Default::default(), crate::invocation::now_ms());
        for ((fire_ms, id, entry), m) in &due {
            timers::delete(&mut tx.c, *fire_ms, id, *entry);
            let st = m.state();
            match *entry {
                RETRY_TIMER_ENTRY => {
                    if st.status == STATUS_BACKING_OFF && st.next_retry_ms == *fire_ms {
                        tx.set_state(m, InvState { status: STATUS_RUNNING, next_retry_ms: 0, ..st });
                        tx.wake(WAKE_RUN, m, 0, &Outcome::default());
                    }
                }
                SCHEDULED_TIMER_ENTRY => {
                    if st.status == STATUS_SCHEDULED {
                        let decision = tx.inner.admission.admit(m);
                        tx.place(m, decision, true);
                    }
                }
                // A sleep: no longer pending (e.g. killed) just drops the row.
                index => {
                    tx.complete_entry(id, index, &Outcome::ok(b""));
                }
            }
        }
        tx.push()?;
        Ok(due.len())
    }
}
