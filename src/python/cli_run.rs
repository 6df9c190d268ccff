//! The host's side of the command line's `run` hooks (`crate::cli::run`): PyAV's frames,
//! openpyxl, numpy's `.npz`, Ray and the download of weights, each a method of
//! `deepfaune_rs.cli._Hooks` called under the GIL.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::cli::PyHooks;
use super::pipeline::{table_columns, PyPipelineResults};
use crate::cli::run::{Outcome, RayRequest, RayRun, RunHooks};
use crate::error::{Error, ModelError};
use crate::export::table::ResultRow;
use crate::pipeline::Sampled;

/// A Python exception of a hook as a core error: Ctrl-C (not an `Exception`) cancels; an
/// `InvalidArgumentError` (devices too) or `UnknownModelError` is the user's to correct; any
/// other keeps its text (a failure).
fn host_error(py: Python<'_>, e: &PyErr) -> Error {
    if !e.is_instance_of::<pyo3::exceptions::PyException>(py) {
        return Error::Cancelled;
    }
    let text = e.value(py).to_string();
    let usage = ["InvalidArgumentError", "UnknownModelError"]
        .iter()
        .any(|name| {
            py.import("deepfaune_rs.errors")
                .and_then(|m| m.getattr(*name))
                .is_ok_and(|cls| e.value(py).is_instance(&cls).unwrap_or(false))
        });
    if usage {
        let text = text.strip_prefix("invalid argument: ").unwrap_or(&text);
        Error::InvalidArgument(text.trim_matches('"').to_string())
    } else {
        ModelError::Refused(text).into()
    }
}

impl PyHooks {
    /// Calls `hooks.<name>(*args)` with arguments made under the GIL, and `then` with what
    /// it returns.
    fn call_with<F, G, T>(&self, name: &str, args: F, then: G) -> Result<T, Error>
    where
        F: for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyTuple>>,
        G: for<'py> FnOnce(Bound<'py, PyAny>) -> PyResult<T>,
    {
        Python::attach(|py| {
            args(py)
                .and_then(|args| self.object(py).call_method1(name, args))
                .and_then(then)
                .map_err(|e| host_error(py, &e))
        })
    }
}

impl RunHooks for PyHooks {
    fn check_interrupt(&mut self) -> Result<(), Error> {
        Python::attach(|py| py.check_signals()).map_err(|_| Error::Cancelled)
    }

    fn sample_video(&mut self, path: &Path) -> Result<Sampled, Error> {
        let slot = Mutex::new(None);
        let sampled = super::video::python_sampler(&slot)(path);
        let interrupted = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        match interrupted {
            Some(_) => Err(Error::Cancelled),
            None => sampled,
        }
    }

    fn write_excel(
        &mut self,
        rows: &[ResultRow],
        videos: bool,
        path: &Path,
        csv_safe: bool,
    ) -> Result<(), Error> {
        self.call_with(
            "write_excel",
            |py| (table_columns(py, rows, videos)?, path, csv_safe).into_pyobject(py),
            |_| Ok(()),
        )
    }

    fn save_embeddings(
        &mut self,
        path: &Path,
        paths: &[PathBuf],
        embeddings: &[f32],
        dim: usize,
    ) -> Result<(), Error> {
        self.call_with(
            "save_embeddings",
            |py| {
                let array = PyArray1::from_slice(py, embeddings).reshape([paths.len(), dim])?;
                (path, paths.to_vec(), array).into_pyobject(py)
            },
            |_| Ok(()),
        )
    }

    fn run_on_ray(&mut self, r: &RayRequest) -> Result<RayRun, Error> {
        let (parts, units, ran, restored) = self.call_with(
            "run_on_ray",
            |py| {
                let det = PyDict::new(py);
                det.set_item("model", &r.detector)?;
                det.set_item("detection_threshold", r.detection_threshold)?;
                det.set_item("device", &r.device)?;
                det.set_item("precision", &r.precision)?;
                let p = PyDict::new(py);
                p.set_item("detector", det)?;
                p.set_item("classifier", &r.classifier)?;
                p.set_item("detector_mode", py.None())?;
                p.set_item("classifier_manifest", &r.classifier_manifest)?;
                p.set_item("score_threshold", r.score_threshold)?;
                p.set_item("maxlag_s", r.maxlag_s)?;
                p.set_item("language", &r.language)?;
                p.set_item("disabled_classes", &r.disabled_classes)?;
                p.set_item("bird_head", r.bird_head)?;
                p.set_item("device", &r.device)?;
                p.set_item("precision", &r.precision)?;
                let options = PyDict::new(py);
                options.set_item("address", &r.address)?;
                options.set_item("actors", r.actors)?;
                options.set_item("checkpoint_dir", &r.checkpoint_dir)?;
                options.set_item("keep_embeddings", r.keep_embeddings)?;
                options.set_item("progress", r.progress)?;
                let args = (r.inputs.clone(), p, options);
                args.into_pyobject(py)
            },
            |v| {
                let (res, units, ran, restored): (
                    Bound<'_, PyPipelineResults>,
                    usize,
                    usize,
                    usize,
                ) = v.extract()?;
                let parts = res.get().core_parts();
                Ok((parts, units, ran, restored))
            },
        )?;
        let (res, videos, manifest, settings, threshold, root) = parts;
        let outcome = Outcome::decided(res, videos, manifest, settings, threshold, root)?;
        Ok(RayRun {
            outcome,
            units,
            ran,
            restored,
        })
    }

    fn fetch_models(&mut self, ids: &[String], progress: bool) -> Result<(), Error> {
        self.call_with(
            "fetch_models",
            |py| (ids.to_vec(), progress).into_pyobject(py),
            |_| Ok(()),
        )
    }
}
