//! Whole-table reads for introspection (the admin API, SQL over Restate's
//! introspection tables): every row of one table, or of one invocation, service
//! or object key, in key order.
//!
//! They read RocksDB only, never the store lock: what they see is the commits
//! written when the scan's iterator was created (its implicit snapshot), which
//! costs the writer nothing. A commit queued but not written yet is not seen;
//! the runtime answers from these reads as it answers `get_invocation`.

use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::invocation::STATUS_COMPLETED;
use crate::keys;
use crate::proto::{InvocationRecord, PromiseRecord};
use crate::tables::{completions, idempotency, inbox, invocations, journal, promises, state};

use super::Store;

/// A journal entry or a completion with its place: (invocation id, entry index, entry).
pub type JournalRow = (String, u32, Entry);

/// A workflow promise: (workflow, key, name, record).
pub type PromiseRow = (String, String, String, PromiseRecord);

/// The prefix of one table's rows for (service, key): all of them (""), one service's,
/// or one object key's. A key without its service names nothing.
fn object_scope(all: &[u8], service: &str, key: &str, of_service: fn(&str) -> Vec<u8>, of_key: fn(&str, &str) -> Vec<u8>) -> Result<Vec<u8>> {
    match (service.is_empty(), key.is_empty()) {
        (true, true) => Ok(all.to_vec()),
        (false, true) => Ok(of_service(service)),
        (false, false) => Ok(of_key(service, key)),
        (true, false) => Err(Error::InvalidArgument(format!("object key {key:?} given without its service"))),
    }
}

fn str_owned((a, b, c): (&str, &str, &str)) -> (String, String, String) {
    (a.to_string(), b.to_string(), c.to_string())
}

impl Store {
    /// Invocation records in id order, from the first id after `after` ("": from the
    /// start), at most `limit` (0: all). An unfinished invocation's `journal_len` is its
    /// journal's (its record is rewritten only on status changes); a completed one's is
    /// the record's, final.
    pub fn scan_invocations(&self, after: &str, limit: usize) -> Result<Vec<InvocationRecord>> {
        let mut out = Vec::new();
        invocations::scan_after(&self.db, after, |mut rec| {
            if rec.status != STATUS_COMPLETED {
                rec.journal_len = journal::len(&self.db, &rec.id)?;
            }
            out.push(rec);
            Ok(limit == 0 || out.len() < limit)
        })?;
        Ok(out)
    }

    /// One invocation's record as `scan_invocations` gives it (None: never written, or purged).
    pub fn invocation_row(&self, inv_id: &str) -> Result<Option<InvocationRecord>> {
        let Some(mut rec) = invocations::get(&self.db, inv_id)? else { return Ok(None) };
        if rec.status != STATUS_COMPLETED {
            rec.journal_len = journal::len(&self.db, &rec.id)?;
        }
        Ok(Some(rec))
    }

    /// Journal entries of one invocation, or of all ("").
    pub fn scan_journal(&self, inv_id: &str) -> Result<Vec<JournalRow>> {
        let prefix = if inv_id.is_empty() { keys::JOURNAL.to_vec() } else { keys::journal_prefix(inv_id) };
        let mut out = Vec::new();
        journal::scan(&self.db, &prefix, |id, index, e| {
            out.push((id.to_string(), index, e));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Completions of one invocation's awaitable entries, or of all ("").
    pub fn scan_completions(&self, inv_id: &str) -> Result<Vec<JournalRow>> {
        let prefix = if inv_id.is_empty() { keys::COMPLETION.to_vec() } else { keys::completion_prefix(inv_id) };
        let mut out = Vec::new();
        completions::scan(&self.db, &prefix, |id, index, e| {
            out.push((id.to_string(), index, e));
            Ok(true)
        })?;
        Ok(out)
    }

    /// State rows (service, key, name, value): all, one service's, or one object key's.
    #[allow(clippy::type_complexity)]
    pub fn scan_state(&self, service: &str, key: &str) -> Result<Vec<(String, String, String, Vec<u8>)>> {
        let prefix = object_scope(&keys::STATE, service, key, keys::state_service_prefix, keys::state_prefix)?;
        let mut out = Vec::new();
        state::scan(&self.db, &prefix, |s, k, name, value| {
            let (s, k, name) = str_owned((s, k, name));
            out.push((s, k, name, value.to_vec()));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Inbox rows (service, key, inbox seq, invocation id), each key's in queue order.
    pub fn scan_inbox(&self) -> Result<Vec<(String, String, u64, String)>> {
        let mut out = Vec::new();
        inbox::scan(&self.db, |s, k, seq, id| {
            out.push((s.to_string(), k.to_string(), seq, id.to_string()));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Idempotency rows (service, key, handler, idempotency key, invocation id).
    #[allow(clippy::type_complexity)]
    pub fn scan_idempotency(&self) -> Result<Vec<(String, String, String, String, String)>> {
        let mut out = Vec::new();
        idempotency::scan(&self.db, |(s, k, h, idem), id| {
            out.push((s.to_string(), k.to_string(), h.to_string(), idem.to_string(), id.to_string()));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Workflow promises: all, one workflow's, or one workflow key's.
    pub fn scan_promises(&self, service: &str, key: &str) -> Result<Vec<PromiseRow>> {
        let prefix = object_scope(&keys::PROMISE, service, key, keys::promise_workflow_prefix, keys::promise_prefix)?;
        let mut out = Vec::new();
        promises::scan(&self.db, &prefix, |w, k, name, rec| {
            let (w, k, name) = str_owned((w, k, name));
            out.push((w, k, name, rec));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Timers pending: sleeps, retries and delayed sends (the in-memory index, rebuilt
    /// by `recover`).
    pub fn count_timers(&self) -> usize {
        self.inner.lock().timers.len()
    }
}
