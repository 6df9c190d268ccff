//! Bindings of the conversion ([`crate::convert::run`]) and the detector builder
//! ([`crate::convert::yolo`]): types only.

use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::convert::from_py;
use super::errors::IntoPyResult;
use crate::convert::{run, yolo, ConvertError};

/// Converts the PyTorch checkpoint `src` to ONNX at `dest` (default: `src` with the `.onnx`
/// suffix), atomically (a temporary file in the same folder, then a rename); never over `src`.
///
/// `kind` is found from the file when not given; `size` is a classifier's input size (default:
/// the backbone's DeepFaune size, 182 for DINOv2, 224 for DINOv3). With `check` the model is
/// loaded and run once in ONNX Runtime before it is written. `converter_version` replaces
/// `CONVERTER_VERSION` in the stamp (how a test plays a converter upgrade). Returns `output`,
/// `kind`, `sha256` (of the ONNX), `source_sha256`, `converter_version` and `seconds`.
#[pyfunction]
#[pyo3(signature = (src, dest=None, *, kind=None, size=None, check=true, converter_version=None))]
fn convert<'py>(
    py: Python<'py>,
    src: PathBuf,
    dest: Option<PathBuf>,
    kind: Option<String>,
    size: Option<u32>,
    check: bool,
    converter_version: Option<String>,
) -> PyResult<Bound<'py, PyDict>> {
    let version = converter_version.as_deref();
    let report = py
        .detach(|| run::convert(&src, dest.as_deref(), kind.as_deref(), size, check, version))
        .py()?;
    let d = PyDict::new(py);
    d.set_item("output", report.output.to_string_lossy())?;
    d.set_item("kind", report.kind)?;
    d.set_item("sha256", report.sha256)?;
    d.set_item("source_sha256", report.source_sha256)?;
    d.set_item("converter_version", report.converter_version)?;
    d.set_item("seconds", report.seconds)?;
    Ok(d)
}

/// The serialized ONNX model of an ultralytics (YOLOv8, YOLO11) or YOLOv5 detection checkpoint
/// (as `read_checkpoint` returns it): input `images` [batch, 3, height, width] (float 0..1),
/// output `output0` as the model returns it in eval mode; its metadata holds `layout`,
/// `stride`, `nc` and `names`.
#[pyfunction]
fn build_detector<'py>(py: Python<'py>, ckpt: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let value = from_py(ckpt, 0)?;
    let bytes = py
        .detach(|| -> Result<Vec<u8>, ConvertError> {
            let (graph, meta) = yolo::build_detector(&value)?;
            let meta: Vec<(&str, &str)> =
                meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            Ok(graph.to_model_bytes(yolo::OPSET, &meta))
        })
        .py()?;
    Ok(PyBytes::new(py, &bytes))
}

/// `"yolov8"` (ultralytics Detect: [b, 4 + nc, N]) or `"yolov5"` (anchor-based Detect:
/// [b, N, 5 + nc]) for a detection checkpoint.
#[pyfunction]
fn detector_layout(ckpt: &Bound<'_, PyAny>) -> PyResult<&'static str> {
    yolo::detector_layout(&from_py(ckpt, 0)?).py()
}

/// `classifier` (DeepFaune: `{"args", "state_dict"}`), `bird_head` (a state dict of
/// `bird_model.*`) or `detector` (ultralytics / YOLOv5: a pickled model under `model` or `ema`).
#[pyfunction]
fn checkpoint_kind(ckpt: &Bound<'_, PyAny>) -> PyResult<&'static str> {
    run::checkpoint_kind(&from_py(ckpt, 0)?).py()
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    m.add_function(wrap_pyfunction!(build_detector, m)?)?;
    m.add_function(wrap_pyfunction!(detector_layout, m)?)?;
    m.add_function(wrap_pyfunction!(checkpoint_kind, m)?)?;
    m.add("CONVERTER_VERSION", run::CONVERTER_VERSION)?;
    Ok(())
}
