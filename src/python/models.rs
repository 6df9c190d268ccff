//! Bindings for model variants and devices: what `deepfaune-rs models quantize` and
//! `deepfaune-rs devices` need from the core.

use std::path::{Path, PathBuf};

use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::errors::IntoPyResult;
use crate::detect::detector::model_source;
use crate::detect::loader::{resolve, LoadOptions};
use crate::detect::OnnxDetector;
use crate::error::{Error, ModelError};
use crate::image_io::{read_image, DecodeOptions};
use crate::manifest::classifier::{
    builtin_classifier, classifier_weights_path, ClassifierManifest,
};
use crate::manifest::int8::{
    int8_file_name, int8_manifest_path, int8_manifest_text, manifest_text,
};
use crate::manifest::{builtin, model_dir, DetectorManifest, EMBEDDED_DETECTOR};
use crate::runtime::{available_devices as devices, ModelSource};

/// The devices (execution providers) of the loaded ONNX Runtime build, `cpu` first.
#[pyfunction]
fn available_devices() -> PyResult<Vec<&'static str>> {
    devices().py()
}

/// What quantising the model `spec` (a built-in id or a manifest `.toml`) involves: `kind`
/// (detector / classifier), `id`, `source` (the fp32 ONNX path, None for the embedded detector),
/// `output` (the int8 ONNX) and `manifest` (the int8 manifest), both in the model directory (for
/// a built-in) or beside the given manifest. Missing fp32 weights raise WeightsNotFoundError.
#[pyfunction]
fn int8_plan<'py>(py: Python<'py>, spec: &str) -> PyResult<Bound<'py, PyDict>> {
    let (kind, _, dir) = manifest_text(spec).py()?;
    let from_file = dir.is_some();
    let dir = dir.unwrap_or_else(model_dir);
    let (id, file, source) = match kind.as_str() {
        "detector" => {
            let m = if from_file {
                DetectorManifest::from_file(Path::new(spec))
            } else {
                builtin(spec)
            }
            .py()?;
            let path = match model_source(&m, None).py()? {
                ModelSource::File(p) => Some(p),
                ModelSource::Static(_) => None,
            };
            (m.header.id, m.header.weights.file, path)
        }
        "classifier" => {
            let m = if from_file {
                ClassifierManifest::from_file(Path::new(spec))
            } else {
                builtin_classifier(spec)
            }
            .py()?;
            let p = classifier_weights_path(&m);
            if !p.is_file() {
                return Err(ModelError::WeightsMissing {
                    path: p,
                    hint: format!("get it first: `deepfaune-rs models fetch {}`", m.id),
                })
                .py();
            }
            (m.header.id, m.header.weights.file, Some(p))
        }
        other => {
            return Err(Error::InvalidArgument(format!(
                "'{spec}' is a {other} manifest: only detectors and classifiers have int8 variants"
            )))
            .py()
        }
    };
    let d = PyDict::new(py);
    d.set_item("kind", kind)?;
    d.set_item("output", dir.join(int8_file_name(&file)))?;
    d.set_item("manifest", int8_manifest_path(&dir, &id))?;
    d.set_item("id", id)?;
    d.set_item("source", source)?;
    Ok(d)
}

/// The TOML text of the int8 variant's manifest of `spec` (see `src/manifest/int8.rs`).
#[pyfunction]
fn int8_manifest(spec: &str, int8_file: &str, sha256: &str, method: &str) -> PyResult<String> {
    let (_, text, _) = manifest_text(spec).py()?;
    int8_manifest_text(&text, int8_file, sha256, method).py()
}

/// The embedded default detector's ONNX bytes.
#[pyfunction]
fn embedded_detector(py: Python<'_>) -> Bound<'_, PyBytes> {
    PyBytes::new(py, EMBEDDED_DETECTOR)
}

/// The letterboxed input tensor `[1, 3, H, W]` of the detector `model` (id or manifest) for the
/// image at `path`, as a detection run prepares it (for calibrating a quantised model).
#[pyfunction]
fn detector_input<'py>(
    py: Python<'py>,
    model: &str,
    path: PathBuf,
) -> PyResult<Bound<'py, numpy::PyArray4<f32>>> {
    let spec = model.to_string();
    let (tensor, h, w) = py
        .detach(|| -> Result<_, Error> {
            let (m, _) = resolve(&spec, &LoadOptions::default()).or_else(|e| match e {
                // Calibration needs the manifest only, not the fp32 weights' location.
                ModelError::WeightsMissing { .. } => {
                    Ok((builtin(&spec)?, ModelSource::Static(&[])))
                }
                other => Err(other),
            })?;
            let img = read_image(Path::new(&path), &DecodeOptions::default()).map_err(|e| {
                Error::Image {
                    path: path.clone(),
                    source: e,
                }
            })?;
            let p = OnnxDetector::prepare(&m, &img.image);
            Ok((
                p.tensor,
                p.letterbox.in_h as usize,
                p.letterbox.in_w as usize,
            ))
        })
        .py()?;
    PyArray1::from_vec(py, tensor).reshape([1, 3, h, w])
}

/// IANA media type of a file name, from its extension (Camtrap DP's `fileMediatype`).
#[pyfunction]
fn media_type(name: &str) -> &'static str {
    crate::export::camtrap_dp::media_type(name)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    use crate::image_io::walk::{UNSUPPORTED_VIDEO_EXTENSIONS, VIDEO_EXTENSIONS};
    m.add(
        "IMAGE_EXTENSIONS",
        crate::image_io::IMAGE_EXTENSIONS.to_vec(),
    )?;
    m.add("VIDEO_EXTENSIONS", VIDEO_EXTENSIONS.to_vec())?;
    m.add(
        "UNSUPPORTED_VIDEO_EXTENSIONS",
        UNSUPPORTED_VIDEO_EXTENSIONS.to_vec(),
    )?;
    m.add_function(wrap_pyfunction!(media_type, m)?)?;
    m.add_function(wrap_pyfunction!(available_devices, m)?)?;
    m.add_function(wrap_pyfunction!(int8_plan, m)?)?;
    m.add_function(wrap_pyfunction!(int8_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(embedded_detector, m)?)?;
    m.add_function(wrap_pyfunction!(detector_input, m)?)?;
    Ok(())
}
