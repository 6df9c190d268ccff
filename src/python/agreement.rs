//! Bindings of the comparison of two runs (`deepfaune_rs.agreement`): the report's figures from
//! the two runs' result objects (their columns read here, the figures computed by
//! `crate::results::agreement`).

use numpy::{AllowTypeChange, IntoPyArray, PyArray1, PyArrayLikeDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::results::agreement::{
    argmax_rows, box_iou as core_box_iou, classification_agreement, detection_agreement,
    Classifications, Decisions,
};

use super::errors::invalid;

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

/// A run's detection columns, read from its results object.
struct DetectionColumns {
    category: Vec<u8>,
    best_detection: Vec<i64>,
    boxes: Vec<[f64; 4]>,
}

impl DetectionColumns {
    fn of(results: &Bound<'_, PyAny>) -> PyResult<Self> {
        let category: PyArrayLikeDyn<'_, u8, AllowTypeChange> =
            results.getattr("category")?.extract()?;
        let best: PyArrayLikeDyn<'_, i64, AllowTypeChange> =
            results.getattr("best_detection")?.extract()?;
        let cols = DetectionColumns {
            category: category.as_array().iter().copied().collect(),
            best_detection: best.as_array().iter().copied().collect(),
            boxes: boxes_of(&results.getattr("boxes")?, "boxes")?,
        };
        if cols.category.len() != cols.best_detection.len() {
            return Err(invalid("category and best_detection of different lengths"));
        }
        Ok(cols)
    }

    fn view(&self) -> Decisions<'_> {
        Decisions {
            category: &self.category,
            best_detection: &self.best_detection,
            boxes: &self.boxes,
        }
    }
}

/// A run's classifier columns, read from its results object.
struct ClassifierColumns {
    classified: Vec<bool>,
    top1: Vec<usize>,
    prediction: Vec<String>,
}

impl ClassifierColumns {
    fn of(results: &Bound<'_, PyAny>, n: usize) -> PyResult<Self> {
        let classified: PyArrayLikeDyn<'_, bool, AllowTypeChange> =
            results.getattr("classified")?.extract()?;
        let logits: PyArrayLikeDyn<'_, f32, AllowTypeChange> =
            results.getattr("logits")?.extract()?;
        let n_classes = match logits.shape() {
            [_, c] => *c,
            _ => return Err(invalid("logits must be [images, classes]")),
        };
        let values: Vec<f32> = logits.as_array().iter().copied().collect();
        let cols = ClassifierColumns {
            classified: classified.as_array().iter().copied().collect(),
            top1: argmax_rows(&values, n_classes),
            prediction: results.getattr("prediction")?.extract()?,
        };
        if cols.classified.len() != n || cols.top1.len() != n {
            return Err(invalid(
                "classifier columns of another length than the images",
            ));
        }
        Ok(cols)
    }

    fn view(&self) -> Classifications<'_> {
        Classifications {
            classified: &self.classified,
            top1: &self.top1,
            prediction: &self.prediction,
        }
    }
}

/// The report of `deepfaune_rs.agreement.agreement`: `fp32` and `int8` are each
/// `(detections, pipeline_results or None)` of the same images.
#[pyfunction]
#[pyo3(signature = (fp32, int8, detector, classifier, fp32_seconds, int8_seconds))]
fn agreement_report<'py>(
    py: Python<'py>,
    fp32: (Bound<'py, PyAny>, Option<Bound<'py, PyAny>>),
    int8: (Bound<'py, PyAny>, Option<Bound<'py, PyAny>>),
    detector: &str,
    classifier: Option<&str>,
    fp32_seconds: f64,
    int8_seconds: f64,
) -> PyResult<Bound<'py, PyDict>> {
    let (d32, d8) = (
        DetectionColumns::of(&fp32.0)?,
        DetectionColumns::of(&int8.0)?,
    );
    if d32.category.len() != d8.category.len() {
        return Err(invalid("the two runs have different numbers of images"));
    }
    let det = detection_agreement(&d32.view(), &d8.view());
    let r = PyDict::new(py);
    r.set_item("images", det.images)?;
    r.set_item("detector", detector)?;
    r.set_item("classifier", classifier)?;
    r.set_item("decision_agreement", det.decision_agreement)?;
    let changes = PyDict::new(py);
    for (k, v) in &det.decision_changes {
        changes.set_item(k, v)?;
    }
    r.set_item("decision_changes", changes)?;
    r.set_item("boxes_compared", det.boxes_compared)?;
    r.set_item("best_box_iou_mean", det.best_box_iou_mean)?;
    r.set_item("best_box_iou_min", det.best_box_iou_min)?;
    r.set_item("best_box_iou_ge_0_9", det.best_box_iou_ge_0_9)?;
    r.set_item("fp32_seconds", fp32_seconds)?;
    r.set_item("int8_seconds", int8_seconds)?;
    if let (Some(p32), Some(p8)) = (&fp32.1, &int8.1) {
        let n = d32.category.len();
        let (c32, c8) = (
            ClassifierColumns::of(p32, n)?,
            ClassifierColumns::of(p8, n)?,
        );
        let cl = classification_agreement(&d32.view(), &d8.view(), &c32.view(), &c8.view());
        r.set_item("classified_both", cl.classified_both)?;
        r.set_item("top1_agreement", cl.top1_agreement)?;
        r.set_item(
            "sequence_prediction_agreement",
            cl.sequence_prediction_agreement,
        )?;
    }
    Ok(r)
}

/// Adds the agreement functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(box_iou, m)?)?;
    m.add_function(wrap_pyfunction!(agreement_report, m)?)?;
    Ok(())
}
