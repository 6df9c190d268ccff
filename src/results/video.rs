//! One video's result ([`VideoRecord`]): DeepFaune's answer for the whole video (SPEC 2.5) and
//! what it was computed from (the sampled frames, their boxes). The run fills it
//! ([`crate::pipeline`]), the checkpoint stores it (one JSON line, the same format as here), the
//! exporters write its rows and corrections relabel it.
//!
//! The JSON form (serde) is the record's exchange format: field names as below, `box` for
//! [`VideoRecord::bbox`]; floats round-trip exactly.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Failure;
use crate::image_io::walk::VIDEO_EXTENSIONS;

/// The failure of a video in a format DeepFaune does not read (`.mkv`, `.webm`...: the walk's
/// [`crate::image_io::walk::UNSUPPORTED_VIDEO_EXTENSIONS`]), listed instead of passed over.
///
/// ```
/// use deepfaune_rs::results::video::unsupported_video_failure;
/// let f = unsupported_video_failure("cam/clip.MKV".as_ref());
/// assert_eq!((f.stage, f.kind, f.index), ("read", "unsupported", None));
/// assert_eq!(
///     f.reason,
///     "unsupported video format .mkv (DeepFaune reads .avi, .mp4, .mpeg, .mov, .m4v)"
/// );
/// ```
pub fn unsupported_video_failure(path: &Path) -> Failure {
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy().to_lowercase()))
        .unwrap_or_default();
    let reads: Vec<String> = VIDEO_EXTENSIONS.iter().map(|e| format!(".{e}")).collect();
    Failure {
        index: None,
        path: path.to_path_buf(),
        stage: "read",
        kind: "unsupported",
        reason: format!(
            "unsupported video format {ext} (DeepFaune reads {})",
            reads.join(", ")
        ),
    }
}

/// Why a video could not be read (its path is the record's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoFailure {
    /// `read` (container or stream) or `decode` (no frame could be decoded).
    pub stage: String,
    /// Machine key: `unsupported`, `corrupt`, `empty`, `format`, `io`, `missing_dependency`
    /// (PyAV not installed).
    pub kind: String,
    /// Human-readable reason.
    pub reason: String,
}

/// One box of one sampled frame, in frame pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoDetection {
    /// The frame it was found in (OpenCV's frame numbering).
    pub frame_number: u64,
    /// Detector category (0 animal, 1 person, 2 vehicle).
    pub category: u8,
    /// Detector confidence.
    pub conf: f32,
    /// `[x1, y1, x2, y2]` in frame pixels.
    pub xyxy: [f32; 4],
}

/// One video: DeepFaune's answer for it, and what it was computed from.
///
/// ```
/// use deepfaune_rs::results::VideoRecord;
/// let line = r#"{"path": "cam/fox.mp4", "prediction": "fox", "score": 0.93, "top1": "fox",
///                "label_index": 12, "top1_index": 12, "count": 1, "keyframe": 40,
///                "box": [10.0, 20.0, 110.0, 220.0], "frame_rate": 30.0, "total_frames": 300,
///                "frame_size": [640, 480]}"#;
/// let v: VideoRecord = serde_json::from_str(line).unwrap();
/// assert_eq!((v.prediction.as_str(), v.keyframe, v.failure.is_none()), ("fox", Some(40), true));
/// assert_eq!(v.duration_s(), 10.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoRecord {
    /// The video file.
    pub path: PathBuf,
    /// DeepFaune's prediction for the whole video, in the run's language.
    pub prediction: String,
    /// Its score (DeepFaune's two-decimal value; 1.0 for a label a person gave).
    pub score: f64,
    /// The best class whatever the score.
    pub top1: String,
    /// Place of `prediction` in DeepFaune's label list (classes, bird groups, human, vehicle,
    /// empty, undefined), whatever the language.
    pub label_index: usize,
    /// Place of `top1` in the same list.
    pub top1_index: usize,
    /// Most animal boxes in one sampled frame.
    #[serde(default)]
    pub count: u32,
    /// Most person boxes in one sampled frame.
    #[serde(default)]
    pub humancount: u32,
    /// The container's `creation_time` as `YYYY:MM:DD HH:MM:SS` (the camera clock).
    #[serde(default)]
    pub date: Option<String>,
    /// The frame number that shows the prediction best (`None`: nothing seen).
    #[serde(default)]
    pub keyframe: Option<u64>,
    /// The keyframe's deciding box `[x1, y1, x2, y2]` in frame pixels.
    #[serde(default, rename = "box")]
    pub bbox: Option<[f32; 4]>,
    /// FFmpeg's guessed frame rate (0 when the container could not be read).
    #[serde(default)]
    pub frame_rate: f64,
    /// Frames in the video (container count or duration x rate).
    #[serde(default)]
    pub total_frames: u64,
    /// The 12 sampled positions (DeepFaune's frame numbers; may repeat or pass the end).
    #[serde(default)]
    pub positions: Vec<u64>,
    /// The frame numbers actually decoded, in sampling order.
    #[serde(default)]
    pub frames_processed: Vec<u64>,
    /// Frame width and height in pixels.
    #[serde(default)]
    pub frame_size: (u32, u32),
    /// Every box of every sampled frame.
    #[serde(default)]
    pub detections: Vec<VideoDetection>,
    /// Why the video could not be read (then it is `empty`, as DeepFaune counts it).
    #[serde(default)]
    pub failure: Option<VideoFailure>,
    /// Seconds spent extracting frames.
    #[serde(default)]
    pub seconds_extraction: f64,
    /// Seconds spent on the whole video.
    #[serde(default)]
    pub seconds_total: f64,
}

impl VideoRecord {
    /// Length in seconds (frame count / frame rate; 0 without a rate).
    pub fn duration_s(&self) -> f64 {
        if self.frame_rate > 0.0 {
            self.total_frames as f64 / self.frame_rate
        } else {
            0.0
        }
    }

    /// The `status` column of the video's row: `ok`, or `failed: <reason>`.
    pub fn status(&self) -> String {
        match &self.failure {
            None => "ok".into(),
            Some(f) => format!("failed: {}", f.reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_exactly() {
        let v = VideoRecord {
            path: "a/b.mp4".into(),
            prediction: "red deer".into(),
            score: 0.39,
            top1: "red deer".into(),
            label_index: 3,
            top1_index: 3,
            count: 2,
            humancount: 0,
            date: Some("2024:05:01 10:00:00".into()),
            keyframe: Some(7),
            bbox: Some([0.1, 2.5, 3.0, 4.000_001]),
            frame_rate: 29.97,
            total_frames: 300,
            positions: vec![0, 9, 18],
            frames_processed: vec![0, 9],
            frame_size: (640, 480),
            detections: vec![VideoDetection {
                frame_number: 9,
                category: 0,
                conf: 0.812_345_7,
                xyxy: [1.0, 2.0, 3.0, 4.5],
            }],
            failure: Some(VideoFailure {
                stage: "read".into(),
                kind: "corrupt".into(),
                reason: "moov atom not found".into(),
            }),
            seconds_extraction: 0.125,
            seconds_total: 1.5,
        };
        let text = serde_json::to_string(&v).unwrap();
        assert!(text.contains("\"box\":[0.1,2.5,3.0,4.000001]"), "{text}");
        let back: VideoRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
        assert_eq!(back.status(), "failed: moov atom not found");
        assert_eq!(back.duration_s(), 300.0 / 29.97);
    }
}
