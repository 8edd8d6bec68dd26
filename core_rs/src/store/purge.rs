//! Purge: deleting completed invocations whose retention has run out, or one
//! on request (the admin's purge): record, journal, completions, idempotency
//! row; for a workflow run also its key's state and promises. Each record
//! carries its own retention if its service or handler set one (journal,
//! idempotency or workflow retention, chosen by the runtime at completion); the
//! others get the server's default.
//!
//! Purge runs beside the traffic, so it must not hold the store lock across
//! the thousands of RocksDB reads a large purge makes. It scans for candidates
//! without the lock, then goes in small batches: the batch's own reads (the
//! idempotency rows and promise keys on disk) also run without the lock, and
//! the lock is held only to re-check what may have changed since (against the
//! overlays, whose generations tell whether a prune could have hidden a change)
//! and to queue the batch's deletes.
//!
//! A workflow key's state and promises outlive its run when a newer run has
//! taken the key: they are deleted only if the key's idempotency row still
//! names the purged run (or none), and nothing owns or waits for the key.

use prost::Message;

use crate::db::Cf;
use crate::error::{Error, Result};
use crate::invocation::{now_ms, InvocationMeta, KIND_WORKFLOW, STATUS_COMPLETED};
use crate::keys;
use crate::proto::{InvocationRecord, PromiseRecord};
use crate::tables::{completions, idempotency, invocations, journal, promises, state};

use super::effects::Tx;
use super::signals::{SignalResult, SIGNAL_APPLIED, SIGNAL_UNKNOWN};
use super::{Inner, Store};

/// `purge_invocation`: the invocation exists but is not completed; nothing written.
pub const PURGE_NOT_COMPLETED: i64 = 0;

/// Invocations deleted per commit (and per hold of the store lock).
const BATCH: usize = 64;

/// What purging needs of an invocation (no input, no output).
fn purge_record(m: &InvocationMeta) -> InvocationRecord {
    InvocationRecord {
        id: m.id.clone(),
        service: m.service.clone(),
        handler: m.handler.clone(),
        key: m.key.clone(),
        kind: m.kind,
        idempotency_key: m.idempotency_key.clone(),
        status: STATUS_COMPLETED,
        ..Default::default()
    }
}

/// A purge candidate with what RocksDB said about it.
struct Candidate<'a> {
    rec: &'a InvocationRecord,
    /// Its idempotency row's key, if it registered one.
    idem_key: Option<Vec<u8>>,
    /// That row's invocation on disk.
    holder_on_disk: Option<String>,
    /// For a workflow run: its key's promise rows on disk.
    promise_keys: Vec<Vec<u8>>,
}

fn generations(inner: &Inner) -> (u64, u64) {
    (inner.idempotency.generation(), inner.promises.generation())
}

impl Store {
    /// Delete up to `limit` completed invocations whose retention has run out at
    /// `now_ms`: `completed_ms + retention <= now_ms`, the retention being the
    /// record's own, else `default_retention_ms`. Returns how many.
    pub fn purge_completed(&self, now_ms: u64, default_retention_ms: u64, limit: usize) -> Result<usize> {
        if limit == 0 {
            return Ok(0);
        }
        let mut old: Vec<InvocationRecord> = Vec::new();
        invocations::scan_peek(&self.db, |peek, raw| {
            if peek.status == STATUS_COMPLETED && peek.expired(now_ms, default_retention_ms) {
                let mut rec = InvocationRecord::decode(raw)?;
                rec.input.clear();
                rec.output = None;
                old.push(rec);
            }
            Ok(old.len() < limit)
        })?;
        let mut purged = 0;
        for batch in old.chunks(BATCH) {
            purged += self.purge_batch(batch)?.0;
        }
        Ok(purged)
    }

    /// Purge one completed invocation now, whatever its retention (the admin's purge),
    /// by the same rules as `purge_completed`. (SIGNAL_APPLIED, seq): deleted by commit
    /// seq. (PURGE_NOT_COMPLETED, seq): it is not completed, nothing written; seq makes
    /// that answer durable (its admission may be queued). (SIGNAL_UNKNOWN, seq): no such
    /// invocation; seq is a queued purge that deleted it, 0 once that is durable.
    pub fn purge_invocation(&self, inv_id: &str) -> Result<SignalResult> {
        let rec = match self.find_completed(inv_id)? {
            Ok(rec) => rec,
            Err(answer) => return Ok(answer),
        };
        match self.purge_batch(std::slice::from_ref(&rec))? {
            (0, _) => Ok(self.purged_answer(inv_id).unwrap_or((SIGNAL_UNKNOWN, 0))),
            (_, seq) => Ok((SIGNAL_APPLIED, seq)),
        }
    }

    /// (SIGNAL_UNKNOWN, seq) if a queued purge deleted `inv_id` (seq 0 once durable).
    fn purged_answer(&self, inv_id: &str) -> Option<SignalResult> {
        let inner = self.inner.lock();
        let ((), seq) = inner.purged.get_with_seq(inv_id.as_bytes())?;
        Some((SIGNAL_UNKNOWN, if seq > self.writer.durable_seq() { seq } else { 0 }))
    }

    /// The completed record to purge, or the answer if there is none. Memory first
    /// (live, purged, or finished with a record perhaps not written yet), then the record
    /// on disk, read without the lock. An invocation can go from unwritten to live
    /// between the two: then memory is asked again.
    fn find_completed(&self, inv_id: &str) -> Result<Result<InvocationRecord, SignalResult>> {
        for _ in 0..2 {
            {
                let inner = self.inner.lock();
                if inner.live.get(inv_id).is_some() {
                    return Ok(Err((PURGE_NOT_COMPLETED, self.writer.last_seq())));
                }
                if let Some((f, _)) = inner.finished.get_with_seq(inv_id.as_bytes()) {
                    return Ok(Ok(purge_record(&f.meta)));
                }
            }
            if let Some(answer) = self.purged_answer(inv_id) {
                return Ok(Err(answer));
            }
            match invocations::get(&self.db, inv_id)? {
                // A purge may have been written since the check above.
                None => return Ok(Err(self.purged_answer(inv_id).unwrap_or((SIGNAL_UNKNOWN, 0)))),
                Some(mut rec) if rec.status == STATUS_COMPLETED => {
                    rec.input = Vec::new();
                    rec.output = None;
                    return Ok(Ok(rec));
                }
                Some(_) => {}
            }
        }
        Err(Error::InvalidArgument(format!(
            "invocation {inv_id} is unfinished on disk but not tracked: call recover() after open"
        )))
    }

    fn read_candidates<'a>(&self, batch: &'a [InvocationRecord]) -> Result<Vec<Candidate<'a>>> {
        batch
            .iter()
            .map(|rec| {
                let registered = rec.kind == KIND_WORKFLOW || !rec.idempotency_key.is_empty();
                let idem_key = registered.then(|| keys::idempotency(&rec.service, &rec.key, &rec.handler, &rec.idempotency_key));
                let holder_on_disk = match &idem_key {
                    Some(k) => idempotency::get(&self.db, k)?,
                    None => None,
                };
                let mut promise_keys = Vec::new();
                if rec.kind == KIND_WORKFLOW {
                    self.db.scan_prefix(Cf::Promises, &keys::promise_prefix(&rec.service, &rec.key), |k, _| {
                        promise_keys.push(k.to_vec());
                        Ok(true)
                    })?;
                }
                Ok(Candidate { rec, idem_key, holder_on_disk, promise_keys })
            })
            .collect()
    }

    /// Delete the invocations of `batch` (completed records) in one commit: (how many,
    /// its seq), (0, 0) if an earlier queued purge deleted all of them already.
    fn purge_batch(&self, batch: &[InvocationRecord]) -> Result<(usize, u64)> {
        let before = generations(&self.inner.lock());
        let mut candidates = self.read_candidates(batch)?;
        let mut inner = self.inner.lock();
        if generations(&inner) != before {
            // A prune dropped overlay rows since the reads: a change queued after
            // them may be gone from the overlay. Read again, under the lock (rare).
            candidates = self.read_candidates(batch)?;
        }
        let mut tx = Tx::new(&mut inner, &self.writer, Default::default(), now_ms());
        let seq = tx.next_seq();
        tx.inner.purged.maybe_prune(self.writer.durable_seq());
        let mut n = 0;
        for c in &candidates {
            let r = c.rec;
            if tx.inner.purged.get(r.id.as_bytes()).is_some() {
                continue; // deleted by an earlier purge whose commit is not written yet
            }
            invocations::delete(&mut tx.c, &r.id);
            journal::delete_all(&mut tx.c, &r.id);
            completions::delete_all(&mut tx.c, &r.id);
            // The idempotency row as of now: queued changes first, else the disk.
            let holder = c.idem_key.as_ref().and_then(|k| match tx.inner.idempotency.get(k) {
                Some(v) => v.clone(),
                None => c.holder_on_disk.clone(),
            });
            let holds = holder.as_deref() == Some(r.id.as_str());
            if let (true, Some(k)) = (holds, &c.idem_key) {
                idempotency::delete(&mut tx.c, k);
                tx.inner.idempotency.put(k.clone(), None, seq);
            }
            let key_free = (holds || holder.is_none())
                && tx.inner.admission.owner_of(&r.service, &r.key).is_none()
                && tx.inner.admission.inbox_len(&r.service, &r.key) == 0;
            if r.kind == KIND_WORKFLOW && key_free {
                state::delete_all(&mut tx.c, &r.service, &r.key);
                // Until the delete is durable, `load_state` answers from memory: RocksDB
                // has the rows until the delete is written (and later commits may write new ones).
                tx.inner.state.prune(self.writer.durable_seq());
                tx.inner.state.put(keys::state_prefix(&r.service, &r.key), Default::default(), seq);
                promises::delete_all(&mut tx.c, &r.service, &r.key);
                // Reads must not see the rows before the delete is written.
                let prefix = keys::promise_prefix(&r.service, &r.key);
                tx.inner.promises.reset_prefix(&prefix, PromiseRecord::default, seq);
                for k in &c.promise_keys {
                    tx.inner.promises.put(k.clone(), PromiseRecord::default(), seq);
                }
            }
            tx.inner.purged.put(r.id.as_bytes().to_vec(), (), seq);
            // Signals and attaches must not answer from its result any more.
            tx.inner.finished.remove(r.id.as_bytes());
            n += 1;
        }
        if n == 0 {
            return Ok((0, 0));
        }
        Ok((n, tx.push()?))
    }
}
