//! MegaDetector batch output, format 1.6 (SPEC 3).
//!
//! bbox `[x_min, y_min, width, height]` normalised to 0-1 (4 decimals), conf 3 decimals,
//! categories "1" animal, "2" person, "3" vehicle; a failed file has `"failure"` and
//! `"detections": null`. A run's videos: [`videos`]. Reading such files (ours or other tools'):
//! [`crate::import::megadetector`].

pub mod classifications;
pub mod videos;

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::error::Error;
use crate::fsio::write_atomic;
use crate::results::{DetectionResults, CATEGORY_FAILED};

pub(crate) fn round(x: f64, decimals: i32) -> f64 {
    let p = 10f64.powi(decimals);
    (x * p).round() / p
}

/// The path written in `"file"`: relative to `root` when below it, with `/` separators.
pub fn relative_name(path: &Path, root: Option<&Path>) -> String {
    let p = root.and_then(|r| path.strip_prefix(r).ok()).unwrap_or(path);
    p.to_string_lossy().replace('\\', "/")
}

/// Builds the JSON document.
pub fn to_json(res: &DetectionResults, root: Option<&Path>, threshold: f32) -> Value {
    let mut images = Vec::with_capacity(res.len());
    let mut d = 0usize;
    for i in 0..res.len() {
        let mut obj = Map::new();
        obj.insert(
            "file".into(),
            Value::String(relative_name(&res.paths[i], root)),
        );
        if res.category[i] == CATEGORY_FAILED {
            let reason = res
                .failures
                .iter()
                .find(|f| f.index == Some(i))
                .map(|f| f.reason.clone())
                .unwrap_or_default();
            obj.insert("failure".into(), Value::String(reason));
            obj.insert("detections".into(), Value::Null);
        } else {
            let (w, h) = (res.width[i] as f64, res.height[i] as f64);
            let mut dets = Vec::new();
            while d < res.det_image.len() && res.det_image[d] as usize == i {
                let b = res.det_xyxy[d];
                let (x1, y1, x2, y2) = (b[0] as f64, b[1] as f64, b[2] as f64, b[3] as f64);
                dets.push(json!({
                    "category": (res.det_category[d] + 1).to_string(),
                    "conf": round(res.det_conf[d] as f64, 3),
                    "bbox": [round(x1 / w, 4), round(y1 / h, 4), round((x2 - x1) / w, 4), round((y2 - y1) / h, 4)],
                }));
                d += 1;
            }
            obj.insert("detections".into(), Value::Array(dets));
        }
        images.push(Value::Object(obj));
    }
    json!({
        "info": {
            "format_version": "1.6",
            "detector": format!("deepfaune-rs {} ({})", env!("CARGO_PKG_VERSION"), res.detector),
            "detector_metadata": {
                "typical_detection_threshold": round(threshold as f64, 3),
                "conservative_detection_threshold": round(threshold as f64, 3),
            },
        },
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
        "images": images,
    })
}

/// Writes the JSON file atomically.
pub fn write(
    res: &DetectionResults,
    path: &Path,
    root: Option<&Path>,
    threshold: f32,
) -> Result<(), Error> {
    let doc = to_json(res, root, threshold);
    let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::Output {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes())
}
