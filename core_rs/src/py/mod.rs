//! The PyO3 layer: `runtime._core`. It only converts arguments, releases the
//! GIL around RocksDB work and maps errors; the semantics live in
//! [`crate::store`]. The contract is runtime/_core.pyi (checked by stubtest).

mod classes;
mod convert;
mod json;
mod rows;

use pyo3::prelude::*;

use crate::{awaiting, clock, entry, failpoints, invocation, store};

/// Whether this build has failpoints (the cargo feature `failpoints`).
#[pyfunction]
fn failpoints_enabled() -> bool {
    failpoints::ENABLED
}

/// Give failpoint `name` the actions `actions` (the `fail` crate's syntax); a thread
/// paused at it is released. ValueError without failpoints, or for a bad name or actions.
#[pyfunction]
fn set_failpoint(py: Python<'_>, name: &str, actions: &str) -> PyResult<()> {
    Ok(py.detach(|| failpoints::set(name, actions))?)
}

/// Make failpoint `name` do nothing again; a thread paused at it is released.
#[pyfunction]
fn remove_failpoint(py: Python<'_>, name: &str) -> PyResult<()> {
    Ok(py.detach(|| failpoints::remove(name))?)
}

/// The offset, in milliseconds, that the clock of every reader of "now" adds to the
/// system clock (0 unless a time-skipping test harness moved it).
#[pyfunction]
fn clock_offset_ms() -> i64 {
    clock::offset_ms()
}

/// Set the process-wide clock offset (see [`crate::clock`]).
#[pyfunction]
fn set_clock_offset_ms(ms: i64) {
    clock::set_offset_ms(ms)
}

/// Hot keys commit large values (a state value of several hundred KiB) many times a
/// second: one buffer for the value's JSON in Python, one arena per commit here, each
/// freed soon after. Past glibc's default mmap threshold (128 KiB, raised only as such
/// blocks are freed) each of those is an mmap and a munmap, with a page fault per page
/// touched and a TLB shootdown per unmap, and the heap's top is trimmed back to the
/// kernel as soon as 2× that is free. Serve blocks up to 32 MiB from the heap instead,
/// and keep up to 64 MiB of freed heap (W3, one pair of runs: 4,134 -> 4,432 req/s).
/// Process-wide, set once at
/// import; only glibc has these knobs.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; any value is valid for these three.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
    }
}

#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    tune_allocator();
    m.add_class::<classes::Invocation>()?;
    m.add_class::<classes::Store>()?;
    m.add_function(wrap_pyfunction!(json::is_plain_json, m)?)?;
    m.add_function(wrap_pyfunction!(json::is_flat_json_list, m)?)?;
    m.add_function(wrap_pyfunction!(json::list_extends, m)?)?;
    m.add("StorageError", py.get_type::<convert::StorageError>())?;
    m.add("SchemaVersionError", py.get_type::<convert::SchemaVersionError>())?;
    m.add("CorruptError", py.get_type::<convert::CorruptError>())?;
    m.add("NotRunningError", py.get_type::<convert::NotRunningError>())?;
    m.add("KeyBusyError", py.get_type::<convert::KeyBusyError>())?;
    m.add("VersionMismatchError", py.get_type::<convert::VersionMismatchError>())?;
    m.add_function(wrap_pyfunction!(failpoints_enabled, m)?)?;
    m.add_function(wrap_pyfunction!(set_failpoint, m)?)?;
    m.add_function(wrap_pyfunction!(remove_failpoint, m)?)?;
    m.add_function(wrap_pyfunction!(clock_offset_ms, m)?)?;
    m.add_function(wrap_pyfunction!(set_clock_offset_ms, m)?)?;
    m.add("SIGNAL_APPLIED", store::SIGNAL_APPLIED)?;
    m.add("SIGNAL_ALREADY_COMPLETED", store::SIGNAL_ALREADY_COMPLETED)?;
    m.add("SIGNAL_UNKNOWN", store::SIGNAL_UNKNOWN)?;
    m.add("SIGNAL_NOT_STARTED", store::SIGNAL_NOT_STARTED)?;
    m.add("SIGNAL_UNCHANGED", store::SIGNAL_UNCHANGED)?;
    m.add("PURGE_NOT_COMPLETED", store::PURGE_NOT_COMPLETED)?;
    m.add("INVOCATION_COLUMNS", pyo3::types::PyTuple::new(py, rows::INVOCATION_COLUMNS)?)?;

    // The stub's `Entry` alias, also at runtime so annotations that are evaluated
    // (pydantic, dataclasses, get_type_hints) can name it.
    let entry_alias = py.eval(c"tuple[int, str | None, bytes | None, int, str | None]", None, None)?;
    m.add("Entry", entry_alias)?;
    m.add("Completion", py.eval(c"tuple[int, bytes | None, int, str | None]", None, None)?)?;
    m.add("Output", py.eval(c"tuple[bytes | None, int, str | None]", None, None)?)?;
    let row = c"tuple[str, str, str, str, int, int, int, int, int, int, int, int, str, int, str, bool, str, \
                bytes | None, int, str | None, bytes, list[tuple[str, str]]]";
    m.add("InvocationRow", py.eval(row, None, None)?)?;
    let globals = pyo3::types::PyDict::new(py);
    globals.set_item("Invocation", py.get_type::<classes::Invocation>())?;
    let wake = py.eval(c"tuple[int, Invocation, int, bytes | None, int, str | None, int]", Some(&globals), None)?;
    m.add("Wake", wake)?;
    m.add("SCHEMA_VERSION", crate::SCHEMA_VERSION)?;
    m.add("ENTRY_GET_STATE", entry::GET_STATE)?;
    m.add("ENTRY_SET_STATE", entry::SET_STATE)?;
    m.add("ENTRY_CLEAR_STATE", entry::CLEAR_STATE)?;
    m.add("ENTRY_CLEAR_ALL", entry::CLEAR_ALL)?;
    m.add("ENTRY_STATE_KEYS", entry::STATE_KEYS)?;
    m.add("ENTRY_RUN", entry::RUN)?;
    m.add("ENTRY_SLEEP", entry::SLEEP)?;
    m.add("ENTRY_CALL", entry::CALL)?;
    m.add("ENTRY_SEND", entry::SEND)?;
    m.add("ENTRY_AWAKEABLE", entry::AWAKEABLE)?;
    m.add("ENTRY_COMPLETE_AWAKEABLE", entry::COMPLETE_AWAKEABLE)?;
    m.add("ENTRY_GET_PROMISE", entry::GET_PROMISE)?;
    m.add("ENTRY_PEEK_PROMISE", entry::PEEK_PROMISE)?;
    m.add("ENTRY_COMPLETE_PROMISE", entry::COMPLETE_PROMISE)?;
    m.add("ENTRY_CANCEL", entry::CANCEL)?;
    m.add("ENTRY_COMBINATOR", entry::COMBINATOR)?;
    m.add("ENTRY_CANCEL_INVOCATION", entry::CANCEL_INVOCATION)?;
    m.add("ENTRY_ATTACH_INVOCATION", entry::ATTACH_INVOCATION)?;
    m.add("KIND_SERVICE", invocation::KIND_SERVICE)?;
    m.add("KIND_EXCLUSIVE", invocation::KIND_EXCLUSIVE)?;
    m.add("KIND_SHARED", invocation::KIND_SHARED)?;
    m.add("KIND_WORKFLOW", invocation::KIND_WORKFLOW)?;
    m.add("STATUS_INBOXED", invocation::STATUS_INBOXED)?;
    m.add("STATUS_RUNNING", invocation::STATUS_RUNNING)?;
    m.add("STATUS_BACKING_OFF", invocation::STATUS_BACKING_OFF)?;
    m.add("STATUS_COMPLETED", invocation::STATUS_COMPLETED)?;
    m.add("STATUS_SUSPENDED", invocation::STATUS_SUSPENDED)?;
    m.add("STATUS_SCHEDULED", invocation::STATUS_SCHEDULED)?;
    m.add("STATUS_PAUSED", invocation::STATUS_PAUSED)?;
    m.add("WAKE_RUN", awaiting::WAKE_RUN)?;
    m.add("WAKE_DELIVER", awaiting::WAKE_DELIVER)?;
    m.add("WAKE_CANCEL", awaiting::WAKE_CANCEL)?;
    m.add("WAKE_KILL", awaiting::WAKE_KILL)?;
    m.add("WAKE_DONE", awaiting::WAKE_DONE)?;
    m.add("WAKE_PAUSE", awaiting::WAKE_PAUSE)?;
    Ok(())
}
