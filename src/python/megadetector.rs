//! Bindings of the MegaDetector reader (export stage, read direction).

use std::path::PathBuf;

use pyo3::prelude::*;

use super::detect::PyDetectionResults;
use super::errors::{to_pyerr, IntoPyResult};
use crate::error::Error;
use crate::import::megadetector::{read, JsonRules, ReadOptions};

/// Reads a MegaDetector batch file as detection results (boxes with `conf > threshold` count),
/// decided with `rules` (`"corrected"` or `"deepfaune"`). `root`: the folder the file's paths
/// are relative to (default: the JSON file's folder).
#[pyfunction]
#[pyo3(signature = (path, root = None, threshold = 0.4, rules = "corrected"))]
fn read_megadetector_json(
    py: Python<'_>,
    path: PathBuf,
    root: Option<PathBuf>,
    threshold: f64,
    rules: &str,
) -> PyResult<PyDetectionResults> {
    let rules = JsonRules::parse(rules).py()?;
    if !(0.0..=1.0).contains(&threshold) {
        return Err(to_pyerr(Error::InvalidArgument(format!(
            "threshold {threshold}: use a value within 0..1"
        ))));
    }
    let opts = ReadOptions {
        root,
        threshold,
        rules,
    };
    let imported = py.detach(|| read(&path, &opts)).py()?;
    Ok(PyDetectionResults::imported(imported))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(read_megadetector_json, m)?)?;
    Ok(())
}
