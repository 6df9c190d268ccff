//! The one place where core errors become Python exceptions.
//!
//! The exception classes are defined in Python (`deepfaune_rs/errors.py`) so they can inherit from
//! both `DeepfauneError` and the matching builtin (`FileNotFoundError`, `ValueError`, ...).

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::error::{Error, ModelError, RuntimeError};

fn class_of(e: &Error) -> &'static str {
    match e {
        Error::Image { .. } => "ImageReadError",
        Error::Model(ModelError::Manifest { .. }) => "ManifestError",
        Error::Model(ModelError::Unknown { .. }) => "UnknownModelError",
        Error::Model(ModelError::WeightsMissing { .. }) => "WeightsNotFoundError",
        Error::Model(ModelError::Checksum { .. }) => "ChecksumError",
        Error::Model(ModelError::Mismatch(_)) => "ModelMismatchError",
        Error::Runtime(RuntimeError::NotFound(_)) => "RuntimeNotFoundError",
        Error::Runtime(RuntimeError::Ort(_)) => "InferenceError",
        Error::Runtime(RuntimeError::Unavailable(_)) => "DeviceUnavailableError",
        Error::InvalidArgument(_) => "InvalidArgumentError",
        Error::Output { .. } => "OutputError",
        Error::Cancelled => "CancelledError",
    }
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
