//! Bindings of the MegaDetector reader (export stage, read direction).

use std::path::PathBuf;

use pyo3::prelude::*;

use super::detect::PyDetectionResults;
use super::errors::IntoPyResult;
use crate::export::megadetector::read::{read, ReadOptions};

/// Reads a MegaDetector batch file as detection results (boxes with `conf > threshold` count).
/// `root`: the folder the file's paths are relative to (default: the JSON file's folder).
#[pyfunction]
#[pyo3(signature = (path, root = None, threshold = 0.4))]
fn read_megadetector_json(
    py: Python<'_>,
    path: PathBuf,
    root: Option<PathBuf>,
    threshold: f32,
) -> PyResult<PyDetectionResults> {
    let opts = ReadOptions { root, threshold };
    let imported = py.detach(|| read(&path, &opts)).py()?;
    Ok(PyDetectionResults {
        res: imported.results,
        threshold,
        classifications: imported.classifications,
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(read_megadetector_json, m)?)?;
    Ok(())
}
