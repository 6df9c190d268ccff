//! The host's side of the command line's `admin` hooks (`crate::cli::admin`): calls into
//! `deepfaune_rs.cli._Hooks` (ONNX Runtime's quantisation tools, the review page's server, an
//! interruptible pause). A Python exception becomes the command line's
//! error: the user's to correct (exit 2) for `InvalidArgumentError` and `UnknownModelError`, a
//! failure (exit 1) otherwise, Ctrl-C an interruption.

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::cli::PyHooks;
use crate::cli::admin::{AdminHooks, Quantize, Review};
use crate::cli::CliError;
use crate::error::Error;

/// A Python exception as the command line's error (see the module doc).
fn cli_error(py: Python<'_>, e: &PyErr) -> CliError {
    if !e.is_instance_of::<PyException>(py) {
        return CliError::Interrupted;
    }
    let value = e.value(py);
    let text = value.str().map(|s| s.to_string()).unwrap_or_default();
    let errors = py.import("deepfaune_rs.errors").ok();
    let is = |name: &str| {
        errors
            .as_ref()
            .and_then(|m| m.getattr(name).ok())
            .is_some_and(|cls| value.is_instance(&cls).unwrap_or(false))
    };
    if is("InvalidArgumentError") || is("UnknownModelError") {
        CliError::Usage(text)
    } else if is("DeepfauneError") {
        CliError::Failed(text)
    } else {
        CliError::Failed(e.to_string())
    }
}

impl PyHooks {
    /// Runs `f` with the hooks object under the GIL; its exception as [`cli_error`] says.
    fn admin<T>(
        &self,
        f: impl for<'py> FnOnce(&Bound<'py, PyAny>) -> PyResult<T>,
    ) -> Result<T, CliError> {
        Python::attach(|py| f(self.hooks.bind(py)).map_err(|e| cli_error(py, &e)))
    }
}

impl AdminHooks for PyHooks {
    fn interrupted(&mut self) -> bool {
        Python::attach(|py| py.check_signals().is_err())
    }

    fn sleep(&mut self, seconds: f64) -> Result<(), Error> {
        self.call("sleep", (seconds,)).map(drop)
    }

    fn quantize(&mut self, q: &Quantize) -> Result<Vec<(String, String)>, CliError> {
        self.admin(|h| {
            let args = (&q.model, &q.images, q.method.as_deref(), q.sample);
            h.call_method1("quantize", args)?.extract()
        })
    }

    fn review(&mut self, r: &Review) -> Result<(), CliError> {
        self.admin(|h| {
            let py = h.py();
            let settings = if r.checkpoint {
                let d = PyDict::new(py);
                d.set_item("detector", &r.detector)?;
                d.set_item("classifier", &r.classifier)?;
                d.set_item("classifier_manifest", &r.classifier_manifest)?;
                d.set_item("score_threshold", r.score_threshold)?;
                d.set_item("maxlag_s", r.maxlag)?;
                d.set_item("language", &r.language)?;
                d.set_item("disabled_classes", &r.disable)?;
                d.set_item("bird_head", r.bird_head)?;
                Some(d)
            } else {
                None
            };
            let serve = PyDict::new(py);
            serve.set_item("open_browser", r.open)?;
            serve.set_item("port", r.port)?;
            serve.set_item("by", &r.by)?;
            let args = (&r.results, settings, r.detections.as_deref(), serve);
            h.call_method1("review", args).map(drop)
        })
    }
}
