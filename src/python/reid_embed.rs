//! Bindings of the embedding stage: `Embedder` and the CLAHE helper.

use std::path::PathBuf;
use std::sync::Mutex;

use numpy::ndarray::{Array2, Array3};
use numpy::{
    IntoPyArray, PyArray2, PyArray3, PyReadonlyArray2, PyReadonlyArray3, PyReadonlyArray4,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::errors::IntoPyResult;
use super::image_io::{from_rgb, to_rgb};
use super::locks::{try_lock, wait_for};
use crate::error::Error;
use crate::reid::embed::{
    builtin_embedder, clahe_gray as core_clahe_gray, clahe_rgb as core_clahe, crop_rect,
    embedder_source, prepare_crop, BoxFormat, CropBox, Embedder, EmbeddingManifest,
};
use crate::runtime::SessionOptions;

/// `(embeddings, failures)`.
type EmbedOutput<'py> = (Bound<'py, PyArray2<f32>>, Vec<(usize, String)>);

fn manifest_of(model: &str) -> Result<EmbeddingManifest, Error> {
    let p = std::path::Path::new(model);
    if model.ends_with(".toml") {
        return Ok(EmbeddingManifest::from_file(p)?);
    }
    Ok(builtin_embedder(model)?)
}

fn crops_of(
    boxes: Option<PyReadonlyArray2<'_, f64>>,
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

/// An embedding model described by a manifest.
#[pyclass(module = "deepfaune_rs._core", name = "Embedder")]
pub struct PyEmbedder {
    /// Locked only with the GIL released (see `super::locks`).
    embedder: Mutex<Embedder>,
    /// The embedder's manifest (a copy: the getters need no lock).
    manifest: EmbeddingManifest,
}

#[pymethods]
impl PyEmbedder {
    #[new]
    #[pyo3(signature = (model = "yolox-embed", weights = None, intra_threads = 0))]
    fn new(
        py: Python<'_>,
        model: &str,
        weights: Option<PathBuf>,
        intra_threads: usize,
    ) -> PyResult<Self> {
        let embedder = py
            .detach(|| -> Result<Embedder, Error> {
                let m = manifest_of(model)?;
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

    /// The manifest's facts as a dict.
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

    /// Embeds one crop per file. Returns `(embeddings[n, dim] float32, failures)` where failed
    /// files have NaN rows and `failures` lists `(index, reason)`.
    #[pyo3(signature = (paths, boxes = None, box_format = "xyxy", square = false, batch_size = 8))]
    fn embed_files<'py>(
        &self,
        py: Python<'py>,
        paths: Vec<PathBuf>,
        boxes: Option<PyReadonlyArray2<'py, f64>>,
        box_format: &str,
        square: bool,
        batch_size: usize,
    ) -> PyResult<EmbedOutput<'py>> {
        let crops = crops_of(boxes, paths.len(), box_format, square).py()?;
        let res = py
            .detach(|| {
                let mut e = wait_for(|| try_lock(&self.embedder))?;
                Ok::<_, PyErr>(e.embed_files(&paths, &crops, batch_size))
            })?
            .py()?;
        let a = Array2::from_shape_vec((paths.len(), res.dim), res.embeddings)
            .map_err(super::errors::shape_error)?;
        Ok((a.into_pyarray(py), res.failures))
    }

    /// The model input `[3, size, size]` for one crop of an `HxWx3` uint8 image; `box` is
    /// `[x1, y1, x2, y2]` in pixels (whole image when None).
    #[pyo3(signature = (image, bbox = None))]
    fn prepare<'py>(
        &self,
        py: Python<'py>,
        image: PyReadonlyArray3<'py, u8>,
        bbox: Option<[f64; 4]>,
    ) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let img = to_rgb(&image)?;
        let crop = match bbox {
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

    /// Runs prepared inputs `[n, 3, size, size]`; returns `[n, dim]` (L2-normalised if the
    /// manifest says so).
    fn embed_tensors<'py>(
        &self,
        py: Python<'py>,
        tensors: PyReadonlyArray4<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let shape = tensors.shape().to_vec();
        let data = tensors
            .as_slice()
            .map_err(|_| Error::InvalidArgument("tensors must be C-contiguous".into()))
            .py()?;
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
    m.add_function(wrap_pyfunction!(clahe_rgb, m)?)?;
    m.add_function(wrap_pyfunction!(clahe_gray, m)?)?;
    Ok(())
}
