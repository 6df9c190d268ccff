//! Bindings of the review stage: the corrections journal and thumbnails.

use std::path::PathBuf;

use numpy::PyReadonlyArray3;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::errors::{to_pyerr, IntoPyResult};
use super::image_io::to_rgb;
use crate::error::Error;
use crate::review::corrections::now_iso;
use crate::review::{
    append_correction as append, read_journal, table_labels as core_table_labels, thumbnail_cached,
    thumbnail_of, Correction,
};

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
    correction_dict(py, &c)
}

fn correction_dict<'py>(py: Python<'py>, c: &Correction) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("time", &c.time)?;
    d.set_item("files", &c.files)?;
    d.set_item("scope", &c.scope)?;
    d.set_item("label", &c.label)?;
    d.set_item("verified", c.verified)?;
    d.set_item("by", &c.by)?;
    Ok(d)
}

/// The corrections of the journal at `path`, in order, as dicts (a missing file: none; a line
/// torn by a crash: skipped).
#[pyfunction]
fn read_corrections<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let journal = py.detach(|| read_journal(&path)).py()?;
    journal.iter().map(|c| correction_dict(py, c)).collect()
}

/// The JPEG thumbnail of decoded pixels (`[h, w, 3]` uint8: a video's keyframe), made as
/// `thumbnail` makes a file's.
#[pyfunction]
fn thumbnail_rgb<'py>(
    py: Python<'py>,
    image: PyReadonlyArray3<'py, u8>,
    max_side: u32,
) -> PyResult<Bound<'py, PyBytes>> {
    let img = to_rgb(&image)?;
    let bytes = py
        .detach(|| thumbnail_of(img, max_side))
        .map_err(|e| to_pyerr(Error::InvalidArgument(e)))?;
    Ok(PyBytes::new(py, &bytes))
}

/// The built-in classifier, language and bird-head wording whose labels name every text
/// given (a results table's predictions): a dict with `classifier`, `language`, `bird_head`,
/// `labels`, `empty`, `human`, `vehicle`, `undefined`; None when no built-in one does.
#[pyfunction]
fn table_labels<'py>(py: Python<'py>, texts: Vec<String>) -> PyResult<Option<Bound<'py, PyDict>>> {
    let Some(t) = core_table_labels(&texts) else {
        return Ok(None);
    };
    let d = PyDict::new(py);
    d.set_item("classifier", t.classifier)?;
    d.set_item("language", t.language)?;
    d.set_item("bird_head", t.bird_head)?;
    d.set_item("labels", t.labels)?;
    let [empty, human, vehicle, undefined] = t.special;
    d.set_item("empty", empty)?;
    d.set_item("human", human)?;
    d.set_item("vehicle", vehicle)?;
    d.set_item("undefined", undefined)?;
    Ok(Some(d))
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
    m.add_function(wrap_pyfunction!(thumbnail_rgb, m)?)?;
    m.add_function(wrap_pyfunction!(read_corrections, m)?)?;
    m.add_function(wrap_pyfunction!(table_labels, m)?)?;
    Ok(())
}
