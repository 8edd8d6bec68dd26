//! Pause and resume (Restate's): a started invocation can be paused, from outside
//! (`Store::pause`, the admin API) or by its own attempt when its retries run out
//! with on_max_attempts "pause" (`Store::pause_attempt`). A paused invocation runs
//! nothing until it is resumed (`Store::resume_invocation`), and keeps everything
//! else: its object key (later invocations of the key stay inboxed), its journal,
//! its pending entries. Completions that reach it meanwhile are stored, as for a
//! backing-off one, without waking it; its sleep timers still fire (and complete
//! their entries). Its retry timer, if it was backing off, is dropped. Recovery
//! keeps it paused. A resume makes it running with a WAKE_RUN: the runtime replays
//! it from its journal, loading the completions that arrived meanwhile, with a
//! fresh set of attempts (retry count 0), as Restate's invoker starts a fresh retry
//! policy for each invoke.
//!
//! Cancel resumes a paused invocation so that it sees the cancellation, and kill
//! completes it at once (`signals`), as in Restate.
//!
//! Restate's rules (crates/worker/src/partition/state_machine/lifecycle/manual_pause.rs,
//! manual_resume.rs, rpc/resume_invocation.rs): pause applies to an invocation that
//! is running (in Restate: invoked, which includes backing off between attempts) or
//! suspended; paused already: nothing to do; inboxed, scheduled or completed: not
//! running. Resume applies to a paused or suspended one (replayed now) and a backing-off
//! one (retried now); running: nothing to do; inboxed or scheduled: not started;
//! completed: completed.

use std::sync::Arc;

use crate::awaiting::{WAKE_PAUSE, WAKE_RUN};
use crate::error::Result;
use crate::invocation::{
    now_ms, InvState, InvocationMeta, STATUS_BACKING_OFF, STATUS_INBOXED, STATUS_PAUSED, STATUS_RUNNING,
    STATUS_SCHEDULED, STATUS_SUSPENDED,
};
use crate::tables::completions::Outcome;

use super::effects::Tx;
use super::signals::{SignalResult, SIGNAL_ALREADY_COMPLETED};
use super::{check_running, commit_for, Store};

/// `pause`, `resume_invocation`: the invocation has not started (inboxed or scheduled);
/// nothing written.
pub const SIGNAL_NOT_STARTED: i64 = 2;
/// `pause` of a paused invocation, `resume_invocation` of a running one: it already is
/// what was asked; nothing written.
pub const SIGNAL_UNCHANGED: i64 = 3;

impl Tx<'_> {
    /// Pause live invocation `inv_id` in this commit, or say why not.
    fn pause(&mut self, inv_id: &str) -> Result<(), SignalResult> {
        let not_applied = |tx: &Self, answer: i64| Err((answer, tx.last_seq()));
        let Some(m) = self.inner.live.meta(inv_id).cloned() else { return not_applied(self, SIGNAL_ALREADY_COMPLETED) };
        let st = m.state();
        match st.status {
            STATUS_RUNNING => {
                self.set_state(&m, InvState { status: STATUS_PAUSED, ..st });
                // Its attempt, if one is in memory, is closed like a suspended one.
                self.wake(WAKE_PAUSE, &m, 0, &Outcome::default());
            }
            STATUS_SUSPENDED | STATUS_BACKING_OFF => {
                self.cancel_retry_timer(&m, &st);
                self.set_state(&m, InvState { status: STATUS_PAUSED, next_retry_ms: 0, ..st });
            }
            STATUS_PAUSED => return not_applied(self, SIGNAL_UNCHANGED),
            STATUS_INBOXED | STATUS_SCHEDULED => return not_applied(self, SIGNAL_NOT_STARTED),
            _ => return not_applied(self, SIGNAL_ALREADY_COMPLETED),
        }
        Ok(())
    }

    /// Resume live invocation `inv_id` in this commit, or say why not.
    fn resume_invocation(&mut self, inv_id: &str) -> Result<(), SignalResult> {
        let not_applied = |tx: &Self, answer: i64| Err((answer, tx.last_seq()));
        let Some(m) = self.inner.live.meta(inv_id).cloned() else { return not_applied(self, SIGNAL_ALREADY_COMPLETED) };
        let st = m.state();
        let retry_count = match st.status {
            STATUS_PAUSED => 0,
            STATUS_SUSPENDED | STATUS_BACKING_OFF => st.retry_count,
            STATUS_RUNNING => return not_applied(self, SIGNAL_UNCHANGED),
            STATUS_INBOXED | STATUS_SCHEDULED => return not_applied(self, SIGNAL_NOT_STARTED),
            _ => return not_applied(self, SIGNAL_ALREADY_COMPLETED),
        };
        self.cancel_retry_timer(&m, &st);
        self.set_state(&m, InvState { status: STATUS_RUNNING, next_retry_ms: 0, retry_count, ..st });
        self.wake(WAKE_RUN, &m, 0, &Outcome::default());
        Ok(())
    }
}

impl Store {
    /// Pause a started, unfinished invocation. (SIGNAL_APPLIED, seq): paused by commit
    /// seq (running: with a WAKE_PAUSE; backing off: its retry timer dropped);
    /// (SIGNAL_UNCHANGED, seq): already paused; (SIGNAL_NOT_STARTED, seq): inboxed or
    /// scheduled; (SIGNAL_ALREADY_COMPLETED, seq), (SIGNAL_UNKNOWN, seq) as for `cancel`.
    pub fn pause(&self, inv_id: &str) -> Result<SignalResult> {
        self.signal(inv_id, |tx| tx.pause(inv_id))
    }

    /// Resume a paused invocation (fresh attempts), or replay a suspended one now, or
    /// retry a backing-off one now: running with a WAKE_RUN, (SIGNAL_APPLIED, seq).
    /// (SIGNAL_UNCHANGED, seq): it is running; the rest as for `pause`.
    pub fn resume_invocation(&self, inv_id: &str) -> Result<SignalResult> {
        self.signal(inv_id, |tx| tx.resume_invocation(inv_id))
    }

    /// The running attempt of `inv` failed and its retries ran out with on_max_attempts
    /// "pause": the invocation is paused (its record written, retry count kept) and the
    /// attempt ends, without a wake. Returns seq. NotRunning if it is not running.
    pub fn pause_attempt(&self, inv: &Arc<InvocationMeta>) -> Result<u64> {
        let mut inner = self.inner.lock();
        let st = inv.state();
        check_running(inv, &st)?;
        let mut tx = Tx::new(&mut inner, &self.writer, commit_for(inv, &[], inv.input().len() + 192), now_ms());
        tx.register(inv);
        tx.set_state(inv, InvState { status: STATUS_PAUSED, next_retry_ms: 0, persisted: true, ..st });
        tx.push()
    }
}
