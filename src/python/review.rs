//! Bindings of the review stage: the corrections journal, thumbnails and the review page's
//! rows (`ReviewRows`).

use std::collections::HashMap;
use std::path::PathBuf;

use numpy::PyReadonlyArray3;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use super::errors::{to_pyerr, IntoPyResult};
use super::image_io::to_rgb;
use crate::error::Error;
use crate::review::corrections::now_iso;
use crate::review::{
    append_correction as append, read_journal, table_labels as core_table_labels, thumbnail_cached,
    thumbnail_of, Correction, ReviewRows, TableColumns, TableLabels,
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
/// a results table read without its run (`ReviewRows.of_table`). Rows, sequences and pages come
/// back as JSON text.
#[pyclass(module = "deepfaune_rs._core", name = "ReviewRows")]
pub struct PyReviewRows {
    rows: ReviewRows,
    table: Option<TableLabels>,
}

impl PyReviewRows {
    pub fn new(rows: ReviewRows) -> Self {
        PyReviewRows { rows, table: None }
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
    /// The rows of a results table (`columns`: its cells as text, by column name) read from
    /// `path`; `detections`: a MegaDetector file of the same run for the boxes.
    #[staticmethod]
    #[pyo3(signature = (path, columns, detections = None))]
    fn of_table(
        py: Python<'_>,
        path: PathBuf,
        columns: HashMap<String, Vec<String>>,
        detections: Option<PathBuf>,
    ) -> PyResult<Self> {
        let cols = TableColumns { columns };
        let (rows, table) = py
            .detach(|| ReviewRows::of_table(&path, &cols, detections.as_deref()))
            .py()?;
        Ok(PyReviewRows { rows, table })
    }

    fn __len__(&self) -> usize {
        self.rows.len()
    }

    /// A copy of these rows (a table's rows as read, before a journal is applied to them).
    fn copy(&self) -> Self {
        PyReviewRows {
            rows: self.rows.clone(),
            table: self.table.clone(),
        }
    }

    /// Number of sequences.
    #[getter]
    fn n_sequences(&self) -> usize {
        self.rows.sequences().len()
    }

    /// The labels a change may give.
    #[getter]
    fn labels(&self) -> Vec<String> {
        self.rows.labels().to_vec()
    }

    /// Every prediction shown since loading, sorted.
    #[getter]
    fn predictions(&self) -> Vec<String> {
        self.rows.predictions()
    }

    /// The rows' folders, sorted.
    #[getter]
    fn folders(&self) -> Vec<String> {
        self.rows.folders()
    }

    /// A table's classifier, language and bird-head wording (None values: not a built-in
    /// classifier's labels).
    #[getter]
    fn table_settings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        let t = self.table.as_ref();
        d.set_item("classifier", t.map(|t| t.classifier.clone()))?;
        d.set_item("language", t.map(|t| t.language.clone()))?;
        d.set_item("bird_head", t.map(|t| t.bird_head))?;
        Ok(d)
    }

    /// Says why video rows have no picture here (None: they have one).
    fn set_no_video_picture(&mut self, reason: Option<String>) {
        self.rows.set_no_video_picture(reason);
    }

    /// Row `i` as JSON text.
    fn row(&self, i: usize) -> PyResult<String> {
        Ok(self.rows.row_json(self.check(i)?).to_string())
    }

    /// Row `i`'s file, whether it is a video, and its keyframe.
    fn picture(&self, i: usize) -> PyResult<(String, bool, Option<u64>)> {
        let r = &self.rows.rows()[self.check(i)?];
        Ok((r.path.clone(), r.video, r.keyframe))
    }

    /// A page of the sequences the query's filter keeps, as JSON text
    /// (`{total, offset, limit, items}`).
    fn page(&mut self, query: HashMap<String, String>) -> PyResult<String> {
        Ok(self.rows.page(&query).py()?.to_string())
    }

    /// Rows `ids` relabelled and/or verified: one line appended to the journal at `journal`,
    /// then applied to these rows; returns the line as a dict.
    #[pyo3(signature = (journal, ids, label = None, verified = false, scope = "image", by = None))]
    #[allow(clippy::too_many_arguments)]
    fn change<'py>(
        &mut self,
        py: Python<'py>,
        journal: PathBuf,
        ids: Vec<i64>,
        label: Option<String>,
        verified: bool,
        scope: &str,
        by: Option<String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let c = self
            .rows
            .change(&journal, &ids, label, verified, scope, by)
            .py()?;
        correction_dict(py, &c)
    }

    /// The journal at `path` applied line by line (a missing file: nothing).
    fn apply_journal(&mut self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let journal = py.detach(|| read_journal(&path)).py()?;
        for c in &journal {
            self.rows.apply(c, 0).py()?;
        }
        Ok(())
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

    /// The relabelled rows: `(row, predictionbase, prediction, top1, scorebase, score)`.
    fn relabelled(&self) -> Vec<(usize, String, String, String, f64, f64)> {
        self.rows
            .rows()
            .iter()
            .enumerate()
            .filter(|(_, r)| r.reviewed.as_ref().is_some_and(|v| v.label.is_some()))
            .map(|(i, r)| {
                let texts = (
                    r.predictionbase.clone(),
                    r.prediction.clone(),
                    r.top1.clone(),
                );
                (i, texts.0, texts.1, texts.2, r.scorebase, r.score)
            })
            .collect()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyReviewRows>()?;
    m.add_function(wrap_pyfunction!(append_correction, m)?)?;
    m.add_function(wrap_pyfunction!(thumbnail, m)?)?;
    m.add_function(wrap_pyfunction!(thumbnail_rgb, m)?)?;
    m.add_function(wrap_pyfunction!(read_corrections, m)?)?;
    m.add_function(wrap_pyfunction!(table_labels, m)?)?;
    Ok(())
}
