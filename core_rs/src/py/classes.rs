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

use super::convert;
use crate::commit::Durability;
use crate::error::Error;
use crate::invocation::InvocationMeta;
use crate::store;

/// One call of one handler; shares its mutable part with the store.
#[pyclass(frozen, module = "runtime._core")]
pub struct Invocation {
    pub(crate) inner: Arc<InvocationMeta>,
}

impl Invocation {
    fn wrap(inner: Arc<InvocationMeta>) -> Self {
        Invocation { inner }
    }
}

#[pymethods]
impl Invocation {
    #[new]
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
    ) -> PyResult<Self> {
        Ok(Invocation { inner: InvocationMeta::new(id, service, handler, key, kind, input, headers, created_ms)? })
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

    fn admit(&self, inv: &Bound<'_, Invocation>) -> PyResult<(bool, u64)> {
        Ok(match self.get()?.admit(&inv.get().inner)? {
            None => (true, 0),
            Some(seq) => (false, seq),
        })
    }

    fn progress(&self, inv: &Bound<'_, Invocation>, entries: Vec<Bound<'_, PyTuple>>) -> PyResult<u64> {
        let entries = convert::entries(&entries)?;
        Ok(self.get()?.progress(&inv.get().inner, &entries)?)
    }

    fn backoff(&self, inv: &Bound<'_, Invocation>, retry_count: u32, fire_ms: u64) -> PyResult<u64> {
        Ok(self.get()?.backoff(&inv.get().inner, retry_count, fire_ms)?)
    }

    fn resume(&self, inv: &Bound<'_, Invocation>) -> PyResult<u64> {
        Ok(self.get()?.resume(&inv.get().inner)?)
    }

    #[pyo3(signature = (inv, entries, output, failure_code, failure_message))]
    fn complete(
        &self,
        inv: &Bound<'_, Invocation>,
        entries: Vec<Bound<'_, PyTuple>>,
        output: Option<&[u8]>,
        failure_code: u32,
        failure_message: Option<&str>,
    ) -> PyResult<(u64, Option<Invocation>)> {
        let entries = convert::entries(&entries)?;
        let (seq, next) = self.get()?.complete(&inv.get().inner, &entries, output, failure_code, failure_message)?;
        Ok((seq, next.map(Invocation::wrap)))
    }

    fn load_state<'py>(&self, py: Python<'py>, service: &str, key: &str) -> PyResult<Bound<'py, PyList>> {
        let s = self.get()?;
        let rows = py.detach(|| s.load_state(service, key))?;
        convert::state_to_py(py, &rows)
    }

    fn load_journal<'py>(&self, py: Python<'py>, inv_id: &str) -> PyResult<Bound<'py, PyList>> {
        let s = self.get()?;
        let entries = py.detach(|| s.load_journal(inv_id))?;
        convert::entries_to_py(py, &entries)
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

    /// Backing-off invocations whose retry timer is due (removed from the index).
    fn pop_due(&self, now_ms: u64) -> PyResult<Vec<Invocation>> {
        Ok(self.get()?.pop_due(now_ms).into_iter().map(Invocation::wrap).collect())
    }

    fn purge_completed(&self, py: Python<'_>, completed_before_ms: u64, limit: usize) -> PyResult<usize> {
        let s = self.get()?;
        Ok(py.detach(|| s.purge_completed(completed_before_ms, limit))?)
    }
}
