//! Bindings of the `reid` commands' workflow (`crate::reid::table`): the table of pictures and
//! the build / query / update / evaluate steps, for `python/deepfaune_rs/cli_reid.py`.

use std::path::PathBuf;

use numpy::ndarray::Array2;
use numpy::IntoPyArray;
use numpy::PyArray2;
use pyo3::prelude::*;

use crate::reid::evaluate::{default_thresholds, validation_split, ThresholdChoice};
use crate::reid::kb::read_embeddings_file;
use crate::reid::query::OpenSet;
use crate::reid::table::{
    build, embedded_rows, evaluate_rows, query_to_files, update_from_files, QueryOutputs, Table,
};

use super::errors::{invalid, shape_error, IntoPyResult};
use super::reid::{numpy_permutation, Matrix, PyEvaluation, PyKnowledgeBase};

/// A table of pictures for the ``reid`` commands: a CSV with a ``filepath`` column (optional
/// ``lynx_id`` / ``individual_id`` / ``individual_predicted``, ``date``, ``location``,
/// ``bbox_x``..``bbox_h``), or a folder of images.
#[pyclass(module = "deepfaune_rs._core", name = "ReidTable", frozen)]
pub struct PyReidTable {
    pub(super) table: Table,
}

#[pymethods]
impl PyReidTable {
    /// Reads a CSV (relative paths taken from its folder when they do not exist from here) or
    /// lists a folder's images.
    #[staticmethod]
    fn read(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let table = py.detach(|| Table::read(&path)).py()?;
        Ok(PyReidTable { table })
    }

    fn __len__(&self) -> usize {
        self.table.len()
    }

    /// The column names.
    #[getter]
    fn headers(&self) -> Vec<String> {
        self.table.headers().to_vec()
    }

    /// The ``filepath`` column.
    #[getter]
    fn filepaths(&self) -> PyResult<Vec<String>> {
        self.table.filepaths().py()
    }

    /// A column's cells (None: missing), or None without that column.
    fn column(&self, name: &str) -> Option<Vec<Option<String>>> {
        self.table.column(name).map(<[_]>::to_vec)
    }
}

/// A knowledge base of the table's embedded rows (``embeddings``: one row per table row, NaN
/// rows for pictures that failed).
#[pyfunction]
fn reid_build(table: &PyReidTable, embeddings: &Bound<'_, PyAny>) -> PyResult<PyKnowledgeBase> {
    let m = Matrix::extract(embeddings, "embeddings")?;
    if m.cols == 0 {
        return Err(invalid("embeddings of dimension 0"));
    }
    let kb = build(&table.table, &m.data(), m.cols).py()?;
    Ok(PyKnowledgeBase { kb })
}

/// Answers the table's embedded rows and writes lynx-id's results CSV at ``output`` (and the
/// answered rows' embeddings at ``embeddings_output``), atomically. Returns
/// ``(queries, new individuals)``.
#[pyfunction]
#[pyo3(signature = (kb, table, embeddings, output, *, k = 5, distance_threshold = None,
                    gaussian = false, seed = None, embeddings_output = None))]
#[allow(clippy::too_many_arguments)]
fn reid_query_to_files(
    py: Python<'_>,
    kb: &PyKnowledgeBase,
    table: &PyReidTable,
    embeddings: &Bound<'_, PyAny>,
    output: PathBuf,
    k: usize,
    distance_threshold: Option<f32>,
    gaussian: bool,
    seed: Option<u64>,
    embeddings_output: Option<PathBuf>,
) -> PyResult<(usize, usize)> {
    let m = Matrix::extract(embeddings, "embeddings")?;
    let open = match (distance_threshold, gaussian) {
        (Some(_), true) => return Err(invalid("give a threshold or gaussian=True, not both")),
        (Some(t), false) => OpenSet::Threshold(t),
        (None, true) => OpenSet::Gaussian(Default::default()),
        (None, false) => OpenSet::Closed,
    };
    let outputs = QueryOutputs {
        results: output,
        embeddings: embeddings_output,
    };
    let data = m.data();
    let s = py
        .detach(|| query_to_files(&kb.kb, &table.table, &data, k, &open, seed, &outputs))
        .py()?;
    Ok((s.queries, s.new))
}

/// lynx-id's update of ``kb`` from a results CSV and its embeddings (safetensors); returns
/// ``(updated, added)``.
#[pyfunction]
fn reid_update_from_files(
    py: Python<'_>,
    mut kb: PyRefMut<'_, PyKnowledgeBase>,
    results: PathBuf,
    embeddings: PathBuf,
) -> PyResult<(usize, usize)> {
    let kb = &mut kb.kb;
    py.detach(|| update_from_files(kb, &results, &embeddings))
        .py()
}

/// The ``embeddings`` tensor of a safetensors file, as float32 ``[rows, dim]``.
#[pyfunction]
fn reid_read_embeddings(py: Python<'_>, path: PathBuf) -> PyResult<Bound<'_, PyArray2<f32>>> {
    let (values, rows, dim) = py.detach(|| read_embeddings_file(&path)).py()?;
    let a = Array2::from_shape_vec((rows, dim), values).map_err(shape_error)?;
    Ok(a.into_pyarray(py))
}

/// lynx-id's figures for the labelled table's embedded rows (see ``KnowledgeBase.evaluate``).
#[pyfunction]
#[pyo3(signature = (kb, table, embeddings, *, k = 5, distance_threshold = None,
                    validation_fraction = 0.5, seed = 0))]
#[allow(clippy::too_many_arguments)]
fn reid_evaluate_table(
    py: Python<'_>,
    kb: &PyKnowledgeBase,
    table: &PyReidTable,
    embeddings: &Bound<'_, PyAny>,
    k: usize,
    distance_threshold: Option<f64>,
    validation_fraction: f64,
    seed: u64,
) -> PyResult<PyEvaluation> {
    let m = Matrix::extract(embeddings, "embeddings")?;
    let data = m.data();
    let choice = match distance_threshold {
        Some(t) => ThresholdChoice::Fixed(t),
        None => {
            // The validation part of the embedded rows, drawn by numpy (under the GIL).
            let n = embedded_rows(&data, kb.kb.dim())
                .into_iter()
                .filter(|&ok| ok)
                .count();
            ThresholdChoice::Sweep {
                thresholds: default_thresholds(),
                validation: validation_split(&numpy_permutation(py, seed, n)?, validation_fraction)
                    .py()?,
            }
        }
    };
    let ev = py
        .detach(|| evaluate_rows(&kb.kb, &table.table, &data, k, &choice))
        .py()?;
    PyEvaluation::from_core(py, ev)
}

/// Adds the table workflow to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyReidTable>()?;
    m.add_function(wrap_pyfunction!(reid_build, m)?)?;
    m.add_function(wrap_pyfunction!(reid_query_to_files, m)?)?;
    m.add_function(wrap_pyfunction!(reid_update_from_files, m)?)?;
    m.add_function(wrap_pyfunction!(reid_read_embeddings, m)?)?;
    m.add_function(wrap_pyfunction!(reid_evaluate_table, m)?)?;
    Ok(())
}
