//! Recovery at open (rebuilding every in-memory structure from the tables) and
//! the purge of old completed invocations.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;

use crate::awaiting::{Pending, Wait};
use crate::db::Cf;
use crate::entry;
use crate::error::{Error, Result};
use crate::invocation::{
    now_ms, InvState, InvocationMeta, KIND_WORKFLOW, STATUS_BACKING_OFF, STATUS_COMPLETED, STATUS_INBOXED, STATUS_RUNNING,
    STATUS_SCHEDULED, STATUS_SUSPENDED,
};
use crate::keys::{self, RETRY_TIMER_ENTRY, SCHEDULED_TIMER_ENTRY};
use crate::proto::{InvocationRecord, PromiseRecord};
use crate::tables::{completions, idempotency, invocations, journal, promises, state, timers};
use crate::timers::TimerKey;

use super::effects::Tx;
use super::Store;

impl Store {
    /// Rebuild key ownership, inboxes, the timer index and the registry of
    /// waiting invocations from disk; return the invocations that must run now
    /// (running ones; the first waiter of each key whose owner is gone, promoted
    /// to running; suspended ones that nothing could wake any more), in id order.
    pub fn recover(&self) -> Result<Vec<Arc<InvocationMeta>>> {
        let mut inner = self.inner.lock();
        if inner.recovered {
            return Err(Error::InvalidArgument("recover() may be called once per open store".into()));
        }
        let mut unfinished: Vec<Arc<InvocationMeta>> = Vec::new();
        invocations::scan_peek(&self.db, |peek, raw| {
            if peek.status != STATUS_COMPLETED && peek.status != 0 {
                unfinished.push(InvocationMeta::from_record(InvocationRecord::decode(raw)?)?);
            }
            Ok(true)
        })?;
        let started = |m: &Arc<InvocationMeta>| matches!(m.state().status, STATUS_RUNNING | STATUS_BACKING_OFF | STATUS_SUSPENDED);

        // The record's journal_len is only rewritten on status changes; the
        // journal itself says how far it got. Awaitable entries without a
        // completion row are pending.
        let mut timers_wanted: HashMap<TimerKey, Arc<InvocationMeta>> = HashMap::new();
        for m in &unfinished {
            inner.live.insert(m);
            let st = m.state();
            match st.status {
                STATUS_BACKING_OFF => {
                    timers_wanted.insert((st.next_retry_ms, m.id.clone(), RETRY_TIMER_ENTRY), m.clone());
                }
                STATUS_SCHEDULED => {
                    timers_wanted.insert((st.next_retry_ms, m.id.clone(), SCHEDULED_TIMER_ENTRY), m.clone());
                }
                _ => {}
            }
            if !started(m) {
                continue;
            }
            let entries = journal::load(&self.db, &m.id)?;
            m.update(|s| s.journal_len = entries.len() as u32);
            for (i, e) in entries.iter().enumerate().filter(|(_, e)| entry::waits(e.kind)) {
                let index = i as u32;
                let wait = match e.kind {
                    entry::SLEEP => {
                        let fire_ms = entry::sleep_fire_ms(e.value.as_deref()).unwrap_or(0);
                        timers_wanted.insert((fire_ms, m.id.clone(), index), m.clone());
                        Wait::Timer(fire_ms)
                    }
                    entry::CALL => Wait::Callee(String::from_utf8_lossy(e.value.as_deref().unwrap_or_default()).into_owned()),
                    _ => Wait::Other,
                };
                inner.live.await_entry(&m.id, index, Pending { kind: e.kind, wait });
            }
            for (index, _) in completions::load(&self.db, &m.id)? {
                if let Some(Pending { wait: Wait::Timer(fire_ms), .. }) = inner.live.take(&m.id, index) {
                    timers_wanted.remove(&(fire_ms, m.id.clone(), index));
                }
            }
        }

        for m in unfinished.iter().filter(|m| started(m) && m.is_exclusive()) {
            inner.admission.set_owner(m.clone());
        }
        let mut inboxed: Vec<_> = unfinished.iter().filter(|m| m.state().status == STATUS_INBOXED).cloned().collect();
        inboxed.sort_by_key(|m| m.state().inbox_seq);
        for m in inboxed {
            inner.admission.push_inboxed(m);
        }
        let promoted = inner.admission.promote_unowned();

        let mut tx = Tx::new(&mut inner, &self.writer, Default::default(), now_ms());
        for p in &promoted {
            let st = p.state();
            crate::tables::inbox::delete(&mut tx.c, &p.service, &p.key, st.inbox_seq);
            tx.set_state(p, InvState { status: STATUS_RUNNING, inbox_seq: 0, ..st });
        }
        // A suspended invocation waiting for nothing (or with a cancellation to
        // see) would never be woken: it runs now.
        for m in unfinished.iter().filter(|m| m.state().status == STATUS_SUSPENDED) {
            let st = m.state();
            let idle = tx.inner.live.get(&m.id).is_none_or(|l| l.pending.is_empty());
            if idle || st.cancel_requested {
                tx.set_state(m, InvState { status: STATUS_RUNNING, ..st });
            }
        }

        // Timers: index the rows something waits on; drop the others; re-create
        // a row that an invocation waits on but that is missing.
        let mut stale = Vec::new();
        timers::scan(&self.db, |fire_ms, id, entry| {
            match timers_wanted.remove(&(fire_ms, id.to_string(), entry)) {
                Some(m) => tx.inner.timers.insert(fire_ms, id, entry, m),
                None => stale.push((fire_ms, id.to_string(), entry)),
            }
            Ok(true)
        })?;
        for (fire_ms, id, entry) in stale {
            timers::delete(&mut tx.c, fire_ms, &id, entry);
        }
        for ((fire_ms, id, entry), m) in timers_wanted {
            timers::put(&mut tx.c, fire_ms, &id, entry);
            tx.inner.timers.insert(fire_ms, &id, entry, m);
        }

        if !tx.c.is_empty() {
            tx.push()?;
        }
        inner.recovered = true;
        // Promoted waiters and woken suspended ones are running now too; ids are unique.
        let mut out: Vec<_> = unfinished.into_iter().filter(|m| m.state().status == STATUS_RUNNING).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Delete up to `limit` invocations completed before `completed_before_ms`:
    /// record, journal, completions and idempotency row; for a workflow run also
    /// its key's state and promises. Returns how many.
    pub fn purge_completed(&self, completed_before_ms: u64, limit: usize) -> Result<usize> {
        if limit == 0 {
            return Ok(0);
        }
        let mut old: Vec<InvocationRecord> = Vec::new();
        invocations::scan_peek(&self.db, |peek, raw| {
            if peek.status == STATUS_COMPLETED && peek.completed_ms < completed_before_ms {
                let mut rec = InvocationRecord::decode(raw)?;
                rec.input.clear();
                rec.output = None;
                old.push(rec);
            }
            Ok(old.len() < limit)
        })?;
        if old.is_empty() {
            return Ok(0);
        }
        let mut inner = self.inner.lock();
        let mut tx = Tx::new(&mut inner, &self.writer, Default::default(), now_ms());
        let seq = self.writer.last_seq() + 1;
        for r in &old {
            invocations::delete(&mut tx.c, &r.id);
            journal::delete_all(&mut tx.c, &r.id);
            completions::delete_all(&mut tx.c, &r.id);
            if r.kind == KIND_WORKFLOW || !r.idempotency_key.is_empty() {
                let key = keys::idempotency(&r.service, &r.key, &r.handler, &r.idempotency_key);
                // Only if the key still names this invocation.
                let holder = match tx.inner.idempotency.get(&key) {
                    Some(v) => v.clone(),
                    None => idempotency::get(&self.db, &key)?,
                };
                if holder.as_deref() == Some(r.id.as_str()) {
                    idempotency::delete(&mut tx.c, &key);
                    tx.inner.idempotency.put(key, None, seq);
                }
            }
            if r.kind == KIND_WORKFLOW {
                state::delete_all(&mut tx.c, &r.service, &r.key);
                promises::delete_all(&mut tx.c, &r.service, &r.key);
                // Reads must not see the rows before the delete is written.
                let prefix = keys::promise_prefix(&r.service, &r.key);
                tx.inner.promises.reset_prefix(&prefix, PromiseRecord::default, seq);
                self.db.scan_prefix(Cf::Promises, &prefix, |k, _| {
                    tx.inner.promises.put(k.to_vec(), PromiseRecord::default(), seq);
                    Ok(true)
                })?;
            }
        }
        tx.push()?;
        Ok(old.len())
    }
}
