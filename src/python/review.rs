//! Bindings of the review stage: the corrections journal, thumbnails and the review page's
//! rows (`ReviewRows`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use numpy::PyReadonlyArray3;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyBytes, PyDict};

use super::errors::{to_pyerr, IntoPyResult};
use super::image_io::to_rgb;
use crate::error::Error;
use crate::review::corrections::now_iso;
use crate::review::{
    append_correction as append, html, presets, read_journal, table_labels as core_table_labels,
    thumbnail_cache_dir, thumbnail_cached, thumbnail_of, Correction, Redecision, ResultTable,
    ReviewRows, ReviewSource, ReviewState, NO_BOXES, NO_REDECIDE,
};

/// Appends one correction to the journal at `path` and syncs it to disk; returns the line
/// written as a dict (with its time).
#[pyfunction]
#[pyo3(signature = (path, files, label = None, verified = false, scope = "image", by = None))]
fn append_correction<'py>(
    py: Python<'py>,
    path: PathBuf,
    files: Vec<String>,
    label: Option<String>,
    verified: bool,
    scope: &str,
    by: Option<String>,
) -> PyResult<Bound<'py, PyDict>> {
    let c = Correction {
        time: now_iso(),
        files,
        scope: scope.to_string(),
        label,
        verified,
        by,
    };
    py.detach(|| append(&path, &c)).py()?;
    correction_dict(py, &c)
}

fn correction_dict<'py>(py: Python<'py>, c: &Correction) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("time", &c.time)?;
    d.set_item("files", &c.files)?;
    d.set_item("scope", &c.scope)?;
    d.set_item("label", &c.label)?;
    d.set_item("verified", c.verified)?;
    d.set_item("by", &c.by)?;
    Ok(d)
}

/// The corrections of the journal at `path`, in order, as dicts (a missing file: none; a line
/// torn by a crash: skipped).
#[pyfunction]
fn read_corrections<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Vec<Bound<'py, PyDict>>> {
    let journal = py.detach(|| read_journal(&path)).py()?;
    journal.iter().map(|c| correction_dict(py, c)).collect()
}

/// The JPEG thumbnail of decoded pixels (`[h, w, 3]` uint8: a video's keyframe), made as
/// `thumbnail` makes a file's.
#[pyfunction]
fn thumbnail_rgb<'py>(
    py: Python<'py>,
    image: PyReadonlyArray3<'py, u8>,
    max_side: u32,
) -> PyResult<Bound<'py, PyBytes>> {
    let img = to_rgb(&image)?;
    let bytes = py
        .detach(|| thumbnail_of(img, max_side))
        .map_err(|e| to_pyerr(Error::InvalidArgument(e)))?;
    Ok(PyBytes::new(py, &bytes))
}

/// The built-in classifier, language and bird-head wording whose labels name every text
/// given (a results table's predictions): a dict with `classifier`, `language`, `bird_head`,
/// `labels`, `empty`, `human`, `vehicle`, `undefined`; None when no built-in one does.
#[pyfunction]
fn table_labels<'py>(py: Python<'py>, texts: Vec<String>) -> PyResult<Option<Bound<'py, PyDict>>> {
    let Some(t) = core_table_labels(&texts) else {
        return Ok(None);
    };
    let d = PyDict::new(py);
    d.set_item("classifier", t.classifier)?;
    d.set_item("language", t.language)?;
    d.set_item("bird_head", t.bird_head)?;
    d.set_item("labels", t.labels)?;
    let [empty, human, vehicle, undefined] = t.special;
    d.set_item("empty", empty)?;
    d.set_item("human", human)?;
    d.set_item("vehicle", vehicle)?;
    d.set_item("undefined", undefined)?;
    Ok(Some(d))
}

/// A JPEG thumbnail of the image at `path` (EXIF orientation applied) fitting a square of
/// `max_side` pixels, made once and then read from `cache_dir`.
#[pyfunction]
#[pyo3(signature = (path, max_side, cache_dir))]
fn thumbnail<'py>(
    py: Python<'py>,
    path: PathBuf,
    max_side: u32,
    cache_dir: PathBuf,
) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = py
        .detach(|| thumbnail_cached(&path, max_side, &cache_dir))
        .py()?;
    Ok(PyBytes::new(py, &bytes))
}

/// The review page's rows: a result's images then videos (`PipelineResults.review_rows`), or
/// a results table read without its run (`ResultTable.rows`). Rows, sequences and pages come
/// back as JSON text.
#[pyclass(module = "deepfaune_rs._core", name = "ReviewRows")]
pub struct PyReviewRows {
    rows: ReviewRows,
}

impl PyReviewRows {
    pub fn new(rows: ReviewRows) -> Self {
        PyReviewRows { rows }
    }

    fn check(&self, i: usize) -> PyResult<usize> {
        if i < self.rows.len() {
            return Ok(i);
        }
        Err(to_pyerr(Error::InvalidArgument(format!(
            "row {i}: these rows are 0..{}",
            self.rows.len()
        ))))
    }
}

#[pymethods]
impl PyReviewRows {
    fn __len__(&self) -> usize {
        self.rows.len()
    }

    /// Row `i` as JSON text.
    fn row(&self, i: usize) -> PyResult<String> {
        Ok(self.rows.row_json(self.check(i)?).to_string())
    }

    /// Up to `n` rows predicted `prediction`, or of detection `kind` (empty, animal, person,
    /// vehicle, failed), else the first ones.
    #[pyo3(signature = (prediction = None, kind = None, n = 12))]
    fn pick(&self, prediction: Option<&str>, kind: Option<&str>, n: usize) -> PyResult<Vec<usize>> {
        self.rows.pick(prediction, kind, n).py()
    }

    /// The first row whose path or file name is `name`.
    fn find(&self, name: &str) -> Option<usize> {
        self.rows.find(name)
    }

    /// Row `i` with its boxes and labels as self-contained HTML `width` pixels wide (a
    /// notebook's figure; labels `label_px` high), its picture made in the thumbnail cache
    /// `cache_dir`.
    #[pyo3(signature = (i, width, cache_dir, label_px = 14.0))]
    fn figure_html(
        &self,
        py: Python<'_>,
        i: usize,
        width: u32,
        cache_dir: PathBuf,
        label_px: f64,
    ) -> PyResult<String> {
        let i = self.check(i)?;
        py.detach(|| self.rows.figure_html(i, width, label_px, &cache_dir))
            .py()
    }

    /// Rows `picks` as figures `width` pixels wide in one `<div>` (an unreadable image: a line
    /// saying why; no row: "no image matches").
    fn gallery_html(
        &self,
        py: Python<'_>,
        picks: Vec<usize>,
        width: u32,
        cache_dir: PathBuf,
    ) -> PyResult<String> {
        for &i in &picks {
            self.check(i)?;
        }
        Ok(py.detach(|| self.rows.gallery_html(&picks, width, &cache_dir)))
    }

    /// A result's summary HTML: counts (with the run's `videos` and `failures`), images per
    /// prediction and up to four animal pictures.
    fn summary_html(
        &self,
        py: Python<'_>,
        videos: usize,
        failures: usize,
        cache_dir: PathBuf,
    ) -> String {
        py.detach(|| html::summary_html(&self.rows, videos, failures, &cache_dir))
    }
}

/// Where presets are saved (`$DEEPFAUNE_RS_PRESETS` or `~/.config/deepfaune-rs/presets`).
#[pyfunction]
fn presets_dir() -> String {
    presets::presets_dir().to_string_lossy().into_owned()
}

/// Saves `disabled_classes` (say, the species absent from a region) as preset `name`;
/// returns the file. Use it with `result.redecide(preset=name)`.
#[pyfunction]
fn save_preset(name: &str, disabled_classes: Vec<String>) -> PyResult<String> {
    let path = presets::save_preset(&presets::presets_dir(), name, &disabled_classes).py()?;
    Ok(path.to_string_lossy().into_owned())
}

/// The `disabled_classes` of a saved preset.
#[pyfunction]
fn load_preset(name: &str) -> PyResult<Vec<String>> {
    presets::load_preset(&presets::presets_dir(), name).py()
}

/// Names of the saved presets.
#[pyfunction]
fn list_presets() -> Vec<String> {
    presets::list_presets(&presets::presets_dir())
}

/// Where thumbnails are cached (`$DEEPFAUNE_RS_CACHE` or `~/.cache/deepfaune-rs`, then
/// `thumbnails/`): never beside the images or the results.
#[pyfunction]
fn cache_dir() -> String {
    thumbnail_cache_dir().to_string_lossy().into_owned()
}

/// A results table (CSV or XLSX, DeepFaune's columns, `status` optional) as the review page's
/// source; `detections`: a MegaDetector JSON of the same run for the boxes (its paths relative
/// to its own folder). A CSV is read here; an XLSX's cells are given (`columns`: `(name,
/// cells)` in the table's order, every cell as text).
#[pyclass(module = "deepfaune_rs._core", name = "ResultTable", subclass, frozen)]
pub struct PyResultTable {
    table: ResultTable,
}

#[pymethods]
impl PyResultTable {
    #[new]
    #[pyo3(signature = (path, detections = None, columns = None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        detections: Option<PathBuf>,
        columns: Option<Vec<(String, Vec<String>)>>,
    ) -> PyResult<Self> {
        let table = py
            .detach(|| match columns {
                Some(c) => ResultTable::new(&path, c, detections.as_deref()),
                None => ResultTable::read_csv(&path, detections.as_deref()),
            })
            .py()?;
        Ok(PyResultTable { table })
    }

    /// The table's file.
    #[getter]
    fn path(&self) -> String {
        self.table.path.to_string_lossy().into_owned()
    }

    /// The MegaDetector file of the boxes, if given.
    #[getter]
    fn detections(&self) -> Option<String> {
        (self.table.detections.as_ref()).map(|d| d.to_string_lossy().into_owned())
    }

    /// The labels a change may give.
    #[getter]
    fn labels(&self) -> Vec<String> {
        self.table.labels().to_vec()
    }

    /// The page's settings of a table: its classifier, language and bird-head wording (None:
    /// not a built-in classifier's labels), no threshold nor maxlag, and the table's file.
    #[getter]
    fn settings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.table.settings().py()?)
    }

    /// What the page cannot do with a table (re-deciding; boxes without `detections`).
    #[getter]
    fn unavailable(&self) -> Vec<String> {
        self.table.unavailable()
    }
}

/// A Python error as the core's (its message: what the page shows).
fn from_pyerr(py: Python<'_>, e: PyErr) -> Error {
    Error::InvalidArgument(e.value(py).to_string())
}

/// A JSON value as Python objects (through `json`, the page's own format).
fn to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?.call_method1("loads", (v.to_string(),))
}

/// Python objects (a request's body) as a JSON value.
fn of_py(obj: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    let text: String = obj
        .py()
        .import("json")?
        .call_method1("dumps", (obj,))?
        .extract()?;
    serde_json::from_str(&text).map_err(|e| to_pyerr(Error::InvalidArgument(e.to_string())))
}

/// A run as the page's source: its results (`PipelineResults`) as loaded (`loaded`) and as
/// re-decided on request (`base`); the journal is applied by the results' own
/// `with_corrections`.
struct RunSource {
    base: Py<PyAny>,
    loaded: Py<PyAny>,
}

impl RunSource {
    fn attach<T>(&self, f: impl FnOnce(Python<'_>) -> PyResult<T>) -> Result<T, Error> {
        Python::attach(|py| f(py).map_err(|e| from_pyerr(py, e)))
    }

    fn corrected<'py>(&self, py: Python<'py>, journal: &Path) -> PyResult<Bound<'py, PyAny>> {
        let base = self.base.bind(py);
        if journal.exists() {
            base.call_method1("with_corrections", (journal,))
        } else {
            Ok(base.clone())
        }
    }
}

impl ReviewSource for RunSource {
    fn rows(&self, journal: &Path) -> Result<ReviewRows, Error> {
        self.attach(|py| {
            let rows = self
                .corrected(py, journal)?
                .call_method1("review_rows", (true,))?;
            let rows = rows.cast::<PyReviewRows>()?.borrow();
            Ok(rows.rows.clone())
        })
    }

    fn labels(&self) -> Result<Vec<String>, Error> {
        self.attach(|py| self.base.bind(py).getattr("labels")?.extract())
    }

    fn settings(&self) -> Result<serde_json::Value, Error> {
        self.attach(|py| of_py(&self.base.bind(py).getattr("settings")?))
    }

    fn unavailable(&self) -> Vec<String> {
        Vec::new()
    }

    fn redecide(&self, r: &Redecision) -> Result<Option<Box<dyn ReviewSource>>, Error> {
        self.attach(|py| {
            let kwargs = PyDict::new(py);
            kwargs.set_item("score_threshold", r.score_threshold)?;
            kwargs.set_item("class_thresholds", r.class_thresholds.clone())?;
            kwargs.set_item("disabled_classes", r.disabled_classes.clone())?;
            kwargs.set_item("maxlag_s", r.maxlag_s)?;
            let loaded = self.loaded.bind(py);
            let base = loaded.call_method("redecide", (), Some(&kwargs))?.unbind();
            let source = RunSource {
                base,
                loaded: loaded.clone().unbind(),
            };
            Ok(Some(Box::new(source) as Box<dyn ReviewSource>))
        })
    }

    fn export_csv(&self, journal: &Path, _rows: &ReviewRows) -> Result<Vec<u8>, Error> {
        static EXPORTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let k = EXPORTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("deepfaune-rs-export-{}-{k}.csv", std::process::id());
        let out = std::env::temp_dir().join(name);
        let written = self.attach(|py| {
            self.corrected(py, journal)?
                .call_method1("to_csv", (&out, false))
                .map(drop)
        });
        let bytes = written.and_then(|()| {
            std::fs::read(&out).map_err(|e| Error::Output {
                path: out.clone(),
                reason: e.to_string(),
            })
        });
        let _ = std::fs::remove_file(&out);
        bytes
    }
}

/// What the review page's server holds: its source (a run's `PipelineResults`, or a
/// `ResultTable` read without its run), the corrections journal (`journal`), and the rows the
/// page shows with the journal applied. Loading (and re-deciding) applies the whole journal; a
/// change applies its own line only. `by`: who makes the changes; `no_video_picture`: why video
/// rows have no picture here (None: they have one). Safe to call from several threads.
#[pyclass(module = "deepfaune_rs._core", name = "ReviewState", subclass, frozen)]
pub struct PyReviewState {
    state: Mutex<ReviewState>,
    journal: String,
    by: Option<String>,
}

impl PyReviewState {
    fn with<T>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut ReviewState) -> Result<T, Error>,
    ) -> PyResult<T> {
        let mut state = self
            .state
            .lock_py_attached(py)
            .map_err(|_| to_pyerr(Error::InvalidArgument("review state: poisoned".into())))?;
        f(&mut state).py()
    }
}

#[pymethods]
impl PyReviewState {
    #[new]
    #[pyo3(signature = (source, journal, by = None, no_video_picture = None))]
    fn new(
        py: Python<'_>,
        source: &Bound<'_, PyAny>,
        journal: PathBuf,
        by: Option<String>,
        no_video_picture: Option<String>,
    ) -> PyResult<Self> {
        let source: Box<dyn ReviewSource> = match source.cast::<PyResultTable>() {
            Ok(t) => Box::new(t.get().table.clone()),
            Err(_) => {
                // A PipelineResult holds the core's results in `_r`.
                let run = match source.getattr("_r") {
                    Ok(r) => r,
                    Err(_) => source.clone(),
                };
                Box::new(RunSource {
                    base: run.clone().unbind(),
                    loaded: run.unbind(),
                })
            }
        };
        let text = journal.to_string_lossy().into_owned();
        let state = py
            .detach(|| ReviewState::new(source, journal, by.clone(), no_video_picture))
            .py()?;
        Ok(PyReviewState {
            state: Mutex::new(state),
            journal: text,
            by,
        })
    }

    /// The corrections journal.
    #[getter]
    fn journal(&self) -> &str {
        &self.journal
    }

    /// Who makes the changes (None: not said).
    #[getter]
    fn by(&self) -> Option<&str> {
        self.by.as_deref()
    }

    /// Number of rows (images, then videos).
    #[getter]
    fn n_images(&self, py: Python<'_>) -> PyResult<usize> {
        self.with(py, |s| Ok(s.rows().len()))
    }

    /// The whole journal applied again to the source (load, reload, re-decide).
    fn refresh(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |s| s.refresh())
    }

    /// Row `i` as the page shows it.
    fn row<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyAny>> {
        let v = self.with(py, |s| {
            let n = s.rows().len();
            if i >= n {
                return Err(Error::InvalidArgument(format!(
                    "row {i}: these rows are 0..{n}"
                )));
            }
            Ok(s.rows().row_json(i))
        })?;
        to_py(py, &v)
    }

    /// Row `i`'s file, whether it is a video, and its keyframe.
    fn picture(&self, py: Python<'_>, i: usize) -> PyResult<(String, bool, Option<u64>)> {
        self.with(py, |s| {
            let r = s.rows().rows().get(i).ok_or_else(|| {
                Error::InvalidArgument(format!("row {i}: these rows are 0..{}", s.rows().len()))
            })?;
            Ok((r.path.clone(), r.video, r.keyframe))
        })
    }

    /// `/api/info`: counts, labels, predictions, folders, settings, saved presets, the journal
    /// and what is unavailable.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = self.with(py, |s| s.info(&presets::presets_dir()))?;
        to_py(py, &v)
    }

    /// `/api/sequences`: a page of the sequences the query's filter keeps (`offset`,
    /// `limit`, filters; values as text).
    fn page<'py>(
        &self,
        py: Python<'py>,
        query: HashMap<String, Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let query = query
            .into_iter()
            .map(|(k, v)| Ok((k, v.str()?.to_string())))
            .collect::<PyResult<HashMap<_, _>>>()?;
        let v = self.with(py, |s| s.page(&query))?;
        to_py(py, &v)
    }

    /// `/api/change`: a body `{ids, label, verified, scope}`: one journal line appended and
    /// synced, then applied to the rows shown; returns the line.
    fn change<'py>(
        &self,
        py: Python<'py>,
        body: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let body = of_py(body)?;
        let c = self.with(py, |s| s.change(&body))?;
        correction_dict(py, &c)
    }

    /// `/api/redecide`: a body `{threshold, maxlag_s, preset | disabled_classes,
    /// class_thresholds, save_preset}`: the run decided again, the journal applied again;
    /// returns `/api/info`.
    fn redecide<'py>(
        &self,
        py: Python<'py>,
        body: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let body = of_py(body)?;
        let v = self.with(py, |s| s.redecide(&body, &presets::presets_dir()))?;
        to_py(py, &v)
    }

    /// `/api/export.csv`: the corrected results as CSV.
    fn export_csv<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = self.with(py, |s| s.export_csv())?;
        Ok(PyBytes::new(py, &bytes))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyReviewState>()?;
    m.add_class::<PyReviewRows>()?;
    m.add_class::<PyResultTable>()?;
    m.add("NO_REDECIDE", NO_REDECIDE)?;
    m.add("NO_BOXES", NO_BOXES)?;
    m.add("BOX_COLOURS", html::BOX_COLOURS.to_vec())?;
    m.add_function(wrap_pyfunction!(presets_dir, m)?)?;
    m.add_function(wrap_pyfunction!(save_preset, m)?)?;
    m.add_function(wrap_pyfunction!(load_preset, m)?)?;
    m.add_function(wrap_pyfunction!(list_presets, m)?)?;
    m.add_function(wrap_pyfunction!(cache_dir, m)?)?;
    m.add_function(wrap_pyfunction!(append_correction, m)?)?;
    m.add_function(wrap_pyfunction!(thumbnail, m)?)?;
    m.add_function(wrap_pyfunction!(thumbnail_rgb, m)?)?;
    m.add_function(wrap_pyfunction!(read_corrections, m)?)?;
    m.add_function(wrap_pyfunction!(table_labels, m)?)?;
    Ok(())
}
