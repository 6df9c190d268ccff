//! Bindings of the re-identification stage: `KnowledgeBase`, `CosineIndex`, the search and the
//! metrics. Arrays come in as C-contiguous float32 (the Python layer converts) and leave as numpy
//! arrays that own the Rust buffers (no copy); heavy work runs with the GIL released.

use std::collections::HashMap;
use std::path::PathBuf;

use numpy::ndarray::Array2;
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::reid::kb::{KnowledgeBase, Record};
use crate::reid::metrics;
use crate::reid::openset::GaussianTest;
use crate::reid::query::{query, NewIdGenerator, OpenSet, QueryOutcome};
use crate::reid::search::{inverse_norms, knn_cosine, Neighbours, SearchOptions};
use crate::reid::ReidError;

use super::errors::{reid_error, shape_error, IntoPyResult};

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
#[pyclass(module = "deepfaune_rs._core", name = "CosineIndex", frozen)]
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

/// Rows (filepath, individual, date, location) aligned with an embeddings matrix.
#[pyclass(module = "deepfaune_rs._core", name = "KnowledgeBase")]
pub struct PyKnowledgeBase {
    kb: KnowledgeBase,
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

    /// Reads `informations.csv` and `embeddings.safetensors` from `folder`.
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

    /// Writes both files into `folder`, each atomically.
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

    /// Embedding dimension.
    #[getter]
    fn dim(&self) -> usize {
        self.kb.dim()
    }

    /// The rows as columns: a dict of lists (`filepath`, `individual_id`, `date`, `location`,
    /// then any extra CSV columns).
    fn columns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let r = self.kb.records();
        let d = PyDict::new(py);
        d.set_item(
            "filepath",
            r.iter().map(|x| x.filepath.as_str()).collect::<Vec<_>>(),
        )?;
        d.set_item(
            "individual_id",
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

    /// A copy of the `[len, dim]` float32 embeddings (a copy, because the base can change).
    fn embeddings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let a = Array2::from_shape_vec(
            (self.kb.len(), self.kb.dim()),
            self.kb.embeddings().to_vec(),
        )
        .map_err(shape_error)?;
        Ok(a.into_pyarray(py))
    }

    /// The distinct individuals, in order of first appearance.
    fn individuals(&self) -> Vec<String> {
        self.kb
            .individuals()
            .into_iter()
            .map(String::from)
            .collect()
    }

    /// Number of pictures of each individual.
    fn individual_counts(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for r in self.kb.records() {
            *m.entry(r.individual_id.clone()).or_insert(0) += 1;
        }
        m
    }

    /// The row of a filepath, or None.
    fn position(&self, filepath: &str) -> Option<usize> {
        self.kb.position(filepath)
    }

    /// Appends rows; fails, changing nothing, if a filepath is already known.
    #[pyo3(signature = (filepaths, individual_ids, embeddings, dates = None, locations = None))]
    fn add(
        &mut self,
        filepaths: Vec<String>,
        individual_ids: Vec<String>,
        embeddings: PyReadonlyArray2<'_, f32>,
        dates: Option<Vec<Option<String>>>,
        locations: Option<Vec<Option<String>>>,
    ) -> PyResult<()> {
        let recs = records_from(filepaths, individual_ids, dates, locations).py()?;
        let (e, d) = matrix(&embeddings, "embeddings")?;
        self.check_dim(d)?;
        self.kb.add(recs, e).py()
    }

    /// Updates known filepaths and appends the others (lynx-id's merge on filepath); returns
    /// `(updated, added)`.
    #[pyo3(signature = (filepaths, individual_ids, embeddings, dates = None, locations = None))]
    fn update(
        &mut self,
        filepaths: Vec<String>,
        individual_ids: Vec<String>,
        embeddings: PyReadonlyArray2<'_, f32>,
        dates: Option<Vec<Option<String>>>,
        locations: Option<Vec<Option<String>>>,
    ) -> PyResult<(usize, usize)> {
        let recs = records_from(filepaths, individual_ids, dates, locations).py()?;
        let (e, d) = matrix(&embeddings, "embeddings")?;
        self.check_dim(d)?;
        self.kb.update(recs, e).py()
    }

    /// Removes rows by filepath; returns how many were removed.
    fn remove(&mut self, filepaths: Vec<String>) -> usize {
        self.kb.remove(&filepaths)
    }

    /// Renames an individual (fails if the new name exists); returns the rows changed.
    fn rename_individual(&mut self, old: &str, new: &str) -> PyResult<usize> {
        self.kb.rename_individual(old, new).py()
    }

    /// Gives all `sources` the id `into`; returns the rows changed.
    fn merge_individuals(&mut self, sources: Vec<String>, into: &str) -> PyResult<usize> {
        let s: Vec<&str> = sources.iter().map(String::as_str).collect();
        self.kb.merge_individuals(&s, into).py()
    }

    /// Searches the base and applies the open-set rule. Returns a dict of columns.
    #[pyo3(signature = (queries, k = 5, threshold = None, gaussian = false, confidence = 0.997,
                        success_percentage = 100.0, seed = None))]
    #[allow(clippy::too_many_arguments)]
    fn query<'py>(
        &self,
        py: Python<'py>,
        queries: PyReadonlyArray2<'py, f32>,
        k: usize,
        threshold: Option<f32>,
        gaussian: bool,
        confidence: f64,
        success_percentage: f64,
        seed: Option<u64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (q, d) = matrix(&queries, "queries")?;
        self.check_dim(d)?;
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
        let opts = search_options(k, 1024, 1024);
        let out = py
            .detach(|| {
                let mut ids = NewIdGenerator::new(&self.kb, seed);
                query(&self.kb, q, &opts, &open, &mut ids)
            })
            .py()?;
        outcome_to_py(py, out)
    }
}

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
}

fn outcome_to_py(py: Python<'_>, out: QueryOutcome) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    let (dist, idx) = neighbours_to_py(py, out.neighbours)?;
    d.set_item("distances", dist)?;
    d.set_item("indices", idx)?;
    d.set_item("individual_predicted", out.individual_predicted)?;
    d.set_item("is_new", PyArray1::from_vec(py, out.is_new))?;
    d.set_item("latest_picture_individual_predicted", out.latest_picture)?;
    d.set_item("location_closest_individual", out.location_closest)?;
    d.set_item("neighbor_ids", out.neighbor_ids)?;
    Ok(d)
}

/// Exact cosine k-NN of `queries` in `base` (both float32, C-contiguous): `(distances, indices)`.
#[pyfunction]
#[pyo3(signature = (base, queries, k = 5))]
#[pyo3(name = "knn_cosine")]
fn knn_cosine_py<'py>(
    py: Python<'py>,
    base: PyReadonlyArray2<'py, f32>,
    queries: PyReadonlyArray2<'py, f32>,
    k: usize,
) -> PyResult<NeighbourArrays<'py>> {
    let (b, d) = matrix(&base, "base")?;
    let (q, qd) = matrix(&queries, "queries")?;
    if qd != d {
        return Err(reid_error(ReidError::Shape(format!(
            "queries of dimension {qd} for a base of dimension {d}"
        ))));
    }
    let opts = search_options(k, 1024, 1024);
    let nn = py
        .detach(|| {
            let inv = inverse_norms(b, d)?;
            knn_cosine(b, &inv, d, q, &opts)
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

/// Adds the re-identification classes and functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyKnowledgeBase>()?;
    m.add_class::<PyCosineIndex>()?;
    m.add_function(wrap_pyfunction!(knn_cosine_py, m)?)?;
    m.add_function(wrap_pyfunction!(reid_top1_accuracy, m)?)?;
    m.add_function(wrap_pyfunction!(reid_cmc_map, m)?)?;
    m.add_function(wrap_pyfunction!(reid_new_precision_recall, m)?)?;
    m.add_function(wrap_pyfunction!(reid_threshold_sweep, m)?)?;
    Ok(())
}
