//! The PyO3 layer: `runtime._core`. It only converts arguments, releases the
//! GIL around RocksDB work and maps errors; the semantics live in
//! [`crate::store`]. The contract is runtime/_core.pyi (checked by stubtest).

mod classes;
mod convert;
mod json;

use pyo3::prelude::*;

use crate::{awaiting, entry, invocation};

#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<classes::Invocation>()?;
    m.add_class::<classes::Store>()?;
    m.add_function(wrap_pyfunction!(json::is_plain_json, m)?)?;
    m.add_function(wrap_pyfunction!(json::is_flat_json_list, m)?)?;
    m.add_function(wrap_pyfunction!(json::list_extends, m)?)?;
    m.add("StorageError", py.get_type::<convert::StorageError>())?;
    m.add("SchemaVersionError", py.get_type::<convert::SchemaVersionError>())?;

    // The stub's `Entry` alias, also at runtime so annotations that are evaluated
    // (pydantic, dataclasses, get_type_hints) can name it.
    let entry_alias = py.eval(c"tuple[int, str | None, bytes | None, int, str | None]", None, None)?;
    m.add("Entry", entry_alias)?;
    m.add("Completion", py.eval(c"tuple[int, bytes | None, int, str | None]", None, None)?)?;
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
    m.add("WAKE_RUN", awaiting::WAKE_RUN)?;
    m.add("WAKE_DELIVER", awaiting::WAKE_DELIVER)?;
    m.add("WAKE_CANCEL", awaiting::WAKE_CANCEL)?;
    m.add("WAKE_KILL", awaiting::WAKE_KILL)?;
    m.add("WAKE_DONE", awaiting::WAKE_DONE)?;
    Ok(())
}
