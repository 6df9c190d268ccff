//! Bindings of stage 1-2 helpers: reading an image as Pillow would, and the detector tensor.

use std::path::PathBuf;

use numpy::ndarray::Array3;
use numpy::{IntoPyArray, PyArray3, PyReadonlyArray3};
use pyo3::prelude::*;

use super::errors::IntoPyResult;
use crate::error::Error;
use crate::image_io::{read_image as core_read, DecodeOptions};
use crate::preprocess::{resize_pil as core_resize_pil, PilFilter, Rect};

pub(super) fn to_rgb(arr: &PyReadonlyArray3<'_, u8>) -> PyResult<image::RgbImage> {
    let a = arr.as_array();
    let (h, w, c) = a.dim();
    if c != 3 {
        return Err(super::errors::invalid("expected an HxWx3 uint8 array"));
    }
    let data: Vec<u8> = match a.as_slice() {
        Some(s) => s.to_vec(),
        None => a.iter().copied().collect(),
    };
    image::RgbImage::from_raw(w as u32, h as u32, data)
        .ok_or_else(|| super::errors::invalid("bad image shape"))
}

pub(super) fn from_rgb(py: Python<'_>, img: image::RgbImage) -> Bound<'_, PyArray3<u8>> {
    let (w, h) = img.dimensions();
    Array3::from_shape_vec((h as usize, w as usize, 3), img.into_raw())
        .expect("sizes agree")
        .into_pyarray(py)
}

/// Decodes an image file as the pipeline does (EXIF orientation applied).
/// Returns `(pixels[h, w, 3] uint8, exif_date or None, exif_orientation)`.
#[pyfunction]
#[pyo3(signature = (path, max_pixels = None))]
fn read_image(
    py: Python<'_>,
    path: PathBuf,
    max_pixels: Option<u64>,
) -> PyResult<(Bound<'_, PyArray3<u8>>, Option<String>, u16)> {
    let mut opts = DecodeOptions::default();
    if let Some(m) = max_pixels {
        opts.max_pixels = m;
    }
    let p = path.clone();
    let d = py
        .detach(move || core_read(&p, &opts))
        .map_err(|source| Error::Image { path, source })
        .py()?;
    Ok((
        from_rgb(py, d.image),
        d.exif.date.map(|t| t.text),
        d.exif.orientation,
    ))
}

/// Resizes like Pillow's `Image.crop(box).resize(size, filter)` (`filter`: "bicubic" or "bilinear").
#[pyfunction]
#[pyo3(signature = (image, size, box_ = None, filter = "bicubic"))]
fn resize_pil<'py>(
    py: Python<'py>,
    image: PyReadonlyArray3<'py, u8>,
    size: (u32, u32),
    box_: Option<(u32, u32, u32, u32)>,
    filter: &str,
) -> PyResult<Bound<'py, PyArray3<u8>>> {
    let img = to_rgb(&image)?;
    let f = match filter {
        "bicubic" => PilFilter::Bicubic,
        "bilinear" => PilFilter::Bilinear,
        other => return Err(super::errors::invalid(format!("unknown filter '{other}'"))),
    };
    let rect = match box_ {
        None => Rect::full(&img),
        Some((x1, y1, x2, y2)) if x2 > x1 && y2 > y1 && x2 <= img.width() && y2 <= img.height() => {
            Rect {
                x: x1,
                y: y1,
                w: x2 - x1,
                h: y2 - y1,
            }
        }
        Some(b) => {
            return Err(super::errors::invalid(format!(
                "box {b:?} outside the image"
            )))
        }
    };
    if size.0 == 0 || size.1 == 0 {
        return Err(super::errors::invalid("size must be positive"));
    }
    let out = py.detach(move || core_resize_pil(&img, rect, size.0, size.1, f));
    Ok(from_rgb(py, out))
}

/// Resizes like `cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)`.
#[pyfunction]
fn resize_cv2_linear<'py>(
    py: Python<'py>,
    image: PyReadonlyArray3<'py, u8>,
    size: (u32, u32),
) -> PyResult<Bound<'py, PyArray3<u8>>> {
    let img = to_rgb(&image)?;
    if size.0 == 0 || size.1 == 0 {
        return Err(super::errors::invalid("size must be positive"));
    }
    let out = py.detach(move || crate::preprocess::resize_cv2_linear(&img, size.0, size.1));
    Ok(from_rgb(py, out))
}

/// The image files of ``inputs`` (files kept as given, folders walked recursively, sorted), or
/// ``sample`` of them evenly spread over that order.
#[pyfunction]
#[pyo3(signature = (inputs, sample = None))]
fn image_files(py: Python<'_>, inputs: Vec<PathBuf>, sample: Option<usize>) -> Vec<PathBuf> {
    py.detach(|| crate::image_io::walk::image_files(&inputs, sample))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(image_files, m)?)?;
    m.add_function(wrap_pyfunction!(read_image, m)?)?;
    m.add_function(wrap_pyfunction!(resize_pil, m)?)?;
    m.add_function(wrap_pyfunction!(resize_cv2_linear, m)?)?;
    Ok(())
}
