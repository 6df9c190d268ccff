//! Bindings of the video path: the frame sampler a run calls (Python's
//! `deepfaune_rs.video.sample_video`, PyAV, under the GIL) and `Pipeline.run_frames` (frames as
//! numpy arrays in, one `VideoResult` out). Frame extraction happens in Python
//! (`deepfaune_rs/video.py`); everything after it in the core (`crate::pipeline::video`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use image::RgbImage;
use numpy::{PyArray2, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::detect::PyDetectionResults;
use super::errors::IntoPyResult;
use super::locks::wait_for;
use super::numpy_views::view2;
use super::pipeline::PyPipeline;
use crate::error::Error;
use crate::pipeline::{Sampled, SampledVideo, VideoRun};
use crate::results::VideoFailure;
use crate::run::PipelineResults;
use crate::sequence::video::VideoSummary;

/// Copies an `[h, w, 3]` uint8 array into an image.
fn to_rgb(a: &PyReadonlyArray3<'_, u8>) -> Result<RgbImage, Error> {
    let shape = a.shape();
    let (h, w) = (shape[0], shape[1]);
    if shape[2] != 3 || h == 0 || w == 0 || h > u32::MAX as usize || w > u32::MAX as usize {
        return Err(Error::InvalidArgument(format!(
            "a frame must be a non-empty [height, width, 3] uint8 array, got {shape:?}"
        )));
    }
    let data: Vec<u8> = match a.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => a.as_array().iter().copied().collect(),
    };
    RgbImage::from_raw(w as u32, h as u32, data)
        .ok_or_else(|| Error::InvalidArgument("frame buffer size mismatch".into()))
}

/// The sampler of a run: `deepfaune_rs.video.sample_video(path)` under the GIL. A
/// `VideoError` is the video's failure, so is any other exception (a failed record, never a
/// crash); a `BaseException` that is not an `Exception` (Ctrl-C, `SystemExit`) stops the run,
/// kept in `slot` to be raised once the run has returned.
pub(super) fn python_sampler(
    slot: &Mutex<Option<PyErr>>,
) -> impl FnMut(&Path) -> Result<Sampled, Error> + '_ {
    move |path| {
        Python::attach(|py| match sample(py, path) {
            Ok(sampled) => Ok(Ok(sampled)),
            Err(e) if !e.is_instance_of::<pyo3::exceptions::PyException>(py) => {
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Err(Error::Cancelled)
            }
            Err(e) => Ok(Err(failure_of(py, &e))),
        })
    }
}

/// A Python exception of the sampler as the video's failure: a `VideoError`'s stage, kind and
/// reason, or (anything else) stage `read`, kind `other` and the exception's text.
fn failure_of(py: Python<'_>, e: &PyErr) -> VideoFailure {
    let value = e.value(py);
    let text = |name: &str| -> Option<String> { value.getattr(name).ok()?.extract().ok() };
    let is_video_error = py
        .import("deepfaune_rs.video")
        .and_then(|m| m.getattr("VideoError"))
        .is_ok_and(|cls| value.is_instance(&cls).unwrap_or(false));
    match (is_video_error, text("stage"), text("kind"), text("reason")) {
        (true, Some(stage), Some(kind), Some(reason)) => VideoFailure {
            stage,
            kind,
            reason,
        },
        _ => {
            let name = value
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "Exception".into());
            VideoFailure {
                stage: "read".into(),
                kind: "other".into(),
                reason: format!("reading the frames failed: {name}: {value}"),
            }
        }
    }
}

/// Calls `sample_video(path)` and converts its `SampledVideo`.
fn sample(py: Python<'_>, path: &Path) -> PyResult<SampledVideo> {
    let v = py
        .import("deepfaune_rs.video")?
        .getattr("sample_video")?
        .call1((path,))?;
    let arrays: Vec<PyReadonlyArray3<'_, u8>> = v.getattr("frames")?.extract()?;
    let frames = arrays
        .iter()
        .map(to_rgb)
        .collect::<Result<Vec<_>, _>>()
        .py()?;
    Ok(SampledVideo {
        frames,
        frame_numbers: v.getattr("frame_numbers")?.extract()?,
        slots: v.getattr("slots")?.extract()?,
        positions: v.getattr("positions")?.extract()?,
        fps: v.getattr("fps")?.extract()?,
        total_frames: v.getattr("total_frames")?.extract()?,
        date: v.getattr("date")?.extract()?,
        seconds: v.getattr("seconds")?.extract()?,
    })
}

/// Runs `frames` through the pipeline and aggregates the sampled `slots` into one prediction.
pub(super) fn run_video(
    pipe: &PyPipeline,
    py: Python<'_>,
    frames: Vec<PyReadonlyArray3<'_, u8>>,
    slots: Vec<Option<usize>>,
    source: PathBuf,
    keep_embeddings: bool,
) -> PyResult<PyVideoResult> {
    let images = frames
        .iter()
        .map(to_rgb)
        .collect::<Result<Vec<_>, _>>()
        .py()?;
    let run = py.detach(|| {
        let mut models = wait_for(|| pipe.pipeline.try_models(true))?;
        Ok::<_, PyErr>(models.run_frames(images, &slots, &source, keep_embeddings))
    })?;
    let VideoRun {
        mut results,
        summary,
        prediction,
        top1,
        label_index,
        top1_index,
        threshold,
    } = run.py()?;
    let detection = std::mem::take(&mut results.detection);
    Ok(PyVideoResult {
        detections: Py::new(py, PyDetectionResults::new(detection, threshold))?,
        res: results,
        summary,
        slots,
        prediction,
        top1,
        label_index,
        top1_index,
    })
}

/// One video's result: per decoded frame (detections, logits) and for the video as a whole
/// (prediction, counts, keyframe). Arrays are read-only views without copies.
#[pyclass(module = "deepfaune_rs._core", name = "VideoResult", frozen)]
pub struct PyVideoResult {
    detections: Py<PyDetectionResults>,
    res: PipelineResults,
    summary: VideoSummary,
    slots: Vec<Option<usize>>,
    prediction: String,
    top1: String,
    label_index: usize,
    top1_index: usize,
}

#[pymethods]
impl PyVideoResult {
    /// Detections per decoded frame (one row per frame given to `run_frames`).
    #[getter]
    fn detections(&self, py: Python<'_>) -> Py<PyDetectionResults> {
        self.detections.clone_ref(py)
    }
    /// Raw logits per decoded frame, `[frames, classes]` (zeros where no animal was classified).
    #[getter]
    fn logits<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let r = &slf.get().res;
        view2(slf.clone().into_any(), &r.logits, r.num_classes)
    }
    /// Embedding per decoded frame, `[frames, d]` (`[frames, 0]` if not kept).
    #[getter]
    fn embeddings<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let r = &slf.get().res;
        view2(slf.clone().into_any(), &r.embeddings, r.embedding_dim)
    }
    /// The sampled positions: index of the decoded frame, or None when it could not be read.
    #[getter]
    fn slots(&self) -> Vec<Option<usize>> {
        self.slots.clone()
    }
    /// The video's prediction in the pipeline's language (`undefined` below the threshold).
    #[getter]
    fn prediction(&self) -> String {
        self.prediction.clone()
    }
    /// The score, truncated to two decimals.
    #[getter]
    fn score(&self) -> f64 {
        self.summary.prediction.score
    }
    /// The best label whatever the threshold.
    #[getter]
    fn top1(&self) -> String {
        self.top1.clone()
    }
    /// The prediction's index in DeepFaune's label list: classes, bird groups, then human,
    /// vehicle, empty, undefined (`Label::index`).
    #[getter]
    fn label_index(&self) -> usize {
        self.label_index
    }
    /// The index of `top1` in the same list.
    #[getter]
    fn top1_index(&self) -> usize {
        self.top1_index
    }
    /// Most animal boxes in one sampled frame.
    #[getter]
    fn count(&self) -> u32 {
        self.summary.count
    }
    /// Most person boxes in one sampled frame.
    #[getter]
    fn humancount(&self) -> u32 {
        self.summary.humancount
    }
    /// The slot of the frame that shows the prediction best, None for an empty video.
    #[getter]
    fn keyframe_slot(&self) -> Option<usize> {
        self.summary.keyframe
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyVideoResult>()?;
    Ok(())
}
