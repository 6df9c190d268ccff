//! Binding of the stand-alone classifier: `Classifier` (images or files plus boxes the caller
//! brings, to logits and embeddings).

use std::path::PathBuf;
use std::sync::Mutex;

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray3};
use pyo3::prelude::*;

use super::detect::session_options;
use super::errors::{invalid, shape_error, IntoPyResult};
use super::image_io::to_rgb;
use super::locks::{try_lock, wait_for};
use crate::classify::given::{classify_boxes, Classified, CropRule};
use crate::classify::{load_classifier, OnnxClassifier};
use crate::image_io::{read_image, DecodeOptions};
use crate::manifest::classifier::canonical_language;
use crate::reid::embed::BoxFormat;

/// `(logits, embeddings, bird_logits, failures)`.
type Outputs<'py> = (
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray2<f32>>,
    Vec<(usize, String)>,
);

/// A classifier alone, for boxes found elsewhere.
#[pyclass(module = "deepfaune_rs._core", name = "Classifier")]
pub struct PyClassifier {
    /// Locked only with the GIL released (see `super::locks`).
    classifier: Mutex<OnnxClassifier>,
    class_names: Vec<String>,
    input_size: u32,
    temperature: f32,
    batch_size: usize,
}

#[pymethods]
impl PyClassifier {
    #[new]
    #[pyo3(signature = (classifier = "deepfaune-v15", *, classifier_manifest = None, language = "en",
                        bird_head = false, batch_size = 8, intra_threads = 0, device = "cpu",
                        precision = "fp32", cache_dir = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        classifier: &str,
        classifier_manifest: Option<String>,
        language: &str,
        bird_head: bool,
        batch_size: usize,
        intra_threads: usize,
        device: &str,
        precision: &str,
        cache_dir: Option<PathBuf>,
    ) -> PyResult<Self> {
        let session = session_options(intra_threads, false, device, precision, cache_dir)?;
        let spec = classifier.to_string();
        let clf = py
            .detach(|| load_classifier(&spec, classifier_manifest.as_deref(), bird_head, session))
            .py()?;
        let m = &clf.manifest;
        let Some(names) = m.names(canonical_language(language)) else {
            return Err(invalid(format!(
                "language '{language}' is not available for {} (available: {})",
                m.id,
                m.languages().join(", ")
            )));
        };
        Ok(PyClassifier {
            class_names: names.classes.to_vec(),
            input_size: m.input.size,
            temperature: m.temperatures().image,
            batch_size: batch_size.max(1),
            classifier: Mutex::new(clf),
        })
    }

    /// The classes (the logits' columns) in the classifier's language.
    #[getter]
    fn class_names(&self) -> Vec<String> {
        self.class_names.clone()
    }
    /// The side of the square input, in pixels.
    #[getter]
    fn input_size(&self) -> u32 {
        self.input_size
    }
    /// The single-image temperature of DeepFaune's softmax (the manifest's).
    #[getter]
    fn temperature(&self) -> f32 {
        self.temperature
    }

    /// Classifies `HxWx3` uint8 RGB images, one box each (`[x1, y1, x2, y2]` pixels, or
    /// MegaDetector's normalised `[x, y, w, h]` with `box_format="megadetector"`; None: the
    /// whole image). `square`: DeepFaune's square crop around the box, else the box as it is.
    #[pyo3(signature = (images, boxes, box_format = "xyxy", square = true, keep_embeddings = true))]
    fn classify<'py>(
        &self,
        py: Python<'py>,
        images: Vec<PyReadonlyArray3<'py, u8>>,
        boxes: Vec<Option<[f64; 4]>>,
        box_format: &str,
        square: bool,
        keep_embeddings: bool,
    ) -> PyResult<Outputs<'py>> {
        let images = images.iter().map(to_rgb).collect::<PyResult<Vec<_>>>()?;
        let (format, rule) = options(box_format, square)?;
        let n = images.len();
        let res = py.detach(|| {
            let mut clf = wait_for(|| try_lock(&self.classifier))?;
            Ok::<_, PyErr>(classify_boxes(
                &mut clf,
                n,
                |i| Ok(images[i].clone()),
                &boxes,
                format,
                rule,
                self.batch_size,
                keep_embeddings,
            ))
        })?;
        outputs(py, n, res.py()?)
    }

    /// Classifies image files (decoded upright, EXIF orientation applied, as a run decodes
    /// them), one box each as in `classify`. A file that cannot be read is a NaN row and a
    /// failure `(index, reason)`.
    #[pyo3(signature = (paths, boxes, box_format = "xyxy", square = true, keep_embeddings = true))]
    fn classify_files<'py>(
        &self,
        py: Python<'py>,
        paths: Vec<PathBuf>,
        boxes: Vec<Option<[f64; 4]>>,
        box_format: &str,
        square: bool,
        keep_embeddings: bool,
    ) -> PyResult<Outputs<'py>> {
        let (format, rule) = options(box_format, square)?;
        let n = paths.len();
        let opts = DecodeOptions::default();
        let res = py.detach(|| {
            let mut clf = wait_for(|| try_lock(&self.classifier))?;
            Ok::<_, PyErr>(classify_boxes(
                &mut clf,
                n,
                |i| {
                    read_image(&paths[i], &opts)
                        .map(|d| d.image)
                        .map_err(|e| e.to_string())
                },
                &boxes,
                format,
                rule,
                self.batch_size,
                keep_embeddings,
            ))
        })?;
        outputs(py, n, res.py()?)
    }
}

fn options(box_format: &str, square: bool) -> PyResult<(BoxFormat, CropRule)> {
    let format = match box_format {
        "xyxy" => BoxFormat::PixelsXyxy,
        "megadetector" | "md" => BoxFormat::NormalizedXywh,
        other => {
            return Err(invalid(format!(
                "box_format '{other}': use 'xyxy' or 'megadetector'"
            )))
        }
    };
    let rule = if square {
        CropRule::Square
    } else {
        CropRule::Exact
    };
    Ok((format, rule))
}

fn outputs(py: Python<'_>, n: usize, res: Classified) -> PyResult<Outputs<'_>> {
    let o = res.outputs;
    let array = |v: Vec<f32>| -> PyResult<Bound<'_, PyArray2<f32>>> {
        let w = v.len().checked_div(n).unwrap_or(0);
        Ok(Array2::from_shape_vec((n, w), v)
            .map_err(shape_error)?
            .into_pyarray(py))
    };
    Ok((
        array(o.logits)?,
        array(o.embeddings)?,
        array(o.bird_logits)?,
        res.failures,
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyClassifier>()
}
