//! Python arguments of the public classes that need more than pyo3's extraction: renamed
//! parameters, progress bars, inputs given as one path or many, and the weights check that
//! runs before a model is loaded (`deepfaune_rs.fetch.require`, Python's HTTP transfer).

use std::path::{Path, PathBuf};

use pyo3::exceptions::PyDeprecationWarning;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

/// An `InvalidArgumentError` saying exactly `msg`: the public classes' own argument checks,
/// whose messages users see as they were when these checks were Python's (the core's errors
/// say `invalid argument: ...`).
pub(crate) fn argument_error(msg: impl Into<String>) -> PyErr {
    let msg = msg.into();
    Python::attach(|py| {
        match py
            .import("deepfaune_rs.errors")
            .and_then(|m| m.getattr("InvalidArgumentError"))
            .and_then(|cls| cls.call1((msg.clone(),)))
        {
            Ok(exc) => PyErr::from_value(exc),
            Err(e) => e,
        }
    })
}

/// The value of parameter `new_name`: `new`, or `old` given under its old name `old_name` (a
/// `DeprecationWarning` naming the new one, pointing at the caller's line). Both is an error.
pub(crate) fn renamed<T>(
    py: Python<'_>,
    new_name: &str,
    new: Option<T>,
    old_name: &str,
    old: Option<T>,
) -> PyResult<Option<T>> {
    match (new, old) {
        (new, None) => Ok(new),
        (Some(_), Some(_)) => Err(argument_error(format!(
            "give {new_name} or {old_name} (its old name), not both"
        ))),
        (None, Some(old)) => {
            let message = format!(
                "{old_name} is deprecated: use {new_name} (the old name goes in the next release)"
            );
            let category = py.get_type::<PyDeprecationWarning>();
            PyErr::warn(py, category.as_any(), &std::ffi::CString::new(message)?, 1)?;
            Ok(Some(old))
        }
    }
}

/// What `progress=` was given: the default (`None` here) is a progress bar, as `True`.
pub(crate) struct ProgressArg(pub(crate) Option<Py<PyAny>>);

impl<'a, 'py> FromPyObject<'a, 'py> for ProgressArg {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        Ok(ProgressArg(Some(ob.to_owned().unbind())))
    }
}

impl ProgressArg {
    /// The callback `deepfaune_rs._progress.make_callback` makes of the argument (tqdm,
    /// ipywidgets or text bars are Python's), or None for no progress.
    pub(crate) fn callback(&self, py: Python<'_>, desc: &str) -> PyResult<Option<Py<PyAny>>> {
        let arg = match &self.0 {
            Some(a) => a.clone_ref(py).into_bound(py),
            None => pyo3::types::PyBool::new(py, true).to_owned().into_any(),
        };
        let cb = py
            .import("deepfaune_rs._progress")?
            .getattr("make_callback")?
            .call1((arg, desc))?;
        Ok((!cb.is_none()).then(|| cb.unbind()))
    }
}

/// One input or several, as the walk takes them: a path-like (`str`, `bytes`, `os.PathLike`)
/// or a sequence of them. Bytes (names that are not UTF-8) become the same bytes again.
pub(crate) struct Inputs(pub(crate) Vec<PathBuf>);

impl<'a, 'py> FromPyObject<'a, 'py> for Inputs {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let py = ob.py();
        let fspath = py.import("os")?.getattr("PathLike")?;
        let one = |o: &Bound<'py, PyAny>| -> PyResult<PathBuf> {
            let decoded = py.import("os")?.getattr("fsdecode")?.call1((o,))?;
            decoded.extract::<PathBuf>()
        };
        let ob = ob.to_owned();
        if ob.is_instance_of::<PyString>()
            || ob.is_instance_of::<PyBytes>()
            || ob.is_instance(&fspath)?
        {
            return Ok(Inputs(vec![one(&ob)?]));
        }
        let paths = ob
            .try_iter()?
            .map(|o| one(&o?))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Inputs(paths))
    }
}

impl Inputs {
    /// The one folder given, if that is what was given (the results' `root`).
    pub(crate) fn single_folder(&self) -> Option<PathBuf> {
        match self.0.as_slice() {
            [p] if p.is_dir() => Some(p.clone()),
            _ => None,
        }
    }
}

/// A path the core reads as text (a model id, a manifest, an `.onnx` file).
pub(crate) fn text(path: &Path) -> PyResult<String> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| argument_error(format!("{}: not valid UTF-8", path.display())))
}

/// Checks that the built-in weights a model set needs are there, or fetches them
/// (`fetch_first`), through `deepfaune_rs.fetch.require`; `ids` is `(detector ids, classifier
/// id or None)` computed by the caller with `deepfaune_rs.fetch`.
pub(crate) fn require<'py>(
    py: Python<'py>,
    detectors: &Bound<'py, PyAny>,
    classifier: Option<&Path>,
    bird_head: bool,
    weights: Option<&Bound<'py, PyDict>>,
    fetch_first: bool,
) -> PyResult<()> {
    let fetch = py.import("deepfaune_rs.fetch")?;
    let classifier = match classifier {
        Some(c) => fetch.getattr("classifier_id")?.call1((c,))?,
        None => py.None().into_bound(py),
    };
    let kwargs = PyDict::new(py);
    kwargs.set_item("weights", weights)?;
    kwargs.set_item("fetch_first", fetch_first)?;
    fetch
        .getattr("require")?
        .call((detectors, classifier, bird_head), Some(&kwargs))?;
    Ok(())
}

/// `deepfaune_rs.fetch.detector_ids(model, secondary)`: the built-in detectors a spec loads.
pub(crate) fn detector_ids<'py>(
    py: Python<'py>,
    model: Option<&Path>,
    secondary: Option<&Path>,
) -> PyResult<Bound<'py, PyAny>> {
    py.import("deepfaune_rs.fetch")?
        .getattr("detector_ids")?
        .call1((model, secondary))
}
