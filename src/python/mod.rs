//! Python bindings (`deepfaune_rs._core`): one file per core stage, converting types and
//! releasing the GIL; no logic of their own.

mod agreement;
mod args;
mod classify;
mod cli;
mod cli_admin;
mod cli_reid;
mod cli_run;
mod conversion;
mod convert;
mod detect;
mod errors;
mod fetch;
mod image_io;
mod locks;
mod megadetector;
mod models;
mod numpy_views;
mod pipeline;
mod progress;
mod quantize;
mod reid;
mod reid_embed;
mod reid_table;
mod review;
mod video;

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use errors::IntoPyResult;

use crate::manifest::Download;

/// Loads ONNX Runtime from `path` (the Python package passes the `onnxruntime` wheel's library).
#[pyfunction]
fn init_runtime(path: PathBuf) -> PyResult<()> {
    crate::runtime::init(&path).map_err(|e| errors::to_pyerr(e.into()))
}

/// The path of the loaded ONNX Runtime library, or None.
#[pyfunction]
fn runtime_path() -> Option<PathBuf> {
    crate::runtime::loaded_path()
}

/// One row of [`builtin_models`]: the facts every manifest kind shares.
struct ModelRow<'a> {
    id: &'a str,
    kind: &'a str,
    name: &'a str,
    version: Option<&'a str>,
    file: &'a str,
    download: Download<'a>,
    sha256: &'a str,
    license: &'a str,
    /// `None` for the embedded model.
    expected_path: Option<PathBuf>,
    input_size: u32,
    threshold: f32,
    /// A classifier's bird head: its weights file, download facts and expected path.
    bird_head: Option<(&'a str, Download<'a>, PathBuf)>,
}

/// The download facts of a manifest (or bird head) as dict items.
fn set_download(d: &Bound<'_, PyDict>, dl: &Download<'_>) -> PyResult<()> {
    d.set_item("url", dl.url)?;
    d.set_item("url_format", dl.url_format)?;
    d.set_item("mirrors", dl.mirrors)?;
    d.set_item("url_size", dl.url_size)?;
    d.set_item("url_md5", dl.url_md5)?;
    d.set_item("url_sha256", dl.url_sha256)?;
    Ok(())
}

impl ModelRow<'_> {
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("id", self.id)?;
        d.set_item("kind", self.kind)?;
        d.set_item("name", self.name)?;
        d.set_item("version", self.version)?;
        d.set_item("file", self.file)?;
        set_download(&d, &self.download)?;
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
        let head = match &self.bird_head {
            None => None,
            Some((file, dl, path)) => {
                let h = PyDict::new(py);
                h.set_item("file", file)?;
                set_download(&h, dl)?;
                h.set_item("expected_path", path.as_os_str())?;
                h.set_item("available", path.is_file())?;
                Some(h)
            }
        };
        d.set_item("bird_head", head)?;
        Ok(d)
    }
}

/// The built-in model manifests (detectors, then classifiers newest first), with where their
/// weights are expected, whether they are there, and how to download them.
#[pyfunction]
fn builtin_models(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyDict>>> {
    use crate::manifest::{self, classifier};
    let mut out = Vec::new();
    for m in manifest::builtin_detectors() {
        let embedded = m.id == manifest::EMBEDDED_DETECTOR_ID;
        let row = ModelRow {
            id: &m.id,
            kind: &m.kind,
            name: &m.name,
            version: None,
            file: &m.file,
            download: m.download(),
            sha256: &m.sha256,
            license: &m.license,
            expected_path: (!embedded).then(|| manifest::weights_path(&m)),
            input_size: m.input.size,
            threshold: m.postprocess.threshold,
            bird_head: None,
        };
        out.push(row.to_dict(py)?);
    }
    for m in classifier::builtin_classifiers() {
        let bird_head = m.bird_head.as_ref().map(|b| {
            let path = manifest::weights_beside(m.source_dir.as_deref(), &b.file);
            (b.file.as_str(), b.download(), path)
        });
        let row = ModelRow {
            id: &m.id,
            kind: &m.kind,
            name: &m.name,
            version: Some(&m.version),
            file: &m.file,
            download: m.download(),
            sha256: &m.sha256,
            license: &m.license,
            expected_path: Some(classifier::classifier_weights_path(&m)),
            input_size: m.input.size,
            threshold: m.postprocess.threshold,
            bird_head,
        };
        out.push(row.to_dict(py)?);
    }
    Ok(out)
}

/// The directory where user-supplied weights are looked for.
#[pyfunction]
fn model_dir() -> PathBuf {
    crate::manifest::model_dir()
}

/// Checks the name of a model spec (`kind`: `detector` or `classifier`) before anything is
/// loaded: a file is the caller's; any other name must be a built-in id (or, for detectors, a
/// DeepFaune mode), else `UnknownModelError` listing them.
#[pyfunction]
fn check_model_spec(kind: &str, spec: &str) -> PyResult<()> {
    match kind {
        "detector" => crate::detect::loader::check_spec(spec).py(),
        "classifier" => crate::classify::check_classifier_spec(spec).py(),
        _ => Err(errors::to_pyerr(crate::error::Error::InvalidArgument(
            format!("kind '{kind}': give detector or classifier"),
        ))),
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(cli::cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(init_runtime, m)?)?;
    m.add_function(wrap_pyfunction!(runtime_path, m)?)?;
    m.add_function(wrap_pyfunction!(builtin_models, m)?)?;
    m.add_function(wrap_pyfunction!(model_dir, m)?)?;
    m.add_function(wrap_pyfunction!(check_model_spec, m)?)?;
    errors::register(m)?;
    progress::register(m)?;
    quantize::register(m)?;
    classify::register(m)?;
    image_io::register(m)?;
    detect::register(m)?;
    pipeline::register(m)?;
    reid::register(m)?;
    reid_embed::register(m)?;
    reid_table::register(m)?;
    agreement::register(m)?;
    video::register(m)?;
    megadetector::register(m)?;
    models::register(m)?;
    review::register(m)?;
    fetch::register(m)?;
    conversion::register(m)?;
    convert::register(m)?;
    Ok(())
}
