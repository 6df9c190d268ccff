//! The one place where core errors become Python exceptions, re-identification's included, and
//! where those exception classes are made.
//!
//! The classes ([`HIERARCHY`]) are built once with Python's `type(name, bases, namespace)` so
//! each inherits from both `DeepfauneError` and the matching builtin (`FileNotFoundError`,
//! `ValueError`, ...); `deepfaune_rs/errors.py` re-exports them (`_error_classes()`), and their
//! `__module__` is `deepfaune_rs.errors`.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};

use crate::convert::ConvertError;
use crate::error::{Error, ImageError, ModelError, RuntimeError};
use crate::reid::ReidError;

/// Every exception class of `deepfaune_rs.errors` in definition order: name, bases (classes
/// of this table defined above it, or builtins), docstring.
const HIERARCHY: [(&str, &[&str], &str); 19] = [
    (
        "DeepfauneError",
        &["Exception"],
        "Base class of all deepfaune_rs errors.",
    ),
    (
        "RuntimeNotFoundError",
        &["DeepfauneError", "ImportError"],
        "ONNX Runtime could not be found or loaded (install ``onnxruntime>=1.31``).",
    ),
    (
        "InferenceError",
        &["DeepfauneError", "RuntimeError"],
        "ONNX Runtime failed while running a model.",
    ),
    (
        "ModelError",
        &["DeepfauneError"],
        "A model or its manifest is unusable.",
    ),
    (
        "ManifestError",
        &["ModelError", "ValueError"],
        "A model manifest could not be parsed or is inconsistent.",
    ),
    (
        "UnknownModelError",
        &["ModelError", "KeyError"],
        "No built-in model has that id.",
    ),
    (
        "WeightsNotFoundError",
        &["ModelError", "FileNotFoundError"],
        "The model's weights file is not where its manifest says; the message says what to do.",
    ),
    (
        "ChecksumError",
        &["ModelError"],
        "A weights file is not the expected one: not the manifest's sha256, or (for a download)\n\
         not the published size / MD5 / sha256 or not the sha256 the lock file recorded.",
    ),
    (
        "DownloadError",
        &["DeepfauneError", "OSError"],
        "A model file could not be downloaded from any of its URLs (the message names the file\n\
         and what each URL answered).",
    ),
    (
        "ConversionError",
        &["ModelError", "ValueError"],
        "A downloaded checkpoint could not be converted to ONNX.",
    ),
    (
        "CheckpointError",
        &["ConversionError"],
        "A checkpoint is not a readable PyTorch file, its pickle asks for something unsafe (refused\n\
         before anything runs), or it holds something the converter does not support.",
    ),
    (
        "ModelMismatchError",
        &["ModelError", "ValueError"],
        "The ONNX model's inputs or outputs do not match its manifest.",
    ),
    (
        "InvalidArgumentError",
        &["DeepfauneError", "ValueError"],
        "An argument is invalid.",
    ),
    (
        "DeviceUnavailableError",
        &["InvalidArgumentError"],
        "The requested device (execution provider) is not in the installed ONNX Runtime build;\n\
         the message lists those that are.",
    ),
    (
        "ImageReadError",
        &["DeepfauneError", "OSError"],
        "A single image could not be read (from the single-image helpers).",
    ),
    (
        "OutputError",
        &["DeepfauneError", "OSError"],
        "An output file could not be written (the previous file, if any, is intact).",
    ),
    (
        "CancelledError",
        &["DeepfauneError"],
        "The run was cancelled.",
    ),
    (
        "KnowledgeBaseError",
        &["DeepfauneError", "ValueError"],
        "A re-identification knowledge base is unreadable or inconsistent (rows vs embeddings).",
    ),
    (
        "KnowledgeBaseNotFoundError",
        &["DeepfauneError", "FileNotFoundError"],
        "A knowledge-base file (``informations.csv``, ``embeddings.safetensors``) is missing.",
    ),
];

/// The classes of [`HIERARCHY`], made on first use: name -> class, in definition order.
fn classes(py: Python<'_>) -> PyResult<&Bound<'_, PyDict>> {
    static CLASSES: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    CLASSES
        .get_or_try_init(py, || {
            let builtins = py.import("builtins")?;
            let made = PyDict::new(py);
            for (name, bases, doc) in HIERARCHY {
                let bases = bases
                    .iter()
                    .map(|b| match made.get_item(b)? {
                        Some(cls) => Ok(cls),
                        None => builtins.getattr(*b),
                    })
                    .collect::<PyResult<Vec<_>>>()?;
                let namespace = PyDict::new(py);
                namespace.set_item("__doc__", doc)?;
                namespace.set_item("__module__", "deepfaune_rs.errors")?;
                if name == "UnknownModelError" {
                    // The message as given: KeyError's own `__str__` would add quotes.
                    let plain = builtins.getattr("BaseException")?.getattr("__str__")?;
                    namespace.set_item("__str__", plain)?;
                }
                let cls =
                    builtins
                        .getattr("type")?
                        .call1((name, PyTuple::new(py, bases)?, namespace))?;
                made.set_item(name, cls)?;
            }
            Ok(made.unbind())
        })
        .map(|d| d.bind(py))
}

/// The exception classes of `deepfaune_rs.errors` (name -> class, in definition order).
#[pyfunction]
fn _error_classes(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    classes(py).map(|d| d.copy())?
}

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
        match classes(py)
            .and_then(|d| d.as_any().get_item(name))
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
    m.add_function(wrap_pyfunction!(_error_classes, m)?)?;
    m.add_function(wrap_pyfunction!(_error_kinds, m)?)?;
    m.add_function(wrap_pyfunction!(_raise_error_kind, m)?)?;
    Ok(())
}
