//! The store: one data directory, its commit writer, per-key admission and the
//! timer index, implementing the operations of `runtime/_core.pyi`.
//!
//! Every write method builds one [`Commit`] and queues it; none waits for
//! durability (the caller waits for `durable_seq >= seq`). Decisions that
//! depend on in-memory admission state (who owns a key, who is next) are made
//! and queued under one lock, so the order of decisions is the order of
//! commits and a crash at any point leaves a prefix of them on disk.
//! Recovery rebuilds the in-memory state from the tables.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::admission::{Admission, Admit};
use crate::commit::{Commit, Durability, Writer};
use crate::db::Db;
use crate::entry::{self, Entry, EntryRef};
use crate::error::{Error, Result};
use crate::invocation::{now_ms, Completion, InvState, InvocationMeta, STATUS_BACKING_OFF, STATUS_COMPLETED, STATUS_INBOXED, STATUS_RUNNING};
use crate::keys::RETRY_TIMER_ENTRY;
use crate::proto::InvocationRecord;
use prost::Message;
use crate::tables::state::StateRows;
use crate::tables::{inbox, invocations, journal, state, timers};
use crate::timers::TimerIndex;

/// A completed invocation's result: (output, failure code, failure message).
pub type Output = (Option<Vec<u8>>, u32, Option<String>);

pub struct Store {
    db: Arc<Db>,
    writer: Writer,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    admission: Admission,
    timers: TimerIndex<Arc<InvocationMeta>>,
    recovered: bool,
}

fn check_entries(entries: &[EntryRef<'_>]) -> Result<()> {
    entries.iter().try_for_each(|e| entry::check_kind(e.kind))
}

/// If `inv` is waiting for a retry timer, delete the timer's row in `c` and drop it from
/// the in-memory index: both `backoff` (a new timer) and `resume` replace it.
fn cancel_retry_timer(inner: &mut Inner, c: &mut Commit, inv: &InvocationMeta, st: &InvState) {
    if st.status == STATUS_BACKING_OFF {
        timers::delete(c, st.next_retry_ms, &inv.id, RETRY_TIMER_ENTRY);
        inner.timers.remove(st.next_retry_ms, &inv.id, RETRY_TIMER_ENTRY);
    }
}

fn commit_for(inv: &InvocationMeta, entries: &[EntryRef<'_>], extra: usize) -> Commit {
    let bytes: usize = entries
        .iter()
        .map(|e| 2 * (inv.id.len() + inv.service.len() + inv.key.len()) + 48 + e.value.map_or(0, <[u8]>::len) * 2)
        .sum();
    Commit::with_capacity(bytes + extra, 2 * entries.len() + 4)
}

impl Store {
    pub fn open(path: &Path, durability: Durability) -> Result<Store> {
        let db = Arc::new(Db::open(path)?);
        let writer = Writer::start(db.clone(), durability)?;
        Ok(Store { db, writer, inner: Mutex::new(Inner::default()) })
    }

    /// Write every queued commit and stop the writer. RocksDB closes when the
    /// store is dropped.
    pub fn close(&self) -> Result<()> {
        self.writer.close()
    }

    pub fn notify_fd(&self) -> i32 {
        self.writer.notify_fd()
    }

    pub fn drain_notify(&self) -> Result<u64> {
        self.writer.drain_notify()
    }

    pub fn durable_seq(&self) -> u64 {
        self.writer.durable_seq()
    }

    pub fn last_seq(&self) -> u64 {
        self.writer.last_seq()
    }

    pub fn wait_durable(&self, seq: u64) -> Result<u64> {
        self.writer.wait_durable(seq)
    }

    pub fn groups_written(&self) -> u64 {
        self.writer.groups_written()
    }

    // ---- admission

    /// `None`: run now (nothing written). `Some(seq)`: inboxed by commit `seq`.
    pub fn admit(&self, inv: &Arc<InvocationMeta>) -> Result<Option<u64>> {
        let mut inner = self.inner.lock();
        match inner.admission.admit(inv) {
            Admit::RunNow => {
                inv.update(|s| s.status = STATUS_RUNNING);
                Ok(None)
            }
            Admit::Inboxed(inbox_seq) => {
                let st = InvState { status: STATUS_INBOXED, inbox_seq, persisted: true, ..inv.state() };
                let mut c = commit_for(inv, &[], inv.input().len() + 128);
                inbox::put(&mut c, &inv.service, &inv.key, inbox_seq, &inv.id);
                invocations::put(&mut c, inv, &st, now_ms(), None);
                let seq = self.writer.push(c)?;
                inv.update(|s| *s = st);
                Ok(Some(seq))
            }
        }
    }

    // ---- durable points

    pub fn progress(&self, inv: &InvocationMeta, entries: &[EntryRef<'_>]) -> Result<u64> {
        check_entries(entries)?;
        let st = inv.state();
        let mut next = st;
        next.journal_len = st.journal_len + entries.len() as u32;
        let mut c = commit_for(inv, entries, if st.persisted { 0 } else { inv.input().len() + 128 });
        if !st.persisted {
            next.persisted = true;
            next.status = STATUS_RUNNING;
            invocations::put(&mut c, inv, &next, now_ms(), None);
        }
        journal::append(&mut c, &inv.id, st.journal_len, entries);
        if inv.is_exclusive() {
            state::apply(&mut c, &inv.service, &inv.key, entries);
        }
        let seq = self.writer.push(c)?;
        inv.update(|s| *s = next);
        Ok(seq)
    }

    pub fn backoff(&self, inv: &Arc<InvocationMeta>, retry_count: u32, fire_ms: u64) -> Result<u64> {
        let mut inner = self.inner.lock();
        let st = inv.state();
        let mut c = commit_for(inv, &[], inv.input().len() + 192);
        cancel_retry_timer(&mut inner, &mut c, inv, &st);
        let next = InvState { status: STATUS_BACKING_OFF, retry_count, next_retry_ms: fire_ms, persisted: true, ..st };
        invocations::put(&mut c, inv, &next, now_ms(), None);
        timers::put(&mut c, fire_ms, &inv.id, RETRY_TIMER_ENTRY);
        let seq = self.writer.push(c)?;
        inner.timers.insert(fire_ms, &inv.id, RETRY_TIMER_ENTRY, inv.clone());
        inv.update(|s| *s = next);
        Ok(seq)
    }

    pub fn resume(&self, inv: &InvocationMeta) -> Result<u64> {
        let mut inner = self.inner.lock();
        let st = inv.state();
        let mut c = commit_for(inv, &[], inv.input().len() + 192);
        cancel_retry_timer(&mut inner, &mut c, inv, &st);
        let next = InvState { status: STATUS_RUNNING, next_retry_ms: 0, persisted: true, ..st };
        invocations::put(&mut c, inv, &next, now_ms(), None);
        let seq = self.writer.push(c)?;
        inv.update(|s| *s = next);
        Ok(seq)
    }

    /// Finish `inv` in one commit; for an exclusive handler, hand its key to
    /// the next inboxed invocation, which is returned (now running).
    pub fn complete(
        &self,
        inv: &InvocationMeta,
        entries: &[EntryRef<'_>],
        output: Option<&[u8]>,
        failure_code: u32,
        failure_message: Option<&str>,
    ) -> Result<(u64, Option<Arc<InvocationMeta>>)> {
        check_entries(entries)?;
        let now = now_ms();
        let mut inner = self.inner.lock();
        let st = inv.state();
        let extra = inv.input().len() + output.map_or(0, <[u8]>::len) + failure_message.map_or(0, str::len) + 256;
        let mut c = commit_for(inv, entries, extra);
        let mut done = InvState { status: STATUS_COMPLETED, persisted: true, next_retry_ms: 0, inbox_seq: 0, ..st };
        if st.persisted {
            journal::append(&mut c, &inv.id, st.journal_len, entries);
            done.journal_len = st.journal_len + entries.len() as u32;
        }
        if inv.is_exclusive() {
            state::apply(&mut c, &inv.service, &inv.key, entries);
        }
        match st.status {
            STATUS_BACKING_OFF => {
                timers::delete(&mut c, st.next_retry_ms, &inv.id, RETRY_TIMER_ENTRY);
                inner.timers.remove(st.next_retry_ms, &inv.id, RETRY_TIMER_ENTRY);
            }
            // Finished while still waiting (e.g. cancelled): it leaves the inbox.
            STATUS_INBOXED if inner.admission.remove_inboxed(inv) => {
                inbox::delete(&mut c, &inv.service, &inv.key, st.inbox_seq);
            }
            _ => {}
        }
        let completion = Completion { output, failure_code, failure_message, completed_ms: now };
        invocations::put(&mut c, inv, &done, now, Some(&completion));

        let next = inner.admission.release(inv);
        let next_state = next.as_ref().map(|n| {
            let ns = n.state();
            inbox::delete(&mut c, &n.service, &n.key, ns.inbox_seq);
            let running = InvState { status: STATUS_RUNNING, inbox_seq: 0, persisted: true, ..ns };
            invocations::put(&mut c, n, &running, now, None);
            running
        });
        let seq = self.writer.push(c)?;
        drop(inner);
        inv.update(|s| *s = done);
        if let (Some(n), Some(ns)) = (&next, next_state) {
            n.update(|s| *s = ns);
        }
        Ok((seq, next))
    }

    // ---- reads

    pub fn load_state(&self, service: &str, key: &str) -> Result<StateRows> {
        state::load(&self.db, service, key)
    }

    pub fn load_journal(&self, inv_id: &str) -> Result<Vec<Entry>> {
        journal::load(&self.db, inv_id)
    }

    pub fn get_invocation(&self, inv_id: &str) -> Result<Option<Arc<InvocationMeta>>> {
        invocations::get(&self.db, inv_id)?.map(InvocationMeta::from_record).transpose()
    }

    pub fn get_output(&self, inv_id: &str) -> Result<Option<Output>> {
        Ok(invocations::get(&self.db, inv_id)?.filter(|r| r.status == STATUS_COMPLETED).map(|r| {
            let message = (r.failure_code != 0 || !r.failure_message.is_empty()).then_some(r.failure_message);
            (r.output, r.failure_code, message)
        }))
    }

    // ---- recovery and timers

    /// Rebuild key ownership, inboxes and the timer index from disk; return the
    /// invocations that must run now (running ones, and the first waiter of each
    /// key whose owner is gone, promoted to running), in id order.
    pub fn recover(&self) -> Result<Vec<Arc<InvocationMeta>>> {
        let mut inner = self.inner.lock();
        if inner.recovered {
            return Err(Error::InvalidArgument("recover() may be called once per open store".into()));
        }
        let (mut running, mut inboxed, mut backing) = (Vec::new(), Vec::new(), Vec::new());
        invocations::scan_peek(&self.db, |peek, raw| {
            let status = peek.status;
            if matches!(status, STATUS_RUNNING | STATUS_INBOXED | STATUS_BACKING_OFF) {
                let meta = InvocationMeta::from_record(InvocationRecord::decode(raw)?)?;
                match status {
                    STATUS_RUNNING => running.push(meta),
                    STATUS_INBOXED => inboxed.push(meta),
                    _ => backing.push(meta),
                }
            }
            Ok(true)
        })?;
        // The record's journal_len is only rewritten on status changes; the
        // journal itself says how far it got.
        for m in running.iter().chain(&backing) {
            let len = journal::len(&self.db, &m.id)?;
            m.update(|s| s.journal_len = len);
        }

        for m in running.iter().chain(&backing).filter(|m| m.is_exclusive()) {
            inner.admission.set_owner(m.clone());
        }
        inboxed.sort_by_key(|m| m.state().inbox_seq);
        for m in inboxed {
            inner.admission.push_inboxed(m);
        }
        let promoted = inner.admission.promote_unowned();

        let mut c = Commit::new();
        let now = now_ms();
        let mut promoted_states = Vec::with_capacity(promoted.len());
        for p in &promoted {
            let st = p.state();
            inbox::delete(&mut c, &p.service, &p.key, st.inbox_seq);
            let next = InvState { status: STATUS_RUNNING, inbox_seq: 0, ..st };
            invocations::put(&mut c, p, &next, now, None);
            promoted_states.push(next);
        }

        // Timers: index the rows of backing-off invocations; drop rows nothing
        // waits on; re-create a row a backing-off record lacks.
        let mut waiting: HashMap<&str, &Arc<InvocationMeta>> = backing.iter().map(|m| (m.id.as_str(), m)).collect();
        timers::scan(&self.db, |fire_ms, id, entry| {
            match waiting.get(id) {
                Some(m) if entry == RETRY_TIMER_ENTRY && m.state().next_retry_ms == fire_ms => {
                    inner.timers.insert(fire_ms, id, entry, (*m).clone());
                    waiting.remove(id);
                }
                _ if entry == RETRY_TIMER_ENTRY => timers::delete(&mut c, fire_ms, id, entry),
                _ => {}
            }
            Ok(true)
        })?;
        for m in waiting.into_values() {
            let fire_ms = m.state().next_retry_ms;
            timers::put(&mut c, fire_ms, &m.id, RETRY_TIMER_ENTRY);
            inner.timers.insert(fire_ms, &m.id, RETRY_TIMER_ENTRY, m.clone());
        }

        if !c.is_empty() {
            self.writer.push(c)?;
        }
        for (p, st) in promoted.iter().zip(promoted_states) {
            p.update(|s| *s = st);
        }
        inner.recovered = true;
        let mut out = running;
        out.extend(promoted);
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    pub fn next_timer_ms(&self) -> Option<u64> {
        self.inner.lock().timers.next_ms()
    }

    /// Backing-off invocations whose retry timer is due, earliest first.
    pub fn pop_due(&self, now_ms: u64) -> Vec<Arc<InvocationMeta>> {
        self.inner.lock().timers.pop_due(now_ms).into_iter().map(|(_, m)| m).collect()
    }

    /// Delete up to `limit` invocations completed before `completed_before_ms`
    /// (record and journal). Returns how many.
    pub fn purge_completed(&self, completed_before_ms: u64, limit: usize) -> Result<usize> {
        if limit == 0 {
            return Ok(0);
        }
        let mut ids = Vec::new();
        invocations::scan_with_key(&self.db, |id, raw| {
            let peek = invocations::peek(raw)?;
            if peek.status == STATUS_COMPLETED && peek.completed_ms < completed_before_ms {
                ids.push(id.to_string());
            }
            Ok(ids.len() < limit)
        })?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut c = Commit::new();
        for id in &ids {
            invocations::delete(&mut c, id);
            journal::delete_all(&mut c, id);
        }
        self.writer.push(c)?;
        Ok(ids.len())
    }
}
