//! The crop of each image from a MegaDetector batch file: per image, its most confident box of
//! one category, as the normalised `[x, y, w, h]` MegaDetector writes (embedded with
//! [`BoxFormat::NormalizedXywh`](super::embed::BoxFormat)).

use std::path::Path;

use serde_json::Value;

use super::ReidError;

/// Each image of a MegaDetector batch file and its best box (`None`: no box of `category` with a
/// confidence of at least `min_conf`), in the file's order.
pub type ImageBoxes = Vec<(String, Option<[f64; 4]>)>;

/// Reads `path` (see [`best_boxes`]).
pub fn read_best_boxes(
    path: &Path,
    category: &str,
    min_conf: f64,
) -> Result<ImageBoxes, ReidError> {
    let text = std::fs::read(path).map_err(|e| ReidError::io(path, e))?;
    let json: Value = serde_json::from_slice(&text).map_err(|e| ReidError::Format {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    best_boxes(&json, category, min_conf).map_err(|reason| ReidError::Format {
        path: path.display().to_string(),
        reason,
    })
}

/// The category of a detection as text (`"1"` and `1` are the same category).
fn category_of(d: &Value) -> String {
    match d.get("category") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "None".into(),
    }
}

/// Per image, the most confident detection of `category` with `conf >= min_conf` (a detection
/// without `conf` has 0; the first of equal confidences is kept).
pub fn best_boxes(json: &Value, category: &str, min_conf: f64) -> Result<ImageBoxes, String> {
    let Some(images) = json.get("images") else {
        return Ok(Vec::new());
    };
    let images = images.as_array().ok_or("'images' is not a list")?;
    images
        .iter()
        .enumerate()
        .map(|(i, im)| {
            let file = im
                .get("file")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("image {i} has no 'file'"))?;
            let mut best: Option<(f64, &Value)> = None;
            let detections = im.get("detections").and_then(Value::as_array);
            for d in detections.into_iter().flatten() {
                let conf = d.get("conf").and_then(Value::as_f64).unwrap_or(0.0);
                if category_of(d) == category
                    && conf >= min_conf
                    && best.is_none_or(|(c, _)| conf > c)
                {
                    best = Some((conf, d));
                }
            }
            let bbox = best
                .map(|(_, d)| bbox_of(d).ok_or_else(|| format!("{file}: a bbox is not 4 numbers")))
                .transpose()?;
            Ok((file.to_string(), bbox))
        })
        .collect()
}

fn bbox_of(d: &Value) -> Option<[f64; 4]> {
    let b = d.get("bbox")?.as_array()?;
    if b.len() != 4 {
        return None;
    }
    let mut out = [0.0; 4];
    for (o, v) in out.iter_mut().zip(b) {
        *o = v.as_f64()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_confident_box_of_the_category_per_image() {
        let json: Value = serde_json::from_str(
            r#"{"images": [
                {"file": "a.jpg", "detections": [
                    {"category": "1", "conf": 0.5, "bbox": [0.1, 0.2, 0.3, 0.4]},
                    {"category": "2", "conf": 0.9, "bbox": [0, 0, 1, 1]},
                    {"category": 1, "conf": 0.7, "bbox": [0.5, 0.5, 0.1, 0.1]},
                    {"category": "1", "conf": 0.7, "bbox": [0.6, 0.6, 0.1, 0.1]}]},
                {"file": "b.jpg", "detections": [
                    {"category": "1", "conf": 0.05, "bbox": [0.1, 0.1, 0.1, 0.1]}]},
                {"file": "c.jpg", "detections": null},
                {"file": "d.jpg"}]}"#,
        )
        .unwrap();
        let got = best_boxes(&json, "1", 0.1).unwrap();
        assert_eq!(
            got,
            vec![
                ("a.jpg".into(), Some([0.5, 0.5, 0.1, 0.1])),
                ("b.jpg".into(), None),
                ("c.jpg".into(), None),
                ("d.jpg".into(), None),
            ]
        );
        assert_eq!(
            best_boxes(&json, "2", 0.0).unwrap()[0].1,
            Some([0.0, 0.0, 1.0, 1.0])
        );
        assert_eq!(best_boxes(&json, "1", 0.0).unwrap()[1].1, Some([0.1; 4]));
    }

    #[test]
    fn a_file_without_images_has_none_and_bad_ones_say_why() {
        assert!(best_boxes(&serde_json::json!({}), "1", 0.0)
            .unwrap()
            .is_empty());
        let bad = serde_json::json!({"images": [{"detections": []}]});
        assert_eq!(
            best_boxes(&bad, "1", 0.0).unwrap_err(),
            "image 0 has no 'file'"
        );
        let short = serde_json::json!({"images": [{"file": "x", "detections": [
            {"category": "1", "conf": 1.0, "bbox": [0, 0, 1]}]}]});
        assert!(best_boxes(&short, "1", 0.0)
            .unwrap_err()
            .contains("not 4 numbers"));
    }

    #[test]
    fn a_missing_file_is_not_found() {
        let e = read_best_boxes(Path::new("/nonexistent/md.json"), "1", 0.0);
        assert!(matches!(e, Err(ReidError::NotFound(_))));
    }
}
