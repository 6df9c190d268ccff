//! Bindings of the embedding stage: `deepfaune_rs.reid`'s `Embedder` and `EmbeddingResult`, and
//! the CLAHE helper.

use std::path::PathBuf;
use std::sync::Mutex;

use numpy::ndarray::{Array2, Array3};
use numpy::{
    AllowTypeChange, IntoPyArray, PyArray1, PyArray2, PyArray3, PyArrayLike2, PyArrayLike3,
    PyArrayLike4, PyReadonlyArray2, PyReadonlyArray3, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict};

use super::errors::IntoPyResult;
use super::image_io::{from_rgb, to_rgb};
use super::locks::{try_lock, wait_for};
use super::reid_table::PyReidTable;
use crate::error::Error;
use crate::reid::boxes::read_best_boxes;
use crate::reid::embed::{
    builtin_embedder, clahe_gray as core_clahe_gray, clahe_rgb as core_clahe, crop_rect,
    embedder_source, prepare_crop, BoxFormat, CropBox, Embedder, EmbeddingManifest,
};
use crate::runtime::SessionOptions;

fn manifest_of(model: &str) -> Result<EmbeddingManifest, Error> {
    let p = std::path::Path::new(model);
    if model.ends_with(".toml") {
        return Ok(EmbeddingManifest::from_file(p)?);
    }
    Ok(builtin_embedder(model)?)
}

fn crops_of(
    boxes: Option<PyArrayLike2<'_, f64, AllowTypeChange>>,
    n: usize,
    format: &str,
    square: bool,
) -> Result<Vec<CropBox>, Error> {
    let Some(b) = boxes else {
        return Ok(Vec::new());
    };
    let format = match format {
        "xyxy" => BoxFormat::PixelsXyxy,
        "megadetector" | "md" => BoxFormat::NormalizedXywh,
        other => {
            return Err(Error::InvalidArgument(format!(
                "box_format '{other}': use 'xyxy' or 'megadetector'"
            )))
        }
    };
    let a = b.as_array();
    if a.ncols() != 4 || a.nrows() != n {
        return Err(Error::InvalidArgument(format!(
            "boxes of shape {:?}, expected [{n}, 4]",
            a.shape()
        )));
    }
    // A row of -1 (the detector's "no crop") or NaN means: this file has no box.
    Ok(a.rows()
        .into_iter()
        .map(|r| {
            let coords = [r[0], r[1], r[2], r[3]];
            if coords.iter().all(|v| *v == -1.0) {
                CropBox::Box {
                    coords: [f64::NAN; 4],
                    format,
                    square,
                }
            } else {
                CropBox::Box {
                    coords,
                    format,
                    square,
                }
            }
        })
        .collect())
}

/// An embedding model described by a manifest: a built-in id (``"yolox-embed"``,
/// ``"deepfaune-cls"``, ``"lynx-id-dinov2"``) or a ``.toml`` path; ``weights`` overrides where
/// the ONNX file is looked for.
///
/// Crops come from given boxes (``box_format="xyxy"`` pixels, or ``"megadetector"``
/// normalised ``[x, y, w, h]``), from a :class:`~deepfaune_rs.Detector` (its square animal
/// crops, as DeepFaune classifies them), or are the whole images.
#[pyclass(module = "deepfaune_rs.reid", name = "Embedder")]
pub struct PyEmbedder {
    /// Locked only with the GIL released (see `super::locks`).
    embedder: Mutex<Embedder>,
    /// The embedder's manifest (a copy: the getters need no lock).
    manifest: EmbeddingManifest,
}

#[pymethods]
impl PyEmbedder {
    #[new]
    #[pyo3(signature = (model = PathBuf::from("yolox-embed"), weights = None, intra_threads = 0),
           text_signature = "(model='yolox-embed', weights=None, intra_threads=0)")]
    fn new(
        py: Python<'_>,
        model: PathBuf,
        weights: Option<PathBuf>,
        intra_threads: usize,
    ) -> PyResult<Self> {
        let model = model.to_string_lossy().into_owned();
        let embedder = py
            .detach(|| -> Result<Embedder, Error> {
                let m = manifest_of(&model)?;
                let source = embedder_source(&m, weights)?;
                Embedder::new(
                    m,
                    &source,
                    SessionOptions {
                        intra_threads,
                        ..Default::default()
                    },
                )
            })
            .py()?;
        Ok(PyEmbedder {
            manifest: embedder.manifest.clone(),
            embedder: Mutex::new(embedder),
        })
    }

    /// The manifest's main facts (id, size, dim, ...).
    #[getter]
    fn manifest<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = &self.manifest;
        let d = PyDict::new(py);
        d.set_item("id", &m.id)?;
        d.set_item("name", &m.name)?;
        d.set_item("size", m.input.size)?;
        d.set_item("dim", m.output.dim)?;
        d.set_item("l2_normalize", m.output.l2_normalize)?;
        d.set_item("clahe", m.input.clahe.is_some())?;
        Ok(d)
    }

    /// Embedding dimension.
    #[getter]
    fn dim(&self) -> usize {
        self.manifest.output.dim
    }

    /// Embeds one crop per file.
    ///
    /// ``boxes`` is ``[n, 4]`` (a row of -1 or NaN: no box, the file fails); with no boxes and
    /// a ``detector`` (a :class:`~deepfaune_rs.Detector`, or ``True`` for the embedded one),
    /// the detector's animal crop of each image is used; with neither, the whole image.
    #[pyo3(signature = (paths, boxes = None, *, box_format = "xyxy", square = false,
                        detector = None, batch_size = 8))]
    #[allow(clippy::too_many_arguments)]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        paths: Vec<PathBuf>,
        boxes: Option<Bound<'py, PyAny>>,
        box_format: &str,
        square: bool,
        detector: Option<Bound<'py, PyAny>>,
        batch_size: usize,
    ) -> PyResult<PyEmbeddingResult> {
        let (boxes, box_format, square) = match (boxes.filter(|b| !b.is_none()), detector) {
            (None, Some(det)) if !det.is_none() => {
                // `True`: the embedded detector.
                let det = if det.is_instance_of::<PyBool>() && det.is_truthy()? {
                    py.import("deepfaune_rs.detect")?
                        .getattr("Detector")?
                        .call0()?
                } else {
                    det
                };
                (Some(detector_crop_boxes(&det, &paths)?), "xyxy", false)
            }
            (b, _) => (b, box_format, square),
        };
        let boxes: Option<PyArrayLike2<'py, f64, AllowTypeChange>> =
            boxes.map(|b| b.extract()).transpose()?;
        let crops = crops_of(boxes, paths.len(), box_format, square).py()?;
        self.run(py, paths, crops, batch_size)
    }

    /// Embeds the pictures of a table (``ReidTable``): the crops of its ``bbox_*`` columns, else
    /// of the MegaDetector file ``boxes``, else the whole images with ``whole_image``, else the
    /// animal crops of the ``detector`` (a name, as ``Detector`` takes it).
    #[pyo3(signature = (table, *, boxes = None, detector = "md-lite", whole_image = false,
                        batch_size = 8))]
    fn embed_table(
        &self,
        py: Python<'_>,
        table: &PyReidTable,
        boxes: Option<PathBuf>,
        detector: &str,
        whole_image: bool,
        batch_size: usize,
    ) -> PyResult<PyEmbeddingResult> {
        let t = &table.table;
        let paths: Vec<PathBuf> = t.filepaths().py()?.into_iter().map(PathBuf::from).collect();
        let md = boxes
            .map(|p| py.detach(|| read_best_boxes(&p, "1", 0.0)))
            .transpose()
            .py()?;
        let crops = match t.crops(md.as_ref()).py()? {
            Some(c) => c,
            None if whole_image => Vec::new(),
            None => {
                let det = py
                    .import("deepfaune_rs.detect")?
                    .getattr("Detector")?
                    .call1((detector,))?;
                let b = detector_crop_boxes(&det, &paths)?.extract()?;
                crops_of(Some(b), paths.len(), "xyxy", false).py()?
            }
        };
        self.run(py, paths, crops, batch_size)
    }

    /// The model input ``[3, size, size]`` for one crop of an ``HxWx3`` uint8 image; ``box``
    /// is ``[x1, y1, x2, y2]`` in pixels (whole image when None).
    #[pyo3(signature = (image, r#box = None), text_signature = "($self, image, box=None)")]
    fn prepare<'py>(
        &self,
        py: Python<'py>,
        image: PyArrayLike3<'py, u8, AllowTypeChange>,
        r#box: Option<[f64; 4]>,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let img = to_rgb(&image)?;
        let crop = match r#box {
            None => CropBox::Full,
            Some(coords) => CropBox::Box {
                coords,
                format: BoxFormat::PixelsXyxy,
                square: false,
            },
        };
        let rect = crop_rect(&crop, img.width(), img.height())
            .map_err(Error::InvalidArgument)
            .py()?;
        let input = &self.manifest.input;
        let s = input.size as usize;
        let t = py.detach(|| prepare_crop(input, &img, rect));
        Ok(Array3::from_shape_vec((3, s, s), t)
            .expect("sizes agree")
            .into_pyarray(py))
    }

    /// Runs prepared inputs ``[n, 3, size, size]``; returns ``[n, dim]`` (L2-normalised if
    /// the manifest says so).
    fn embed_tensors<'py>(
        &self,
        py: Python<'py>,
        tensors: PyArrayLike4<'py, f32, AllowTypeChange>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let shape = tensors.shape().to_vec();
        let data: Vec<f32> = match tensors.as_slice() {
            Ok(s) => s.to_vec(),
            Err(_) => tensors.as_array().iter().copied().collect(),
        };
        let per: usize = shape[1..].iter().product();
        let list: Vec<Vec<f32>> = data.chunks(per.max(1)).map(<[f32]>::to_vec).collect();
        let dim = self.manifest.output.dim;
        let out = py
            .detach(|| {
                let mut e = wait_for(|| try_lock(&self.embedder))?;
                Ok::<_, PyErr>(e.embed_tensors(&list))
            })?
            .py()?;
        let a = Array2::from_shape_vec((shape[0], dim), out).map_err(super::errors::shape_error)?;
        Ok(a.into_pyarray(py))
    }
}

impl PyEmbedder {
    /// Embeds one crop per file (`crops` empty: whole images) with the GIL released.
    fn run(
        &self,
        py: Python<'_>,
        paths: Vec<PathBuf>,
        crops: Vec<CropBox>,
        batch_size: usize,
    ) -> PyResult<PyEmbeddingResult> {
        let res = py
            .detach(|| {
                let mut e = wait_for(|| try_lock(&self.embedder))?;
                Ok::<_, PyErr>(e.embed_files(&paths, &crops, batch_size))
            })?
            .py()?;
        let a = Array2::from_shape_vec((paths.len(), res.dim), res.embeddings)
            .map_err(super::errors::shape_error)?;
        Ok(PyEmbeddingResult {
            paths: paths
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            embeddings: a.into_pyarray(py).into_any().unbind(),
            failures: res.failures,
        })
    }
}

/// The square animal crop of each image (`[x1, y1, x2, y2]`, -1 rows without one) from a
/// `deepfaune_rs.Detector`, as DeepFaune classifies them.
fn detector_crop_boxes<'py>(
    detector: &Bound<'py, PyAny>,
    paths: &[PathBuf],
) -> PyResult<Bound<'py, PyAny>> {
    let kw = PyDict::new(detector.py());
    kw.set_item("progress", false)?;
    detector
        .call_method("detect", (paths.to_vec(),), Some(&kw))?
        .getattr("crop_boxes")
}

/// One embedding per input file: ``embeddings[i]`` belongs to ``paths[i]``; failed files
/// have NaN rows and are listed in ``failures`` as ``(index, reason)``.
#[pyclass(
    module = "deepfaune_rs.reid",
    name = "EmbeddingResult",
    get_all,
    frozen
)]
pub struct PyEmbeddingResult {
    paths: Vec<String>,
    embeddings: Py<PyAny>,
    failures: Vec<(usize, String)>,
}

#[pymethods]
impl PyEmbeddingResult {
    /// Boolean mask of the files that were embedded.
    #[getter]
    fn ok<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<bool>> {
        let mut mask = vec![true; self.paths.len()];
        for (i, _) in &self.failures {
            if let Some(m) = mask.get_mut(*i) {
                *m = false;
            }
        }
        PyArray1::from_vec(py, mask)
    }
}

/// CLAHE of the lightness of an `HxWx3` uint8 RGB image (lynx-id's preprocessing).
#[pyfunction]
#[pyo3(signature = (image, clip_limit = 4.0, tile_grid = 4))]
fn clahe_rgb<'py>(
    py: Python<'py>,
    image: PyReadonlyArray3<'py, u8>,
    clip_limit: f32,
    tile_grid: u32,
) -> PyResult<Bound<'py, PyArray3<u8>>> {
    let img = to_rgb(&image)?;
    if !(clip_limit.is_finite() && clip_limit > 0.0) || tile_grid == 0 {
        return Err(Error::InvalidArgument(
            "clip_limit must be positive and tile_grid at least 1".into(),
        ))
        .py();
    }
    let out = py.detach(|| core_clahe(&img, clip_limit, tile_grid));
    Ok(from_rgb(py, out))
}

/// OpenCV's CLAHE on an `HxW` uint8 image (the step [`clahe_rgb`] applies to the lightness).
#[pyfunction]
#[pyo3(signature = (image, clip_limit = 4.0, tile_grid = 4))]
fn clahe_gray<'py>(
    py: Python<'py>,
    image: PyReadonlyArray2<'py, u8>,
    clip_limit: f32,
    tile_grid: u32,
) -> PyResult<Bound<'py, PyArray2<u8>>> {
    if !(clip_limit.is_finite() && clip_limit > 0.0) || tile_grid == 0 {
        return Err(Error::InvalidArgument(
            "clip_limit must be positive and tile_grid at least 1".into(),
        ))
        .py();
    }
    let a = image.as_array();
    let (h, w) = a.dim();
    let data: Vec<u8> = a.iter().copied().collect();
    let out = py.detach(|| core_clahe_gray(&data, w, h, clip_limit, tile_grid as usize));
    Ok(Array2::from_shape_vec((h, w), out)
        .expect("sizes agree")
        .into_pyarray(py))
}

/// Adds the embedding classes and functions to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEmbedder>()?;
    m.add_class::<PyEmbeddingResult>()?;
    m.add_function(wrap_pyfunction!(clahe_rgb, m)?)?;
    m.add_function(wrap_pyfunction!(clahe_gray, m)?)?;
    Ok(())
}
