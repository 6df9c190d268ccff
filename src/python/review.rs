//! Bindings of the review stage: the corrections journal and thumbnails.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::errors::IntoPyResult;
use crate::review::corrections::now_iso;
use crate::review::{append_correction as append, thumbnail_cached, Correction};

/// Appends one correction to the journal at `path` and syncs it to disk; returns the line
/// written as a dict (with its time).
#[pyfunction]
#[pyo3(signature = (path, files, label = None, verified = false, scope = "image", by = None))]
fn append_correction<'py>(
    py: Python<'py>,
    path: PathBuf,
    files: Vec<String>,
    label: Option<String>,
    verified: bool,
    scope: &str,
    by: Option<String>,
) -> PyResult<Bound<'py, PyDict>> {
    let c = Correction {
        time: now_iso(),
        files,
        scope: scope.to_string(),
        label,
        verified,
        by,
    };
    py.detach(|| append(&path, &c)).py()?;
    let d = PyDict::new(py);
    d.set_item("time", &c.time)?;
    d.set_item("files", &c.files)?;
    d.set_item("scope", &c.scope)?;
    d.set_item("label", &c.label)?;
    d.set_item("verified", c.verified)?;
    d.set_item("by", &c.by)?;
    Ok(d)
}

/// A JPEG thumbnail of the image at `path` (EXIF orientation applied) fitting a square of
/// `max_side` pixels, made once and then read from `cache_dir`.
#[pyfunction]
#[pyo3(signature = (path, max_side, cache_dir))]
fn thumbnail<'py>(
    py: Python<'py>,
    path: PathBuf,
    max_side: u32,
    cache_dir: PathBuf,
) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = py
        .detach(|| thumbnail_cached(&path, max_side, &cache_dir))
        .py()?;
    Ok(PyBytes::new(py, &bytes))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(append_correction, m)?)?;
    m.add_function(wrap_pyfunction!(thumbnail, m)?)?;
    Ok(())
}
