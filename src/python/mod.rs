//! Python bindings (`deepfaune_rs._core`): one file per core stage, converting types and
//! releasing the GIL; no logic of their own.

mod detect;
mod errors;
mod image_io;
mod megadetector;
mod numpy_views;
mod pipeline;
mod reid;
mod reid_embed;
mod video;

use pyo3::prelude::*;

/// Loads ONNX Runtime from `path` (the Python package passes the `onnxruntime` wheel's library).
#[pyfunction]
fn init_runtime(path: std::path::PathBuf) -> PyResult<()> {
    crate::runtime::init(&path).map_err(|e| errors::to_pyerr(e.into()))
}

/// The path of the loaded ONNX Runtime library, or None.
#[pyfunction]
fn runtime_path() -> Option<std::path::PathBuf> {
    crate::runtime::loaded_path()
}

/// The built-in model manifests, with where their weights are expected and whether they are there.
#[pyfunction]
fn builtin_models(py: Python<'_>) -> PyResult<Vec<Bound<'_, pyo3::types::PyDict>>> {
    use crate::manifest;
    let mut out = Vec::new();
    for m in manifest::builtin_detectors() {
        let d = pyo3::types::PyDict::new(py);
        let embedded = m.id == manifest::EMBEDDED_DETECTOR_ID;
        let path = manifest::weights_path(&m);
        d.set_item("id", &m.id)?;
        d.set_item("kind", &m.kind)?;
        d.set_item("name", &m.name)?;
        d.set_item("file", &m.file)?;
        d.set_item("url", &m.url)?;
        d.set_item("url_format", &m.url_format)?;
        d.set_item("sha256", &m.sha256)?;
        d.set_item("license", &m.license)?;
        d.set_item("embedded", embedded)?;
        d.set_item(
            "expected_path",
            if embedded {
                None
            } else {
                Some(path.as_os_str())
            },
        )?;
        d.set_item("available", embedded || path.is_file())?;
        d.set_item("input_size", m.input.size)?;
        d.set_item("threshold", m.postprocess.threshold)?;
        out.push(d);
    }
    for m in crate::manifest::classifier::builtin_classifiers() {
        let d = pyo3::types::PyDict::new(py);
        let path = crate::manifest::classifier::classifier_weights_path(&m);
        d.set_item("id", &m.id)?;
        d.set_item("kind", &m.kind)?;
        d.set_item("name", &m.name)?;
        d.set_item("file", &m.file)?;
        d.set_item("url", &m.url)?;
        d.set_item("url_format", &m.url_format)?;
        d.set_item("sha256", &m.sha256)?;
        d.set_item("license", &m.license)?;
        d.set_item("embedded", false)?;
        d.set_item("expected_path", path.as_os_str())?;
        d.set_item("available", path.is_file())?;
        d.set_item("input_size", m.input.size)?;
        d.set_item("threshold", m.postprocess.threshold)?;
        out.push(d);
    }
    Ok(out)
}

/// The directory where user-supplied weights are looked for.
#[pyfunction]
fn model_dir() -> std::path::PathBuf {
    crate::manifest::model_dir()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(init_runtime, m)?)?;
    m.add_function(wrap_pyfunction!(runtime_path, m)?)?;
    m.add_function(wrap_pyfunction!(builtin_models, m)?)?;
    m.add_function(wrap_pyfunction!(model_dir, m)?)?;
    image_io::register(m)?;
    detect::register(m)?;
    pipeline::register(m)?;
    reid::register(m)?;
    reid_embed::register(m)?;
    video::register(m)?;
    megadetector::register(m)?;
    Ok(())
}
