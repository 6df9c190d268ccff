//! Bindings of the detection stage: `Detector` and its columnar `DetectionResults`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use numpy::{PyArray1, PyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::errors::{to_pyerr, IntoPyResult};
use super::locks::{try_lock, wait_for};
use super::numpy_views::{view1, view2};
use crate::detect::loader::{load, LoadOptions};
use crate::detect::{DetectorMode, DetectorSet};
use crate::error::Error;
use crate::import::megadetector::{Classifications, ImportedDetections, JsonRules};
use crate::results::Failure;
use crate::run::{detect_files, DetectionResults, RunOptions};
use crate::runtime::{Device, SessionOptions};

/// The session options the bindings take: `device` (`cpu`, `cuda`, `directml`, `coreml`,
/// `auto`), `precision` (`fp32`, `int8`) and the folder of ONNX Runtime's optimised graphs.
pub(crate) fn session_options(
    intra_threads: usize,
    spinning: bool,
    device: &str,
    precision: &str,
    cache_dir: Option<PathBuf>,
) -> PyResult<SessionOptions> {
    let device = Device::parse(device).py()?;
    let int8 = match precision.to_ascii_lowercase().as_str() {
        "fp32" | "float32" => false,
        "int8" => true,
        other => {
            return Err(to_pyerr(Error::InvalidArgument(format!(
                "precision '{other}': use 'fp32' or 'int8'"
            ))))
        }
    };
    Ok(SessionOptions {
        intra_threads,
        spinning,
        device,
        int8,
        cache_dir,
    })
}

/// Calls the optional Python progress callback and checks for Ctrl-C; a Python exception is kept
/// in `slot` and the run stops with `Error::Cancelled`.
pub(crate) fn progress_hook<'a>(
    callback: &'a Option<Py<PyAny>>,
    slot: &'a Mutex<Option<PyErr>>,
) -> impl FnMut(usize, usize) -> Result<(), Error> + 'a {
    move |done, total| {
        Python::attach(|py| {
            let r = py.check_signals().and_then(|_| match callback {
                Some(cb) => cb.call1(py, (done, total)).map(|_| ()),
                None => Ok(()),
            });
            r.map_err(|e| {
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Error::Cancelled
            })
        })
    }
}

/// One or two ONNX detectors with DeepFaune's per-image decision.
#[pyclass(module = "deepfaune_rs._core", name = "Detector", frozen)]
pub struct PyDetector {
    /// Locked only with the GIL released (see `super::locks`).
    pub(crate) detectors: Arc<Mutex<DetectorSet>>,
    pub(crate) run: RunOptions,
    /// Ids of the loaded detectors, primary first (fixed at construction: no lock to read).
    models: Vec<String>,
    /// Confidence threshold of the primary detector.
    pub(crate) threshold: f32,
    /// Whether a detector of the set has a person class.
    finds_people: bool,
}

#[pymethods]
impl PyDetector {
    #[new]
    #[pyo3(signature = (model = "md-lite", *, secondary = None, mode = None, threshold = None, manifest = None,
                        weights = None, intra_threads = 0, threads = 0, batch_size = 1, spinning = false,
                        device = "cpu", precision = "fp32", cache_dir = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: &str,
        secondary: Option<String>,
        mode: Option<String>,
        threshold: Option<f32>,
        manifest: Option<String>,
        weights: Option<HashMap<String, PathBuf>>,
        intra_threads: usize,
        threads: usize,
        batch_size: usize,
        spinning: bool,
        device: &str,
        precision: &str,
        cache_dir: Option<PathBuf>,
    ) -> PyResult<Self> {
        let session = session_options(intra_threads, spinning, device, precision, cache_dir)?;
        let mode = match mode.as_deref() {
            None => None,
            Some("single") => Some(DetectorMode::Single),
            Some("backstop") => Some(DetectorMode::Backstop),
            Some("ensemble") => Some(DetectorMode::Ensemble),
            Some(other) => {
                return Err(to_pyerr(Error::InvalidArgument(format!(
                    "mode '{other}': use 'single', 'backstop' or 'ensemble'"
                ))))
            }
        };
        let opts = LoadOptions {
            threshold,
            weights: weights
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            manifest,
            session,
        };
        let model = model.to_string();
        let set = py
            .detach(|| load(&model, secondary.as_deref(), mode, &opts))
            .py()?;
        let mut run = RunOptions::default();
        if threads > 0 {
            run.threads = threads;
            run.window = 2 * threads;
        }
        run.batch_size = batch_size.max(1);
        let models = std::iter::once(set.primary.manifest.id.clone())
            .chain(set.secondary.as_ref().map(|d| d.manifest.id.clone()))
            .collect();
        let threshold = set.primary.manifest.postprocess.threshold;
        let finds_people = set.primary.manifest.finds_people()
            || set
                .secondary
                .as_ref()
                .is_some_and(|s| s.manifest.finds_people());
        Ok(PyDetector {
            detectors: Arc::new(Mutex::new(set)),
            run,
            models,
            threshold,
            finds_people,
        })
    }

    /// Whether a detector of the set has a person class (md-lite has none: people are then
    /// "animal" boxes or nothing, and cannot be blurred).
    #[getter]
    fn finds_people(&self) -> bool {
        self.finds_people
    }

    /// Ids of the loaded detectors, primary first.
    #[getter]
    fn models(&self) -> Vec<String> {
        self.models.clone()
    }

    /// Confidence threshold of the primary detector.
    #[getter]
    fn threshold(&self) -> f32 {
        self.threshold
    }

    /// Detects on files and folders (walked recursively). `progress(done, total)` is called after
    /// each image. A call on a detector busy in another thread waits its turn (Ctrl-C works).
    /// `outputs`: the files the results will be written to (the walk passes over them).
    #[pyo3(signature = (paths, progress = None, max_pixels = None, outputs = Vec::new()))]
    fn detect(
        &self,
        py: Python<'_>,
        paths: Vec<PathBuf>,
        progress: Option<Py<PyAny>>,
        max_pixels: Option<u64>,
        outputs: Vec<PathBuf>,
    ) -> PyResult<PyDetectionResults> {
        let mut run = self.run;
        if let Some(m) = max_pixels {
            run.decode.max_pixels = m;
        }
        let slot = Mutex::new(None);
        let result = py.detach(|| {
            let mut set = wait_for(|| try_lock(&self.detectors))?;
            let mut hook = progress_hook(&progress, &slot);
            Ok::<_, PyErr>(detect_files(&paths, &mut set, &run, &mut hook, &outputs))
        })?;
        if let Some(e) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        Ok(PyDetectionResults::new(result.py()?, self.threshold))
    }
}

/// A failure as Python sees it (`deepfaune_rs.errors.Failure`): path, stage, kind, reason, index.
pub(crate) fn failure_dict<'py>(py: Python<'py>, f: &Failure) -> PyResult<Bound<'py, PyDict>> {
    failure_fields(py, &f.path, f.stage, f.kind, &f.reason, f.index)
}

/// [`failure_dict`] from its fields (a video's failure keeps its path in its record).
pub(crate) fn failure_fields<'py>(
    py: Python<'py>,
    path: &std::path::Path,
    stage: &str,
    kind: &str,
    reason: &str,
    index: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", path.as_os_str())?;
    d.set_item("stage", stage)?;
    d.set_item("kind", kind)?;
    d.set_item("reason", reason)?;
    d.set_item("index", index)?;
    Ok(d)
}

/// Results of `Detector.detect`, as columns. Arrays are read-only views of the results' own
/// memory (no copies); they stay valid as long as any of them is alive.
#[pyclass(module = "deepfaune_rs._core", name = "DetectionResults", frozen)]
pub struct PyDetectionResults {
    pub(crate) res: DetectionResults,
    pub(crate) threshold: f32,
    /// Species classifications read from a MegaDetector file, aligned with the boxes.
    pub(crate) classifications: Classifications,
    /// How boxes read from a MegaDetector file were decided, and the threshold they passed
    /// (`None` for a detection run).
    pub(crate) imported: Option<(JsonRules, f64)>,
}

impl PyDetectionResults {
    pub(crate) fn new(res: DetectionResults, threshold: f32) -> Self {
        PyDetectionResults {
            res,
            threshold,
            classifications: Classifications::default(),
            imported: None,
        }
    }

    /// Results read from a MegaDetector file.
    pub(crate) fn imported(imported: ImportedDetections) -> Self {
        PyDetectionResults {
            res: imported.results,
            threshold: imported.threshold as f32,
            classifications: imported.classifications,
            imported: Some((imported.rules, imported.threshold)),
        }
    }

    /// The results as [`ImportedDetections`], for a run over these boxes: those of a detection
    /// run follow the package's (corrected) rules.
    pub(crate) fn to_imported(&self) -> ImportedDetections {
        let (rules, threshold) = self
            .imported
            .unwrap_or((JsonRules::Corrected, self.threshold as f64));
        ImportedDetections {
            results: self.res.clone(),
            rules,
            threshold,
            classifications: self.classifications.clone(),
            ignored_boxes: 0,
        }
    }
}

#[pymethods]
impl PyDetectionResults {
    fn __len__(&self) -> usize {
        self.res.len()
    }

    /// File path of each image row.
    #[getter]
    fn paths<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.res.paths.iter().map(|p| p.as_os_str()))
    }

    /// EXIF DateTimeOriginal text of each image (None when absent).
    #[getter]
    fn dates(&self) -> Vec<Option<String>> {
        self.res
            .date
            .iter()
            .map(|d| d.as_ref().map(|t| t.text.clone()))
            .collect()
    }

    /// Per image: 0 empty, 1 animal, 2 human, 3 vehicle, 255 failed.
    #[getter]
    fn category<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<u8>>> {
        let r = &slf.get().res;
        view1(slf.clone().into_any(), &r.category)
    }
    /// Per image: number of animal boxes.
    #[getter]
    fn count<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<u32>>> {
        view1(slf.clone().into_any(), &slf.get().res.count)
    }
    /// Per image: number of person boxes.
    #[getter]
    fn humancount<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<u32>>> {
        view1(slf.clone().into_any(), &slf.get().res.humancount)
    }
    /// Per image: width and height (after EXIF orientation), `[n, 2]`.
    #[getter]
    fn sizes<'py>(slf: Bound<'py, Self>, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<u32>>> {
        let r = &slf.get().res;
        let v: Vec<u32> = r
            .width
            .iter()
            .zip(&r.height)
            .flat_map(|(w, h)| [*w, *h])
            .collect();
        let a = numpy::ndarray::Array2::from_shape_vec((r.len(), 2), v).expect("sizes agree");
        Ok(numpy::IntoPyArray::into_pyarray(a, py))
    }
    /// Per image: the classifier's square crop `[x1, y1, x2, y2)` (-1 when none), `[n, 4]`.
    #[getter]
    fn crop_boxes<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray2<i32>>> {
        view2(slf.clone().into_any(), slf.get().res.crop.as_flattened(), 4)
    }
    /// Per image: row of the deciding box in the detection columns (-1 when none).
    #[getter]
    fn best_detection<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<i64>>> {
        view1(slf.clone().into_any(), &slf.get().res.best_detection)
    }
    /// Per box: image row.
    #[getter]
    fn image_index<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<u32>>> {
        view1(slf.clone().into_any(), &slf.get().res.det_image)
    }
    /// Per box: `[x1, y1, x2, y2]` in original pixels, `[m, 4]`.
    #[getter]
    fn boxes<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        view2(
            slf.clone().into_any(),
            slf.get().res.det_xyxy.as_flattened(),
            4,
        )
    }
    /// Per box: confidence.
    #[getter]
    fn confidences<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<f32>>> {
        view1(slf.clone().into_any(), &slf.get().res.det_conf)
    }
    /// Per box: 0 animal, 1 person, 2 vehicle.
    #[getter]
    fn classes<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray1<u8>>> {
        view1(slf.clone().into_any(), &slf.get().res.det_category)
    }
    /// Files that failed: list of dicts with path, stage, kind, reason, index.
    #[getter]
    fn failures<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for f in &self.res.failures {
            list.append(failure_dict(py, f)?)?;
        }
        Ok(list)
    }
    /// Classification categories read from a MegaDetector file (`{id: name}`; empty otherwise).
    #[getter]
    fn classification_categories(&self) -> Vec<(String, String)> {
        self.classifications.categories.clone()
    }
    /// Per box: the `(category id, score)` pairs read from a MegaDetector file (empty lists
    /// when there were none).
    #[getter]
    fn classifications(&self) -> Vec<Vec<(String, f32)>> {
        let c = &self.classifications;
        (0..self.res.det_conf.len())
            .map(|b| {
                if b + 1 < c.start.len() {
                    c.of_box(b).map(|(id, s)| (id.to_string(), s)).collect()
                } else {
                    Vec::new()
                }
            })
            .collect()
    }
    /// Detector ids that produced these results.
    #[getter]
    fn detector(&self) -> String {
        self.res.detector.clone()
    }
    /// For results read from a MegaDetector file: the rules their decisions follow
    /// (`"corrected"` or `"deepfaune"`); `None` for a detection run.
    #[getter]
    fn json_rules(&self) -> Option<&'static str> {
        self.imported.map(|(r, _)| r.name())
    }

    /// Writes MegaDetector batch JSON 1.6 atomically; `root` makes `"file"` paths relative.
    #[pyo3(signature = (path, root = None))]
    fn to_megadetector_json(
        &self,
        py: Python<'_>,
        path: PathBuf,
        root: Option<PathBuf>,
    ) -> PyResult<()> {
        py.detach(|| {
            crate::export::megadetector::write(&self.res, &path, root.as_deref(), self.threshold)
        })
        .py()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDetector>()?;
    m.add_class::<PyDetectionResults>()?;
    Ok(())
}
