//! Bindings of the comparison of fp32 and int8 runs (`deepfaune_rs.agreement`): the runs and
//! the figures are the core's (`crate::pipeline::agreement`, `crate::results::agreement`); the
//! report goes to Python as a dict and comes back from one for its text.

use std::path::PathBuf;

use numpy::{AllowTypeChange, IntoPyArray, PyArray1, PyArrayLikeDyn};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::errors::{invalid, IntoPyResult};
use crate::manifest::classifier::DEFAULT_CLASSIFIER;
use crate::pipeline::agreement::AgreementOptions;
use crate::results::agreement::{
    box_iou as core_box_iou, ClassificationAgreement, DetectionAgreement, Report,
};

/// Rows of 4 values from any array-like (`np.asarray(a).reshape(-1, 4)`).
fn boxes_of(ob: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<[f64; 4]>> {
    let a: PyArrayLikeDyn<'_, f64, AllowTypeChange> = ob.extract()?;
    let values: Vec<f64> = a.as_array().iter().copied().collect();
    if !values.len().is_multiple_of(4) {
        return Err(invalid(format!(
            "{what}: {} values are not rows of 4 (x1, y1, x2, y2)",
            values.len()
        )));
    }
    Ok(values
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect())
}

/// Row-wise IoU of two ``[n, 4]`` arrays of ``x1, y1, x2, y2`` boxes.
#[pyfunction]
fn box_iou<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (a, b) = (boxes_of(a, "a")?, boxes_of(b, "b")?);
    if a.len() != b.len() {
        return Err(invalid(format!("{} boxes against {}", a.len(), b.len())));
    }
    let iou: Vec<f64> = a.iter().zip(&b).map(|(p, q)| core_box_iou(p, q)).collect();
    Ok(iou.into_pyarray(py))
}

/// The report as a dict (the keys of `deepfaune_rs.agreement.agreement`, in its order).
fn report_dict<'py>(py: Python<'py>, r: &Report) -> PyResult<Bound<'py, PyDict>> {
    let d = &r.detection;
    let out = PyDict::new(py);
    out.set_item("images", d.images)?;
    out.set_item("detector", &r.detector)?;
    out.set_item("classifier", &r.classifier)?;
    out.set_item("decision_agreement", d.decision_agreement)?;
    let changes = PyDict::new(py);
    for (k, v) in &d.decision_changes {
        changes.set_item(k, v)?;
    }
    out.set_item("decision_changes", changes)?;
    out.set_item("boxes_compared", d.boxes_compared)?;
    out.set_item("best_box_iou_mean", d.best_box_iou_mean)?;
    out.set_item("best_box_iou_min", d.best_box_iou_min)?;
    out.set_item("best_box_iou_ge_0_9", d.best_box_iou_ge_0_9)?;
    out.set_item("fp32_seconds", r.fp32_seconds)?;
    out.set_item("int8_seconds", r.int8_seconds)?;
    if let Some(c) = &r.classification {
        out.set_item("classified_both", c.classified_both)?;
        out.set_item("top1_agreement", c.top1_agreement)?;
        out.set_item(
            "sequence_prediction_agreement",
            c.sequence_prediction_agreement,
        )?;
    }
    Ok(out)
}

/// A report dict read back (what [`report_dict`] wrote).
fn report_of(r: &Bound<'_, PyAny>) -> PyResult<Report> {
    let get = |k: &str| r.get_item(k);
    let changes = get("decision_changes")?;
    let decision_changes = changes
        .cast::<PyDict>()?
        .iter()
        .map(|(k, v)| Ok((k.extract()?, v.extract()?)))
        .collect::<PyResult<_>>()?;
    let classification = if r.contains("top1_agreement")? {
        Some(ClassificationAgreement {
            classified_both: get("classified_both")?.extract()?,
            top1_agreement: get("top1_agreement")?.extract()?,
            sequence_prediction_agreement: get("sequence_prediction_agreement")?.extract()?,
        })
    } else {
        None
    };
    Ok(Report {
        detector: get("detector")?.extract()?,
        classifier: get("classifier")?.extract()?,
        detection: DetectionAgreement {
            images: get("images")?.extract()?,
            decision_agreement: get("decision_agreement")?.extract()?,
            decision_changes,
            boxes_compared: get("boxes_compared")?.extract()?,
            best_box_iou_mean: get("best_box_iou_mean")?.extract()?,
            best_box_iou_min: get("best_box_iou_min")?.extract()?,
            best_box_iou_ge_0_9: get("best_box_iou_ge_0_9")?.extract()?,
        },
        classification,
        fp32_seconds: get("fp32_seconds")?.extract()?,
        int8_seconds: get("int8_seconds")?.extract()?,
    })
}

/// Runs ``sample`` images of ``inputs`` (evenly spread over the sorted walk; all with ``None``)
/// at fp32 and at int8 and returns the agreement figures: the per-image decision, the IoU of
/// the deciding box when both have one, the classifier's top-1 class on the images both
/// classified, the sequence prediction, and each run's seconds. ``classifier=None`` compares
/// the detector alone.
#[pyfunction]
#[pyo3(signature = (inputs, *, sample = Some(200), detector = "DFbsMDS".to_string(),
                    classifier = Some(DEFAULT_CLASSIFIER.to_string()), device = "cpu".to_string()),
       text_signature = "(inputs, *, sample=200, detector='DFbsMDS', classifier='deepfaune-v15', device='cpu')")]
fn agreement<'py>(
    py: Python<'py>,
    inputs: Vec<PathBuf>,
    sample: Option<i64>,
    detector: String,
    classifier: Option<String>,
    device: String,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = AgreementOptions {
        sample: sample.and_then(|n| usize::try_from(n).ok()),
        detector,
        classifier,
        device,
    };
    // Ctrl-C stops the runs (checked as each image is done).
    let mut interrupted = None;
    let mut check = |_: usize, _: usize| {
        Python::attach(|py| py.check_signals()).map_err(|e| {
            interrupted = Some(e);
            crate::error::Error::Cancelled
        })
    };
    let report = py.detach(|| crate::pipeline::agreement::agreement(&inputs, &opts, &mut check));
    if let Some(e) = interrupted {
        return Err(e);
    }
    let report = report.py()?;
    report_dict(py, &report)
}

/// The report of :func:`agreement` as aligned text lines.
#[pyfunction]
fn format_report(r: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(report_of(r)?.format())
}

/// Adds the agreement functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(box_iou, m)?)?;
    m.add_function(wrap_pyfunction!(agreement, m)?)?;
    m.add_function(wrap_pyfunction!(format_report, m)?)?;
    Ok(())
}
