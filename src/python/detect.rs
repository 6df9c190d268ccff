//! Bindings of the detection stage: `Detector` and its columnar `DetectionResults`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use numpy::{PyArray1, PyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::args::{detector_ids, renamed, require, text, Inputs, ProgressArg};
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

/// One detector, or two combined as DeepFaune does.
///
/// ``model`` is the id of a built-in manifest (``"md-lite"``, the embedded default that needs no
/// download; ``"df"``, ``"mds"``, ``"mdr"``), a DeepFaune mode (``"DF"``, ``"MDS"``, ``"MDR"``,
/// ``"DFbsMDS"`` = DF with MegaDetector as backstop, ``"DFMDS"`` = both, merged), a manifest path
/// (``.toml``) or an ONNX path (its manifest found by file name, or given with ``manifest=``).
/// ``secondary`` with ``mode="backstop"`` or ``"ensemble"`` combines any two models.
/// ``weights`` maps built-in ids to weight files (otherwise looked up in the model directory,
/// see ``deepfaune-rs models``). Before anything is loaded, every built-in model needed is
/// checked: missing ones raise one :class:`~deepfaune_rs.WeightsNotFoundError` naming them all
/// and the ``deepfaune-rs models fetch ...`` command that gets them; with ``fetch=True`` they
/// are fetched first (:func:`deepfaune_rs.models.fetch`; nothing is ever downloaded otherwise).
/// ``device`` is ``"cpu"``, ``"cuda"``, ``"directml"``, ``"coreml"`` or ``"auto"`` (the first
/// accelerator of the installed ONNX Runtime build, else the CPU); one the build lacks raises
/// :class:`~deepfaune_rs.DeviceUnavailableError` naming those it has
/// (:func:`deepfaune_rs.available_devices`). ``precision="int8"`` loads each model's int8
/// variant (made by ``deepfaune-rs models quantize ID``). ``cache_dir`` keeps ONNX Runtime's
/// optimised graph of each model file there, so later sessions start faster.
/// ``detection_threshold`` replaces the primary detector's confidence threshold (``threshold``
/// is its old name, deprecated).
///
/// >>> det = Detector()               # the embedded md-lite detector
/// >>> det.models
/// ['md-lite']
#[pyclass(module = "deepfaune_rs", name = "Detector", frozen)]
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
    #[pyo3(signature = (model = PathBuf::from("md-lite"), *, detection_threshold = None, device = "cpu",
                        secondary = None, mode = None, manifest = None, weights = None, intra_threads = 0,
                        threads = 0, batch_size = 1, fetch = false, precision = "fp32", cache_dir = None,
                        threshold = None, spinning = false),
           text_signature = "(model='md-lite', *, detection_threshold=None, device='cpu', secondary=None, \
                             mode=None, manifest=None, weights=None, intra_threads=0, threads=0, batch_size=1, \
                             fetch=False, precision='fp32', cache_dir=None, threshold=None, spinning=False)")]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: PathBuf,
        detection_threshold: Option<f32>,
        device: &str,
        secondary: Option<PathBuf>,
        mode: Option<String>,
        manifest: Option<PathBuf>,
        weights: Option<Bound<'_, PyDict>>,
        intra_threads: usize,
        threads: usize,
        batch_size: usize,
        fetch: bool,
        precision: &str,
        cache_dir: Option<PathBuf>,
        threshold: Option<f32>,
        spinning: bool,
    ) -> PyResult<Self> {
        let threshold = renamed(
            py,
            "detection_threshold",
            detection_threshold,
            "threshold",
            threshold,
        )?;
        if precision == "fp32" {
            // An int8 variant's own absence is the core's error.
            let ids = detector_ids(py, Some(&model), secondary.as_deref())?;
            require(py, &ids, None, false, weights.as_ref(), fetch)?;
        }
        let weights: HashMap<String, PathBuf> = match &weights {
            Some(w) => w.extract()?,
            None => HashMap::new(),
        };
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
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            manifest: manifest.as_deref().map(text).transpose()?,
            session,
        };
        let model = text(&model)?;
        let secondary = secondary.as_deref().map(text).transpose()?;
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

    /// Detects on image files and folders (walked recursively, sorted).
    ///
    /// Unreadable files do not stop the run: they are rows with category ``"failed"`` and are
    /// listed with their reasons in :attr:`DetectionResult.failures`.
    /// ``max_pixels`` refuses larger images before decoding (default 178,956,970, Pillow's limit).
    /// ``outputs``: the files the results will be written to; the walk passes over them.
    /// ``progress``: ``True`` a bar, a callable ``f(done, total)``, ``False`` nothing. A call on a
    /// detector busy in another thread waits its turn (Ctrl-C works).
    #[pyo3(signature = (inputs, progress = ProgressArg(None), max_pixels = None, outputs = Vec::new()),
           text_signature = "($self, inputs, progress=True, max_pixels=None, outputs=())")]
    fn detect(
        &self,
        py: Python<'_>,
        inputs: Inputs,
        progress: ProgressArg,
        max_pixels: Option<u64>,
        outputs: Vec<PathBuf>,
    ) -> PyResult<PyDetectionResults> {
        let progress = progress.callback(py, "detect")?;
        let mut run = self.run;
        if let Some(m) = max_pixels {
            run.decode.max_pixels = m;
        }
        let paths = &inputs.0;
        let slot = Mutex::new(None);
        let result = py.detach(|| {
            let mut set = wait_for(|| try_lock(&self.detectors))?;
            let mut hook = progress_hook(&progress, &slot);
            Ok::<_, PyErr>(detect_files(paths, &mut set, &run, &mut hook, &outputs))
        })?;
        if let Some(e) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        let mut res = PyDetectionResults::new(result.py()?, self.threshold);
        res.root = inputs.single_folder();
        Ok(res)
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

/// Detection results as columns (numpy arrays that are read-only views, no copies).
///
/// Per image: :attr:`paths`, :attr:`category`, :attr:`count`, :attr:`humancount`,
/// :attr:`crop_boxes`, :attr:`best_detection`, :attr:`sizes`, :attr:`dates`.
/// Per box: :attr:`image_index`, :attr:`boxes` (xyxy, original pixels), :attr:`confidences`,
/// :attr:`classes`. The arrays stay valid as long as any of them is alive.
#[pyclass(module = "deepfaune_rs", name = "DetectionResult", frozen)]
pub struct PyDetectionResults {
    pub(crate) res: DetectionResults,
    pub(crate) threshold: f32,
    /// Species classifications read from a MegaDetector file, aligned with the boxes.
    pub(crate) classifications: Classifications,
    /// How boxes read from a MegaDetector file were decided, and the threshold they passed
    /// (`None` for a detection run).
    pub(crate) imported: Option<(JsonRules, f64)>,
    /// The folder the paths are relative to in exports: the one folder detected, or the
    /// folder a MegaDetector file's paths were read against.
    pub(crate) root: Option<PathBuf>,
}

impl PyDetectionResults {
    pub(crate) fn new(res: DetectionResults, threshold: f32) -> Self {
        PyDetectionResults {
            res,
            threshold,
            classifications: Classifications::default(),
            imported: None,
            root: None,
        }
    }

    /// Results read from a MegaDetector file.
    pub(crate) fn imported(imported: ImportedDetections) -> Self {
        PyDetectionResults {
            res: imported.results,
            threshold: imported.threshold as f32,
            classifications: imported.classifications,
            imported: Some((imported.rules, imported.threshold)),
            root: None,
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

    fn __repr__(&self) -> String {
        let mut parts = Vec::new();
        for (code, name) in CATEGORY_NAMES {
            let n = self.res.category.iter().filter(|&&c| c == code).count();
            if n > 0 {
                parts.push(format!("{name}={n}"));
            }
        }
        format!(
            "<DetectionResult {} images ({}), {} boxes>",
            self.res.len(),
            parts.join(", "),
            self.res.det_conf.len()
        )
    }

    /// The folder detected (one folder given), or the folder a MegaDetector file's paths are
    /// relative to; None otherwise. Exports make paths relative to it.
    #[getter]
    fn root(&self) -> Option<&std::ffi::OsStr> {
        self.root.as_deref().map(|p| p.as_os_str())
    }

    /// File path of each image.
    #[getter]
    fn paths<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.res.paths.iter().map(|p| p.as_os_str()))
    }

    /// EXIF DateTimeOriginal text, or None.
    #[getter]
    fn dates(&self) -> Vec<Option<String>> {
        self.res
            .date
            .iter()
            .map(|d| d.as_ref().map(|t| t.text.clone()))
            .collect()
    }

    /// 0 empty, 1 animal, 2 human, 3 vehicle, 255 failed.
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
    /// Species categories {id: name} read from a MegaDetector file ({} otherwise).
    #[getter]
    fn classification_categories<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (id, name) in &self.classifications.categories {
            d.set_item(id, name)?;
        }
        Ok(d)
    }

    /// Per-image category as text: empty, animal, human, vehicle or failed.
    #[getter]
    fn category_names(&self) -> Vec<&'static str> {
        self.res
            .category
            .iter()
            .map(|&c| category_name(c))
            .collect()
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

    /// Writes MegaDetector batch output 1.6 (atomically). File names are relative to ``root``
    /// (default: the folder that was detected).
    #[pyo3(signature = (path, root = None))]
    fn to_megadetector_json(
        &self,
        py: Python<'_>,
        path: PathBuf,
        root: Option<PathBuf>,
    ) -> PyResult<()> {
        let root = root.or_else(|| self.root.clone());
        py.detach(|| {
            crate::export::megadetector::write(&self.res, &path, root.as_deref(), self.threshold)
        })
        .py()
    }

    /// One row per image: filepath, date, category, count, humancount, width, height, the
    /// deciding box's confidence and class, the crop box, and the failure reason.
    fn to_pandas<'py>(slf: Bound<'py, Self>, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let me = slf.get();
        let r = &me.res;
        let n = r.len();
        let best_conf: Vec<f32> = r
            .best_detection
            .iter()
            .map(|&b| usize::try_from(b).map_or(f32::NAN, |b| r.det_conf[b]))
            .collect();
        let mut reasons: Vec<Option<&str>> = vec![None; n];
        for f in &r.failures {
            if let Some(i) = f.index {
                reasons[i] = Some(&f.reason);
            }
        }
        let crop = |k: usize| PyArray1::from_iter(py, r.crop.iter().map(|c| c[k]));
        let d = PyDict::new(py);
        d.set_item("filepath", me.paths(py)?)?;
        d.set_item("date", me.dates())?;
        d.set_item("category", me.category_names())?;
        d.set_item("count", Self::count(slf.clone())?)?;
        d.set_item("humancount", Self::humancount(slf.clone())?)?;
        d.set_item("width", PyArray1::from_slice(py, &r.width))?;
        d.set_item("height", PyArray1::from_slice(py, &r.height))?;
        d.set_item("best_conf", PyArray1::from_vec(py, best_conf))?;
        d.set_item("crop_x1", crop(0))?;
        d.set_item("crop_y1", crop(1))?;
        d.set_item("crop_x2", crop(2))?;
        d.set_item("crop_y2", crop(3))?;
        d.set_item("failure", reasons)?;
        data_frame(py, d)
    }

    /// One row per box: filepath, class, confidence, x1, y1, x2, y2 (original pixels).
    fn detections_to_pandas<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let r = &self.res;
        let corner = |k: usize| PyArray1::from_iter(py, r.det_xyxy.iter().map(|b| b[k]));
        let d = PyDict::new(py);
        d.set_item(
            "filepath",
            PyList::new(
                py,
                r.det_image.iter().map(|&i| r.paths[i as usize].as_os_str()),
            )?,
        )?;
        d.set_item(
            "class",
            r.det_category
                .iter()
                .map(|&c| {
                    BOX_CLASS_NAMES
                        .get(c as usize)
                        .copied()
                        .unwrap_or("unknown")
                })
                .collect::<Vec<_>>(),
        )?;
        d.set_item("conf", PyArray1::from_slice(py, &r.det_conf))?;
        d.set_item("x1", corner(0))?;
        d.set_item("y1", corner(1))?;
        d.set_item("x2", corner(2))?;
        d.set_item("y2", corner(3))?;
        data_frame(py, d)
    }
}

/// Names of the per-image category codes.
const CATEGORY_NAMES: [(u8, &str); 5] = [
    (0, "empty"),
    (1, "animal"),
    (2, "human"),
    (3, "vehicle"),
    (crate::run::detection::CATEGORY_FAILED, "failed"),
];

/// Names of the per-box class codes (MegaDetector's categories "1", "2", "3").
const BOX_CLASS_NAMES: [&str; 3] = ["animal", "person", "vehicle"];

fn category_name(code: u8) -> &'static str {
    CATEGORY_NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("unknown", |(_, n)| n)
}

/// A pandas DataFrame of `columns` (pandas is Python's: this only hands it the columns).
pub(crate) fn data_frame<'py>(
    py: Python<'py>,
    columns: Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    py.import("pandas")?.getattr("DataFrame")?.call1((columns,))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyDetector>()?;
    m.add_class::<PyDetectionResults>()?;
    Ok(())
}
