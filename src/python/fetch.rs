//! Bindings of `crate::fetch` for `python/deepfaune_rs/fetch.py`: artifacts as dicts (and
//! back from its `Artifact` / `_Expect` dataclasses, read by attribute), the lock file, the
//! checks, the ONNX stamp and the states. Types only; errors through `errors.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::errors::IntoPyResult;
use crate::error::Error;
use crate::fetch::{self, Artifact, Expect, Lock, Step};

/// `fetch.Artifact` as Python holds it (a dataclass read by attribute).
#[derive(FromPyObject)]
struct PyArtifact {
    model_id: String,
    role: String,
    kind: String,
    file: String,
    url: String,
    url_format: String,
    mirrors: Vec<String>,
    url_size: Option<u64>,
    url_md5: String,
    url_sha256: String,
    file_sha256: String,
    input_size: Option<u32>,
    embedded: bool,
}

impl From<PyArtifact> for Artifact {
    fn from(a: PyArtifact) -> Self {
        Artifact {
            model_id: a.model_id,
            role: a.role,
            kind: a.kind,
            file: a.file,
            url: a.url,
            url_format: a.url_format,
            mirrors: a.mirrors,
            url_size: a.url_size,
            url_md5: a.url_md5,
            url_sha256: a.url_sha256,
            file_sha256: a.file_sha256,
            input_size: a.input_size,
            embedded: a.embedded,
        }
    }
}

/// `fetch._Expect` (a dataclass read by attribute).
#[derive(FromPyObject)]
struct PyExpect {
    size: Option<u64>,
    md5: String,
    sha256: String,
    locked_sha256: String,
    accept_new_hash: bool,
}

fn artifact_dict<'py>(py: Python<'py>, a: &Artifact) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("model_id", &a.model_id)?;
    d.set_item("role", &a.role)?;
    d.set_item("kind", &a.kind)?;
    d.set_item("file", &a.file)?;
    d.set_item("url", &a.url)?;
    d.set_item("url_format", &a.url_format)?;
    d.set_item("mirrors", pyo3::types::PyTuple::new(py, &a.mirrors)?)?;
    d.set_item("url_size", a.url_size)?;
    d.set_item("url_md5", &a.url_md5)?;
    d.set_item("url_sha256", &a.url_sha256)?;
    d.set_item("file_sha256", &a.file_sha256)?;
    d.set_item("input_size", a.input_size)?;
    d.set_item("embedded", a.embedded)?;
    Ok(d)
}

/// The files of the built-in models `ids` (None: every detector and classifier), each model's
/// file then (with `bird_head`) its bird head's, as `fetch.Artifact` fields.
#[pyfunction]
#[pyo3(signature = (ids=None, bird_head=true))]
fn fetch_artifacts(
    py: Python<'_>,
    ids: Option<Vec<String>>,
    bird_head: bool,
) -> PyResult<Vec<Bound<'_, PyDict>>> {
    let arts = fetch::artifacts_for(ids.as_deref(), bird_head).py()?;
    arts.iter().map(|a| artifact_dict(py, a)).collect()
}

/// The downloaded file's name and the URLs to try (`base`: `$DEEPFAUNE_RS_BASE_URL`).
#[pyfunction]
#[pyo3(signature = (artifact, base=None))]
fn fetch_sources(artifact: PyArtifact, base: Option<String>) -> (String, Vec<String>) {
    let a = Artifact::from(artifact);
    (a.source_name(), a.urls(base.as_deref()))
}

/// Model ids for `fetch` targets (ids, modes, `deepfaune`); unknown ones raise
/// `UnknownModelError` listing the choices.
#[pyfunction]
fn fetch_targets(targets: Vec<String>) -> PyResult<Vec<String>> {
    fetch::resolve_targets(&targets).py()
}

/// The built-in detector ids that these detector specs load.
#[pyfunction]
fn fetch_detector_ids(specs: Vec<String>) -> PyResult<Vec<String>> {
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    fetch::detector_ids(&specs).py()
}

/// The built-in classifier id of a classifier spec (None: a file or manifest).
#[pyfunction]
fn fetch_classifier_id(spec: &str) -> PyResult<Option<String>> {
    fetch::classifier_id(spec).py()
}

/// Missing files as `(artifact, path)` pairs.
type Missing<'py> = Vec<(Bound<'py, PyDict>, PathBuf)>;

/// The files of a run's built-in models missing from `folder`: `(artifact, path)` pairs, and
/// the command that fetches them.
#[pyfunction]
#[pyo3(signature = (detectors, classifier, bird_head, given, folder))]
fn fetch_missing<'py>(
    py: Python<'py>,
    detectors: Vec<String>,
    classifier: Option<String>,
    bird_head: bool,
    given: Vec<String>,
    folder: PathBuf,
) -> PyResult<(Missing<'py>, String)> {
    let gone = fetch::missing(
        &detectors,
        classifier.as_deref(),
        bird_head,
        &given,
        &folder,
    )
    .py()?;
    let arts: Vec<Artifact> = gone.iter().map(|(a, _)| a.clone()).collect();
    let out = gone
        .iter()
        .map(|(a, p)| Ok((artifact_dict(py, a)?, p.clone())))
        .collect::<PyResult<_>>()?;
    Ok((out, fetch::fetch_command(&arts)))
}

/// Checks a downloaded file against `expect`; returns its sha256 (`ChecksumError` otherwise).
#[pyfunction]
fn fetch_check(
    py: Python<'_>,
    path: PathBuf,
    name: &str,
    expect: PyExpect,
    lock_path: PathBuf,
) -> PyResult<String> {
    let e = Expect {
        size: expect.size,
        md5: expect.md5,
        sha256: expect.sha256,
        locked_sha256: expect.locked_sha256,
        accept_new_hash: expect.accept_new_hash,
    };
    py.detach(|| fetch::check(&path, name, &e, &lock_path))
        .map(|h| h.sha256)
        .py()
}

/// Lowercase hex sha256 of a file, streamed.
#[pyfunction]
fn sha256_file(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    py.detach(|| fetch::sha256_of(&path)).py()
}

/// The next step of fetching `artifact` into `folder` (`fetch::plan`): `{"step": "done" |
/// "source" | "download", "notes"}` with, for `done`, the `state`, `path`, `source`, `sha256`
/// and `source_sha256`; for `source`, its `source` and `source_sha256`; for `download`, the
/// `expect` (`fetch._Expect` fields).
#[pyfunction]
#[pyo3(signature = (artifact, folder, converter_version=None, accept_new_hash=false))]
fn fetch_plan<'py>(
    py: Python<'py>,
    artifact: PyArtifact,
    folder: PathBuf,
    converter_version: Option<String>,
    accept_new_hash: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let a = Artifact::from(artifact);
    let p = py
        .detach(|| fetch::plan(&a, &folder, converter_version.as_deref(), accept_new_hash))
        .py()?;
    let d = PyDict::new(py);
    d.set_item("notes", p.notes)?;
    match p.step {
        Step::Done {
            state,
            path,
            source,
            sha256,
            source_sha256,
        } => {
            d.set_item("step", "done")?;
            d.set_item("state", state)?;
            d.set_item("path", path)?;
            d.set_item("source", source)?;
            d.set_item("sha256", sha256)?;
            d.set_item("source_sha256", source_sha256)?;
        }
        Step::Source { path, sha256 } => {
            d.set_item("step", "source")?;
            d.set_item("source", path)?;
            d.set_item("source_sha256", sha256)?;
        }
        Step::Download { expect } => {
            d.set_item("step", "download")?;
            let e = PyDict::new(py);
            e.set_item("size", expect.size)?;
            e.set_item("md5", expect.md5)?;
            e.set_item("sha256", expect.sha256)?;
            e.set_item("locked_sha256", expect.locked_sha256)?;
            e.set_item("accept_new_hash", expect.accept_new_hash)?;
            d.set_item("expect", e)?;
        }
    }
    Ok(d)
}

/// Records a downloaded file in the lock file of `folder`.
#[pyfunction]
#[pyo3(signature = (folder, name, sha256, size, url=None))]
fn fetch_record_file(
    folder: PathBuf,
    name: &str,
    sha256: &str,
    size: u64,
    url: Option<&str>,
) -> PyResult<()> {
    let mut lock = Lock::read(&folder).py()?;
    lock.record_file(name, sha256, size, url).py()
}

/// Records a conversion in the lock file of `folder`.
#[pyfunction]
fn fetch_record_conversion(
    folder: PathBuf,
    name: &str,
    sha256: &str,
    source: &str,
    source_sha256: &str,
    converter_version: &str,
) -> PyResult<()> {
    let mut lock = Lock::read(&folder).py()?;
    lock.record_conversion(name, sha256, source, source_sha256, converter_version)
        .py()
}

/// The `metadata_props` of an ONNX file (empty when it is not ONNX or has none).
#[pyfunction]
fn read_onnx_stamp(path: PathBuf) -> BTreeMap<String, String> {
    fetch::read_onnx_stamp(&path)
}

/// The state of each artifact's file in `folder` (`converter_version`: the installed
/// converter's, None when there is none), as `fetch.FileStatus` fields.
#[pyfunction]
#[pyo3(signature = (artifacts, folder, converter_version=None))]
fn fetch_status(
    py: Python<'_>,
    artifacts: Vec<PyArtifact>,
    folder: PathBuf,
    converter_version: Option<String>,
) -> PyResult<Vec<Bound<'_, PyDict>>> {
    let arts: Vec<Artifact> = artifacts.into_iter().map(Artifact::from).collect();
    let states = py
        .detach(|| -> Result<_, Error> {
            let lock = Lock::read(&folder)?;
            arts.iter()
                .map(|a| {
                    Ok(fetch::status_of(
                        a,
                        &folder,
                        &lock,
                        converter_version.as_deref(),
                    )?)
                })
                .collect::<Result<Vec<_>, Error>>()
        })
        .py()?;
    states
        .into_iter()
        .map(|s| {
            let d = PyDict::new(py);
            d.set_item("model_id", s.model_id)?;
            d.set_item("role", s.role)?;
            d.set_item("state", s.state)?;
            d.set_item("path", s.path)?;
            d.set_item("source", s.source)?;
            d.set_item("detail", s.detail)?;
            d.set_item("sha256", s.sha256)?;
            Ok(d)
        })
        .collect()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("LOCK_NAME", fetch::LOCK_NAME)?;
    m.add("FETCH_STATES", fetch::STATES.to_vec())?;
    m.add("DEFAULT_TARGET", fetch::DEFAULT_TARGET)?;
    m.add_function(wrap_pyfunction!(fetch_artifacts, m)?)?;
    m.add_function(wrap_pyfunction!(fetch_sources, m)?)?;
    m.add_function(wrap_pyfunction!(fetch_targets, m)?)?;
    m.add_function(wrap_pyfunction!(fetch_detector_ids, m)?)?;
    m.add_function(wrap_pyfunction!(fetch_classifier_id, m)?)?;
    m.add_function(wrap_pyfunction!(fetch_missing, m)?)?;
    m.add_function(wrap_pyfunction!(fetch_check, m)?)?;
    m.add_function(wrap_pyfunction!(sha256_file, m)?)?;
    m.add_function(wrap_pyfunction!(fetch_plan, m)?)?;
    m.add_function(wrap_pyfunction!(fetch_record_file, m)?)?;
    m.add_function(wrap_pyfunction!(fetch_record_conversion, m)?)?;
    m.add_function(wrap_pyfunction!(read_onnx_stamp, m)?)?;
    m.add_function(wrap_pyfunction!(fetch_status, m)?)?;
    Ok(())
}
