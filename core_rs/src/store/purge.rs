//! Purge: deleting completed invocations whose retention has run out (record,
//! journal, completions, idempotency row; for a workflow run also its key's
//! state and promises). Each record carries its own retention if its service or
//! handler set one (journal, idempotency or workflow retention, chosen by the
//! runtime at completion); the others get the server's default.
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

use crate::error::Result;
use crate::invocation::{now_ms, KIND_WORKFLOW, STATUS_COMPLETED};
use crate::keys;
use crate::proto::{InvocationRecord, PromiseRecord};
use crate::db::Cf;
use crate::tables::{completions, idempotency, invocations, journal, promises, state};

use super::effects::Tx;
use super::{Inner, Store};

/// Invocations deleted per commit (and per hold of the store lock).
const BATCH: usize = 64;

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
            purged += self.purge_batch(batch)?;
        }
        Ok(purged)
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

    fn purge_batch(&self, batch: &[InvocationRecord]) -> Result<usize> {
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
            n += 1;
        }
        if n > 0 {
            tx.push()?;
        }
        Ok(n)
    }
}
