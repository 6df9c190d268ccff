//! Reading a MegaDetector batch file (formats 1.0 to 1.6) as the detection step: DeepFaune's
//! `PredictorJSON` input path, so results from MegaDetector, AddaxAI or any tool writing the
//! format can be classified and put into sequences.
//!
//! Two steps, so the parser can be tested (and fuzzed) without files:
//! [`parse`] turns the text into a [`BatchFile`]; [`to_results`] resolves each `"file"`, reads
//! its header (size after EXIF orientation, EXIF date; no pixel decoding) and builds
//! [`DetectionResults`] rows.
//!
//! Choices, where the format or DeepFaune leave room:
//! - Boxes count when `conf > threshold` (strictly, as DeepFaune's `DetectorJSON`; its default
//!   is [`DEEPFAUNE_JSON_THRESHOLD`]).
//! - Boxes become pixels the way DeepFaune's `convertJSONboxToBox` does:
//!   `x1 = int(x * W)`, `x2 = x1 + int(w * W)` (same for y), with `W`, `H` the image size
//!   **after** EXIF orientation (MegaDetector normalises on the rotated image).
//! - The per-image decision is the detection stage's ([`crate::detect::decision::decide`]): the
//!   best animal box is classified, counts per category. DeepFaune's JSON path differs: it takes
//!   the most confident box of any category and counts boxes of every category; we keep one rule
//!   so an image sorts the same whichever detector produced its boxes.
//! - Categories are mapped by name (`animal`, `person`/`human`/`people`, `vehicle`, plurals
//!   accepted), so other tools' numbering works; files without `detection_categories` use
//!   "1", "2", "3". Boxes of other categories are not kept and are counted in
//!   [`ImportedDetections::ignored_boxes`].
//! - A row with a `failure`, or without a `detections` list, is a failure (stage `detect`, kind
//!   `upstream`); a file that cannot be found or whose header cannot be read is a failure of
//!   stage `read`/`decode` like in a detection run.
//! - `"file"` paths: joined to `root` when given; otherwise absolute paths stay, relative ones are
//!   taken relative to the JSON file's folder. Rows keep the file's order.
//! - Species classifications (`classification_categories`, per-box `classifications`) are kept
//!   in [`Classifications`], aligned with the kept boxes.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::detect::Detection;
use crate::error::{Error, ImageError};
use crate::image_io::{read_header, ImageHeader};
use crate::manifest::Category;
use crate::run::DetectionResults;

/// DeepFaune's threshold for boxes read from a MegaDetector file (`MDV5_THRES`).
pub const DEEPFAUNE_JSON_THRESHOLD: f32 = 0.4;

/// One box as written in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchBox {
    /// The mapped category; `None` for categories other than animal, person, vehicle.
    pub category: Option<Category>,
    /// Confidence.
    pub conf: f32,
    /// `[x_min, y_min, width, height]`, normalised 0-1.
    pub bbox: [f32; 4],
    /// `(classification category id, score)` pairs, in file order.
    pub classifications: Vec<(String, f32)>,
}

/// One `images` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchImage {
    /// The `"file"` value.
    pub file: String,
    /// The boxes, or the failure reason.
    pub detections: Result<Vec<BatchBox>, String>,
}

/// A parsed batch file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchFile {
    /// `info.format_version` as text (`"unknown"` when absent).
    pub format_version: String,
    /// `info.detector`, or `"unknown"`.
    pub detector: String,
    /// `classification_categories` as `(id, name)`, sorted by numeric id.
    pub classification_categories: Vec<(String, String)>,
    /// The image entries, in file order.
    pub images: Vec<BatchImage>,
    /// Boxes that could not be used (unknown category, or a missing or non-numeric conf/bbox).
    pub ignored_boxes: usize,
}

/// Species classifications carried by a file, aligned with the boxes of [`DetectionResults`]:
/// the pairs of box `b` are `category[start[b]..start[b + 1]]` and `conf[...]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Classifications {
    /// `(id, name)` from `classification_categories`.
    pub categories: Vec<(String, String)>,
    /// Offsets, one per box plus one.
    pub start: Vec<u32>,
    /// Classification category ids.
    pub category: Vec<String>,
    /// Their scores.
    pub conf: Vec<f32>,
}

impl Classifications {
    /// True when the file had no classifications at all.
    pub fn is_empty(&self) -> bool {
        self.category.is_empty() && self.categories.is_empty()
    }

    /// The `(id, score)` pairs of box `b`.
    pub fn of_box(&self, b: usize) -> impl Iterator<Item = (&str, f32)> {
        let (s, e) = (self.start[b] as usize, self.start[b + 1] as usize);
        self.category[s..e]
            .iter()
            .map(String::as_str)
            .zip(self.conf[s..e].iter().copied())
    }
}

/// Detections read from a file.
#[derive(Debug, Clone, Default)]
pub struct ImportedDetections {
    /// Rows as a detection run would give them.
    pub results: DetectionResults,
    /// Species classifications of the kept boxes.
    pub classifications: Classifications,
    /// Boxes not kept because their category is not animal, person or vehicle, or unusable.
    pub ignored_boxes: usize,
}

/// Maps a detection category name from any tool to ours.
pub fn category_from_name(name: &str) -> Option<Category> {
    match name.trim().to_ascii_lowercase().as_str() {
        "animal" | "animals" => Some(Category::Animal),
        "person" | "persons" | "people" | "human" | "humans" => Some(Category::Person),
        "vehicle" | "vehicles" => Some(Category::Vehicle),
        _ => None,
    }
}

fn bad(reason: impl Into<String>) -> Error {
    Error::InvalidArgument(format!("not a MegaDetector batch file: {}", reason.into()))
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: Option<&Value>) -> Option<f32> {
    let x = v?.as_f64()? as f32;
    x.is_finite().then_some(x)
}

/// Parses the text of a batch file. Tolerant of older versions and of other tools' habits
/// (numeric category ids, missing `info`); refuses what is not that format at all.
pub fn parse(text: &str) -> Result<BatchFile, Error> {
    let doc: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| bad("the top level is not an object"))?;
    let images = obj
        .get("images")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no \"images\" list"))?;
    let info = obj.get("info");
    let text_of = |key: &str| {
        info.and_then(|i| i.get(key))
            .and_then(|v| id_text(v).or_else(|| v.as_object().map(|_| v.to_string())))
            .unwrap_or_else(|| "unknown".into())
    };
    let mut file = BatchFile {
        format_version: text_of("format_version"),
        detector: text_of("detector"),
        ..Default::default()
    };
    let det_categories: Vec<(String, Option<Category>)> = match obj.get("detection_categories") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(id, name)| (id.clone(), name.as_str().and_then(category_from_name)))
            .collect(),
        Some(_) => return Err(bad("\"detection_categories\" is not an object")),
        None => vec![
            ("1".into(), Some(Category::Animal)),
            ("2".into(), Some(Category::Person)),
            ("3".into(), Some(Category::Vehicle)),
        ],
    };
    if let Some(Value::Object(m)) = obj.get("classification_categories") {
        let mut cats: Vec<(String, String)> = m
            .iter()
            .map(|(id, name)| (id.clone(), name.as_str().unwrap_or_default().to_string()))
            .collect();
        cats.sort_by_key(|(id, _)| (id.parse::<i64>().unwrap_or(i64::MAX), id.clone()));
        file.classification_categories = cats;
    }
    file.images.reserve(images.len());
    for (i, im) in images.iter().enumerate() {
        let name = im
            .get("file")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("image {i} has no \"file\" text")))?;
        let failure = match im.get("failure") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        let detections = match (failure, im.get("detections")) {
            (Some(reason), _) => Err(reason),
            (None, Some(Value::Array(list))) => {
                let mut boxes = Vec::with_capacity(list.len());
                for d in list {
                    match parse_box(d, &det_categories) {
                        Some(b) => boxes.push(b),
                        None => file.ignored_boxes += 1,
                    }
                }
                Ok(boxes)
            }
            (None, _) => Err("no detections in the file for this image".into()),
        };
        file.images.push(BatchImage {
            file: name.to_string(),
            detections,
        });
    }
    Ok(file)
}

fn parse_box(d: &Value, categories: &[(String, Option<Category>)]) -> Option<BatchBox> {
    let id = id_text(d.get("category")?)?;
    let category = categories.iter().find(|(c, _)| *c == id).and_then(|c| c.1);
    let conf = number(d.get("conf"))?;
    let b = d.get("bbox")?.as_array()?;
    if b.len() != 4 {
        return None;
    }
    let bbox = [
        number(b.first())?,
        number(b.get(1))?,
        number(b.get(2))?,
        number(b.get(3))?,
    ];
    let classifications = match d.get("classifications") {
        Some(Value::Array(pairs)) => pairs
            .iter()
            .filter_map(|p| {
                let p = p.as_array()?;
                Some((id_text(p.first()?)?, number(p.get(1))?))
            })
            .collect(),
        _ => Vec::new(),
    };
    Some(BatchBox {
        category,
        conf,
        bbox,
        classifications,
    })
}

/// Options of [`to_results`].
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Folder the `"file"` paths are relative to; `None` = the JSON file's folder.
    pub root: Option<PathBuf>,
    /// Boxes count when `conf > threshold`.
    pub threshold: f32,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            root: None,
            threshold: DEEPFAUNE_JSON_THRESHOLD,
        }
    }
}

/// DeepFaune's `convertJSONboxToBox`: normalised xywh to integer pixel xyxy.
///
/// ```
/// use deepfaune_rs::export::megadetector::read::to_pixels;
/// // int(0.25 * 640) = 160, 160 + int(0.5 * 640) = 480; int(0.1 * 480) = 48, 48 + int(0.3 * 480) = 192
/// assert_eq!(to_pixels([0.25, 0.1, 0.5, 0.3], 640, 480), [160.0, 48.0, 480.0, 192.0]);
/// ```
pub fn to_pixels(b: [f32; 4], width: u32, height: u32) -> [f32; 4] {
    let (w, h) = (width as f64, height as f64);
    let x1 = (b[0] as f64 * w).trunc();
    let y1 = (b[1] as f64 * h).trunc();
    let x2 = x1 + (b[2] as f64 * w).trunc();
    let y2 = y1 + (b[3] as f64 * h).trunc();
    [x1 as f32, y1 as f32, x2 as f32, y2 as f32]
}

/// Builds detection rows from a parsed file, reading each image's header with `header`
/// (normally [`read_header`]; a parameter so tests need no files).
pub fn to_results(
    file: &BatchFile,
    base: &Path,
    threshold: f32,
    header: &(dyn Fn(&Path) -> Result<ImageHeader, ImageError> + Sync),
) -> ImportedDetections {
    use rayon::prelude::*;
    let paths: Vec<PathBuf> = file.images.iter().map(|im| base.join(&im.file)).collect();
    // Headers are read in parallel (I/O bound on network drives); one small value per image.
    let headers: Vec<Option<Result<ImageHeader, ImageError>>> = crate::parallel::install(|| {
        file.images
            .par_iter()
            .zip(&paths)
            .map(|(im, p)| im.detections.is_ok().then(|| header(p)))
            .collect()
    });
    let mut out = ImportedDetections {
        ignored_boxes: file.ignored_boxes,
        classifications: Classifications {
            categories: file.classification_categories.clone(),
            start: vec![0],
            ..Default::default()
        },
        results: DetectionResults {
            detector: file.detector.clone(),
            ..Default::default()
        },
    };
    for (i, ((im, path), head)) in file.images.iter().zip(&paths).zip(headers).enumerate() {
        let res = &mut out.results;
        let boxes = match (&im.detections, head) {
            (Err(reason), _) => {
                res.push_failure(i, path, "detect", "upstream", reason.clone());
                continue;
            }
            (Ok(_), Some(Err(e))) => {
                let stage = if matches!(e, ImageError::Io(_) | ImageError::Empty) {
                    "read"
                } else {
                    "decode"
                };
                res.push_failure(i, path, stage, e.key(), e.to_string());
                continue;
            }
            (Ok(boxes), Some(Ok(h))) => (boxes, h),
            (Ok(_), None) => unreachable!("headers are read for every image with detections"),
        };
        let (boxes, h) = boxes;
        let mut dets = Vec::new();
        for b in boxes.iter().filter(|b| b.conf > threshold) {
            let Some(category) = b.category else {
                out.ignored_boxes += 1;
                continue;
            };
            dets.push(Detection {
                bbox: to_pixels(b.bbox, h.width, h.height),
                conf: b.conf,
                category,
            });
            let c = &mut out.classifications;
            for (id, score) in &b.classifications {
                c.category.push(id.clone());
                c.conf.push(*score);
            }
            c.start.push(c.category.len() as u32);
        }
        res.push_row(path, h.width, h.height, h.exif.date, dets);
    }
    out
}

/// Reads a batch file: [`parse`], then [`to_results`] with [`read_header`].
pub fn read(path: &Path, opts: &ReadOptions) -> Result<ImportedDetections, Error> {
    if !(0.0..=1.0).contains(&opts.threshold) {
        // NaN would silently drop every box.
        return Err(Error::InvalidArgument(format!(
            "threshold {} must be within 0..1",
            opts.threshold
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::InvalidArgument(format!("cannot read {}: {e}", path.display())))?;
    let file = parse(&text)?;
    let base = match &opts.root {
        Some(r) => r.clone(),
        None => path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    Ok(to_results(&file, &base, opts.threshold, &read_header))
}

#[cfg(test)]
mod tests;
