//! Bindings of the re-identification stage, the classes of `deepfaune_rs.reid`:
//! `KnowledgeBase`, `QueryResult`, `Evaluation`, `CosineIndex`, the search and the metrics.
//! Arrays come in as any array-like (converted to float32 once, used in place when they already
//! are C-contiguous float32) and leave as numpy arrays that own the Rust buffers (no copy);
//! heavy work runs with the GIL released.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use numpy::ndarray::Array2;
use numpy::{
    AllowTypeChange, IntoPyArray, PyArray1, PyArray2, PyArrayLikeDyn, PyArrayMethods,
    PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat};

use crate::reid::boxes::read_best_boxes;
use crate::reid::evaluate::{
    default_thresholds, evaluate, validation_split, Evaluation, ThresholdChoice,
};
use crate::reid::kb::{KnowledgeBase, Record};
use crate::reid::metrics;
use crate::reid::openset::GaussianTest;
use crate::reid::query::{query, NewIdGenerator, OpenSet, QueryOutcome};
use crate::reid::search::{inverse_norms, knn_cosine, Neighbours, SearchOptions};
use crate::reid::ReidError;

use super::args::renamed;
use super::errors::{invalid, reid_error, shape_error, IntoPyResult};

/// `(distances, indices)` as numpy arrays.
type NeighbourArrays<'py> = (Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<i64>>);

/// The data and width of a C-contiguous float32 matrix.
fn matrix<'a>(a: &'a PyReadonlyArray2<'_, f32>, what: &str) -> PyResult<(&'a [f32], usize)> {
    let cols = a.shape()[1];
    let data = a
        .as_slice()
        .map_err(|_| reid_error(ReidError::Argument(format!("{what} must be C-contiguous"))))?;
    Ok((data, cols))
}

fn neighbours_to_py<'py>(py: Python<'py>, nn: Neighbours) -> PyResult<NeighbourArrays<'py>> {
    let nq = nn.n_queries();
    let d = Array2::from_shape_vec((nq, nn.k), nn.distances).map_err(shape_error)?;
    let i = Array2::from_shape_vec((nq, nn.k), nn.indices).map_err(shape_error)?;
    Ok((d.into_pyarray(py), i.into_pyarray(py)))
}

fn search_options(k: usize, query_batch: usize, base_block: usize) -> SearchOptions {
    SearchOptions {
        k,
        query_batch,
        base_block,
    }
}

/// Exact cosine k-NN over a float32 matrix that stays in numpy memory (never copied).
///
/// The base is used in place: it must stay unchanged while the index is used.
#[pyclass(module = "deepfaune_rs.reid", name = "CosineIndex", frozen)]
pub struct PyCosineIndex {
    base: Py<PyArray2<f32>>,
    inv_norms: Vec<f32>,
    dim: usize,
}

#[pymethods]
impl PyCosineIndex {
    #[new]
    fn new(py: Python<'_>, base: Bound<'_, PyArray2<f32>>) -> PyResult<Self> {
        let dim = base.shape()[1];
        let ro = base.try_readonly()?;
        let (data, _) = matrix(&ro, "base")?;
        let inv_norms = py.detach(|| inverse_norms(data, dim)).py()?;
        drop(ro);
        Ok(PyCosineIndex {
            base: base.unbind(),
            inv_norms,
            dim,
        })
    }

    /// Rows in the index.
    fn __len__(&self) -> usize {
        self.inv_norms.len()
    }

    /// Embedding dimension.
    #[getter]
    fn dim(&self) -> usize {
        self.dim
    }

    /// `(distances, indices)`, each `[n_queries, min(k, len)]`, nearest first.
    #[pyo3(signature = (queries, k = 5, query_batch = 1024, base_block = 1024))]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: PyReadonlyArray2<'py, f32>,
        k: usize,
        query_batch: usize,
        base_block: usize,
    ) -> PyResult<NeighbourArrays<'py>> {
        let base = self.base.bind(py).try_readonly()?;
        let (b, _) = matrix(&base, "base")?;
        let (q, qd) = matrix(&queries, "queries")?;
        if qd != self.dim {
            return Err(reid_error(ReidError::Shape(format!(
                "queries of dimension {qd} for an index of dimension {}",
                self.dim
            ))));
        }
        let opts = search_options(k, query_batch, base_block);
        let nn = py
            .detach(|| knn_cosine(b, &self.inv_norms, self.dim, q, &opts))
            .py()?;
        neighbours_to_py(py, nn)
    }
}

/// Known pictures of known individuals and their embeddings (lynx-id's knowledge base).
///
/// Rows are ``(filepath, individual_id, date, location)``; ``filepath`` is the key. The matrix
/// lives in Rust; :meth:`embeddings` returns a copy. It reads and writes lynx-id's files
/// (``informations.csv`` + ``embeddings.safetensors``), so existing lynx-id bases work unchanged.
#[pyclass(module = "deepfaune_rs.reid", name = "KnowledgeBase")]
pub struct PyKnowledgeBase {
    pub(super) kb: KnowledgeBase,
}

/// `numpy.random.default_rng(seed).permutation(n)`: numpy's generator, so that a seed splits
/// the queries of an evaluation as it always did.
pub(super) fn numpy_permutation(py: Python<'_>, seed: u64, n: usize) -> PyResult<Vec<usize>> {
    py.import("numpy.random")?
        .call_method1("default_rng", (seed,))?
        .call_method1("permutation", (n,))?
        .call_method0("tolist")?
        .extract()
}

/// A float32 matrix given as any array-like (`np.ascontiguousarray(a, dtype=np.float32)`): a 1-D
/// array is one row.
pub(super) struct Matrix<'py> {
    array: PyArrayLikeDyn<'py, f32, AllowTypeChange>,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

impl<'py> Matrix<'py> {
    pub(super) fn extract(ob: &Bound<'py, PyAny>, what: &str) -> PyResult<Self> {
        let array: PyArrayLikeDyn<'py, f32, AllowTypeChange> = ob.extract()?;
        let (rows, cols) = match *array.shape() {
            [c] => (1, c),
            [r, c] => (r, c),
            ref s => {
                let dims: Vec<String> = s.iter().map(usize::to_string).collect();
                let shape = match dims.len() {
                    1 => format!("({},)", dims[0]),
                    _ => format!("({})", dims.join(", ")),
                };
                return Err(invalid(format!(
                    "{what} must be a 2-D array [rows, dim], got shape {shape}"
                )));
            }
        };
        Ok(Matrix { array, rows, cols })
    }

    /// The row-major values (borrowed when the array is C-contiguous).
    pub(super) fn data(&self) -> Cow<'_, [f32]> {
        match self.array.as_slice() {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => Cow::Owned(self.array.as_array().iter().copied().collect()),
        }
    }
}

/// `[str(x) for x in values]`.
fn strings(values: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    values
        .try_iter()?
        .map(|v| Ok(v?.str()?.to_string()))
        .collect()
}

/// `[os.fspath(p) for p in paths]`.
fn paths(values: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    values
        .try_iter()?
        .map(|v| {
            let p: PathBuf = v?.extract()?;
            Ok(p.to_string_lossy().into_owned())
        })
        .collect()
}

/// `[None if x is None or x is NaN else str(x) for x in values]` (pandas' missing cells).
fn optional_strings(values: &Bound<'_, PyAny>) -> PyResult<Vec<Option<String>>> {
    values
        .try_iter()?
        .map(|v| {
            let v = v?;
            if v.is_none()
                || (v.is_instance_of::<PyFloat>() && v.extract::<f64>().is_ok_and(f64::is_nan))
            {
                Ok(None)
            } else {
                Ok(Some(v.str()?.to_string()))
            }
        })
        .collect()
}

fn optional_column(values: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<Option<String>>>> {
    values
        .filter(|v| !v.is_none())
        .map(optional_strings)
        .transpose()
}

fn records_from(
    filepaths: Vec<String>,
    individual_ids: Vec<String>,
    dates: Option<Vec<Option<String>>>,
    locations: Option<Vec<Option<String>>>,
) -> Result<Vec<Record>, ReidError> {
    let n = filepaths.len();
    let check = |len: usize, what: &str| {
        if len != n {
            Err(ReidError::Shape(format!("{len} {what} for {n} filepaths")))
        } else {
            Ok(())
        }
    };
    check(individual_ids.len(), "individual ids")?;
    if let Some(d) = &dates {
        check(d.len(), "dates")?;
    }
    if let Some(l) = &locations {
        check(l.len(), "locations")?;
    }
    let mut dates = dates.map(|v| v.into_iter());
    let mut locations = locations.map(|v| v.into_iter());
    Ok(filepaths
        .into_iter()
        .zip(individual_ids)
        .map(|(filepath, individual_id)| Record {
            filepath,
            individual_id,
            date: dates
                .as_mut()
                .and_then(|d| d.next().flatten())
                .filter(|s| !s.is_empty()),
            location: locations
                .as_mut()
                .and_then(|l| l.next().flatten())
                .filter(|s| !s.is_empty()),
            extra: Vec::new(),
        })
        .collect())
}

/// The rows the Python methods `add` and `update` take, converted.
type Rows = (Vec<Record>, Vec<f32>, usize);

impl PyKnowledgeBase {
    fn check_dim(&self, d: usize) -> PyResult<()> {
        if d != self.kb.dim() {
            return Err(reid_error(ReidError::Shape(format!(
                "embeddings of dimension {d} for a knowledge base of dimension {}",
                self.kb.dim()
            ))));
        }
        Ok(())
    }

    fn rows(
        &self,
        filepaths: &Bound<'_, PyAny>,
        individual_ids: &Bound<'_, PyAny>,
        embeddings: &Bound<'_, PyAny>,
        dates: Option<&Bound<'_, PyAny>>,
        locations: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Rows> {
        let filepaths = paths(filepaths)?;
        let ids = strings(individual_ids)?;
        let m = Matrix::extract(embeddings, "embeddings")?;
        let recs = records_from(
            filepaths,
            ids,
            optional_column(dates)?,
            optional_column(locations)?,
        )
        .py()?;
        self.check_dim(m.cols)?;
        Ok((recs, m.data().into_owned(), m.rows))
    }

    fn search(
        &self,
        py: Python<'_>,
        queries: &[f32],
        k: usize,
        open: &OpenSet,
        seed: Option<u64>,
    ) -> PyResult<QueryOutcome> {
        let opts = search_options(k, 1024, 1024);
        py.detach(|| {
            let mut ids = NewIdGenerator::new(&self.kb, seed);
            query(&self.kb, queries, &opts, open, &mut ids)
        })
        .py()
    }
}

#[pymethods]
impl PyKnowledgeBase {
    #[new]
    fn new(dim: usize) -> PyResult<Self> {
        if dim == 0 {
            return Err(reid_error(ReidError::Argument(
                "dim must be positive".into(),
            )));
        }
        Ok(PyKnowledgeBase {
            kb: KnowledgeBase::new(dim),
        })
    }

    /// Reads lynx-id's ``informations.csv`` + ``embeddings.safetensors`` from a folder.
    #[staticmethod]
    fn load(py: Python<'_>, folder: PathBuf) -> PyResult<Self> {
        let kb = py.detach(|| KnowledgeBase::load(&folder)).py()?;
        Ok(PyKnowledgeBase { kb })
    }

    /// Reads a lynx-id pair of files given by path.
    #[staticmethod]
    fn load_files(py: Python<'_>, informations: PathBuf, embeddings: PathBuf) -> PyResult<Self> {
        let kb = py
            .detach(|| KnowledgeBase::load_files(&informations, &embeddings))
            .py()?;
        Ok(PyKnowledgeBase { kb })
    }

    /// Writes both files into ``folder`` (created if needed), each atomically.
    fn save(&self, py: Python<'_>, folder: PathBuf) -> PyResult<()> {
        py.detach(|| self.kb.save(&folder)).py()
    }

    /// Writes both files at the given paths, each atomically.
    fn save_files(
        &self,
        py: Python<'_>,
        informations: PathBuf,
        embeddings: PathBuf,
    ) -> PyResult<()> {
        py.detach(|| self.kb.save_files(&informations, &embeddings))
            .py()
    }

    fn __len__(&self) -> usize {
        self.kb.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "KnowledgeBase({} pictures, {} individuals, dim={})",
            self.kb.len(),
            self.kb.individuals().len(),
            self.kb.dim()
        )
    }

    /// Embedding dimension.
    #[getter]
    fn dim(&self) -> usize {
        self.kb.dim()
    }

    /// The rows as a dict of lists (``filepath``, ``individual_id``, ``date``, ``location``,
    /// then any extra CSV columns).
    fn columns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.columns_named(py, "individual_id")
    }

    /// The rows with lynx-id's column names (``filepath, lynx_id, date, location``), a pandas
    /// DataFrame.
    fn to_pandas<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let cols = self.columns_named(py, "lynx_id")?;
        py.import("pandas")?.getattr("DataFrame")?.call1((cols,))
    }

    /// A copy of the ``[len, dim]`` float32 embeddings.
    fn embeddings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let a = Array2::from_shape_vec(
            (self.kb.len(), self.kb.dim()),
            self.kb.embeddings().to_vec(),
        )
        .map_err(shape_error)?;
        Ok(a.into_pyarray(py))
    }

    /// Distinct individuals, in order of first appearance.
    fn individuals(&self) -> Vec<String> {
        self.kb
            .individuals()
            .into_iter()
            .map(String::from)
            .collect()
    }

    /// Pictures per individual.
    fn individual_counts(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for r in self.kb.records() {
            *m.entry(r.individual_id.clone()).or_insert(0) += 1;
        }
        m
    }

    /// The row of a filepath, or None.
    fn position(&self, filepath: PathBuf) -> Option<usize> {
        self.kb.position(&filepath.to_string_lossy())
    }

    /// Appends rows; fails, changing nothing, if a filepath is already known.
    #[pyo3(signature = (filepaths, individual_ids, embeddings, dates = None, locations = None))]
    fn add(
        &mut self,
        filepaths: &Bound<'_, PyAny>,
        individual_ids: &Bound<'_, PyAny>,
        embeddings: &Bound<'_, PyAny>,
        dates: Option<&Bound<'_, PyAny>>,
        locations: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let (recs, e, _) = self.rows(filepaths, individual_ids, embeddings, dates, locations)?;
        self.kb.add(recs, &e).py()
    }

    /// lynx-id's update: known filepaths get the new individual and embedding (and date and
    /// location when given), others are appended. Returns ``(updated, added)``.
    #[pyo3(signature = (filepaths, individual_ids, embeddings, dates = None, locations = None))]
    fn update(
        &mut self,
        filepaths: &Bound<'_, PyAny>,
        individual_ids: &Bound<'_, PyAny>,
        embeddings: &Bound<'_, PyAny>,
        dates: Option<&Bound<'_, PyAny>>,
        locations: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(usize, usize)> {
        let (recs, e, _) = self.rows(filepaths, individual_ids, embeddings, dates, locations)?;
        self.kb.update(recs, &e).py()
    }

    /// Removes rows by filepath (unknown ones ignored); returns how many went.
    fn remove(&mut self, filepaths: &Bound<'_, PyAny>) -> PyResult<usize> {
        Ok(self.kb.remove(&paths(filepaths)?))
    }

    /// Renames an individual (fails if ``new`` exists: merge instead); returns rows changed.
    fn rename_individual(&mut self, old: &str, new: &str) -> PyResult<usize> {
        self.kb.rename_individual(old, new).py()
    }

    /// Gives every picture of ``sources`` the id ``into``; returns rows changed.
    fn merge_individuals(&mut self, sources: Vec<String>, into: &str) -> PyResult<usize> {
        let s: Vec<&str> = sources.iter().map(String::as_str).collect();
        self.kb.merge_individuals(&s, into).py()
    }

    /// The k nearest pictures of each query embedding and lynx-id's verdict.
    ///
    /// Open set: with ``distance_threshold`` (a cosine distance; ``threshold`` is its old name,
    /// deprecated), a query whose nearest distance is above it is a new individual; with
    /// ``gaussian=True``, lynx-id's per-dimension Gaussian test decides (``confidence``,
    /// ``success_percentage``); with neither, the nearest individual is always the answer.
    /// New individuals get a fresh random 10-character id (``seed`` makes it reproducible).
    #[pyo3(signature = (embeddings, k = 5, distance_threshold = None, *, gaussian = false,
                        confidence = 0.997, success_percentage = 100.0, filepaths = None,
                        seed = None, threshold = None))]
    #[allow(clippy::too_many_arguments)]
    fn query(
        &self,
        py: Python<'_>,
        embeddings: &Bound<'_, PyAny>,
        k: usize,
        distance_threshold: Option<f32>,
        gaussian: bool,
        confidence: f64,
        success_percentage: f64,
        filepaths: Option<&Bound<'_, PyAny>>,
        seed: Option<u64>,
        threshold: Option<f32>,
    ) -> PyResult<PyQueryResult> {
        let threshold = renamed(
            py,
            "distance_threshold",
            distance_threshold,
            "threshold",
            threshold,
        )?;
        let q = Matrix::extract(embeddings, "embeddings")?;
        let filepaths = filepaths.filter(|f| !f.is_none()).map(paths).transpose()?;
        if let Some(f) = &filepaths {
            if f.len() != q.rows {
                return Err(invalid(format!(
                    "{} filepaths for {} embeddings",
                    f.len(),
                    q.rows
                )));
            }
        }
        self.check_dim(q.cols)?;
        let open = match (threshold, gaussian) {
            (Some(_), true) => {
                return Err(reid_error(ReidError::Argument(
                    "give a threshold or gaussian=True, not both".into(),
                )));
            }
            (Some(t), false) => OpenSet::Threshold(t),
            (None, true) => OpenSet::Gaussian(GaussianTest {
                confidence,
                success_percentage,
            }),
            (None, false) => OpenSet::Closed,
        };
        let out = self.search(py, &q.data(), k, &open, seed)?;
        let recs = self.kb.records();
        let neighbor_filepaths = out
            .neighbours
            .indices
            .chunks(out.neighbours.k.max(1))
            .map(|row| {
                row.iter()
                    .map(|&i| recs[i as usize].filepath.clone())
                    .collect()
            })
            .collect();
        let (distances, indices) = neighbours_to_py(py, out.neighbours)?;
        Ok(PyQueryResult {
            distances: distances.into_any().unbind(),
            indices: indices.into_any().unbind(),
            individual_predicted: out.individual_predicted,
            is_new: PyArray1::from_vec(py, out.is_new).into_any().unbind(),
            latest_picture_individual_predicted: out.latest_picture,
            location_closest_individual: out.location_closest,
            neighbor_ids: out.neighbor_ids,
            filepaths,
            neighbor_filepaths,
        })
    }

    /// Top-1 accuracy, CMC@1..k, mAP@1..k and precision/recall of "new" for labelled queries.
    ///
    /// ``true_ids`` gives each query's individual; None, ``"New"`` or an individual absent from
    /// the base means the right answer is "new individual". With ``distance_threshold=None``
    /// (``threshold``: its old name, deprecated) the threshold is chosen by a sweep
    /// (``thresholds``, default 0 to 2 by 0.01) on a random ``validation_fraction`` of the
    /// queries, and the figures are reported on the others;
    /// with a given ``distance_threshold``, all queries are test queries.
    #[pyo3(signature = (embeddings, true_ids, *, k = 5, distance_threshold = None,
                        thresholds = None, validation_fraction = 0.5, seed = 0, threshold = None))]
    #[allow(clippy::too_many_arguments)]
    fn evaluate(
        &self,
        py: Python<'_>,
        embeddings: &Bound<'_, PyAny>,
        true_ids: &Bound<'_, PyAny>,
        k: usize,
        distance_threshold: Option<f64>,
        thresholds: Option<Vec<f32>>,
        validation_fraction: f64,
        seed: u64,
        threshold: Option<f64>,
    ) -> PyResult<PyEvaluation> {
        let threshold = renamed(
            py,
            "distance_threshold",
            distance_threshold,
            "threshold",
            threshold,
        )?;
        let q = Matrix::extract(embeddings, "embeddings")?;
        let ids = optional_strings(true_ids)?;
        if ids.len() != q.rows {
            return Err(invalid(format!(
                "{} true ids for {} embeddings",
                ids.len(),
                q.rows
            )));
        }
        self.check_dim(q.cols)?;
        let choice = match threshold {
            Some(t) => ThresholdChoice::Fixed(t),
            None => {
                let perm = numpy_permutation(py, seed, q.rows)?;
                ThresholdChoice::Sweep {
                    thresholds: thresholds.unwrap_or_else(default_thresholds),
                    validation: validation_split(&perm, validation_fraction).py()?,
                }
            }
        };
        let data = q.data();
        let ev = py
            .detach(|| evaluate(&self.kb, &data, &ids, k, &choice))
            .py()?;
        PyEvaluation::from_core(py, ev)
    }
}

impl PyKnowledgeBase {
    fn columns_named<'py>(&self, py: Python<'py>, id_name: &str) -> PyResult<Bound<'py, PyDict>> {
        let r = self.kb.records();
        let d = PyDict::new(py);
        d.set_item(
            "filepath",
            r.iter().map(|x| x.filepath.as_str()).collect::<Vec<_>>(),
        )?;
        d.set_item(
            id_name,
            r.iter()
                .map(|x| x.individual_id.as_str())
                .collect::<Vec<_>>(),
        )?;
        d.set_item(
            "date",
            r.iter().map(|x| x.date.as_deref()).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "location",
            r.iter().map(|x| x.location.as_deref()).collect::<Vec<_>>(),
        )?;
        for (i, c) in self.kb.extra_columns().iter().enumerate() {
            d.set_item(c, r.iter().map(|x| x.extra[i].as_str()).collect::<Vec<_>>())?;
        }
        Ok(d)
    }
}

/// lynx-id's answer for each query, plus the raw neighbours.
///
/// ``distances`` and ``indices`` (rows of the knowledge base) are ``[n, k]`` numpy arrays,
/// nearest first. ``neighbor_ids`` are the neighbours' individuals, with ``"New"`` first for a
/// new individual (as lynx-id writes them).
#[pyclass(module = "deepfaune_rs.reid", name = "QueryResult", get_all, frozen)]
pub struct PyQueryResult {
    distances: Py<PyAny>,
    indices: Py<PyAny>,
    individual_predicted: Vec<String>,
    is_new: Py<PyAny>,
    latest_picture_individual_predicted: Vec<Option<String>>,
    location_closest_individual: Vec<Option<String>>,
    neighbor_ids: Vec<Vec<String>>,
    filepaths: Option<Vec<String>>,
    neighbor_filepaths: Vec<Vec<String>>,
}

#[pymethods]
impl PyQueryResult {
    fn __len__(&self) -> usize {
        self.individual_predicted.len()
    }

    /// lynx-id's output table: ``filepath`` (when the queries had paths),
    /// ``individual_predicted``, ``is_new``, ``latest_picture_individual_predicted``,
    /// ``location_closest_individual``, ``neighbor_1`` .. ``neighbor_k``.
    fn to_pandas<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let d = PyDict::new(py);
        if let Some(f) = &self.filepaths {
            d.set_item("filepath", f.clone())?;
        }
        d.set_item("individual_predicted", self.individual_predicted.clone())?;
        d.set_item("is_new", self.is_new.bind(py))?;
        d.set_item(
            "latest_picture_individual_predicted",
            self.latest_picture_individual_predicted.clone(),
        )?;
        d.set_item(
            "location_closest_individual",
            self.location_closest_individual.clone(),
        )?;
        let k: usize = self
            .distances
            .bind(py)
            .getattr("shape")?
            .get_item(1)?
            .extract()?;
        for j in 0..k {
            let col: Vec<&str> = self.neighbor_ids.iter().map(|r| r[j].as_str()).collect();
            d.set_item(format!("neighbor_{}", j + 1), col)?;
        }
        py.import("pandas")?.getattr("DataFrame")?.call1((d,))
    }
}

/// Retrieval figures on the test queries (see :meth:`KnowledgeBase.evaluate`).
///
/// ``cmc`` and ``map`` map k = 1..K to CMC@k and mAP@k over the test queries whose individual
/// is in the base; ``top1_accuracy`` and the "new" precision and recall use ``threshold``
/// (NaN when undefined). ``sweep`` is the validation sweep (threshold, accuracy, new_precision,
/// new_recall), or None when no sweep was run.
#[pyclass(module = "deepfaune_rs.reid", name = "Evaluation", get_all, frozen)]
pub struct PyEvaluation {
    top1_accuracy: f64,
    cmc: BTreeMap<usize, f64>,
    map: BTreeMap<usize, f64>,
    new_precision: f64,
    new_recall: f64,
    threshold: Option<f64>,
    n_test: usize,
    n_validation: usize,
    sweep: Option<Py<PyDict>>,
}

impl PyEvaluation {
    pub(super) fn from_core(py: Python<'_>, ev: Evaluation) -> PyResult<Self> {
        let by_k = |v: Vec<f64>| -> BTreeMap<usize, f64> {
            v.into_iter().enumerate().map(|(j, x)| (j + 1, x)).collect()
        };
        let sweep = ev
            .sweep
            .map(|s| -> PyResult<Py<PyDict>> {
                let d = PyDict::new(py);
                d.set_item("thresholds", s.thresholds)?;
                d.set_item("accuracy", s.accuracy)?;
                d.set_item("new_precision", s.new_precision)?;
                d.set_item("new_recall", s.new_recall)?;
                Ok(d.unbind())
            })
            .transpose()?;
        Ok(PyEvaluation {
            top1_accuracy: ev.top1_accuracy,
            cmc: by_k(ev.cmc),
            map: by_k(ev.map),
            new_precision: ev.new_precision,
            new_recall: ev.new_recall,
            threshold: Some(ev.threshold),
            n_test: ev.n_test,
            n_validation: ev.n_validation,
            sweep,
        })
    }
}

#[pymethods]
impl PyEvaluation {
    /// The figures as one flat dict (for printing or a DataFrame row).
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("top1_accuracy", self.top1_accuracy)?;
        for (k, v) in &self.cmc {
            d.set_item(format!("cmc@{k}"), v)?;
        }
        for (k, v) in &self.map {
            d.set_item(format!("map@{k}"), v)?;
        }
        d.set_item("new_precision", self.new_precision)?;
        d.set_item("new_recall", self.new_recall)?;
        d.set_item("threshold", self.threshold.unwrap_or(f64::NAN))?;
        d.set_item("n_test", self.n_test)?;
        d.set_item("n_validation", self.n_validation)?;
        Ok(d)
    }
}

/// Exact k nearest rows of ``base`` for each query by cosine distance (``1 - cos``).
///
/// Returns ``(distances, indices)``, each ``[n_queries, min(k, len(base))]``, nearest first;
/// equal distances are ordered by row. ``base`` is used in place when it is already C-contiguous
/// float32 (otherwise converted once).
///
/// >>> import numpy as np
/// >>> d, i = knn_cosine(np.eye(3, dtype=np.float32), [[0.0, 2.0, 0.1]], k=2)
/// >>> i.tolist()
/// [[1, 2]]
#[pyfunction]
#[pyo3(signature = (base, queries, k = 5))]
#[pyo3(name = "knn_cosine")]
fn knn_cosine_py<'py>(
    py: Python<'py>,
    base: &Bound<'py, PyAny>,
    queries: &Bound<'py, PyAny>,
    k: usize,
) -> PyResult<NeighbourArrays<'py>> {
    let base = Matrix::extract(base, "base")?;
    let queries = Matrix::extract(queries, "queries")?;
    let (b, d) = (base.data(), base.cols);
    let (q, qd) = (queries.data(), queries.cols);
    if qd != d {
        return Err(reid_error(ReidError::Shape(format!(
            "queries of dimension {qd} for a base of dimension {d}"
        ))));
    }
    let opts = search_options(k, 1024, 1024);
    let nn = py
        .detach(|| {
            let inv = inverse_norms(&b, d)?;
            knn_cosine(&b, &inv, d, &q, &opts)
        })
        .py()?;
    neighbours_to_py(py, nn)
}

/// Top-1 accuracy; `None` means "new individual" on both sides.
#[pyfunction]
fn reid_top1_accuracy(truth: Vec<Option<String>>, predicted: Vec<Option<String>>) -> PyResult<f64> {
    let t: Vec<Option<&str>> = truth.iter().map(|s| s.as_deref()).collect();
    let p: Vec<Option<&str>> = predicted.iter().map(|s| s.as_deref()).collect();
    metrics::top1_accuracy(&t, &p).py()
}

/// `(cmc, map)`, lists for k = 1..=k, over queries whose individual is in `n_relevant`.
#[pyfunction]
fn reid_cmc_map(
    truth: Vec<Option<String>>,
    neighbours: Vec<Vec<String>>,
    n_relevant: HashMap<String, usize>,
    k: usize,
) -> PyResult<(Vec<f64>, Vec<f64>)> {
    if truth.len() != neighbours.len() {
        return Err(reid_error(ReidError::Shape(format!(
            "{} truths for {} neighbour lists",
            truth.len(),
            neighbours.len()
        ))));
    }
    let t: Vec<Option<&str>> = truth.iter().map(|s| s.as_deref()).collect();
    let count = |id: &str| n_relevant.get(id).copied().unwrap_or(0);
    Ok(metrics::cmc_map(&t, &neighbours, &count, k))
}

/// `(precision, recall)` of the "new individual" answer (NaN when undefined).
#[pyfunction]
fn reid_new_precision_recall(
    truth_new: Vec<bool>,
    predicted_new: Vec<bool>,
) -> PyResult<(f64, f64)> {
    metrics::new_precision_recall(&truth_new, &predicted_new).py()
}

/// Threshold sweep: a dict with `thresholds`, `accuracy`, `new_precision`, `new_recall`, `best`.
#[pyfunction]
fn reid_threshold_sweep<'py>(
    py: Python<'py>,
    truth: Vec<Option<String>>,
    nearest_distance: Vec<f32>,
    nearest_individual: Vec<String>,
    thresholds: Vec<f32>,
) -> PyResult<Bound<'py, PyDict>> {
    let t: Vec<Option<&str>> = truth.iter().map(|s| s.as_deref()).collect();
    let n: Vec<&str> = nearest_individual.iter().map(String::as_str).collect();
    let s = metrics::threshold_sweep(&t, &nearest_distance, &n, &thresholds).py()?;
    let d = PyDict::new(py);
    d.set_item("best_threshold", s.best_threshold())?;
    d.set_item("best", s.best)?;
    d.set_item("thresholds", s.thresholds)?;
    d.set_item("accuracy", s.accuracy)?;
    d.set_item("new_precision", s.new_precision)?;
    d.set_item("new_recall", s.new_recall)?;
    Ok(d)
}

/// Reads a MegaDetector batch JSON: per image, the most confident box of ``category``
/// (``"1"`` = animal) with confidence at least ``min_conf``, as normalised ``[x, y, w, h]``
/// (NaN row when none). Returns ``(file names, boxes[n, 4])``; embed them with
/// ``box_format="megadetector"``.
#[pyfunction]
#[pyo3(signature = (path, *, category = "1", min_conf = 0.0))]
fn boxes_from_megadetector<'py>(
    py: Python<'py>,
    path: PathBuf,
    category: &str,
    min_conf: f64,
) -> PyResult<(Vec<String>, Bound<'py, PyArray2<f64>>)> {
    let images = py
        .detach(|| read_best_boxes(&path, category, min_conf))
        .py()?;
    let n = images.len();
    let mut files = Vec::with_capacity(n);
    let mut boxes = Vec::with_capacity(n * 4);
    for (file, b) in images {
        files.push(file);
        boxes.extend(b.unwrap_or([f64::NAN; 4]));
    }
    let a = Array2::from_shape_vec((n, 4), boxes).map_err(shape_error)?;
    Ok((files, a.into_pyarray(py)))
}

/// Adds the re-identification classes and functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyKnowledgeBase>()?;
    m.add_class::<PyQueryResult>()?;
    m.add_class::<PyEvaluation>()?;
    m.add_function(wrap_pyfunction!(boxes_from_megadetector, m)?)?;
    m.add_class::<PyCosineIndex>()?;
    m.add_function(wrap_pyfunction!(knn_cosine_py, m)?)?;
    m.add_function(wrap_pyfunction!(reid_top1_accuracy, m)?)?;
    m.add_function(wrap_pyfunction!(reid_cmc_map, m)?)?;
    m.add_function(wrap_pyfunction!(reid_new_precision_recall, m)?)?;
    m.add_function(wrap_pyfunction!(reid_threshold_sweep, m)?)?;
    Ok(())
}
