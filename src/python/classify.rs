//! Binding of the stand-alone classifier: `Classifier` (images or files plus boxes the caller
//! brings, to logits and embeddings).

use std::path::PathBuf;
use std::sync::Mutex;

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::args::{require, text};
use super::detect::session_options;
use super::errors::{invalid, shape_error, IntoPyResult};
use super::image_io::to_rgb;
use super::locks::{try_lock, wait_for};
use crate::classify::given::{classify_boxes, Classified, CropRule};
use crate::classify::{load_classifier, OnnxClassifier};
use crate::image_io::{read_image, DecodeOptions};
use crate::manifest::classifier::{canonical_language, DEFAULT_CLASSIFIER};
use crate::reid::embed::BoxFormat;

/// `(logits, embeddings, bird_logits, failures)`.
type Outputs<'py> = (
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray2<f32>>,
    Bound<'py, PyArray2<f32>>,
    Vec<(usize, String)>,
);

/// One row per input, in order: ``logits`` ``[n, classes]`` (raw, the columns are
/// ``class_names``), ``embeddings`` ``[n, d]`` (``[n, 0]`` unless kept), ``bird_logits``
/// ``[n, groups]`` (``[n, 0]`` without the bird head). An input that could not be classified
/// (an unreadable file, a box without pixels) has NaN rows and is listed in ``failures`` as
/// ``(index, reason)``.
#[pyclass(module = "deepfaune_rs", name = "Classification", frozen)]
pub struct PyClassification {
    /// Raw logits ``[n, classes]``.
    #[pyo3(get)]
    logits: Py<PyArray2<f32>>,
    /// Embeddings ``[n, d]`` (``[n, 0]`` unless kept).
    #[pyo3(get)]
    embeddings: Py<PyArray2<f32>>,
    /// Bird-head logits ``[n, groups]`` (``[n, 0]`` without the bird head).
    #[pyo3(get)]
    bird_logits: Py<PyArray2<f32>>,
    /// The logits' columns.
    #[pyo3(get)]
    class_names: Vec<String>,
    /// ``(index, reason)`` of each input that could not be classified.
    #[pyo3(get)]
    failures: Vec<(usize, String)>,
    len: usize,
}

#[pymethods]
impl PyClassification {
    fn __len__(&self) -> usize {
        self.len
    }
}

/// The classifier of a :class:`Pipeline` without its detector: images plus boxes to
/// logits and embeddings, with the pipeline's crop (DeepFaune's square around the box, from
/// the full-resolution upright image, Pillow's bicubic, ImageNet normalisation) and the same
/// model. ``classifier``, ``classifier_manifest``, ``language`` and ``bird_head`` as for
/// :class:`Pipeline`; ``batch_size`` crops per inference call, ``intra_threads`` ONNX
/// Runtime's threads (0: its default), ``device``, ``precision`` and ``cache_dir`` as for
/// :class:`Pipeline`; missing built-in weights raise one
/// ``WeightsNotFoundError`` unless ``fetch=True``.
///
/// Sequences, thresholds and labels are the pipeline's work: give the boxes to
/// :meth:`Pipeline.run` (``detections=``) for DeepFaune's table.
#[pyclass(module = "deepfaune_rs", name = "Classifier")]
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
    #[pyo3(signature = (classifier = PathBuf::from(DEFAULT_CLASSIFIER), *, classifier_manifest = None,
                        language = "en", bird_head = false, batch_size = 8, intra_threads = 0, device = "cpu",
                        precision = "fp32", cache_dir = None, fetch = false),
           text_signature = "(classifier='deepfaune-v15', *, classifier_manifest=None, language='en', \
                             bird_head=False, batch_size=8, intra_threads=0, device='cpu', precision='fp32', \
                             cache_dir=None, fetch=False)")]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        classifier: PathBuf,
        classifier_manifest: Option<PathBuf>,
        language: &str,
        bird_head: bool,
        batch_size: usize,
        intra_threads: usize,
        device: &str,
        precision: &str,
        cache_dir: Option<PathBuf>,
        fetch: bool,
    ) -> PyResult<Self> {
        if precision == "fp32" {
            // An int8 variant's own absence is the core's error.
            let none = pyo3::types::PyTuple::empty(py).into_any();
            require(py, &none, Some(&classifier), bird_head, None, fetch)?;
        }
        let classifier_manifest = classifier_manifest.as_deref().map(text).transpose()?;
        let session = session_options(intra_threads, false, device, precision, cache_dir)?;
        let spec = text(&classifier)?;
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

    /// Classifies one crop per image. ``images``: file paths (decoded upright, EXIF
    /// orientation applied, as a run decodes them) or ``HxWx3`` uint8 RGB arrays. ``boxes``:
    /// one per image, ``[x1, y1, x2, y2]`` in pixels (``box_format="megadetector"``:
    /// MegaDetector's ``[x, y, w, h]`` as fractions of the image), None for the whole image;
    /// None: every image whole. ``square=True`` cuts DeepFaune's square around the box (as
    /// after detection), ``False`` the box itself.
    #[pyo3(signature = (images, boxes = None, *, box_format = "xyxy", square = true, keep_embeddings = true))]
    fn classify<'py>(
        &self,
        py: Python<'py>,
        images: Vec<Bound<'py, PyAny>>,
        boxes: Option<Vec<Option<[f64; 4]>>>,
        box_format: &str,
        square: bool,
        keep_embeddings: bool,
    ) -> PyResult<PyClassification> {
        let boxes = boxes.unwrap_or_else(|| vec![None; images.len()]);
        let os_path = py.import("os")?.getattr("PathLike")?;
        let mut paths = Vec::with_capacity(images.len());
        for i in &images {
            if i.is_instance_of::<pyo3::types::PyString>() || i.is_instance(&os_path)? {
                paths.push(i.extract::<PathBuf>()?);
            }
        }
        let out = if paths.len() == images.len() {
            self.classify_paths(py, paths, &boxes, box_format, square, keep_embeddings)?
        } else {
            let contiguous = py.import("numpy")?.getattr("ascontiguousarray")?;
            let kw = pyo3::types::PyDict::new(py);
            kw.set_item("dtype", "uint8")?;
            let arrays = images
                .iter()
                .map(|i| Ok(contiguous.call((i,), Some(&kw))?.extract()?))
                .collect::<PyResult<Vec<PyReadonlyArray3<'py, u8>>>>()?;
            self.classify_arrays(py, arrays, &boxes, box_format, square, keep_embeddings)?
        };
        let (logits, embeddings, bird_logits, failures) = out;
        Ok(PyClassification {
            len: logits.shape()[0],
            logits: logits.unbind(),
            embeddings: embeddings.unbind(),
            bird_logits: bird_logits.unbind(),
            class_names: self.class_names.clone(),
            failures,
        })
    }
}

impl PyClassifier {
    /// Classifies `HxWx3` uint8 RGB images, one box each.
    fn classify_arrays<'py>(
        &self,
        py: Python<'py>,
        images: Vec<PyReadonlyArray3<'py, u8>>,
        boxes: &[Option<[f64; 4]>],
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
                boxes,
                format,
                rule,
                self.batch_size,
                keep_embeddings,
            ))
        })?;
        outputs(py, n, res.py()?)
    }

    /// Classifies image files (decoded upright, EXIF orientation applied, as a run decodes
    /// them), one box each. A file that cannot be read is a NaN row and a failure.
    fn classify_paths<'py>(
        &self,
        py: Python<'py>,
        paths: Vec<PathBuf>,
        boxes: &[Option<[f64; 4]>],
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
                boxes,
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
    m.add_class::<PyClassification>()?;
    m.add_class::<PyClassifier>()
}
