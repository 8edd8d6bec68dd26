//! The rows of the introspection scans as Python tuples (see `Store.scan_*` in
//! runtime/_core.pyi). Built with the GIL held, after the scan itself ran
//! without it.
//!
//! Converting a large scan takes a while (about 2 µs per invocation row), all of it
//! with the GIL: every `YIELD_EVERY` rows the GIL is offered to other threads
//! (the event loop, when the scan was called from a worker thread), which take it
//! if they have been waiting for it.
//!
//! A scan repeats the same string in consecutive rows (an invocation id in its
//! journal, a service and key in their state): each conversion reuses the
//! previous row's Python string when the text is the same, which saves most of
//! the allocations of a large scan.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyList, PyString, PyTuple};

use super::convert::bytes_opt;
use crate::proto::InvocationRecord;
use crate::store::{JournalRow, PromiseRow};

const YIELD_EVERY: usize = 1024;

/// Offer the GIL to waiting threads every `YIELD_EVERY` rows.
fn breathe(py: Python<'_>, row: usize) {
    if row % YIELD_EVERY == YIELD_EVERY - 1 {
        py.detach(|| ());
    }
}

/// The fields of an `InvocationRow`, in order: `INVOCATION_COLUMNS` in Python.
pub const INVOCATION_COLUMNS: [&str; 22] = [
    "id",
    "service",
    "handler",
    "key",
    "kind",
    "status",
    "retry_count",
    "created_ms",
    "modified_ms",
    "completed_ms",
    "next_retry_ms",
    "journal_len",
    "caller_id",
    "caller_entry",
    "idempotency_key",
    "cancel_requested",
    "deployment_id",
    "output",
    "failure_code",
    "failure_message",
    "input",
    "headers",
];

/// The Python string for `s`, the previous one if it had the same text.
struct Strings<'py> {
    last: Option<(String, Bound<'py, PyString>)>,
}

impl<'py> Strings<'py> {
    fn new() -> Self {
        Strings { last: None }
    }

    fn get(&mut self, py: Python<'py>, s: &str) -> Bound<'py, PyString> {
        match &self.last {
            Some((text, obj)) if text == s => obj.clone(),
            _ => {
                let obj = PyString::new(py, s);
                self.last = Some((s.to_string(), obj.clone()));
                obj
            }
        }
    }
}

/// A failure message as the API gives it: None unless there is a failure.
fn message(code: u32, message: &str) -> Option<&str> {
    (code != 0 || !message.is_empty()).then_some(message)
}

pub fn invocations<'py>(py: Python<'py>, recs: &[InvocationRecord]) -> PyResult<Bound<'py, PyList>> {
    let (mut services, mut handlers) = (Strings::new(), Strings::new());
    let items = recs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            breathe(py, i);
            let headers = PyList::new(py, r.headers.iter().map(|h| (h.name.as_str(), h.value.as_str())))?;
            let fields: [Bound<'py, PyAny>; 22] = [
                PyString::new(py, &r.id).into_any(),
                services.get(py, &r.service).into_any(),
                handlers.get(py, &r.handler).into_any(),
                PyString::new(py, &r.key).into_any(),
                r.kind.into_pyobject(py)?.into_any(),
                r.status.into_pyobject(py)?.into_any(),
                r.retry_count.into_pyobject(py)?.into_any(),
                r.created_ms.into_pyobject(py)?.into_any(),
                r.modified_ms.into_pyobject(py)?.into_any(),
                r.completed_ms.into_pyobject(py)?.into_any(),
                r.next_retry_ms.into_pyobject(py)?.into_any(),
                r.journal_len.into_pyobject(py)?.into_any(),
                PyString::new(py, &r.caller_id).into_any(),
                r.caller_entry.into_pyobject(py)?.into_any(),
                PyString::new(py, &r.idempotency_key).into_any(),
                PyBool::new(py, r.cancel_requested).to_owned().into_any(),
                PyString::new(py, &r.deployment_id).into_any(),
                bytes_opt(py, r.output.as_deref()).into_pyobject(py)?.into_any(),
                r.failure_code.into_pyobject(py)?.into_any(),
                message(r.failure_code, &r.failure_message).into_pyobject(py)?.into_any(),
                PyBytes::new(py, &r.input).into_any(),
                headers.into_any(),
            ];
            PyTuple::new(py, fields)
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// (invocation id, index, kind, name, value, code, message) per journal entry.
pub fn journal<'py>(py: Python<'py>, rows: &[JournalRow]) -> PyResult<Bound<'py, PyList>> {
    let mut ids = Strings::new();
    let items = rows
        .iter()
        .enumerate()
        .map(|(i, (id, index, e))| {
            breathe(py, i);
            (ids.get(py, id), *index, e.kind, e.name.as_deref(), bytes_opt(py, e.value.as_deref()), e.code, e.message.as_deref())
                .into_pyobject(py)
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// (invocation id, entry index, value, code, message) per completion.
pub fn completions<'py>(py: Python<'py>, rows: &[JournalRow]) -> PyResult<Bound<'py, PyList>> {
    let mut ids = Strings::new();
    let items = rows
        .iter()
        .enumerate()
        .map(|(i, (id, index, e))| {
            breathe(py, i);
            (ids.get(py, id), *index, bytes_opt(py, e.value.as_deref()), e.code, e.message.as_deref()).into_pyobject(py)
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// (service, key, name, value) per state row.
pub fn state<'py>(py: Python<'py>, rows: &[(String, String, String, Vec<u8>)]) -> PyResult<Bound<'py, PyList>> {
    let (mut services, mut keys) = (Strings::new(), Strings::new());
    let items = rows
        .iter()
        .enumerate()
        .map(|(i, (s, k, name, value))| {
            breathe(py, i);
            (services.get(py, s), keys.get(py, k), name.as_str(), PyBytes::new(py, value)).into_pyobject(py)
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// (workflow, key, name, completed, value, code, message) per promise.
pub fn promises<'py>(py: Python<'py>, rows: &[PromiseRow]) -> PyResult<Bound<'py, PyList>> {
    let items = rows
        .iter()
        .map(|(w, k, name, r)| {
            let msg = message(r.failure_code, &r.failure_message);
            (w.as_str(), k.as_str(), name.as_str(), r.completed, bytes_opt(py, r.value.as_deref()), r.failure_code, msg).into_pyobject(py)
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}
