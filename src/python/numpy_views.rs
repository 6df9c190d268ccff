//! Read-only numpy views of columns owned by a frozen pyclass (no copy): the array's base is
//! the owning Python object, so the data lives as long as any view does.

use numpy::ndarray::{ArrayView1, ArrayView2};
use numpy::{Element, PyArray1, PyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

fn read_only(arr: &Bound<'_, PyAny>) -> PyResult<()> {
    let kwargs = PyDict::new(arr.py());
    kwargs.set_item("write", false)?;
    arr.call_method("setflags", (), Some(&kwargs))?;
    Ok(())
}

/// A 1-D view of `data`, owned by `owner`.
///
/// # Safety contract (upheld by callers)
/// `data` must be owned by `owner`, a frozen pyclass that never mutates it.
pub fn view1<'py, T: Element>(
    owner: Bound<'py, PyAny>,
    data: &[T],
) -> PyResult<Bound<'py, PyArray1<T>>> {
    let v = ArrayView1::from(data);
    // SAFETY: `owner` keeps `data` alive and never mutates it; the view is made read-only.
    let arr = unsafe { PyArray1::borrow_from_array(&v, owner) };
    read_only(arr.as_any())?;
    Ok(arr)
}

/// A 2-D `[rows, cols]` view of row-major `data`, owned by `owner` (same contract as [`view1`]).
pub fn view2<'py, T: Element>(
    owner: Bound<'py, PyAny>,
    data: &[T],
    cols: usize,
) -> PyResult<Bound<'py, PyArray2<T>>> {
    let rows = data.len().checked_div(cols).unwrap_or(0);
    let v = ArrayView2::from_shape((rows, cols), data).map_err(super::errors::shape_error)?;
    // SAFETY: as in `view1`.
    let arr = unsafe { PyArray2::borrow_from_array(&v, owner) };
    read_only(arr.as_any())?;
    Ok(arr)
}
