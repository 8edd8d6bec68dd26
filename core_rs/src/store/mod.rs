//! The store: one data directory, its commit writer, per-key admission, the
//! timer index and the registry of waiting invocations, implementing the
//! operations of `runtime/_core.pyi`.
//!
//! Every write method builds one [`Commit`] and queues it; none waits for
//! durability (the caller waits for `durable_seq >= seq`). Decisions that
//! depend on in-memory state (who owns a key, which entries are pending, is a
//! promise completed) are made and queued under one lock, so the order of
//! decisions is the order of commits and a crash at any point leaves a prefix
//! of them on disk. In-memory state is updated while the commit is built: if
//! the writer then refuses it, the failure is sticky (every later commit is
//! refused too) and reopening rebuilds the state from disk.
//!
//! Reads of rows that may not be durable yet (the idempotency and promise
//! overlays, the state of a key a queued purge deleted, the signals' answers)
//! return the sequence number of the commit they depend on, so that the caller
//! can wait for it before anything leaves the process on their account.
//!
//! An ATTACH_INVOCATION entry waits for another invocation's result: completed
//! in the commit that journals it if that invocation is done (from memory while
//! its completed record is not durable, else from RocksDB), otherwise by the
//! target's finishing commit, like a CALL by its callee.
//!
//! Only a running attempt writes: `progress`, `suspend` and `backoff` refuse an
//! invocation that is not running ([`Error::NotRunning`]), so a stale attempt
//! (killed, suspended, paused, or resumed elsewhere) cannot journal anything.
//!
//! - `effects`: what one commit does (entry effects, completions, finishing).
//! - `signals`: cancel, kill, awakeables and timers, from outside an invocation.
//! - `pause`: pausing and resuming an invocation.
//! - `recover`: recovery at open.
//! - `purge`: deleting completed invocations (old ones, or one on request).
//! - `scan`: whole-table reads for introspection (admin API, SQL).
//! - `edit`: the admin's edit of an object key's state, with its version.

mod edit;
mod effects;
mod pause;
mod purge;
mod recover;
mod scan;
mod signals;

pub use edit::state_version_of;
pub use pause::{SIGNAL_NOT_STARTED, SIGNAL_UNCHANGED};
pub use purge::PURGE_NOT_COMPLETED;
pub use scan::{JournalRow, PromiseRow};
pub use signals::{SignalResult, SIGNAL_ALREADY_COMPLETED, SIGNAL_APPLIED, SIGNAL_UNKNOWN};

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::admission::{Admission, Admit};
use crate::awaiting::{Registry, Wake};
use crate::commit::{Commit, Durability, Writer};
use crate::db::Db;
use crate::entry::{self, Entry, EntryRef};
use crate::error::{Error, Result};
use crate::failpoints;
use crate::invocation::{
    now_ms, status_name, InvState, InvocationMeta, STATUS_BACKING_OFF, STATUS_COMPLETED, STATUS_PAUSED, STATUS_RUNNING,
    STATUS_SUSPENDED,
};
use crate::keys::{self, RETRY_TIMER_ENTRY};
use crate::overlay::{Overlay, Recent};
use crate::proto::{InvocationRecord, PromiseRecord};
use crate::tables::completions::Outcome;
use crate::tables::state::StateRows;
use crate::tables::{completions, idempotency, invocations, journal, promises, state, timers};
use crate::timers::TimerIndex;

use effects::Tx;

/// A completed invocation's result, or a promise's outcome: (value, failure code, failure message).
pub type Output = (Option<Vec<u8>>, u32, Option<String>);

/// A callee to admit in the commit of its CALL/SEND entry, with its fire time (0: now).
pub type Child = (Arc<InvocationMeta>, u64);

pub struct Store {
    db: Arc<Db>,
    writer: Writer,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    admission: Admission,
    timers: TimerIndex<Arc<InvocationMeta>>,
    /// Persisted, unfinished invocations and their pending entries.
    live: Registry,
    /// Produced by queued commits, drained by `take_wakes`.
    wakes: Vec<Wake>,
    /// Promise rows touched since open (an empty record: none).
    promises: Overlay<PromiseRecord>,
    /// Idempotency rows queued since open (None: deleted by purge).
    idempotency: Overlay<Option<String>>,
    /// Invocations finished since open (key: id) with their result, until their
    /// completed record is durable: signals and attaches answer for them without
    /// reading or waiting, and hold no result longer than that. A purge forgets one.
    finished: Recent<Finished>,
    /// Invocations deleted by purge since open (key: id), until the delete is durable.
    purged: Overlay<()>,
    /// Object keys (key: state prefix) whose state a queued purge deleted, with the rows
    /// that later queued commits wrote for them (none at first), until the last of those
    /// commits is durable: RocksDB may still have the deleted rows, and no one else knows
    /// (the runtime's state cache knows the commits of handlers, not purges). See `load_state`.
    state: Recent<state::Rows>,
    /// Object keys (key: state prefix) that a queued commit freed (its owner finished, no
    /// one waits), until that commit is durable: RocksDB may not have the owner's last
    /// state writes yet, which an edit of the key's state must see (`overwrite_state`).
    freed: Recent<()>,
    recovered: bool,
}

/// An invocation in `Inner::finished`: its result, and what purging it needs while
/// its completed record may not be written yet.
struct Finished {
    output: Output,
    meta: Arc<InvocationMeta>,
}

fn check_entries(entries: &[EntryRef<'_>]) -> Result<()> {
    for e in entries {
        entry::check_kind(e.kind)?;
        let bad = match e.kind {
            entry::SLEEP => entry::sleep_fire_ms(e.value).is_none(),
            entry::CALL => e.value.is_none_or(|v| std::str::from_utf8(v).is_err()),
            entry::CANCEL_INVOCATION => e.name.is_none(),
            entry::ATTACH_INVOCATION => e.name.is_none_or(str::is_empty),
            _ => false,
        };
        if bad {
            return Err(Error::InvalidArgument(format!(
                "malformed journal entry of kind {}: see the ENTRY_* comments of runtime/_core.pyi",
                e.kind
            )));
        }
    }
    Ok(())
}

fn check_children(children: &[Child]) -> Result<()> {
    match children.iter().find(|(c, _)| c.state().status != 0) {
        Some((c, _)) => Err(Error::InvalidArgument(format!("callee {} was already admitted", c.id))),
        None => Ok(()),
    }
}

fn not_running(inv: &InvocationMeta, st: &InvState) -> Error {
    Error::NotRunning { id: inv.id.clone(), status: status_name(st.status) }
}

/// `progress`, `suspend` and `backoff` come from a running attempt. Status 0 (never
/// admitted through the store: tests and tools) counts as running in memory.
fn check_running(inv: &InvocationMeta, st: &InvState) -> Result<()> {
    match st.status {
        0 | STATUS_RUNNING => Ok(()),
        _ => Err(not_running(inv, st)),
    }
}

/// `complete` also finishes an invocation that never started (inboxed or
/// scheduled), but not one whose attempt is gone (suspended, backing off, paused) or done.
fn check_completable(inv: &InvocationMeta, st: &InvState) -> Result<()> {
    match st.status {
        STATUS_SUSPENDED | STATUS_BACKING_OFF | STATUS_PAUSED | STATUS_COMPLETED => Err(not_running(inv, st)),
        _ => Ok(()),
    }
}

fn check_unfinished(inv: &InvocationMeta, st: &InvState) -> Result<()> {
    if st.status == STATUS_COMPLETED {
        return Err(not_running(inv, st));
    }
    Ok(())
}

/// Whether an entry has effects beyond the journal and the state table.
fn has_signals(entries: &[EntryRef<'_>]) -> bool {
    entries.iter().any(|e| e.kind > entry::RUN)
}

fn commit_for(inv: &InvocationMeta, entries: &[EntryRef<'_>], extra: usize) -> Commit {
    let bytes: usize = entries
        .iter()
        .map(|e| 2 * (inv.id.len() + inv.service.len() + inv.key.len()) + 48 + e.value.map_or(0, <[u8]>::len) * 2)
        .sum();
    Commit::with_capacity(bytes + extra, 2 * entries.len() + 4)
}

/// The results of attach targets that are neither live nor finished in memory, read
/// from RocksDB before a commit is built (None: no such invocation).
pub(super) type AttachReads = HashMap<String, Option<Output>>;

/// A completed record's result.
fn output_of(r: InvocationRecord) -> Output {
    let message = (r.failure_code != 0 || !r.failure_message.is_empty()).then_some(r.failure_message);
    (r.output, r.failure_code, message)
}

fn outcome_of(r: &PromiseRecord) -> Option<Output> {
    r.completed.then(|| {
        let message = (r.failure_code != 0 || !r.failure_message.is_empty()).then(|| r.failure_message.clone());
        (r.value.clone(), r.failure_code, message)
    })
}

impl Inner {
    /// Load the promise rows the entries touch into the overlay, so that the
    /// commit's effects are decided without I/O.
    fn prefetch_promises(&mut self, db: &Db, inv: &InvocationMeta, entries: &[EntryRef<'_>]) -> Result<()> {
        for e in entries.iter().filter(|e| matches!(e.kind, entry::GET_PROMISE | entry::COMPLETE_PROMISE)) {
            let key = keys::promise(&inv.service, &inv.key, e.name.unwrap_or(""));
            if self.promises.get(&key).is_none() {
                let rec = promises::get(db, &key)?;
                self.promises.put(key, rec, 0);
            }
        }
        Ok(())
    }

    /// Keep the rows of a key whose state a queued purge deleted (see `state`) up to date
    /// with the state effects of `entries`, written for `inv`'s key by commit `seq`.
    fn track_state(&mut self, durable_seq: u64, inv: &InvocationMeta, entries: &[EntryRef<'_>], seq: u64) {
        if self.state.is_empty() || !state::writes(entries) {
            return;
        }
        self.state.prune(durable_seq);
        let prefix = keys::state_prefix(&inv.service, &inv.key);
        self.state.update(&prefix, seq, |rows| state::apply_to(rows, entries));
    }

    /// Read the completed records of the attach targets among `entries` that the
    /// commit cannot answer from memory (not `inv` itself, not live, not finished
    /// since the last durable commit, not a callee admitted with them).
    fn read_attach_targets(&self, db: &Db, inv: &InvocationMeta, entries: &[EntryRef<'_>], children: &[Child]) -> Result<AttachReads> {
        let mut reads = AttachReads::new();
        for e in entries.iter().filter(|e| e.kind == entry::ATTACH_INVOCATION) {
            let target = e.name.unwrap_or("");
            let in_memory = target == inv.id
                || self.live.get(target).is_some()
                || self.finished.get_with_seq(target.as_bytes()).is_some()
                || children.iter().any(|(c, _)| c.id == target);
            if in_memory || reads.contains_key(target) {
                continue;
            }
            // A queued purge deletes it: gone, as the reads after that commit see it.
            let found = if self.purged.get(target.as_bytes()).is_some() {
                None
            } else {
                match invocations::get(db, target)? {
                    None => None,
                    Some(r) if r.status == STATUS_COMPLETED => Some(output_of(r)),
                    Some(_) => {
                        return Err(Error::InvalidArgument(format!(
                            "invocation {target} is unfinished on disk but not tracked: call recover() after open"
                        )))
                    }
                }
            };
            reads.insert(target.to_string(), found);
        }
        Ok(reads)
    }
}

impl Store {
    pub fn open(path: &Path, durability: Durability) -> Result<Store> {
        failpoints::configure_from_env()?;
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

    /// RocksDB's memory by kind, in bytes (`Db::memory_usage`).
    pub fn memory_usage(&self) -> Vec<(&'static str, u64)> {
        self.db.memory_usage()
    }

    pub fn groups_written(&self) -> u64 {
        self.writer.groups_written()
    }

    // ---- admission

    /// (true, 0): runs now, nothing written. (true, seq): runs now, its record
    /// (and idempotency row) written by commit `seq`. (false, seq): inboxed.
    pub fn admit(&self, inv: &Arc<InvocationMeta>, persist: bool) -> Result<(bool, u64)> {
        let mut inner = self.inner.lock();
        let decision = inner.admission.admit(inv);
        let persist = persist || inv.has_idempotency_row();
        if decision == Admit::RunNow && !persist {
            inv.update(|s| s.status = STATUS_RUNNING);
            return Ok((true, 0));
        }
        let mut tx = Tx::new(&mut inner, &self.writer, commit_for(inv, &[], inv.input().len() + 192), now_ms());
        tx.register_new(inv);
        let runs = tx.place(inv, decision, false);
        Ok((runs, tx.push()?))
    }

    /// A delayed send: record (scheduled) and timer row; admitted by `fire_timers`.
    pub fn schedule(&self, inv: &Arc<InvocationMeta>, fire_ms: u64) -> Result<u64> {
        check_children(std::slice::from_ref(&(inv.clone(), fire_ms)))?;
        let mut inner = self.inner.lock();
        let mut tx = Tx::new(&mut inner, &self.writer, commit_for(inv, &[], inv.input().len() + 256), now_ms());
        tx.register_new(inv);
        tx.schedule(inv, fire_ms);
        tx.push()
    }

    /// The invocation registered for this idempotency key (None if there is none, or
    /// a queued purge deletes the row) and the commit that wrote the row or deleted it,
    /// which the answer depends on either way (0: read from RocksDB, durable).
    pub fn idempotency_lookup(&self, service: &str, key: &str, handler: &str, idem: &str) -> Result<(Option<String>, u64)> {
        let k = keys::idempotency(service, key, handler, idem);
        if let Some((v, seq)) = self.inner.lock().idempotency.get_with_seq(&k) {
            return Ok((v.clone(), seq));
        }
        Ok((idempotency::get(&self.db, &k)?, 0))
    }

    // ---- durable points

    pub fn progress(&self, inv: &Arc<InvocationMeta>, entries: &[EntryRef<'_>], children: &[Child]) -> Result<u64> {
        check_entries(entries)?;
        check_children(children)?;
        let mut inner = self.inner.lock();
        let st = inv.state();
        check_running(inv, &st)?;
        let signals = has_signals(entries);
        let mut attach_reads = AttachReads::new();
        if signals {
            inner.promises.maybe_prune(self.writer.durable_seq());
            inner.prefetch_promises(&self.db, inv, entries)?;
            inner.finished.prune(self.writer.durable_seq());
            attach_reads = inner.read_attach_targets(&self.db, inv, entries, children)?;
        }
        let extra = if st.persisted { 0 } else { inv.input().len() + 128 };
        let mut tx = Tx::new(&mut inner, &self.writer, commit_for(inv, entries, extra), now_ms());
        let mut next = st;
        next.journal_len = st.journal_len + entries.len() as u32;
        if !st.persisted {
            next.persisted = true;
            next.status = STATUS_RUNNING;
            tx.register(inv);
            tx.set_state(inv, next);
        } else {
            inv.update(|s| *s = next);
        }
        journal::append(&mut tx.c, &inv.id, st.journal_len, entries);
        if inv.is_exclusive() {
            state::apply(&mut tx.c, &inv.service, &inv.key, entries);
            let seq = tx.next_seq();
            tx.inner.track_state(self.writer.durable_seq(), inv, entries, seq);
        }
        let early = tx.take_early(inv, st.journal_len, entries);
        // Callees first: an entry of the same commit may act on one (attach to it, cancel it).
        for (child, fire_ms) in children {
            tx.admit_child(child, *fire_ms);
        }
        if signals {
            tx.apply_entries(inv, st.journal_len, entries, false, &attach_reads);
        }
        tx.deliver_early(inv, early);
        tx.push()
    }

    pub fn backoff(&self, inv: &Arc<InvocationMeta>, retry_count: u32, fire_ms: u64) -> Result<u64> {
        let mut inner = self.inner.lock();
        let st = inv.state();
        check_running(inv, &st)?;
        let mut tx = Tx::new(&mut inner, &self.writer, commit_for(inv, &[], inv.input().len() + 192), now_ms());
        tx.cancel_retry_timer(inv, &st);
        tx.register(inv);
        tx.set_state(inv, InvState { status: STATUS_BACKING_OFF, retry_count, next_retry_ms: fire_ms, persisted: true, ..st });
        timers::put(&mut tx.c, fire_ms, &inv.id, RETRY_TIMER_ENTRY);
        tx.inner.timers.insert(fire_ms, &inv.id, RETRY_TIMER_ENTRY, inv.clone());
        tx.push()
    }

    pub fn resume(&self, inv: &Arc<InvocationMeta>) -> Result<u64> {
        let mut inner = self.inner.lock();
        let st = inv.state();
        check_unfinished(inv, &st)?;
        let mut tx = Tx::new(&mut inner, &self.writer, commit_for(inv, &[], inv.input().len() + 192), now_ms());
        tx.cancel_retry_timer(inv, &st);
        tx.register(inv);
        tx.set_state(inv, InvState { status: STATUS_RUNNING, next_retry_ms: 0, persisted: true, ..st });
        tx.push()
    }

    /// Pin `inv` to the deployment it runs on (`""`: in-process handlers), for the
    /// rest of its life: every later write of its record carries it and recovery
    /// restores it. A persisted invocation's record is rewritten (as it is, plus
    /// the deployment) by a commit whose seq is returned; one not persisted yet is
    /// pinned in memory only (0), and the record its first durable point writes
    /// carries it. Allowed in any unfinished status; NotRunning once completed.
    pub fn pin_deployment(&self, inv: &Arc<InvocationMeta>, deployment_id: &str) -> Result<u64> {
        let mut inner = self.inner.lock();
        let st = inv.state();
        check_unfinished(inv, &st)?;
        inv.set_deployment(deployment_id);
        if !st.persisted {
            return Ok(0);
        }
        let extra = inv.input().len() + deployment_id.len() + 128;
        let mut tx = Tx::new(&mut inner, &self.writer, commit_for(inv, &[], extra), now_ms());
        tx.set_state(inv, st);
        tx.push()
    }

    /// How many persisted, unfinished invocations (running, suspended, backing off,
    /// inboxed) are pinned to `deployment_id`: a deployment with any is in use.
    pub fn pinned_count(&self, deployment_id: &str) -> usize {
        let inner = self.inner.lock();
        inner.live.metas().filter(|m| m.deployment() == deployment_id).count()
    }

    /// Finish `inv` in one commit; for an exclusive handler, hand its key to
    /// the next inboxed invocation, which is returned (now running). Its record is
    /// kept for the server's default retention (see `complete_with_retention`).
    pub fn complete(
        &self,
        inv: &Arc<InvocationMeta>,
        entries: &[EntryRef<'_>],
        output: Option<&[u8]>,
        failure_code: u32,
        failure_message: Option<&str>,
        children: &[Child],
    ) -> Result<(u64, Option<Arc<InvocationMeta>>)> {
        self.complete_with_retention(inv, entries, output, failure_code, failure_message, children, None)
    }

    /// `complete`, with the completed record kept for `retention_ms` after its
    /// completion (None: the default retention that `purge_completed` is given).
    #[allow(clippy::too_many_arguments)]
    pub fn complete_with_retention(
        &self,
        inv: &Arc<InvocationMeta>,
        entries: &[EntryRef<'_>],
        output: Option<&[u8]>,
        failure_code: u32,
        failure_message: Option<&str>,
        children: &[Child],
        retention_ms: Option<u64>,
    ) -> Result<(u64, Option<Arc<InvocationMeta>>)> {
        check_entries(entries)?;
        check_children(children)?;
        let now = now_ms();
        let mut inner = self.inner.lock();
        let st = inv.state();
        check_completable(inv, &st)?;
        inner.finished.prune(self.writer.durable_seq());
        let signals = has_signals(entries);
        if signals {
            inner.promises.maybe_prune(self.writer.durable_seq());
            inner.prefetch_promises(&self.db, inv, entries)?;
        }
        let extra = inv.input().len() + output.map_or(0, <[u8]>::len) + failure_message.map_or(0, str::len) + 256;
        let mut tx = Tx::new(&mut inner, &self.writer, commit_for(inv, entries, extra), now);
        let mut journal_len = st.journal_len;
        if st.persisted {
            journal::append(&mut tx.c, &inv.id, st.journal_len, entries);
            journal_len += entries.len() as u32;
        }
        if inv.is_exclusive() {
            state::apply(&mut tx.c, &inv.service, &inv.key, entries);
            let seq = tx.next_seq();
            tx.inner.track_state(self.writer.durable_seq(), inv, entries, seq);
        }
        // Early completions at these indices are settled (rows of non-awakeables
        // deleted); the invocation finishes, so none is delivered.
        tx.take_early(inv, st.journal_len, entries);
        for (child, fire_ms) in children {
            tx.admit_child(child, *fire_ms);
        }
        if signals {
            tx.apply_entries(inv, st.journal_len, entries, true, &AttachReads::new());
        }
        let o = Outcome { value: output, code: failure_code, message: failure_message };
        let next = tx.finish(inv, journal_len, &o, retention_ms);
        Ok((tx.push()?, next))
    }

    /// Suspend `inv` until one of `awaiting` completes. `Some(seq)`: suspended;
    /// `None`: one of them is already completed (or its cancellation is pending),
    /// so it must stay in memory.
    pub fn suspend(&self, inv: &Arc<InvocationMeta>, awaiting: &[u32]) -> Result<Option<u64>> {
        if awaiting.is_empty() {
            return Err(Error::InvalidArgument("suspend needs at least one awaited entry".into()));
        }
        let mut inner = self.inner.lock();
        let st = inv.state();
        check_running(inv, &st)?;
        if inner.live.get(&inv.id).is_none() {
            return Err(Error::InvalidArgument(format!("invocation {} has no journaled entries to await", inv.id)));
        }
        if st.cancel_requested || awaiting.iter().any(|&i| !inner.live.is_pending(&inv.id, i)) {
            return Ok(None);
        }
        let mut tx = Tx::new(&mut inner, &self.writer, commit_for(inv, &[], inv.input().len() + 128), now_ms());
        tx.set_state(inv, InvState { status: STATUS_SUSPENDED, ..st });
        Ok(Some(tx.push()?))
    }

    pub fn take_wakes(&self) -> Vec<Wake> {
        std::mem::take(&mut self.inner.lock().wakes)
    }

    // ---- reads

    /// Every state row of one object key, and the commit the rows depend on (0: read
    /// from RocksDB, which has the commits written so far; the runtime's state cache has
    /// the handlers' commits that are not written yet).
    ///
    /// A key whose state a queued purge deleted is answered from memory until the last
    /// commit that wrote its rows since is durable: no rows, or those that later queued
    /// commits wrote, with the seq of the last of those commits (the purge's if none).
    /// Otherwise RocksDB is read, after that check: a purge queued in between is after
    /// this read in commit order (the runtime reads the state of a new run of a key after
    /// admitting it, and a purge deletes only the state of a free key).
    pub fn load_state(&self, service: &str, key: &str) -> Result<(StateRows, u64)> {
        {
            let mut inner = self.inner.lock();
            if !inner.state.is_empty() {
                inner.state.prune(self.writer.durable_seq());
                if let Some((rows, seq)) = inner.state.get_with_seq(&keys::state_prefix(service, key)) {
                    return Ok((StateRows::from_rows(rows), seq));
                }
            }
        }
        Ok((state::load(&self.db, service, key)?, 0))
    }

    pub fn load_journal(&self, inv_id: &str) -> Result<Vec<Entry>> {
        journal::load(&self.db, inv_id)
    }

    /// The completions written for `inv_id`, by entry index.
    pub fn load_completions(&self, inv_id: &str) -> Result<Vec<(u32, Entry)>> {
        completions::load(&self.db, inv_id)
    }

    /// A workflow promise's outcome (None while pending or unknown) and the commit
    /// that wrote the row it comes from (0: read from RocksDB, durable).
    pub fn peek_promise(&self, service: &str, key: &str, name: &str) -> Result<(Option<Output>, u64)> {
        let k = keys::promise(service, key, name);
        if let Some((r, seq)) = self.inner.lock().promises.get_with_seq(&k) {
            return Ok((outcome_of(r), seq));
        }
        Ok((outcome_of(&promises::get(&self.db, &k)?), 0))
    }

    /// The live invocation if it is persisted and unfinished (the object the
    /// store updates), else as stored.
    pub fn get_invocation(&self, inv_id: &str) -> Result<Option<Arc<InvocationMeta>>> {
        if let Some(m) = self.inner.lock().live.meta(inv_id) {
            return Ok(Some(m.clone()));
        }
        invocations::get(&self.db, inv_id)?.map(InvocationMeta::from_record).transpose()
    }

    pub fn get_output(&self, inv_id: &str) -> Result<Option<Output>> {
        Ok(invocations::get(&self.db, inv_id)?.filter(|r| r.status == STATUS_COMPLETED).map(output_of))
    }

    pub fn next_timer_ms(&self) -> Option<u64> {
        self.inner.lock().timers.next_ms()
    }
}
