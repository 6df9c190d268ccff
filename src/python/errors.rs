//! The one place where core errors become Python exceptions, re-identification's included.
//!
//! The exception classes are defined in Python (`deepfaune_rs/errors.py`) so they can inherit from
//! both `DeepfauneError` and the matching builtin (`FileNotFoundError`, `ValueError`, ...).

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::convert::ConvertError;
use crate::error::{Error, ImageError, ModelError, RuntimeError};
use crate::reid::ReidError;

/// The `deepfaune_rs.errors` class of each error kind, by [`kind_of`].
const CLASSES: [&str; 24] = [
    "ImageReadError",
    "ManifestError",
    "UnknownModelError",
    "WeightsNotFoundError",
    "ChecksumError",
    "ModelMismatchError",
    "RuntimeNotFoundError",
    "InferenceError",
    "InvalidArgumentError",
    "OutputError",
    "CancelledError",
    "InvalidArgumentError",
    "InvalidArgumentError",
    "InvalidArgumentError",
    "KnowledgeBaseError",
    "KnowledgeBaseNotFoundError",
    "OutputError",
    "DeviceUnavailableError",
    "UnknownModelError",
    "ChecksumError",
    "CheckpointError",
    "CheckpointError",
    "DownloadError",
    "ConversionError",
];

/// The kind of `e`: its row in [`CLASSES`] and in [`every_kind`]. The match is exhaustive, so
/// a new kind does not compile until it has a row, and the test of `_error_kinds` fails until
/// [`every_kind`] has an example of it.
fn kind_of(e: &Error) -> usize {
    match e {
        Error::Image { .. } => 0,
        Error::Model(ModelError::Manifest { .. }) => 1,
        Error::Model(ModelError::Unknown { .. }) => 2,
        Error::Model(ModelError::WeightsMissing { .. }) => 3,
        Error::Model(ModelError::Checksum { .. }) => 4,
        Error::Model(ModelError::Mismatch(_)) => 5,
        Error::Runtime(RuntimeError::NotFound(_)) => 6,
        Error::Runtime(RuntimeError::Ort(_)) => 7,
        Error::InvalidArgument(_) => 8,
        Error::Output { .. } => 9,
        Error::Cancelled => 10,
        Error::Reid(ReidError::Shape(_)) => 11,
        Error::Reid(ReidError::NonFinite(_)) => 12,
        Error::Reid(ReidError::Argument(_)) => 13,
        Error::Reid(ReidError::Format { .. }) => 14,
        Error::Reid(ReidError::NotFound(_)) => 15,
        Error::Reid(ReidError::Io { .. }) => 16,
        Error::Runtime(RuntimeError::Unavailable(_)) => 17,
        Error::Model(ModelError::UnknownTarget { .. }) => 18,
        Error::Model(ModelError::Refused(_)) => 19,
        Error::Convert(ConvertError::Checkpoint(_)) => 20,
        Error::Convert(ConvertError::Build(_)) => 21,
        Error::Model(ModelError::Download(_)) => 22,
        Error::Model(ModelError::Conversion(_)) => 23,
    }
}

fn class_of(e: &Error) -> &'static str {
    CLASSES[kind_of(e)]
}

/// One error of every kind, in [`kind_of`]'s order (for the test that every class exists:
/// `_core._error_kinds`).
fn every_kind() -> Vec<Error> {
    let s = || "x".to_string();
    vec![
        Error::Image {
            path: "a.jpg".into(),
            source: ImageError::Empty,
        },
        ModelError::Manifest {
            path: s(),
            reason: s(),
        }
        .into(),
        ModelError::Unknown {
            id: s(),
            known: s(),
        }
        .into(),
        ModelError::WeightsMissing {
            path: "w.onnx".into(),
            hint: s(),
        }
        .into(),
        ModelError::Checksum {
            path: "w.onnx".into(),
            expected: s(),
            found: s(),
        }
        .into(),
        ModelError::Mismatch(s()).into(),
        RuntimeError::NotFound(s()).into(),
        RuntimeError::Ort(s()).into(),
        Error::InvalidArgument(s()),
        Error::Output {
            path: "o.csv".into(),
            reason: s(),
        },
        Error::Cancelled,
        ReidError::Shape(s()).into(),
        ReidError::NonFinite(s()).into(),
        ReidError::Argument(s()).into(),
        ReidError::Format {
            path: s(),
            reason: s(),
        }
        .into(),
        ReidError::NotFound(s()).into(),
        ReidError::Io {
            path: s(),
            reason: s(),
        }
        .into(),
        RuntimeError::Unavailable(s()).into(),
        ModelError::UnknownTarget {
            names: s(),
            choices: s(),
        }
        .into(),
        ModelError::Refused(s()).into(),
        ConvertError::Checkpoint(s()).into(),
        ConvertError::Build(s()).into(),
        ModelError::Download(s()).into(),
        ModelError::Conversion(s()).into(),
    ]
}

/// Converts a core error into the matching `deepfaune_rs` exception.
pub fn to_pyerr(e: Error) -> PyErr {
    let name = class_of(&e);
    let msg = e.to_string();
    Python::attach(|py| {
        match py
            .import("deepfaune_rs.errors")
            .and_then(|m| m.getattr(name))
            .and_then(|cls| cls.call1((msg.clone(),)))
        {
            Ok(exc) => PyErr::from_value(exc),
            Err(_) => PyRuntimeError::new_err(msg),
        }
    })
}

/// An `InvalidArgumentError` saying `msg` (the bindings' own argument checks).
pub fn invalid(msg: impl Into<String>) -> PyErr {
    to_pyerr(Error::InvalidArgument(msg.into()))
}

/// The exception of a re-identification error.
pub fn reid_error(e: ReidError) -> PyErr {
    to_pyerr(e.into())
}

/// An array whose shape does not fit its data (`InvalidArgumentError`).
pub fn shape_error(e: numpy::ndarray::ShapeError) -> PyErr {
    invalid(format!("array shape: {e}"))
}

/// `Result` helper: `.py()?` converts core errors.
pub trait IntoPyResult<T> {
    /// Converts the error side.
    fn py(self) -> PyResult<T>;
}

impl<T, E: Into<Error>> IntoPyResult<T> for Result<T, E> {
    fn py(self) -> PyResult<T> {
        self.map_err(|e| to_pyerr(e.into()))
    }
}

/// Every error kind as `(kind, debug form, exception class name)` plus the number of kinds,
/// for the test that each kind has an example and a class that derives from `DeepfauneError`.
#[pyfunction]
fn _error_kinds() -> (Vec<(usize, String, &'static str)>, usize) {
    let kinds = every_kind()
        .iter()
        .map(|e| (kind_of(e), format!("{e:?}"), class_of(e)))
        .collect();
    (kinds, CLASSES.len())
}

/// Raises the exception of error kind `i` of `_error_kinds()` through [`to_pyerr`].
#[pyfunction]
fn _raise_error_kind(i: usize) -> PyResult<()> {
    match every_kind().into_iter().nth(i) {
        Some(e) => Err(to_pyerr(e)),
        None => Err(invalid(format!("no error kind {i}"))),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_error_kinds, m)?)?;
    m.add_function(wrap_pyfunction!(_raise_error_kind, m)?)?;
    Ok(())
}
