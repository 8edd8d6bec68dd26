//! `is_plain_json`: whether a Python value is made only of what a JSON round trip gives
//! back unchanged (same types, same values). The runtime keeps a decoded state value in
//! memory only when it is plain JSON, so that handing it out again is indistinguishable
//! from decoding its bytes.
//!
//! It runs on the event-loop thread over values of any size, so it walks the objects with
//! raw FFI: type pointers compared for identity, list items and dict entries read as
//! borrowed pointers. No allocation, no reference counting, no Python code is run and the
//! GIL is held throughout, so nothing can change the containers while they are walked.

use pyo3::ffi;
use pyo3::prelude::*;

/// Deepest nesting of lists and dicts that is still plain: the outermost container is at
/// depth 1, so 64 nested lists are plain and 65 are not. Bounds the recursion (and makes a
/// cyclic container not plain).
pub const MAX_DEPTH: u32 = 64;

/// True iff `obj` is None, an exact bool, int or str, a finite exact float, or an exact
/// list / exact dict with exact-str keys whose items are plain, nested at most
/// [`MAX_DEPTH`] containers deep. Never raises.
#[pyfunction]
#[pyo3(signature = (obj, /))]
pub fn is_plain_json(obj: &Bound<'_, PyAny>) -> bool {
    // SAFETY: `obj` is a live object borrowed for the call and we hold the GIL
    // (`Bound`), which `plain` requires for its whole walk.
    unsafe { plain(obj.as_ptr(), 0) }
}

/// `o` is plain; `depth` is the number of containers it is inside.
///
/// # Safety
/// `o` must point to a live object and the GIL must be held. Nothing here runs Python
/// code or releases the GIL, so every container reached stays unchanged and every item
/// it holds stays alive (borrowed from its container) for the whole walk.
#[inline(always)]
unsafe fn plain(o: *mut ffi::PyObject, depth: u32) -> bool {
    // SAFETY (whole body): `o` is live (caller's contract), so reading its type is sound;
    // the float and container accessors are only used after an exact type check.
    unsafe {
        let t = ffi::Py_TYPE(o);
        if t == &raw mut ffi::PyUnicode_Type || t == &raw mut ffi::PyLong_Type || t == &raw mut ffi::PyBool_Type {
            true
        } else if t == &raw mut ffi::PyFloat_Type {
            ffi::PyFloat_AS_DOUBLE(o).is_finite()
        } else if t == &raw mut ffi::PyList_Type {
            plain_list(o, depth + 1)
        } else if t == &raw mut ffi::PyDict_Type {
            plain_dict(o, depth + 1)
        } else {
            o == ffi::Py_None()
        }
    }
}

/// # Safety
/// As [`plain`], and `o` is an exact list; `depth` counts `o` itself.
#[inline(never)]
unsafe fn plain_list(o: *mut ffi::PyObject, depth: u32) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    // SAFETY: `o` is an exact list, live and unchanged during the walk (caller's contract),
    // so every index below its size holds a live, non-null item borrowed from it.
    unsafe {
        let n = ffi::PyList_GET_SIZE(o);
        let str_type = &raw mut ffi::PyUnicode_Type;
        for i in 0..n {
            let item = ffi::PyList_GET_ITEM(o, i);
            // The common case (a list of strings) without the full dispatch.
            if ffi::Py_TYPE(item) != str_type && !plain(item, depth) {
                return false;
            }
        }
    }
    true
}

/// # Safety
/// As [`plain`], and `o` is an exact dict; `depth` counts `o` itself.
#[inline(never)]
unsafe fn plain_dict(o: *mut ffi::PyObject, depth: u32) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    let mut pos: ffi::Py_ssize_t = 0;
    let mut key: *mut ffi::PyObject = std::ptr::null_mut();
    let mut value: *mut ffi::PyObject = std::ptr::null_mut();
    let str_type = &raw mut ffi::PyUnicode_Type;
    // SAFETY: `o` is an exact dict, live and unchanged during the walk (caller's contract).
    // PyDict_Next only reads it and stores borrowed, live pointers into `key` and `value`
    // when it returns non-zero.
    unsafe {
        while ffi::PyDict_Next(o, &mut pos, &mut key, &mut value) != 0 {
            if ffi::Py_TYPE(key) != str_type || !plain(value, depth) {
                return false;
            }
        }
    }
    true
}

/// True iff `obj` is an exact list whose items are all plain scalars (None, exact bool,
/// int or str, finite exact float): a plain list in which nothing can change in place,
/// so that the same item objects always encode to the same JSON. Never raises.
#[pyfunction]
#[pyo3(signature = (obj, /))]
pub fn is_flat_json_list(obj: &Bound<'_, PyAny>) -> bool {
    let o = obj.as_ptr();
    // SAFETY: `o` is live and borrowed for the call, with the GIL held (`Bound`); the list
    // accessors are used only after the exact type check, and `plain` at depth MAX_DEPTH
    // treats any container item as not plain, so it never recurses.
    unsafe {
        if ffi::Py_TYPE(o) != &raw mut ffi::PyList_Type {
            return false;
        }
        let n = ffi::PyList_GET_SIZE(o);
        for i in 0..n {
            if !plain(ffi::PyList_GET_ITEM(o, i), MAX_DEPTH) {
                return false;
            }
        }
    }
    true
}

/// True iff `current` and `prefix` are exact lists and `current` starts with the very
/// objects of `prefix` (identity, not equality), in order. Compares pointers only.
#[pyfunction]
#[pyo3(signature = (current, prefix, /))]
pub fn list_extends(current: &Bound<'_, PyAny>, prefix: &Bound<'_, PyAny>) -> bool {
    let (c, p) = (current.as_ptr(), prefix.as_ptr());
    // SAFETY: both are live and borrowed for the call with the GIL held; they are read as
    // lists only after the exact type checks, and only at indices below their sizes.
    unsafe {
        let list = &raw mut ffi::PyList_Type;
        if ffi::Py_TYPE(c) != list || ffi::Py_TYPE(p) != list {
            return false;
        }
        let n = ffi::PyList_GET_SIZE(p);
        if ffi::PyList_GET_SIZE(c) < n {
            return false;
        }
        (0..n).all(|i| ffi::PyList_GET_ITEM(c, i) == ffi::PyList_GET_ITEM(p, i))
    }
}
