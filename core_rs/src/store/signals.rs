//! Signals from outside an invocation: cancel, kill, awakeable completions and
//! due timers. Cancel and kill follow pending CALL entries to the callees an
//! invocation awaits, transitively.

use crate::awaiting::{WAKE_CANCEL, WAKE_DONE, WAKE_KILL, WAKE_RUN};
use crate::error::Result;
use crate::invocation::{
    now_ms, InvState, STATUS_BACKING_OFF, STATUS_INBOXED, STATUS_RUNNING, STATUS_SCHEDULED, STATUS_SUSPENDED,
};
use crate::keys::{RETRY_TIMER_ENTRY, SCHEDULED_TIMER_ENTRY};
use crate::tables::completions::Outcome;
use crate::tables::{invocations, timers};

use super::effects::Tx;
use super::Store;

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
                    self.finish(m, st.journal_len, &o);
                }
                STATUS_RUNNING => {
                    self.set_state(m, InvState { cancel_requested: true, ..st });
                    self.wake(WAKE_CANCEL, m, 0, &Outcome::default());
                }
                // Not in memory: replay it now, so that it sees the request.
                STATUS_SUSPENDED | STATUS_BACKING_OFF => {
                    self.cancel_retry_timer(m, &st);
                    self.set_state(m, InvState { status: STATUS_RUNNING, next_retry_ms: 0, cancel_requested: true, ..st });
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
        for m in &tree {
            let st = m.state();
            let what = if st.status == STATUS_RUNNING { WAKE_KILL } else { WAKE_DONE };
            self.wake(what, m, 0, &o);
            let next = self.finish(m, st.journal_len, &o);
            if let Some(n) = next {
                self.wake(WAKE_RUN, &n, 0, &Outcome::default());
            }
        }
        !tree.is_empty()
    }
}

/// What a signal for `inv_id` returns: seq > 0 if it was applied, 0 if the
/// invocation exists but the signal does not apply, -1 if it is unknown.
pub type SignalResult = i64;

impl Store {
    /// 0 or -1 for an invocation the registry does not hold. Its completed
    /// record may still be queued: wait for the writer first (rare path).
    fn not_live(&self, inv_id: &str) -> Result<SignalResult> {
        self.writer.wait_durable(self.writer.last_seq())?;
        Ok(if invocations::get(&self.db, inv_id)?.is_some() { 0 } else { -1 })
    }

    fn signal(&self, inv_id: &str, f: impl FnOnce(&mut Tx<'_>) -> bool) -> Result<SignalResult> {
        let mut inner = self.inner.lock();
        if inner.live.get(inv_id).is_none() {
            drop(inner);
            return self.not_live(inv_id);
        }
        let mut tx = Tx::new(&mut inner, &self.writer, Default::default(), now_ms());
        if !f(&mut tx) {
            return Ok(0);
        }
        Ok(tx.push()? as i64)
    }

    pub fn complete_awakeable(&self, inv_id: &str, index: u32, o: &Outcome<'_>) -> Result<SignalResult> {
        self.signal(inv_id, |tx| tx.complete_awakeable(inv_id, index, o))
    }

    pub fn cancel(&self, inv_id: &str) -> Result<SignalResult> {
        self.signal(inv_id, |tx| tx.cancel(inv_id))
    }

    pub fn kill(&self, inv_id: &str) -> Result<SignalResult> {
        self.signal(inv_id, |tx| tx.kill(inv_id))
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
