//! Binding of what `models quantize` reads from a graph (`crate::convert::onnx_nodes`) for
//! ONNX Runtime's quantisation tools, which stay in Python (`deepfaune_rs/quantize.py`).

use std::path::PathBuf;

use pyo3::prelude::*;

use super::errors::IntoPyResult;
use crate::convert::onnx_nodes::static_plan;

/// A static quantisation's facts of the ONNX file at ``path``: the input the calibration
/// images feed, and the convolutions left in float (the first, and the detection head's).
#[pyfunction]
fn int8_static_plan(py: Python<'_>, path: PathBuf) -> PyResult<(String, Vec<String>)> {
    let plan = py.detach(|| static_plan(&path)).py()?;
    Ok((plan.input, plan.float_convs))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(int8_static_plan, m)?)
}
