//! Videos in a run: a video's sampled frames ([`SampledVideo`], read by a caller-given sampler:
//! PyAV in the Python package) become its [`VideoRecord`] ([`Models::run_video`]); a run runs
//! its videos after its images ([`Models::run`]), each recorded in the run's checkpoint as soon
//! as it is done and taken back from it on resume when the file is the one recorded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use image::RgbImage;

use super::Models;
use crate::error::Error;
use crate::results::{VideoDetection, VideoFailure, VideoRecord};
use crate::run::checkpoint::{resume_key, Checkpoint, FileIdentity, VideoLine};

/// The frames read from one video (what Python's `video.sample_video` returns).
#[derive(Debug, Clone, Default)]
pub struct SampledVideo {
    /// The distinct frames that could be read, RGB.
    pub frames: Vec<RgbImage>,
    /// The frame number of each of `frames`.
    pub frame_numbers: Vec<u64>,
    /// Per sampled position, the index in `frames` of its frame, `None` when it was not read.
    pub slots: Vec<Option<usize>>,
    /// DeepFaune's sampled frame numbers (may repeat or pass the end).
    pub positions: Vec<u64>,
    /// The frame rate.
    pub fps: f64,
    /// Frames in the video.
    pub total_frames: u64,
    /// The container's `creation_time` as `YYYY:MM:DD HH:MM:SS`.
    pub date: Option<String>,
    /// Seconds spent reading the frames.
    pub seconds: f64,
}

/// What a sampler makes of one video: its frames, or why it could not be read.
pub type Sampled = Result<SampledVideo, VideoFailure>;

/// Reads a video's frames. `Err` stops the run (the user cancelled); an unreadable video is an
/// `Ok(Err(failure))`.
pub type VideoSampler<'a> = dyn FnMut(&Path) -> Result<Sampled, Error> + 'a;

/// The failure of a video in a run without a sampler (pure Rust use).
pub fn no_sampler_failure() -> VideoFailure {
    VideoFailure {
        stage: "read".into(),
        kind: "missing_dependency".into(),
        reason: "video frames are read by PyAV: run from Python with \
                 pip install \"deepfaune-rs[video]\", or give Models::run a frame sampler"
            .into(),
    }
}

/// The videos of one run and where their records go.
pub(super) struct VideoRun<'c> {
    /// The videos, in run order.
    pub paths: Vec<PathBuf>,
    /// The run's checkpoint, if any.
    pub checkpoint: Option<&'c mut Checkpoint>,
    /// The images' rows (progress counts them first).
    pub images: usize,
}

impl Models<'_> {
    /// One video's record from its sampled frames, or a failed record (`empty`, in the run's
    /// language, as DeepFaune counts a video it cannot read; a sampler that read no frame is
    /// such a failure too). Every box of every frame is kept with its frame number; the
    /// keyframe is the frame number of the slot that shows the prediction best, its box the
    /// deciding one.
    pub fn run_video(
        &mut self,
        path: &Path,
        sampled: Sampled,
        keep_embeddings: bool,
    ) -> Result<VideoRecord, Error> {
        let t0 = Instant::now();
        let sampled = sampled.and_then(|v| {
            if v.frames.is_empty() {
                Err(VideoFailure {
                    stage: "decode".into(),
                    kind: "corrupt".into(),
                    reason: "no frame could be decoded".into(),
                })
            } else {
                Ok(v)
            }
        });
        let v = match sampled {
            Ok(v) => v,
            Err(failure) => {
                let empty = self.run_frames(Vec::new(), &[None], path, false)?;
                return Ok(VideoRecord {
                    path: path.to_path_buf(),
                    prediction: empty.prediction,
                    score: empty.summary.prediction.score,
                    top1: empty.top1,
                    label_index: empty.label_index,
                    top1_index: empty.top1_index,
                    count: 0,
                    humancount: 0,
                    date: None,
                    keyframe: None,
                    bbox: None,
                    frame_rate: 0.0,
                    total_frames: 0,
                    positions: Vec::new(),
                    frames_processed: Vec::new(),
                    frame_size: (0, 0),
                    detections: Vec::new(),
                    failure: Some(failure),
                    seconds_extraction: 0.0,
                    seconds_total: t0.elapsed().as_secs_f64(),
                });
            }
        };
        if v.frame_numbers.len() != v.frames.len() {
            return Err(Error::InvalidArgument(format!(
                "{}: {} frames but {} frame numbers",
                path.display(),
                v.frames.len(),
                v.frame_numbers.len()
            )));
        }
        let frame_size = v.frames[0].dimensions();
        let run = self.run_frames(v.frames, &v.slots, path, keep_embeddings)?;
        let d = &run.results.detection;
        let detections = (0..d.det_conf.len())
            .map(|k| VideoDetection {
                frame_number: v.frame_numbers[d.det_image[k] as usize],
                category: d.det_category[k],
                conf: d.det_conf[k],
                xyxy: d.det_xyxy[k],
            })
            .collect();
        let frame = run.summary.keyframe.and_then(|slot| v.slots[slot]);
        let keyframe = frame.map(|f| v.frame_numbers[f]);
        let bbox = frame
            .map(|f| d.best_detection[f])
            .filter(|&b| b >= 0)
            .map(|b| d.det_xyxy[b as usize]);
        Ok(VideoRecord {
            path: path.to_path_buf(),
            score: run.summary.prediction.score,
            count: run.summary.count,
            humancount: run.summary.humancount,
            prediction: run.prediction,
            top1: run.top1,
            label_index: run.label_index,
            top1_index: run.top1_index,
            date: v.date,
            keyframe,
            bbox,
            frame_rate: v.fps,
            total_frames: v.total_frames,
            positions: v.positions,
            frames_processed: v.frame_numbers,
            frame_size,
            detections,
            failure: None,
            seconds_extraction: v.seconds,
            seconds_total: v.seconds + t0.elapsed().as_secs_f64(),
        })
    }

    /// Runs `videos` in order: each taken back from the checkpoint when it holds the same file,
    /// else sampled (no sampler: a failed record saying what reads frames), run and appended to
    /// the checkpoint. Returns the records and the videos the checkpoint held under their path
    /// but whose file changed since.
    pub(super) fn run_videos(
        &mut self,
        videos: VideoRun<'_>,
        keep_embeddings: bool,
        mut sampler: Option<&mut VideoSampler<'_>>,
        progress: &mut dyn FnMut(usize, usize) -> Result<(), Error>,
    ) -> Result<(Vec<VideoRecord>, Vec<PathBuf>), Error> {
        let VideoRun {
            paths,
            mut checkpoint,
            images,
        } = videos;
        let mut done: HashMap<String, VideoLine> = match checkpoint.as_mut() {
            Some(c) => c.take_videos(),
            None => HashMap::new(),
        };
        let total = images + paths.len();
        let mut records = Vec::with_capacity(paths.len());
        let mut changed = Vec::new();
        for (k, path) in paths.iter().enumerate() {
            let identity = match checkpoint {
                Some(_) => FileIdentity::of(path),
                None => None,
            };
            let restored = match done.remove(&resume_key(path)) {
                Some(line) if identity.is_some() && line.identity == identity => Some(line.video),
                Some(_) => {
                    changed.push(path.clone());
                    None
                }
                None => None,
            };
            let record = match restored {
                Some(mut rec) => {
                    rec.path = path.clone();
                    rec
                }
                None => {
                    let t0 = Instant::now();
                    let sampled = match sampler.as_mut() {
                        Some(sample) => sample(path)?,
                        None => Err(no_sampler_failure()),
                    };
                    let mut rec = self.run_video(path, sampled, keep_embeddings)?;
                    rec.seconds_total = t0.elapsed().as_secs_f64();
                    if let Some(c) = checkpoint.as_mut() {
                        c.append_video(&rec, identity.as_ref())?;
                    }
                    rec
                }
            };
            records.push(record);
            progress(images + k + 1, total)?;
        }
        Ok((records, changed))
    }
}
