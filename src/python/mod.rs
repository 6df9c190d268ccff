//! Python bindings (`deepfaune_rs._core`): one file per core stage, converting types and
//! releasing the GIL; no logic of their own.

mod detect;
mod errors;
mod image_io;
mod locks;
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

/// One row of [`builtin_models`]: the facts every manifest kind shares.
struct ModelRow<'a> {
    id: &'a str,
    kind: &'a str,
    name: &'a str,
    file: &'a str,
    url: &'a str,
    url_format: &'a str,
    sha256: &'a str,
    license: &'a str,
    /// `None` for the embedded model.
    expected_path: Option<std::path::PathBuf>,
    input_size: u32,
    threshold: f32,
}

impl ModelRow<'_> {
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let d = pyo3::types::PyDict::new(py);
        d.set_item("id", self.id)?;
        d.set_item("kind", self.kind)?;
        d.set_item("name", self.name)?;
        d.set_item("file", self.file)?;
        d.set_item("url", self.url)?;
        d.set_item("url_format", self.url_format)?;
        d.set_item("sha256", self.sha256)?;
        d.set_item("license", self.license)?;
        d.set_item("embedded", self.expected_path.is_none())?;
        d.set_item(
            "expected_path",
            self.expected_path.as_ref().map(|p| p.as_os_str()),
        )?;
        d.set_item(
            "available",
            self.expected_path.as_ref().is_none_or(|p| p.is_file()),
        )?;
        d.set_item("input_size", self.input_size)?;
        d.set_item("threshold", self.threshold)?;
        Ok(d)
    }
}

/// The built-in model manifests, with where their weights are expected and whether they are there.
#[pyfunction]
fn builtin_models(py: Python<'_>) -> PyResult<Vec<Bound<'_, pyo3::types::PyDict>>> {
    use crate::manifest::{self, classifier};
    let mut out = Vec::new();
    for m in manifest::builtin_detectors() {
        let embedded = m.id == manifest::EMBEDDED_DETECTOR_ID;
        let row = ModelRow {
            id: &m.id,
            kind: &m.kind,
            name: &m.name,
            file: &m.file,
            url: &m.url,
            url_format: &m.url_format,
            sha256: &m.sha256,
            license: &m.license,
            expected_path: (!embedded).then(|| manifest::weights_path(&m)),
            input_size: m.input.size,
            threshold: m.postprocess.threshold,
        };
        out.push(row.to_dict(py)?);
    }
    for m in classifier::builtin_classifiers() {
        let row = ModelRow {
            id: &m.id,
            kind: &m.kind,
            name: &m.name,
            file: &m.file,
            url: &m.url,
            url_format: &m.url_format,
            sha256: &m.sha256,
            license: &m.license,
            expected_path: Some(classifier::classifier_weights_path(&m)),
            input_size: m.input.size,
            threshold: m.postprocess.threshold,
        };
        out.push(row.to_dict(py)?);
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
