//! Species classifications in MegaDetector batch output 1.6 (SPEC 3): the classifier's classes
//! as `classification_categories` (English names) and, on the classified best animal box of
//! each image, `classifications`: the top 3 classes by softmax of the image's logits at
//! DeepFaune's single-image temperature (the classifier manifest's `temperature_image`: 1.10 for
//! 1.4.1, 1.12 for 1.5), disabled classes excluded, probabilities with 3 decimals.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::to_json;
use crate::error::Error;
use crate::results::{DetectionResults, VideoRecord};

/// How many classes each classified box lists.
pub const TOP_K: usize = 3;

/// The classifier's side of a run.
pub struct Classifications<'a> {
    /// English class names, in logit order (the category ids are their indices).
    pub class_names: &'a [String],
    /// Row-major `[images, classes]` raw logits.
    pub logits: &'a [f32],
    /// Whether each image's row was filled by the classifier.
    pub classified: &'a [bool],
    /// Classes switched off (left out of the softmax and of the lists).
    pub disabled: &'a [usize],
    /// The classifier's single-image temperature (its manifest's `temperature_image`).
    pub temperature: f32,
    /// Per image, the class a person gave it (corrections journal), listed alone with
    /// probability 1.0 instead of the classifier's top 3. Empty: no corrections.
    pub human: &'a [Option<usize>],
}

/// The `k` most probable enabled classes of one logits row: softmax of `logits / temperature`
/// over the enabled classes, best first (the lower index first on ties).
///
/// ```
/// use deepfaune_rs::export::megadetector::classifications::top_classes;
/// // [2.2, 0, 1.1] / 1.1 = [2, 0, 1]; with class 2 disabled: softmax([2, 0]) = [0.8808, 0.1192].
/// let top = top_classes(&[2.2, 0.0, 1.1], &[2], 1.1, 3);
/// assert_eq!(top.len(), 2);
/// assert_eq!(top[0].0, 0);
/// assert!((top[0].1 - 0.880797).abs() < 1e-6);
/// ```
pub fn top_classes(
    logits: &[f32],
    disabled: &[usize],
    temperature: f32,
    k: usize,
) -> Vec<(usize, f64)> {
    let enabled: Vec<usize> = (0..logits.len())
        .filter(|c| !disabled.contains(c))
        .collect();
    let scaled: Vec<f64> = enabled
        .iter()
        .map(|&c| f64::from(logits[c]) / f64::from(temperature))
        .collect();
    let max = scaled.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = scaled.iter().map(|v| (v - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    let mut probs: Vec<(usize, f64)> = enabled
        .into_iter()
        .zip(exp.iter().map(|e| e / sum))
        .collect();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    probs.truncate(k);
    probs
}

/// The MegaDetector document of [`super::to_json`] plus the classifications.
pub fn to_json_with_classifications(
    res: &DetectionResults,
    root: Option<&Path>,
    threshold: f32,
    cls: &Classifications<'_>,
) -> Result<Value, Error> {
    let n = cls.class_names.len();
    if cls.logits.len() != res.len() * n || cls.classified.len() != res.len() {
        return Err(Error::InvalidArgument(format!(
            "{} images but {} logits for {n} classes and {} classified flags",
            res.len(),
            cls.logits.len(),
            cls.classified.len()
        )));
    }
    let mut doc = to_json(res, root, threshold);
    let categories: Map<String, Value> = cls
        .class_names
        .iter()
        .enumerate()
        .map(|(i, name)| (i.to_string(), json!(name)))
        .collect();
    doc["classification_categories"] = Value::Object(categories);
    // The writer lists each image's boxes in detection-column order: the best box of image `i`
    // is entry `best - first[i]` of its "detections".
    let mut first = vec![0usize; res.len()];
    for (k, &img) in res.det_image.iter().enumerate().rev() {
        first[img as usize] = k;
    }
    let images = doc["images"]
        .as_array_mut()
        .ok_or_else(|| Error::InvalidArgument("no images".into()))?;
    for (i, image) in images.iter_mut().enumerate() {
        let best = res.best_detection[i];
        if !cls.classified[i] || best < 0 || res.det_category[best as usize] != 0 {
            continue;
        }
        let row = &cls.logits[i * n..(i + 1) * n];
        let list: Vec<Value> = match cls.human.get(i).copied().flatten() {
            Some(c) => vec![json!([c.to_string(), 1.0])],
            None => top_classes(row, cls.disabled, cls.temperature, TOP_K)
                .into_iter()
                .map(|(c, p)| json!([c.to_string(), (p * 1000.0).round() / 1000.0]))
                .collect(),
        };
        if let Some(det) = image["detections"].get_mut(best as usize - first[i]) {
            det["classifications"] = Value::Array(list);
        }
    }
    Ok(doc)
}

/// Writes the JSON with classifications atomically, the run's `videos` after the images
/// ([`super::videos`]).
pub fn write_with_classifications(
    res: &DetectionResults,
    videos: &[VideoRecord],
    path: &Path,
    root: Option<&Path>,
    threshold: f32,
    cls: &Classifications<'_>,
) -> Result<(), Error> {
    let doc = to_json_with_classifications(res, root, threshold, cls)?;
    super::videos::write_document(&doc, videos, root, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_animal_box_gets_top3_and_others_none() {
        let mut res = DetectionResults::default();
        for (w, best, cat) in [(100u32, 2i64, 1u8), (100, -1, 0)] {
            res.paths.push(format!("img{w}{best}.jpg").into());
            res.width.push(w);
            res.height.push(100);
            res.date.push(None);
            res.category.push(cat);
            res.count.push(1);
            res.humancount.push(1);
            res.crop.push([-1; 4]);
            res.best_detection.push(best);
        }
        // Image 0: a person box, then two animal boxes (the second is the best one).
        for (cat, conf) in [(1u8, 0.9f32), (0, 0.7), (0, 0.8)] {
            res.det_image.push(0);
            res.det_xyxy.push([0.0, 0.0, 10.0, 10.0]);
            res.det_conf.push(conf);
            res.det_category.push(cat);
        }
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        // Logits / 1.1 = [0, 1, 2, 3]; class 3 disabled -> softmax([0, 1, 2]) = [0.090, 0.245, 0.665].
        let logits = [0.0, 1.1, 2.2, 3.3, 0.0, 0.0, 0.0, 0.0];
        let cls = Classifications {
            class_names: &names,
            logits: &logits,
            classified: &[true, false],
            disabled: &[3],
            temperature: 1.1,
            human: &[],
        };
        let doc = to_json_with_classifications(&res, None, 0.5, &cls).unwrap();
        assert_eq!(doc["classification_categories"]["3"], "d");
        let dets = doc["images"][0]["detections"].as_array().unwrap();
        assert!(
            dets[0].get("classifications").is_none() && dets[1].get("classifications").is_none()
        );
        assert_eq!(
            dets[2]["classifications"],
            json!([["2", 0.665], ["1", 0.245], ["0", 0.09]])
        );
        let short = Classifications {
            logits: &logits[..4],
            ..cls
        };
        assert!(to_json_with_classifications(&res, None, 0.5, &short).is_err());
        // DeepFaune 1.5's 1.12: logits [0, 1.12, 2.24, 3.36] / 1.12 = [0, 1, 2, 3], the same
        // probabilities as above; with 1.10 they would be [0, 1.018, 2.036, 3.055].
        let v15_logits = [0.0, 1.12, 2.24, 3.36, 0.0, 0.0, 0.0, 0.0];
        let v15 = Classifications {
            logits: &v15_logits,
            temperature: 1.12,
            ..cls
        };
        let doc = to_json_with_classifications(&res, None, 0.5, &v15).unwrap();
        assert_eq!(
            doc["images"][0]["detections"][2]["classifications"],
            json!([["2", 0.665], ["1", 0.245], ["0", 0.09]])
        );
        // A class a person gave replaces the list.
        let corrected = Classifications {
            human: &[Some(1), None],
            ..cls
        };
        let doc = to_json_with_classifications(&res, None, 0.5, &corrected).unwrap();
        assert_eq!(
            doc["images"][0]["detections"][2]["classifications"],
            json!([["1", 1.0]])
        );
    }
}
