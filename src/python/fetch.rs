//! Bindings of `crate::fetch` for `python/deepfaune_rs/fetch.py`: artifacts as dicts (and
//! back from its `Artifact` dataclass, read by attribute), the lock file, the checks, the ONNX
//! stamp, the states, the download and the fetch of each file. Types only; errors through
//! `errors.rs`. The Python hooks object (`say`, `bytes`, `sleep`) is called with
//! the GIL taken back for each call; an exception it raises (Ctrl-C) stops the download and is
//! raised as it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::errors::IntoPyResult;
use crate::error::Error;
use crate::fetch::{self, Artifact, Convert, Converted, Expect, FetchOptions, Hooks, Lock, Retry};

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

/// Model ids for targets: a model id, a detector mode (`DFbsMDS`, ...) or `deepfaune`
/// (DeepFaune's default setup: DF, MegaDetector sorrel and the default classifier with its bird
/// head). Raises `UnknownModelError` naming every unknown target.
#[pyfunction]
fn fetch_targets(targets: Vec<String>) -> PyResult<Vec<String>> {
    fetch::resolve_targets(&targets).py()
}

/// Built-in detector ids that `Detector(model, secondary=...)` loads (files and manifests are
/// the caller's: none). An unknown name raises `UnknownModelError` listing the valid ones
/// (before any missing weights are looked for).
#[pyfunction]
#[pyo3(signature = (model=None, secondary=None))]
fn fetch_detector_ids(model: Option<PathBuf>, secondary: Option<PathBuf>) -> PyResult<Vec<String>> {
    let specs: Vec<String> = [model, secondary]
        .into_iter()
        .flatten()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    fetch::detector_ids(&specs).py()
}

/// The built-in classifier id of `classifier`, or None for a file or manifest (or None). An
/// unknown name raises `UnknownModelError` listing the valid ones.
#[pyfunction]
#[pyo3(signature = (classifier=None))]
fn fetch_classifier_id(classifier: Option<PathBuf>) -> PyResult<Option<String>> {
    match classifier {
        Some(c) => fetch::classifier_id(&c.to_string_lossy()).py(),
        None => Ok(None),
    }
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
) -> PyResult<Vec<FileStatus>> {
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
    Ok(states
        .into_iter()
        .map(|s| FileStatus {
            model_id: s.model_id,
            role: s.role,
            state: s.state.to_string(),
            path: s.path,
            source: s.source,
            detail: s.detail,
            sha256: s.sha256,
        })
        .collect())
}

/// The Python hooks object of a download (`fetch._Hooks`); the first exception it raised.
struct PyHooks {
    obj: Py<PyAny>,
    err: Option<PyErr>,
}

impl PyHooks {
    fn new(obj: Py<PyAny>) -> Self {
        PyHooks { obj, err: None }
    }

    /// Calls into Python with the GIL; an exception is kept for [`PyHooks::result`] and stops
    /// the core's work (`Error::Cancelled`).
    fn call<T>(
        &mut self,
        f: impl FnOnce(Python<'_>, &Bound<'_, PyAny>) -> PyResult<T>,
    ) -> Result<T, Error> {
        if self.err.is_some() {
            return Err(Error::Cancelled);
        }
        Python::attach(|py| f(py, self.obj.bind(py))).map_err(|e| {
            self.err = Some(e);
            Error::Cancelled
        })
    }

    /// The core's result, or the hook's exception that stopped it.
    fn result<T>(self, r: Result<T, Error>) -> PyResult<T> {
        match (r, self.err) {
            (Err(_), Some(e)) => Err(e),
            (r, _) => r.py(),
        }
    }
}

impl Hooks for PyHooks {
    fn say(&mut self, text: &str) -> Result<(), Error> {
        self.call(|_, h| h.call_method1("say", (text,)).map(drop))
    }

    fn bytes(&mut self, name: &str, done: u64, total: Option<u64>, end: bool) -> Result<(), Error> {
        self.call(|py, h| {
            py.check_signals()?;
            h.call_method1("bytes", (name, done, total, end)).map(drop)
        })
    }

    fn sleep(&mut self, seconds: f64) -> Result<(), Error> {
        self.call(|_, h| h.call_method1("sleep", (seconds,)).map(drop))
    }
}

/// The conversion of a downloaded checkpoint by the core's converter (stamped with `version`),
/// its lines through the hooks' `say`.
struct CoreConvert {
    say: PyHooks,
    version: Option<String>,
}

impl Convert for CoreConvert {
    fn convert(&mut self, a: &Artifact, src: &Path, dest: &Path) -> Result<Converted, Error> {
        let say = &mut self.say;
        crate::cli::admin::convert_download(a, src, dest, self.version.as_deref(), &mut |line| {
            say.say(line)
        })
    }
}

/// What `fetch()` did for one file.
#[pyclass(module = "deepfaune_rs._core", frozen, get_all)]
pub struct FetchedFile {
    model_id: String,
    role: String,
    /// `embedded`, `downloaded`, `converted` or `verified`.
    state: String,
    path: PathBuf,
    /// The downloaded file, when it differs from `path`.
    source: Option<PathBuf>,
    sha256: Option<String>,
    source_sha256: Option<String>,
    /// Where it was downloaded from (None: nothing downloaded).
    url: Option<String>,
    converted: bool,
    notes: Vec<String>,
}

fn label_of(model_id: &str, role: &str) -> String {
    if role == "model" {
        model_id.to_string()
    } else {
        format!("{model_id} bird head")
    }
}

#[pymethods]
impl FetchedFile {
    /// `df`, `deepfaune-v15`, `deepfaune-v15 bird head`.
    #[getter]
    fn label(&self) -> String {
        label_of(&self.model_id, &self.role)
    }

    fn __repr__(&self) -> String {
        format!(
            "FetchedFile(label={:?}, state={:?}, path={:?}, url={:?}, converted={})",
            self.label(),
            self.state,
            self.path,
            self.url,
            self.converted
        )
    }
}

impl From<fetch::Fetched> for FetchedFile {
    fn from(f: fetch::Fetched) -> Self {
        FetchedFile {
            model_id: f.model_id,
            role: f.role,
            state: f.state.to_string(),
            path: f.path,
            source: f.source,
            sha256: f.sha256,
            source_sha256: f.source_sha256,
            url: f.url,
            converted: f.converted,
            notes: f.notes,
        }
    }
}

/// Where one model file stands (`embedded`, `missing`, `downloaded`, `converted`, `verified`).
#[pyclass(module = "deepfaune_rs._core", frozen, get_all)]
pub struct FileStatus {
    model_id: String,
    role: String,
    state: String,
    /// The ONNX the core loads.
    path: PathBuf,
    /// The downloaded file, when it differs from `path`.
    source: Option<PathBuf>,
    detail: String,
    /// Of `path`, when hashed.
    sha256: Option<String>,
}

#[pymethods]
impl FileStatus {
    /// `df`, `deepfaune-v15`, `deepfaune-v15 bird head`.
    #[getter]
    fn label(&self) -> String {
        label_of(&self.model_id, &self.role)
    }

    fn __repr__(&self) -> String {
        format!(
            "FileStatus(label={:?}, state={:?}, path={:?})",
            self.label(),
            self.state,
            self.path
        )
    }
}

/// Fetches each artifact into `folder` (`fetch::fetch_file`): downloads through `hooks`
/// (`say`, `bytes`, `sleep`) and, with `convert`, converts with the core's converter, stamped
/// with `converter_version`.
#[pyfunction]
#[pyo3(signature = (artifacts, folder, hooks, convert, accept_new_hash, converter_version, retries, timeout))]
#[allow(clippy::too_many_arguments)]
fn fetch_files(
    py: Python<'_>,
    artifacts: Vec<PyArtifact>,
    folder: PathBuf,
    hooks: Py<PyAny>,
    convert: bool,
    accept_new_hash: bool,
    converter_version: Option<String>,
    retries: u32,
    timeout: f64,
) -> PyResult<Vec<FetchedFile>> {
    let arts: Vec<Artifact> = artifacts.into_iter().map(Artifact::from).collect();
    let opts = FetchOptions {
        accept_new_hash,
        converter_version,
        retry: Retry {
            retries,
            timeout_s: timeout,
        },
        base_url: fetch::base_url(),
    };
    let mut conv = convert.then(|| CoreConvert {
        say: PyHooks::new(hooks.clone_ref(py)),
        version: opts.converter_version.clone(),
    });
    let mut h = PyHooks::new(hooks);
    let done = py.detach(|| {
        arts.iter()
            .map(|a| {
                let c = conv.as_mut().map(|c| c as &mut dyn Convert);
                fetch::fetch_file(a, &folder, &opts, &mut h, c)
            })
            .collect::<Result<Vec<_>, Error>>()
    });
    if let Some(e) = conv.and_then(|c| c.say.err) {
        return Err(e);
    }
    Ok(h.result(done)?.into_iter().map(FetchedFile::from).collect())
}

/// Downloads `name` into `folder` from the first of `urls` that gives it (`fetch::download`),
/// checked against `sha256` when given; returns its path, sha256 and URL.
#[pyfunction]
#[pyo3(signature = (name, urls, folder, hooks, sha256="", retries=None, timeout=None))]
#[allow(clippy::too_many_arguments)]
fn fetch_download(
    py: Python<'_>,
    name: &str,
    urls: Vec<String>,
    folder: PathBuf,
    hooks: Py<PyAny>,
    sha256: &str,
    retries: Option<u32>,
    timeout: Option<f64>,
) -> PyResult<(PathBuf, String, String)> {
    let expect = Expect {
        sha256: sha256.to_lowercase(),
        ..Default::default()
    };
    let retry = Retry {
        retries: retries.unwrap_or(fetch::RETRIES),
        timeout_s: timeout.unwrap_or(fetch::TIMEOUT_S),
    };
    let mut h = PyHooks::new(hooks);
    let r = py.detach(|| fetch::download(name, &urls, &folder, &expect, retry, &mut h));
    h.result(r).map(|d| (d.path, d.sha256, d.url))
}

/// Checks that every built-in model file of a run is in the model directory. Missing ones
/// raise ONE `WeightsNotFoundError` (with `missing` and `command`), or with `fetch_first` are
/// returned as the model ids to fetch.
#[pyfunction]
fn fetch_require(
    py: Python<'_>,
    detectors: Vec<String>,
    classifier: Option<String>,
    bird_head: bool,
    given: Vec<String>,
    fetch_first: bool,
) -> PyResult<Vec<String>> {
    let folder = crate::manifest::model_dir();
    let gone = fetch::missing(
        &detectors,
        classifier.as_deref(),
        bird_head,
        &given,
        &folder,
    )
    .py()?;
    let mut ids: Vec<String> = Vec::new();
    for (a, _) in &gone {
        if !ids.contains(&a.model_id) {
            ids.push(a.model_id.clone());
        }
    }
    if gone.is_empty() || fetch_first {
        return Ok(ids);
    }
    let arts: Vec<Artifact> = gone.iter().map(|(a, _)| a.clone()).collect();
    let command = fetch::fetch_command(&arts);
    let msg = fetch::missing_message(&gone, &command);
    let err = py
        .import("deepfaune_rs.errors")?
        .getattr("WeightsNotFoundError")?
        .call1((msg,))?;
    let listed: Vec<(String, String)> = gone
        .iter()
        .map(|(a, p)| (a.label(), p.display().to_string()))
        .collect();
    err.setattr("missing", listed)?;
    err.setattr("command", command)?;
    Err(PyErr::from_value(err))
}

/// Copies a weights file into the model directory (where manifests look for it), atomically.
#[pyfunction]
fn copy_into_model_dir(py: Python<'_>, path: PathBuf) -> PyResult<PathBuf> {
    py.detach(|| -> Result<PathBuf, Error> {
        let name = path.file_name().ok_or_else(|| {
            Error::InvalidArgument(format!("{}: not a file path", path.display()))
        })?;
        let dest = crate::manifest::model_dir().join(name);
        let mut src = std::fs::File::open(&path)
            .map_err(|e| Error::InvalidArgument(format!("cannot read {}: {e}", path.display())))?;
        std::fs::create_dir_all(dest.parent().unwrap_or(Path::new("."))).map_err(|e| {
            Error::Output {
                path: dest.clone(),
                reason: e.to_string(),
            }
        })?;
        crate::fsio::write_atomic_with(&dest, |f| std::io::copy(&mut src, f).map(drop))?;
        Ok(dest)
    })
    .py()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("LOCK_NAME", fetch::LOCK_NAME)?;
    m.add("FETCH_ENV_BASE_URL", fetch::ENV_BASE_URL)?;
    m.add("FETCH_RETRIES", fetch::RETRIES)?;
    m.add("FETCH_BACKOFF_S", fetch::BACKOFF_S)?;
    m.add("FETCH_BACKOFF_MAX_S", fetch::BACKOFF_MAX_S)?;
    m.add("FETCH_TIMEOUT_S", fetch::TIMEOUT_S)?;
    m.add_class::<FetchedFile>()?;
    m.add_class::<FileStatus>()?;
    m.add_function(wrap_pyfunction!(fetch_files, m)?)?;
    m.add_function(wrap_pyfunction!(fetch_download, m)?)?;
    m.add_function(wrap_pyfunction!(fetch_require, m)?)?;
    m.add_function(wrap_pyfunction!(copy_into_model_dir, m)?)?;
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
    m.add_function(wrap_pyfunction!(read_onnx_stamp, m)?)?;
    m.add_function(wrap_pyfunction!(fetch_status, m)?)?;
    Ok(())
}
