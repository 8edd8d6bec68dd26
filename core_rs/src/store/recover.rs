//! Recovery at open: rebuilding every in-memory structure from the tables.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;

use crate::awaiting::{Early, Pending, Wait};
use crate::entry;
use crate::error::{Error, Result};
use crate::failpoints::{self, failpoint};
use crate::invocation::{
    now_ms, InvState, InvocationMeta, STATUS_BACKING_OFF, STATUS_COMPLETED, STATUS_INBOXED, STATUS_PAUSED, STATUS_RUNNING,
    STATUS_SCHEDULED, STATUS_SUSPENDED,
};
use crate::keys::{RETRY_TIMER_ENTRY, SCHEDULED_TIMER_ENTRY};
use crate::proto::InvocationRecord;
use crate::tables::{completions, invocations, journal, timers};
use crate::timers::TimerKey;

use super::effects::Tx;
use super::Store;

impl Store {
    /// Rebuild key ownership, inboxes, the timer index and the registry of
    /// waiting invocations from disk; return the invocations that must run now
    /// (running ones; the first waiter of each key whose owner is gone, promoted
    /// to running; suspended ones that nothing could wake any more), in id order.
    /// Paused ones stay paused (their key owned, their entries pending) until resumed.
    pub fn recover(&self) -> Result<Vec<Arc<InvocationMeta>>> {
        failpoint!(failpoints::STORE_RECOVER, |_| Err(Error::Storage(format!(
            "injected I/O error (failpoint {})",
            failpoints::STORE_RECOVER
        ))));
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
        // Paused ones too: they keep their key, pending entries and sleep timers (not returned).
        let started = |m: &Arc<InvocationMeta>| {
            matches!(m.state().status, STATUS_RUNNING | STATUS_BACKING_OFF | STATUS_SUSPENDED | STATUS_PAUSED)
        };

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
            let (entries, done) = match (journal::load(&self.db, &m.id), completions::load(&self.db, &m.id)) {
                (Ok(entries), Ok(done)) => (entries, done),
                // Damage confined to this invocation's journal: nothing of it is registered
                // as pending, so it runs now (a suspended one as waiting for nothing), its
                // resume meets the same error and fails it (runtime/invoker.py); the others
                // recover as usual. Its journal_len (from the keys) makes the resume load it.
                (Err(Error::Corrupt(_)), _) | (_, Err(Error::Corrupt(_))) => {
                    let len = journal::len(&self.db, &m.id)?.max(1);
                    m.update(|s| s.journal_len = len);
                    continue;
                }
                (Err(e), _) | (_, Err(e)) => return Err(e),
            };
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
                    // Its target is unfinished (a finished one completed it in the same
                    // commit as its own completion), so it is among `unfinished` too.
                    entry::ATTACH_INVOCATION => Wait::Attach(e.name.clone().unwrap_or_default()),
                    _ => Wait::Other,
                };
                inner.live.await_entry(&m.id, index, Pending { kind: e.kind, wait });
            }
            for (index, c) in done {
                // Beyond the journal: an awakeable resolved before its entry was journaled.
                if index >= entries.len() as u32 {
                    inner.live.add_early(&m.id, index, Early { value: c.value, code: c.code, message: c.message, seq: 0 });
                    continue;
                }
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
}
