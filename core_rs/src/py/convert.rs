//! Every conversion between Python and Rust values, and the mapping of
//! [`crate::Error`] to Python exceptions, in one place.

use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use super::classes::Invocation;
use crate::awaiting::Wake;
use crate::entry::{Entry, EntryRef};
use crate::error::Error;
use crate::tables::state::StateRows;

pyo3::create_exception!(
    runtime._core,
    StorageError,
    PyException,
    "RocksDB failed (I/O error, corruption, disk full) or the writer thread stopped."
);
pyo3::create_exception!(
    runtime._core,
    SchemaVersionError,
    StorageError,
    "The data directory was written by a Stead with another schema version."
);

pyo3::create_exception!(
    runtime._core,
    CorruptError,
    StorageError,
    "Bytes on disk that do not decode as what their table holds (a damaged journal entry, \
     invocation record or key): the data read is damaged, the store itself did not fail."
);

pyo3::create_exception!(
    runtime._core,
    NotRunningError,
    PyValueError,
    "The invocation is not running (suspended, backing off, completed, inboxed or scheduled): the \
     attempt that asked may not journal, suspend or back off."
);

pyo3::create_exception!(
    runtime._core,
    KeyBusyError,
    PyValueError,
    "An exclusive or workflow invocation owns the object key (running, suspended, backing off, or \
     with invocations inboxed on it): its state cannot be edited now. Nothing was written."
);

pyo3::create_exception!(
    runtime._core,
    VersionMismatchError,
    PyValueError,
    "The object key's state is not at the expected version (it changed since it was read). \
     Nothing was written."
);

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let msg = e.to_string();
        match e {
            Error::SchemaVersion { .. } | Error::NotStead { .. } => SchemaVersionError::new_err(msg),
            Error::InvalidArgument(_) => PyValueError::new_err(msg),
            Error::NotRunning { .. } => NotRunningError::new_err(msg),
            Error::KeyBusy(_) => KeyBusyError::new_err(msg),
            Error::VersionMismatch { .. } => VersionMismatchError::new_err(msg),
            Error::Corrupt(_) => CorruptError::new_err(msg),
            Error::Storage(_) | Error::WriterFailed(_) | Error::Closed => StorageError::new_err(msg),
        }
    }
}

/// Borrow the entries' strings and bytes from their tuples (no copies).
pub fn entries<'a>(tuples: &'a [Bound<'_, PyTuple>]) -> PyResult<Vec<EntryRef<'a>>> {
    tuples
        .iter()
        .map(|t| {
            if t.len() != 5 {
                return Err(PyTypeError::new_err(format!(
                    "a journal entry is a 5-tuple (kind, name, value, code, message), got {} items",
                    t.len()
                )));
            }
            Ok(EntryRef {
                kind: t.get_borrowed_item(0)?.extract()?,
                name: t.get_borrowed_item(1)?.extract()?,
                value: t.get_borrowed_item(2)?.extract()?,
                code: t.get_borrowed_item(3)?.extract()?,
                message: t.get_borrowed_item(4)?.extract()?,
            })
        })
        .collect()
}

pub fn entry_to_py<'py>(py: Python<'py>, e: &Entry) -> PyResult<Bound<'py, PyTuple>> {
    (
        e.kind,
        e.name.as_deref().map(|n| PyString::new(py, n)),
        e.value.as_deref().map(|v| PyBytes::new(py, v)),
        e.code,
        e.message.as_deref().map(|m| PyString::new(py, m)),
    )
        .into_pyobject(py)
}

pub fn entries_to_py<'py>(py: Python<'py>, entries: &[Entry]) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, entries.iter().map(|e| entry_to_py(py, e)).collect::<PyResult<Vec<_>>>()?)
}

pub fn state_to_py<'py>(py: Python<'py>, rows: &StateRows) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, rows.iter().map(|(name, value)| (PyString::new(py, name), PyBytes::new(py, value))))
}

pub fn bytes_opt<'py>(py: Python<'py>, b: Option<&[u8]>) -> Option<Bound<'py, PyBytes>> {
    b.map(|b| PyBytes::new(py, b))
}

pub fn completions_to_py<'py>(py: Python<'py>, rows: &[(u32, Entry)]) -> PyResult<Bound<'py, PyList>> {
    let items = rows
        .iter()
        .map(|(index, e)| (*index, bytes_opt(py, e.value.as_deref()), e.code, e.message.as_deref()).into_pyobject(py))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// `Wake` tuples: (what, Invocation, index, value, code, message, seq).
pub fn wakes_to_py(py: Python<'_>, wakes: Vec<Wake>) -> PyResult<Bound<'_, PyList>> {
    let items = wakes
        .into_iter()
        .map(|w| {
            let inv = Bound::new(py, Invocation::wrap(w.inv))?;
            (w.what, inv, w.index, bytes_opt(py, w.value.as_deref()), w.code, w.message, w.seq).into_pyobject(py)
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}
