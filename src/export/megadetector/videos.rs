//! Videos in MegaDetector batch output 1.6 (SPEC 3): one entry per video after the images',
//! with `frame_rate` (3 decimals), `frames_processed` (the sampled frame numbers) and, on each
//! box, the `frame_number` it was found in; boxes normalised to the frame size like the images'.
//! A video that could not be read has `failure`, `frame_rate` (0 when the container could not
//! be read), an empty `frames_processed` (the format's checker wants both on every video) and
//! `"detections": null`.
//!
//! The document is written in one go ([`write_document`]): the images' entries as
//! [`super::to_json`] builds them, then the videos' with their keys in the order above.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::{relative_name, round};
use crate::error::Error;
use crate::fsio::write_atomic;
use crate::results::VideoRecord;

/// One video's entry (keys in this order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoEntry<'a> {
    /// The video's path, relative to the root when below it.
    pub file: String,
    /// Why it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<&'a str>,
    /// Frames per second, 3 decimals.
    pub frame_rate: f64,
    /// The frame numbers that were read (none for a failed video).
    pub frames_processed: &'a [u64],
    /// Every box of every sampled frame; `None` (`null`) for a failed video.
    pub detections: Option<Vec<VideoBox>>,
}

/// One box of a video's entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoBox {
    /// "1" animal, "2" person, "3" vehicle.
    pub category: String,
    /// Confidence, 3 decimals.
    pub conf: f64,
    /// `[x_min, y_min, width, height]` as fractions of the frame, 4 decimals.
    pub bbox: [f64; 4],
    /// The frame it was found in.
    pub frame_number: u64,
}

/// The entry of `video`, its name relative to `root`.
///
/// ```
/// use deepfaune_rs::export::megadetector::videos::video_entry;
/// use deepfaune_rs::results::VideoRecord;
/// let v: VideoRecord = serde_json::from_str(r#"{"path": "/cam/fox.mp4", "prediction": "fox",
///     "score": 0.93, "top1": "fox", "label_index": 12, "top1_index": 12, "frame_rate": 29.97,
///     "frames_processed": [0, 9], "frame_size": [640, 480], "detections": [{"frame_number": 9,
///     "category": 0, "conf": 0.8125, "xyxy": [64.0, 48.0, 320.0, 240.0]}]}"#).unwrap();
/// let e = video_entry(&v, Some("/cam".as_ref()));
/// assert_eq!((e.file.as_str(), e.frame_rate, e.frames_processed), ("fox.mp4", 29.97, &[0u64, 9][..]));
/// let b = &e.detections.unwrap()[0];
/// assert_eq!((b.category.as_str(), b.conf, b.bbox, b.frame_number), ("1", 0.813, [0.1, 0.1, 0.4, 0.4], 9));
/// ```
pub fn video_entry<'a>(video: &'a VideoRecord, root: Option<&Path>) -> VideoEntry<'a> {
    let file = relative_name(&video.path, root);
    if let Some(f) = &video.failure {
        return VideoEntry {
            file,
            failure: Some(&f.reason),
            frame_rate: round(video.frame_rate, 3),
            frames_processed: &[],
            detections: None,
        };
    }
    let (w, h) = (f64::from(video.frame_size.0), f64::from(video.frame_size.1));
    let detections = video
        .detections
        .iter()
        .map(|d| {
            let [x1, y1, x2, y2] = d.xyxy.map(f64::from);
            VideoBox {
                category: (u16::from(d.category) + 1).to_string(),
                conf: round(f64::from(d.conf), 3),
                bbox: [
                    round(x1 / w, 4),
                    round(y1 / h, 4),
                    round((x2 - x1) / w, 4),
                    round((y2 - y1) / h, 4),
                ],
                frame_number: d.frame_number,
            }
        })
        .collect();
    VideoEntry {
        file,
        failure: None,
        frame_rate: round(video.frame_rate, 3),
        frames_processed: &video.frames_processed,
        detections: Some(detections),
    }
}

/// An entry of `images`: an image's (a JSON value) or a video's.
#[derive(Serialize)]
#[serde(untagged)]
enum Entry<'a> {
    Image(&'a Value),
    Video(VideoEntry<'a>),
}

/// A top-level field of the document.
#[derive(Serialize)]
#[serde(untagged)]
enum Field<'a> {
    Value(&'a Value),
    Images(Vec<Entry<'a>>),
}

/// The document `doc` (an images-only document of [`super::to_json`], with or without
/// classifications) with the videos' entries after its images', as pretty-printed JSON.
pub fn document_text(
    doc: &Value,
    videos: &[VideoRecord],
    root: Option<&Path>,
) -> Result<String, Error> {
    let bad = || Error::InvalidArgument("not a MegaDetector document".into());
    let top = doc.as_object().ok_or_else(bad)?;
    // The keys in the document's own (sorted) order; `images` gets the videos appended.
    let mut fields: BTreeMap<&str, Field<'_>> = BTreeMap::new();
    for (k, v) in top {
        let field = if k == "images" {
            let images = v.as_array().ok_or_else(bad)?;
            Field::Images(
                images
                    .iter()
                    .map(Entry::Image)
                    .chain(videos.iter().map(|v| Entry::Video(video_entry(v, root))))
                    .collect(),
            )
        } else {
            Field::Value(v)
        };
        fields.insert(k, field);
    }
    serde_json::to_string_pretty(&fields).map_err(|e| Error::InvalidArgument(e.to_string()))
}

/// Writes [`document_text`] to `path` atomically.
pub fn write_document(
    doc: &Value,
    videos: &[VideoRecord],
    root: Option<&Path>,
    path: &Path,
) -> Result<(), Error> {
    let text = document_text(doc, videos, root).map_err(|e| Error::Output {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::DetectionResults;

    fn record(line: &str) -> VideoRecord {
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn videos_follow_the_images_with_their_keys_in_order() {
        let mut res = DetectionResults::default();
        res.paths.push("/r/a.jpg".into());
        res.width.push(100);
        res.height.push(50);
        res.date.push(None);
        res.category.push(0);
        res.count.push(0);
        res.humancount.push(0);
        res.crop.push([-1; 4]);
        res.best_detection.push(-1);
        let doc = super::super::to_json(&res, Some(Path::new("/r")), 0.5);
        let videos = [
            record(
                r#"{"path": "/r/v/clip.mp4", "prediction": "fox", "score": 0.9, "top1": "fox",
                    "label_index": 1, "top1_index": 1, "frame_rate": 7.5,
                    "frames_processed": [0, 3], "frame_size": [200, 100],
                    "detections": [{"frame_number": 3, "category": 1, "conf": 0.6666,
                                    "xyxy": [20.0, 10.0, 120.0, 60.0]}]}"#,
            ),
            record(
                r#"{"path": "/elsewhere/zero.mp4", "prediction": "empty", "score": 1.0,
                    "top1": "empty", "label_index": 40, "top1_index": 40,
                    "failure": {"stage": "read", "kind": "empty", "reason": "0-byte file"}}"#,
            ),
        ];
        let text = document_text(&doc, &videos, Some(Path::new("/r"))).unwrap();
        // By hand: 20/200, 10/100, 100/200, 50/100; conf 0.6666 -> 0.667; person = "2".
        let video = r#"    {
      "file": "v/clip.mp4",
      "frame_rate": 7.5,
      "frames_processed": [
        0,
        3
      ],
      "detections": [
        {
          "category": "2",
          "conf": 0.667,
          "bbox": [
            0.1,
            0.1,
            0.5,
            0.5
          ],
          "frame_number": 3
        }
      ]
    },
    {
      "file": "/elsewhere/zero.mp4",
      "failure": "0-byte file",
      "frame_rate": 0.0,
      "frames_processed": [],
      "detections": null
    }
  ],"#;
        assert!(text.contains(video), "{text}");
        // The images' entry first, the document's other keys unchanged.
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["images"][0], doc["images"][0]);
        assert_eq!(back["info"], doc["info"]);
        assert_eq!(back["images"].as_array().unwrap().len(), 3);
        let none = document_text(&doc, &[], None).unwrap();
        assert_eq!(none, serde_json::to_string_pretty(&doc).unwrap());
    }
}
