//! Binding of the command line (`crate::cli`): `cli_main(argv, hooks)` runs it without the GIL;
//! [`PyHooks`] is the host, calling the methods of `deepfaune_rs.cli._Hooks` under the GIL.
//! The hooks of each command group are implemented beside it (`cli_run.rs`, `cli_admin.rs`,
//! `cli_reid.rs`).

use std::ffi::OsString;

use pyo3::prelude::*;

use crate::cli::{Io, Progress};
use crate::error::Error;

/// The Python host of the command line: a `deepfaune_rs.cli._Hooks` object.
pub(super) struct PyHooks {
    pub(super) hooks: Py<PyAny>,
}

impl PyHooks {
    /// Calls `hooks.<name>(*args)` under the GIL. An exception that is not an `Exception`
    /// (Ctrl-C) is [`Error::Cancelled`]; any other is an error with the exception's text.
    pub(super) fn call<A>(&self, name: &str, args: A) -> Result<Py<PyAny>, Error>
    where
        A: for<'py> pyo3::call::PyCallArgs<'py>,
    {
        Python::attach(|py| {
            self.hooks
                .call_method1(py, name, args)
                .map_err(|e| python_error(py, &e))
        })
    }
}

impl PyHooks {
    /// The Python hooks object (for hooks that build their arguments under the GIL).
    pub(super) fn object<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.hooks.bind(py)
    }
}

/// A Python exception as a core error: Ctrl-C (any `BaseException` that is not an `Exception`)
/// cancels; any other keeps its text.
pub(super) fn python_error(py: Python<'_>, e: &PyErr) -> Error {
    if e.is_instance_of::<pyo3::exceptions::PyException>(py) {
        Error::InvalidArgument(e.to_string())
    } else {
        Error::Cancelled
    }
}

impl Io for PyHooks {
    fn out(&mut self, text: &str) {
        let _ = self.call("out", (text,));
    }

    fn err(&mut self, text: &str) {
        let _ = self.call("err", (text,));
    }

    fn progress(&mut self, desc: &str, unit: &str) -> Option<Progress> {
        let bar = self.call("progress", (desc, unit)).ok()?;
        if Python::attach(|py| bar.is_none(py)) {
            return None;
        }
        Some(Box::new(move |done, total| {
            Python::attach(|py| {
                py.check_signals()
                    .and_then(|_| bar.call1(py, (done, total)).map(|_| ()))
                    .map_err(|_| Error::Cancelled)
            })
        }))
    }

    fn has_module(&mut self, name: &str) -> bool {
        self.call("has_module", (name,))
            .and_then(|v| {
                Python::attach(|py| v.extract::<bool>(py).map_err(|e| python_error(py, &e)))
            })
            .unwrap_or(false)
    }
}

/// Runs the command line `argv` (without the program name) with `hooks`
/// (`deepfaune_rs.cli._Hooks`) and returns the exit status. The GIL is released while it runs.
#[pyfunction]
pub(super) fn cli_main(py: Python<'_>, argv: Vec<OsString>, hooks: Py<PyAny>) -> i32 {
    let mut host = PyHooks { hooks };
    py.detach(|| crate::cli::main(&argv, &mut host))
}
