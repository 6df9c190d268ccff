//! Binding of the text progress bar (`crate::progress`): written to Python's `sys.stderr`, so a
//! notebook or a test captures it.

use std::sync::Mutex;

use pyo3::prelude::*;

/// A text progress bar on ``sys.stderr`` titled ``desc`` counting ``unit`` (``"B"``: bytes):
/// call it with ``(done, total)``; redrawn at most five times a second, the last call ends the
/// line.
#[pyclass(module = "deepfaune_rs._core", name = "TextBar")]
pub struct PyTextBar(Mutex<crate::progress::TextBar>);

#[pymethods]
impl PyTextBar {
    #[new]
    #[pyo3(signature = (desc, unit = "img"))]
    fn new(desc: &str, unit: &str) -> Self {
        PyTextBar(Mutex::new(crate::progress::TextBar::new(desc, unit)))
    }

    fn __call__(&self, py: Python<'_>, done: u64, total: u64) -> PyResult<()> {
        let text = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .update(done, total);
        if let Some(text) = text {
            let stderr = py.import("sys")?.getattr("stderr")?;
            stderr.call_method1("write", (text,))?;
            stderr.call_method0("flush")?;
        }
        Ok(())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyTextBar>()
}
