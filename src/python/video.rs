//! Bindings of the video path: the frame sampler a run calls (Python's
//! `deepfaune_rs.video.sample_video`, PyAV, under the GIL) and `Pipeline.run_frames` (frames as
//! numpy arrays in, one `VideoResult` out). Frame extraction happens in Python
//! (`deepfaune_rs/video.py`); everything after it in the core (`crate::pipeline::video`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use image::RgbImage;
use numpy::{PyArray2, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::detect::{failure_fields, PyDetectionResults};
use super::errors::IntoPyResult;
use super::locks::wait_for;
use super::numpy_views::view2;
use super::pipeline::PyPipeline;
use crate::error::Error;
use crate::image_io::frames::FRAMES_PER_VIDEO;
use crate::image_io::walk::{media_kind, MediaKind};
use crate::pipeline::{Sampled, SampledVideo, VideoRun};
use crate::results::{VideoFailure, VideoRecord};
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

/// One video: DeepFaune's answer for it, and what it was computed from (a read-only view of
/// the core's record).
///
/// ``keyframe`` is the frame number that shows the prediction best and ``box`` its deciding box
/// (``x1, y1, x2, y2`` in frame pixels); ``detections`` holds every box of every sampled frame with
/// its ``frame_number``. A video that could not be read has ``failure`` (path, stage, kind,
/// reason) and is ``empty``, as DeepFaune counts it. ``label_index`` and ``top1_index`` place
/// ``prediction`` and ``top1`` in DeepFaune's label list (the classifier's classes, its bird
/// groups, then human, vehicle, empty, undefined), whatever the language.
#[pyclass(module = "deepfaune_rs.videos", name = "VideoRecord", frozen, eq)]
#[derive(PartialEq)]
pub struct PyVideoRecord(pub(crate) VideoRecord);

/// A single-precision value as the float its shortest decimal text reads as (what the record's
/// JSON says), not its binary widening: `0.1f32` is `0.1`.
fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

fn decimals(v: [f32; 4]) -> (f64, f64, f64, f64) {
    (decimal(v[0]), decimal(v[1]), decimal(v[2]), decimal(v[3]))
}

#[pymethods]
impl PyVideoRecord {
    /// The view of one of the core's records given as JSON (``PipelineResult.video_records``).
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Self> {
        serde_json::from_str(text)
            .map(PyVideoRecord)
            .map_err(|e| super::errors::invalid(format!("video record: {e}")))
    }

    fn __repr__(&self) -> String {
        let v = &self.0;
        format!(
            "VideoRecord(path={:?}, prediction={:?}, score={}, top1={:?}, count={}, keyframe={:?})",
            v.path.display().to_string(),
            v.prediction,
            v.score,
            v.top1,
            v.count,
            v.keyframe
        )
    }

    /// The video file.
    #[getter]
    fn path(&self) -> &std::ffi::OsStr {
        self.0.path.as_os_str()
    }
    /// DeepFaune's prediction for the whole video, in the run's language.
    #[getter]
    fn prediction(&self) -> &str {
        &self.0.prediction
    }
    /// Its score (two decimals; 1.0 for a label a person gave).
    #[getter]
    fn score(&self) -> f64 {
        self.0.score
    }
    /// The best class whatever the score.
    #[getter]
    fn top1(&self) -> &str {
        &self.0.top1
    }
    /// Most animal boxes in one sampled frame.
    #[getter]
    fn count(&self) -> u32 {
        self.0.count
    }
    /// Most person boxes in one sampled frame.
    #[getter]
    fn humancount(&self) -> u32 {
        self.0.humancount
    }
    /// The container's ``creation_time`` as ``YYYY:MM:DD HH:MM:SS`` (the camera clock), or None.
    #[getter]
    fn date(&self) -> Option<&str> {
        self.0.date.as_deref()
    }
    /// The frame number that shows the prediction best (None: nothing seen).
    #[getter]
    fn keyframe(&self) -> Option<u64> {
        self.0.keyframe
    }
    /// The keyframe's deciding box ``(x1, y1, x2, y2)`` in frame pixels, or None.
    #[getter(r#box)]
    fn bbox(&self) -> Option<(f64, f64, f64, f64)> {
        self.0.bbox.map(decimals)
    }
    /// FFmpeg's guessed frame rate (0 when the container could not be read).
    #[getter]
    fn frame_rate(&self) -> f64 {
        self.0.frame_rate
    }
    /// Frames in the video (container count or duration x rate).
    #[getter]
    fn total_frames(&self) -> u64 {
        self.0.total_frames
    }
    /// The 12 sampled positions (DeepFaune's frame numbers; may repeat or pass the end).
    #[getter]
    fn positions(&self) -> Vec<u64> {
        self.0.positions.clone()
    }
    /// The frame numbers actually decoded, in sampling order.
    #[getter]
    fn frames_processed(&self) -> Vec<u64> {
        self.0.frames_processed.clone()
    }
    /// Frame width and height in pixels.
    #[getter]
    fn frame_size(&self) -> (u32, u32) {
        self.0.frame_size
    }
    /// Every box of every sampled frame: ``frame_number``, ``category`` (0 animal, 1 person,
    /// 2 vehicle), ``conf``, ``xyxy`` (frame pixels).
    #[getter]
    fn detections<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.0
            .detections
            .iter()
            .map(|d| {
                let out = PyDict::new(py);
                out.set_item("frame_number", d.frame_number)?;
                out.set_item("category", d.category)?;
                out.set_item("conf", decimal(d.conf))?;
                out.set_item("xyxy", decimals(d.xyxy))?;
                Ok(out)
            })
            .collect()
    }
    /// Why the video could not be read (a :class:`~deepfaune_rs.errors.Failure`: path, stage,
    /// kind, reason), or None.
    #[getter]
    fn failure<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.0
            .failure
            .as_ref()
            .map(|f| failure_fields(py, &self.0.path, &f.stage, &f.kind, &f.reason, None))
            .transpose()
    }
    /// Place of ``prediction`` in DeepFaune's label list.
    #[getter]
    fn label_index(&self) -> usize {
        self.0.label_index
    }
    /// Place of ``top1`` in the same list.
    #[getter]
    fn top1_index(&self) -> usize {
        self.0.top1_index
    }
    /// Seconds spent extracting frames.
    #[getter]
    fn seconds_extraction(&self) -> f64 {
        self.0.seconds_extraction
    }
    /// Seconds spent on the whole video.
    #[getter]
    fn seconds_total(&self) -> f64 {
        self.0.seconds_total
    }
    /// MIME type from the extension (Camtrap DP ``fileMediatype``).
    #[getter]
    fn media_type(&self) -> &'static str {
        crate::export::camtrap_dp::media_type(&self.0.path.to_string_lossy())
    }
}

/// The frame numbers DeepFaune 1.4.1 classifies in a video (``PredictorVideo.nextBatch``).
///
/// The first ``int(n * 2 / 3 + 0.5)`` (8 of 12) frames are ``int(int(fps) / 3)`` apart (about 3
/// per second), the step shrunk while ``7 * step`` exceeds the frame count; the remaining 4 are
/// spread evenly over the rest: step ``int((total - last) / 4)``, none when that is 0. Numbers
/// can repeat (step 0 under 3 fps) or reach ``total_frames`` (DeepFaune then reads nothing there
/// and counts the position as empty). No frames: empty list.
///
/// >>> frame_indices(300, 30)  # step 10; rest (300 - 70) / 4 = 57.5 -> 57
/// [0, 10, 20, 30, 40, 50, 60, 70, 127, 184, 241, 298]
/// >>> frame_indices(5, 30)  # step 10 -> 0 (7 * 1 > 5); (5 - 0) / 4 -> 1
/// [0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]
#[pyfunction]
#[pyo3(signature = (total_frames, fps, n_frames = FRAMES_PER_VIDEO),
       text_signature = "(total_frames, fps, n_frames=12)")]
fn frame_indices(total_frames: i64, fps: f64, n_frames: usize) -> Vec<i64> {
    crate::image_io::frames::frame_indices(total_frames, fps, n_frames)
}

/// OpenCV's ``CAP_PROP_FRAME_COUNT``: ``nb_frames`` when the container has it, else
/// ``floor(seconds * fps + 0.5)`` (0 without a rate).
#[pyfunction]
fn frame_count(nb_frames: u64, seconds: f64, fps: f64) -> u64 {
    crate::image_io::frames::frame_count(nb_frames, seconds, fps)
}

/// The first ``creation_time`` tag among ``metadata`` dicts (DeepFaune reads the first stream's
/// tag) as EXIF-style ``YYYY:MM:DD HH:MM:SS``, the clock as written (UTC, no time-zone shift).
///
/// >>> creation_date([{}, {"creation_time": "2023-05-01T12:34:56.000000Z"}])
/// '2023:05:01 12:34:56'
/// >>> creation_date([{"creation_time": "garbage"}]) is None
/// True
#[pyfunction]
fn creation_date(metadata: Vec<Option<Bound<'_, PyAny>>>) -> PyResult<Option<String>> {
    let mut tags = Vec::new();
    for md in metadata.into_iter().flatten() {
        if !md.is_truthy()? {
            continue;
        }
        let raw = md.call_method1("get", ("creation_time",))?;
        tags.push(if raw.is_truthy()? {
            Some(raw.str()?.to_string())
        } else {
            None
        });
    }
    Ok(crate::image_io::frames::creation_date(
        tags.iter().map(Option::as_deref),
    ))
}

/// Whether the file name has one of DeepFaune's video extensions (``VIDEO_EXTENSIONS``).
#[pyfunction]
fn is_video(path: PathBuf) -> bool {
    media_kind(&path) == Some(MediaKind::Video)
}

/// Whether the file name is a video format DeepFaune does not read
/// (``UNSUPPORTED_VIDEO_EXTENSIONS``).
#[pyfunction]
fn is_unsupported_video(path: PathBuf) -> bool {
    media_kind(&path) == Some(MediaKind::UnsupportedVideo)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyVideoResult>()?;
    m.add_class::<PyVideoRecord>()?;
    m.add_function(wrap_pyfunction!(frame_indices, m)?)?;
    m.add_function(wrap_pyfunction!(frame_count, m)?)?;
    m.add_function(wrap_pyfunction!(creation_date, m)?)?;
    m.add_function(wrap_pyfunction!(is_video, m)?)?;
    m.add_function(wrap_pyfunction!(is_unsupported_video, m)?)?;
    m.add("FRAMES_PER_VIDEO", FRAMES_PER_VIDEO)?;
    Ok(())
}
