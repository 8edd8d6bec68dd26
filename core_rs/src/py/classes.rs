//! The `Invocation` and `Store` Python classes: argument conversion, GIL
//! release around RocksDB work, nothing else.
//!
//! Methods that only queue a commit keep the GIL: queueing takes a mutex held
//! for a few instructions by the writer and never waits for I/O, and giving
//! up the GIL would cost more than it saves. Reads, recovery, open and close
//! release it.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use super::{convert, rows};
use crate::commit::Durability;
use crate::error::Error;
use crate::invocation::{InvocationMeta, Links};
use crate::store;
use crate::tables::completions::Outcome;

/// One call of one handler; shares its mutable part with the store.
#[pyclass(frozen, module = "runtime._core")]
pub struct Invocation {
    pub(crate) inner: Arc<InvocationMeta>,
}

impl Invocation {
    pub(crate) fn wrap(inner: Arc<InvocationMeta>) -> Self {
        Invocation { inner }
    }
}

/// `children` as the store takes them (the callees' shared state, with fire times).
fn children(children: Option<Vec<(Bound<'_, Invocation>, u64)>>) -> Vec<store::Child> {
    children.unwrap_or_default().into_iter().map(|(c, fire_ms)| (c.get().inner.clone(), fire_ms)).collect()
}

#[pymethods]
impl Invocation {
    #[new]
    #[pyo3(signature = (id, service, handler, key, kind, input, headers, created_ms, *, caller_id = "", caller_entry = 0, idempotency_key = ""))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        id: String,
        service: String,
        handler: String,
        key: String,
        kind: i32,
        input: &[u8],
        headers: Vec<(String, String)>,
        created_ms: u64,
        caller_id: &str,
        caller_entry: u32,
        idempotency_key: &str,
    ) -> PyResult<Self> {
        let links = Links { caller_id: caller_id.to_string(), caller_entry, idempotency_key: idempotency_key.to_string() };
        Ok(Invocation { inner: InvocationMeta::with_links(id, service, handler, key, kind, input, headers, created_ms, links)? })
    }

    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }

    #[getter]
    fn service(&self) -> &str {
        &self.inner.service
    }

    #[getter]
    fn handler(&self) -> &str {
        &self.inner.handler
    }

    #[getter]
    fn key(&self) -> &str {
        &self.inner.key
    }

    #[getter]
    fn kind(&self) -> i32 {
        self.inner.kind
    }

    #[getter]
    fn input<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.input())
    }

    #[getter]
    fn headers(&self) -> Vec<(&str, &str)> {
        self.inner.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
    }

    #[getter]
    fn created_ms(&self) -> u64 {
        self.inner.created_ms
    }

    #[getter]
    fn caller_id(&self) -> &str {
        &self.inner.caller_id
    }

    #[getter]
    fn caller_entry(&self) -> u32 {
        self.inner.caller_entry
    }

    #[getter]
    fn idempotency_key(&self) -> &str {
        &self.inner.idempotency_key
    }

    /// Cancellation was requested and the handler has not yet journaled ENTRY_CANCEL.
    #[getter]
    fn cancel_requested(&self) -> bool {
        self.inner.state().cancel_requested
    }

    #[getter]
    fn status(&self) -> i32 {
        self.inner.state().status
    }

    #[getter]
    fn retry_count(&self) -> u32 {
        self.inner.state().retry_count
    }

    /// Entries durable (or queued for commit) in the journal: the index of the next one.
    #[getter]
    fn journal_len(&self) -> u32 {
        self.inner.state().journal_len
    }

    /// Whether its record has been written (queued) to the invocations table.
    #[getter]
    fn persisted(&self) -> bool {
        self.inner.state().persisted
    }

    /// The deployment it is pinned to ("": in-process handlers); see `Store.pin_deployment`.
    #[getter]
    fn deployment(&self) -> String {
        self.inner.deployment()
    }

    fn __repr__(&self) -> String {
        let m = &self.inner;
        let st = m.state();
        format!(
            "Invocation(id={:?}, target={}/{}/{}, kind={}, status={}, journal_len={})",
            m.id, m.service, m.key, m.handler, m.kind, st.status, st.journal_len
        )
    }
}

/// The data directory: RocksDB plus the group-commit writer thread.
#[pyclass(frozen, module = "runtime._core")]
pub struct Store {
    inner: RwLock<Option<Arc<store::Store>>>,
    fd: i32,
}

impl Store {
    fn get(&self) -> Result<Arc<store::Store>, Error> {
        self.inner.read().clone().ok_or(Error::Closed)
    }
}

#[pymethods]
impl Store {
    #[new]
    #[pyo3(signature = (path, durability = "sync"))]
    fn new(py: Python<'_>, path: PathBuf, durability: &str) -> PyResult<Self> {
        let durability: Durability = durability.parse()?;
        let s = py.detach(|| store::Store::open(&path, durability))?;
        let fd = s.notify_fd();
        Ok(Store { inner: RwLock::new(Some(Arc::new(s))), fd })
    }

    /// Drain the writer (every queued commit is written), stop it, close RocksDB.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let Some(s) = self.inner.write().take() else { return Ok(()) };
        py.detach(move || {
            let r = s.close();
            drop(s); // the last reference closes RocksDB, off the GIL
            r
        })?;
        Ok(())
    }

    /// An eventfd that becomes readable when durable_seq advances.
    fn notify_fd(&self) -> i32 {
        self.fd
    }

    /// Reset notify_fd and return durable_seq. Raises StorageError if the writer failed.
    fn drain_notify(&self) -> PyResult<u64> {
        Ok(self.get()?.drain_notify()?)
    }

    fn durable_seq(&self) -> PyResult<u64> {
        Ok(self.get()?.durable_seq())
    }

    /// Highest sequence number handed out so far.
    fn last_seq(&self) -> PyResult<u64> {
        Ok(self.get()?.last_seq())
    }

    /// Block (without the GIL) until `seq` is durable; returns durable_seq.
    fn wait_durable(&self, py: Python<'_>, seq: u64) -> PyResult<u64> {
        let s = self.get()?;
        Ok(py.detach(move || s.wait_durable(seq))?)
    }

    /// Groups written so far (one WriteBatch and one WAL sync each).
    fn groups_written(&self) -> PyResult<u64> {
        Ok(self.get()?.groups_written())
    }

    /// RocksDB's memory by kind, in bytes: memtables, table_readers, block_cache,
    /// block_cache_pinned (from RocksDB's properties; for the metrics).
    fn memory_usage(&self, py: Python<'_>) -> PyResult<Vec<(&'static str, u64)>> {
        let s = self.get()?;
        Ok(py.detach(move || s.memory_usage()))
    }

    #[pyo3(signature = (inv, persist = false))]
    fn admit(&self, inv: &Bound<'_, Invocation>, persist: bool) -> PyResult<(bool, u64)> {
        Ok(self.get()?.admit(&inv.get().inner, persist)?)
    }

    fn schedule(&self, inv: &Bound<'_, Invocation>, fire_ms: u64) -> PyResult<u64> {
        Ok(self.get()?.schedule(&inv.get().inner, fire_ms)?)
    }

    fn idempotency_lookup(
        &self,
        py: Python<'_>,
        service: &str,
        key: &str,
        handler: &str,
        idempotency_key: &str,
    ) -> PyResult<(Option<String>, u64)> {
        let s = self.get()?;
        Ok(py.detach(|| s.idempotency_lookup(service, key, handler, idempotency_key))?)
    }

    #[pyo3(signature = (inv, entries, children = None))]
    fn progress(
        &self,
        inv: &Bound<'_, Invocation>,
        entries: Vec<Bound<'_, PyTuple>>,
        children: Option<Vec<(Bound<'_, Invocation>, u64)>>,
    ) -> PyResult<u64> {
        let entries = convert::entries(&entries)?;
        let s = self.get()?;
        let children = self::children(children);
        Ok(s.progress(&inv.get().inner, &entries, &children)?)
    }

    fn backoff(&self, inv: &Bound<'_, Invocation>, retry_count: u32, fire_ms: u64) -> PyResult<u64> {
        Ok(self.get()?.backoff(&inv.get().inner, retry_count, fire_ms)?)
    }

    fn resume(&self, inv: &Bound<'_, Invocation>) -> PyResult<u64> {
        Ok(self.get()?.resume(&inv.get().inner)?)
    }

    fn pin_deployment(&self, inv: &Bound<'_, Invocation>, deployment_id: &str) -> PyResult<u64> {
        Ok(self.get()?.pin_deployment(&inv.get().inner, deployment_id)?)
    }

    fn pinned_count(&self, deployment_id: &str) -> PyResult<usize> {
        Ok(self.get()?.pinned_count(deployment_id))
    }

    #[pyo3(signature = (inv, entries, output, failure_code, failure_message, children = None, *, retention_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn complete(
        &self,
        inv: &Bound<'_, Invocation>,
        entries: Vec<Bound<'_, PyTuple>>,
        output: Option<&[u8]>,
        failure_code: u32,
        failure_message: Option<&str>,
        children: Option<Vec<(Bound<'_, Invocation>, u64)>>,
        retention_ms: Option<u64>,
    ) -> PyResult<(u64, Option<Invocation>)> {
        let entries = convert::entries(&entries)?;
        let s = self.get()?;
        let children = self::children(children);
        let inv = &inv.get().inner;
        let (seq, next) =
            s.complete_with_retention(inv, &entries, output, failure_code, failure_message, &children, retention_ms)?;
        Ok((seq, next.map(Invocation::wrap)))
    }

    /// seq if suspended, 0 if one of `awaiting` is already completed.
    fn suspend(&self, inv: &Bound<'_, Invocation>, awaiting: Vec<u32>) -> PyResult<u64> {
        Ok(self.get()?.suspend(&inv.get().inner, &awaiting)?.unwrap_or(0))
    }

    fn take_wakes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        convert::wakes_to_py(py, self.get()?.take_wakes())
    }

    #[pyo3(signature = (inv_id, index, value, code, message))]
    fn complete_awakeable(
        &self,
        py: Python<'_>,
        inv_id: &str,
        index: u32,
        value: Option<&[u8]>,
        code: u32,
        message: Option<&str>,
    ) -> PyResult<(i64, u64)> {
        let s = self.get()?;
        let o = Outcome { value, code, message };
        Ok(py.detach(|| s.complete_awakeable(inv_id, index, &o))?)
    }

    fn fire_timers(&self, now_ms: u64) -> PyResult<usize> {
        Ok(self.get()?.fire_timers(now_ms)?)
    }

    fn cancel(&self, py: Python<'_>, inv_id: &str) -> PyResult<(i64, u64)> {
        let s = self.get()?;
        Ok(py.detach(|| s.cancel(inv_id))?)
    }

    fn kill(&self, py: Python<'_>, inv_id: &str) -> PyResult<(i64, u64)> {
        let s = self.get()?;
        Ok(py.detach(|| s.kill(inv_id))?)
    }

    fn pause(&self, py: Python<'_>, inv_id: &str) -> PyResult<(i64, u64)> {
        let s = self.get()?;
        Ok(py.detach(|| s.pause(inv_id))?)
    }

    fn resume_invocation(&self, py: Python<'_>, inv_id: &str) -> PyResult<(i64, u64)> {
        let s = self.get()?;
        Ok(py.detach(|| s.resume_invocation(inv_id))?)
    }

    fn pause_attempt(&self, inv: &Bound<'_, Invocation>) -> PyResult<u64> {
        Ok(self.get()?.pause_attempt(&inv.get().inner)?)
    }

    fn load_state<'py>(&self, py: Python<'py>, service: &str, key: &str) -> PyResult<(Bound<'py, PyList>, u64)> {
        let s = self.get()?;
        let (rows, seq) = py.detach(|| s.load_state(service, key))?;
        Ok((convert::state_to_py(py, &rows)?, seq))
    }

    fn load_journal<'py>(&self, py: Python<'py>, inv_id: &str) -> PyResult<Bound<'py, PyList>> {
        let s = self.get()?;
        let entries = py.detach(|| s.load_journal(inv_id))?;
        convert::entries_to_py(py, &entries)
    }

    fn load_completions<'py>(&self, py: Python<'py>, inv_id: &str) -> PyResult<Bound<'py, PyList>> {
        let s = self.get()?;
        let rows = py.detach(|| s.load_completions(inv_id))?;
        convert::completions_to_py(py, &rows)
    }

    #[allow(clippy::type_complexity)]
    fn peek_promise<'py>(
        &self,
        py: Python<'py>,
        service: &str,
        key: &str,
        name: &str,
    ) -> PyResult<(Option<(Option<Bound<'py, PyBytes>>, u32, Option<String>)>, u64)> {
        let s = self.get()?;
        let (out, seq) = py.detach(|| s.peek_promise(service, key, name))?;
        Ok((out.map(|(v, code, msg)| (convert::bytes_opt(py, v.as_deref()), code, msg)), seq))
    }

    fn get_invocation(&self, py: Python<'_>, inv_id: &str) -> PyResult<Option<Invocation>> {
        let s = self.get()?;
        Ok(py.detach(|| s.get_invocation(inv_id))?.map(Invocation::wrap))
    }

    /// For a completed invocation: (output, failure_code, failure_message).
    #[allow(clippy::type_complexity)]
    fn get_output<'py>(
        &self,
        py: Python<'py>,
        inv_id: &str,
    ) -> PyResult<Option<(Option<Bound<'py, PyBytes>>, u32, Option<String>)>> {
        let s = self.get()?;
        let out = py.detach(|| s.get_output(inv_id))?;
        Ok(out.map(|(o, code, msg)| (convert::bytes_opt(py, o.as_deref()), code, msg)))
    }

    fn recover(&self, py: Python<'_>) -> PyResult<Vec<Invocation>> {
        let s = self.get()?;
        Ok(py.detach(|| s.recover())?.into_iter().map(Invocation::wrap).collect())
    }

    fn next_timer_ms(&self) -> PyResult<Option<u64>> {
        Ok(self.get()?.next_timer_ms())
    }

    fn purge_completed(&self, py: Python<'_>, now_ms: u64, default_retention_ms: u64, limit: usize) -> PyResult<usize> {
        let s = self.get()?;
        Ok(py.detach(|| s.purge_completed(now_ms, default_retention_ms, limit))?)
    }

    /// (SIGNAL_APPLIED, seq) | (PURGE_NOT_COMPLETED, seq) | (SIGNAL_UNKNOWN, seq).
    fn purge_invocation(&self, py: Python<'_>, inv_id: &str) -> PyResult<(i64, u64)> {
        let s = self.get()?;
        Ok(py.detach(|| s.purge_invocation(inv_id))?)
    }

    // ---- admin: state edits

    fn state_version(&self, py: Python<'_>, service: &str, key: &str) -> PyResult<String> {
        let s = self.get()?;
        Ok(py.detach(|| s.state_version(service, key))?)
    }

    #[pyo3(signature = (service, key, rows, expected_version = None))]
    fn overwrite_state(
        &self,
        py: Python<'_>,
        service: &str,
        key: &str,
        rows: Vec<(String, Bound<'_, PyBytes>)>,
        expected_version: Option<&str>,
    ) -> PyResult<(String, u64)> {
        let s = self.get()?;
        let rows: Vec<(String, Vec<u8>)> = rows.into_iter().map(|(n, v)| (n, v.as_bytes().to_vec())).collect();
        Ok(py.detach(|| s.overwrite_state(service, key, rows, expected_version))?)
    }

    // ---- introspection scans (GIL released while RocksDB is read)

    #[pyo3(signature = (after = "", limit = 0))]
    fn scan_invocations<'py>(&self, py: Python<'py>, after: &str, limit: usize) -> PyResult<Bound<'py, PyList>> {
        let s = self.get()?;
        let recs = py.detach(|| s.scan_invocations(after, limit))?;
        rows::invocations(py, &recs)
    }

    fn get_invocation_row<'py>(&self, py: Python<'py>, inv_id: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let s = self.get()?;
        let Some(rec) = py.detach(|| s.invocation_row(inv_id))? else { return Ok(None) };
        Ok(Some(rows::invocations(py, std::slice::from_ref(&rec))?.get_item(0)?))
    }

    #[pyo3(signature = (inv_id = ""))]
    fn scan_journal<'py>(&self, py: Python<'py>, inv_id: &str) -> PyResult<Bound<'py, PyList>> {
        let s = self.get()?;
        let found = py.detach(|| s.scan_journal(inv_id))?;
        rows::journal(py, &found)
    }

    #[pyo3(signature = (inv_id = ""))]
    fn scan_completions<'py>(&self, py: Python<'py>, inv_id: &str) -> PyResult<Bound<'py, PyList>> {
        let s = self.get()?;
        let found = py.detach(|| s.scan_completions(inv_id))?;
        rows::completions(py, &found)
    }

    #[pyo3(signature = (service = "", key = ""))]
    fn scan_state<'py>(&self, py: Python<'py>, service: &str, key: &str) -> PyResult<Bound<'py, PyList>> {
        let s = self.get()?;
        let found = py.detach(|| s.scan_state(service, key))?;
        rows::state(py, &found)
    }

    fn scan_inbox(&self, py: Python<'_>) -> PyResult<Vec<(String, String, u64, String)>> {
        let s = self.get()?;
        Ok(py.detach(|| s.scan_inbox())?)
    }

    #[allow(clippy::type_complexity)]
    fn scan_idempotency(&self, py: Python<'_>) -> PyResult<Vec<(String, String, String, String, String)>> {
        let s = self.get()?;
        Ok(py.detach(|| s.scan_idempotency())?)
    }

    #[pyo3(signature = (service = "", key = ""))]
    fn scan_promises<'py>(&self, py: Python<'py>, service: &str, key: &str) -> PyResult<Bound<'py, PyList>> {
        let s = self.get()?;
        let found = py.detach(|| s.scan_promises(service, key))?;
        rows::promises(py, &found)
    }

    fn count_timers(&self) -> PyResult<usize> {
        Ok(self.get()?.count_timers())
    }
}
