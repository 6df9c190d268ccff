//! Reading a MegaDetector batch file (formats 1.0 to 1.6) as the detection step: DeepFaune's
//! `PredictorJSON` input path, so results from MegaDetector, AddaxAI or any tool writing the
//! format can be classified and put into sequences.
//!
//! Two steps, so the parser can be tested (and fuzzed) without files:
//! [`parse`] turns the text into a [`BatchFile`]; [`to_results`] resolves each `"file"`, reads
//! its header (size, EXIF orientation and date; no pixel decoding) and builds
//! [`DetectionResults`] rows. Classifying them is [`crate::run::run_imported`].
//!
//! Numbers stay `f64` from the JSON text through the pixel conversion and the threshold test,
//! as Python's `json` gives them to DeepFaune (`int(0.4775 * 800)` is 382; parsed as `f32`
//! first, 0.4775 is 0.47749999 and gives 381; a confidence of 0.40000001 is above 0.4 only in
//! `f64`).
//!
//! Two rule sets ([`JsonRules`]) turn the boxes into per-image decisions:
//!
//! **`Corrected`** (the default; the package's own rules, the same as a detection run):
//! - Boxes count when `conf > threshold` (strictly, as DeepFaune's `DetectorJSON`; its default
//!   is [`DEEPFAUNE_JSON_THRESHOLD`]).
//! - Boxes become pixels the way DeepFaune's `convertJSONboxToBox` does:
//!   `x1 = int(x * W)`, `x2 = x1 + int(w * W)` (same for y), with `W`, `H` the image size
//!   **after** EXIF orientation (MegaDetector normalises on the rotated image).
//! - The per-image decision is the detection stage's ([`crate::detect::decision::decide`]): the
//!   best animal box is classified, counts per category (animals, people), so an image sorts
//!   the same whichever detector produced its boxes.
//! - Categories are mapped by name (`animal`, `person`/`human`/`people`, `vehicle`, plurals
//!   accepted), so other tools' numbering works; files without `detection_categories` use
//!   "1", "2", "3". Boxes of other categories are not kept and are counted in
//!   [`ImportedDetections::ignored_boxes`].
//! - A row with a `failure`, or without a `detections` list, is a failure row (stage `detect`,
//!   kind `upstream`); a file that cannot be found or whose header cannot be read is a failure
//!   of stage `read`/`decode` like in a detection run.
//!
//! **`DeepFaune`** (DeepFaune 1.4.1's `PredictorJSON` / `DetectorJSON.bestBoxDetection`, quirks
//! included): see [`JsonRules::DeepFaune`].
//!
//! Both:
//! - `"file"` paths: joined to `root` when given; otherwise absolute paths stay, relative ones are
//!   taken relative to the JSON file's folder. Rows keep the file's order.
//! - Species classifications (`classification_categories`, per-box `classifications`) are kept
//!   in [`Classifications`], aligned with the kept boxes.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::detect::decision::{crop_square, decide_with, ImageDecision, ImageKind};
use crate::detect::Detection;
use crate::error::{Error, ImageError};
use crate::image_io::{read_header, ImageHeader};
use crate::manifest::Category;
use crate::results::{DetectionResults, Failure};

/// DeepFaune's threshold for boxes read from a MegaDetector file (`MDV5_THRES`).
pub const DEEPFAUNE_JSON_THRESHOLD: f64 = 0.4;

/// How the boxes of a MegaDetector file become per-image decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JsonRules {
    /// The package's rules (see the module documentation): best **animal** box classified,
    /// animals and people counted apart, EXIF orientation applied, failures are rows.
    #[default]
    Corrected,
    /// DeepFaune 1.4.1's `PredictorJSON`, exactly, quirks included:
    /// - rows whose `failure` is set are dropped (no row; we still list them as failures
    ///   without a row, stage `detect`, kind `upstream`); a row without a `detections` list
    ///   (DeepFaune crashes on it) is treated the same way;
    /// - the **most confident box of any category** decides the image (`argmax`, the first one
    ///   on ties); when its confidence is not above the threshold the image is empty, even if
    ///   another box is;
    /// - its category is `int(category id)`, whatever `detection_categories` says: "1" animal
    ///   (its box is cropped and classified), "2" human, "3" vehicle, "0" empty, any other
    ///   number an image that is "not empty" with all-zero logits (it counts as an animal image
    ///   with a uniform softmax: `undefined`); a person box more confident than an animal box
    ///   makes the image `human` and the animal is not classified;
    /// - `count` is the number of boxes **of every category** above the threshold (0 for an
    ///   empty image), `humancount` is always 0;
    /// - **no EXIF orientation**: the image is read as stored (`cv2.imdecode` with
    ///   `IMREAD_UNCHANGED`), the normalised box is converted with the stored width and height
    ///   and the crop is cut from the stored pixels; sizes and boxes of these results are in
    ///   that stored pixel grid;
    /// - an animal image whose file cannot be read becomes empty but keeps its `count`
    ///   (we make it a failure row with that count; it sorts as empty); DeepFaune crashes when
    ///   the deciding box is a person or vehicle of an unreadable file, and on grayscale or
    ///   16-bit images: we read those (as RGB) or list them as failures;
    /// - stored boxes are those above the threshold with ids "1", "2", "3".
    DeepFaune,
}

impl JsonRules {
    /// `"corrected"` or `"deepfaune"`.
    pub fn parse(name: &str) -> Result<JsonRules, Error> {
        match name.to_ascii_lowercase().as_str() {
            "corrected" => Ok(JsonRules::Corrected),
            "deepfaune" => Ok(JsonRules::DeepFaune),
            other => Err(Error::InvalidArgument(format!(
                "json_rules '{other}': use 'corrected' or 'deepfaune'"
            ))),
        }
    }

    /// The name [`Self::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            JsonRules::Corrected => "corrected",
            JsonRules::DeepFaune => "deepfaune",
        }
    }
}

/// One box as written in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchBox {
    /// The category id as written (numbers as their JSON text).
    pub category_id: String,
    /// The category mapped by name; `None` for categories other than animal, person, vehicle.
    pub category: Option<Category>,
    /// Confidence, as the JSON text gives it (`f64`, like Python's `json`).
    pub conf: f64,
    /// `[x_min, y_min, width, height]`, normalised 0-1, `f64`.
    pub bbox: [f64; 4],
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

    /// These classifications for the boxes put in the order `order` (new box `k` is old box
    /// `order[k]`, see [`DetectionResults::permute`]).
    pub fn permute_boxes(&self, order: &[usize]) -> Classifications {
        if self.start.len() < 2 {
            return self.clone();
        }
        let mut out = Classifications {
            categories: self.categories.clone(),
            start: vec![0],
            category: Vec::new(),
            conf: Vec::new(),
        };
        for &b in order {
            if b + 1 < self.start.len() {
                for (id, score) in self.of_box(b) {
                    out.category.push(id.to_string());
                    out.conf.push(score);
                }
            }
            out.start.push(out.category.len() as u32);
        }
        out
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
    /// Rows as a detection run would give them (decisions made with [`Self::rules`]).
    pub results: DetectionResults,
    /// The rules the decisions were made with.
    pub rules: JsonRules,
    /// The confidence threshold boxes had to pass.
    pub threshold: f64,
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

fn number(v: Option<&Value>) -> Option<f64> {
    let x = v?.as_f64()?;
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
                Some((id_text(p.first()?)?, number(p.get(1))? as f32))
            })
            .collect(),
        _ => Vec::new(),
    };
    Some(BatchBox {
        category_id: id,
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
    pub threshold: f64,
    /// How boxes become decisions.
    pub rules: JsonRules,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            root: None,
            threshold: DEEPFAUNE_JSON_THRESHOLD,
            rules: JsonRules::Corrected,
        }
    }
}

/// DeepFaune's `convertJSONboxToBox`: normalised xywh to integer pixel xyxy, computed in `f64`
/// like Python (the integer results are exact in `f32` below 2^24 pixels).
///
/// ```
/// use deepfaune_rs::import::megadetector::to_pixels;
/// // int(0.25 * 640) = 160, 160 + int(0.5 * 640) = 480; int(0.1 * 480) = 48, 48 + int(0.3 * 480) = 192
/// assert_eq!(to_pixels([0.25, 0.1, 0.5, 0.3], 640, 480), [160.0, 48.0, 480.0, 192.0]);
/// // Python: int(0.4775 * 800) == 382 (parsed as f32 first: 0.47749999 * 800 = 381.99999).
/// assert_eq!(to_pixels([0.4775, 0.0, 0.1, 0.1], 800, 800)[0], 382.0);
/// ```
pub fn to_pixels(b: [f64; 4], width: u32, height: u32) -> [f32; 4] {
    let (w, h) = (width as f64, height as f64);
    let x1 = (b[0] * w).trunc();
    let y1 = (b[1] * h).trunc();
    let x2 = x1 + (b[2] * w).trunc();
    let y2 = y1 + (b[3] * h).trunc();
    [x1 as f32, y1 as f32, x2 as f32, y2 as f32]
}

/// DeepFaune's `int(category)` for ids "1", "2", "3" (the only boxes it can store); `None`
/// otherwise.
fn deepfaune_category(id: &str) -> Option<Category> {
    match python_int(id)? {
        1 => Some(Category::Animal),
        2 => Some(Category::Person),
        3 => Some(Category::Vehicle),
        _ => None,
    }
}

/// Python's `int()` of a category id: an integer text with optional surrounding spaces and
/// sign (a JSON number written as `1.0` reaches DeepFaune as a float and `int(1.0)` is 1).
fn python_int(id: &str) -> Option<i64> {
    let t = id.trim();
    t.parse::<i64>().ok().or_else(|| {
        let f: f64 = t.parse().ok()?;
        (f.is_finite() && f.fract() == 0.0 && f.abs() < 9e15).then_some(f as i64)
    })
}

/// What DeepFaune's `DetectorJSON.bestBoxDetection` decides from one image's boxes (file order,
/// every category): `(category, deciding box, count)`. `category` is `int(category id)` of the
/// most confident box when that box is above `threshold`, else 0; `count` is the number of boxes
/// of every category above `threshold`, 0 when the category is 0. An id that is not an integer
/// (DeepFaune raises) gives `Err`.
///
/// ```
/// use deepfaune_rs::import::megadetector::{deepfaune_best_box, parse};
/// let f = parse(r#"{"images": [{"file": "a.jpg", "detections": [
///     {"category": "1", "conf": 0.7, "bbox": [0, 0, 1, 1]},
///     {"category": "2", "conf": 0.9, "bbox": [0, 0, 1, 1]},
///     {"category": "1", "conf": 0.3, "bbox": [0, 0, 1, 1]}]}]}"#).unwrap();
/// let boxes = f.images[0].detections.as_ref().unwrap();
/// // The person (0.9) decides: human; two boxes of any category are above 0.4.
/// assert_eq!(deepfaune_best_box(boxes, 0.4), Ok((2, Some(1), 2)));
/// ```
pub fn deepfaune_best_box(
    boxes: &[BatchBox],
    threshold: f64,
) -> Result<(i64, Option<usize>, u32), String> {
    // numpy.argmax: the first maximum.
    let Some(best) = boxes
        .iter()
        .enumerate()
        .fold(None::<(usize, f64)>, |acc, (i, b)| match acc {
            Some((_, c)) if c >= b.conf => acc,
            _ => Some((i, b.conf)),
        })
        .map(|(i, _)| i)
    else {
        return Ok((0, None, 0));
    };
    let category = if boxes[best].conf > threshold {
        python_int(&boxes[best].category_id).ok_or_else(|| {
            format!(
                "category id {:?} is not a number (DeepFaune reads int(category))",
                boxes[best].category_id
            )
        })?
    } else {
        0
    };
    if category == 0 {
        return Ok((0, None, 0));
    }
    let count = boxes.iter().filter(|b| b.conf > threshold).count() as u32;
    Ok((category, Some(best), count))
}

/// Builds detection rows from a parsed file with `rules`, reading each image's header with
/// `header` (normally [`read_header`]; a parameter so tests need no files).
pub fn to_results(
    file: &BatchFile,
    base: &Path,
    threshold: f64,
    rules: JsonRules,
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
        rules,
        threshold,
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
    for ((im, path), head) in file.images.iter().zip(&paths).zip(headers) {
        let row = out.results.len();
        let boxes = match &im.detections {
            Ok(boxes) => boxes,
            Err(reason) => {
                match rules {
                    JsonRules::Corrected => {
                        out.results
                            .push_failure(row, path, "detect", "upstream", reason.clone())
                    }
                    // PredictorJSON drops the row; it is still listed, without a row.
                    JsonRules::DeepFaune => out.results.failures.push(Failure {
                        index: None,
                        path: path.clone(),
                        stage: "detect",
                        kind: "upstream",
                        reason: format!("{reason} (dropped, as DeepFaune's PredictorJSON does)"),
                    }),
                }
                continue;
            }
        };
        let head = head.expect("headers are read for every image with detections");
        match rules {
            JsonRules::Corrected => corrected_row(&mut out, path, boxes, head, threshold),
            JsonRules::DeepFaune => deepfaune_row(&mut out, path, boxes, head, threshold),
        }
    }
    out
}

fn header_failure(res: &mut DetectionResults, path: &Path, e: &ImageError) {
    let stage = if matches!(e, ImageError::Io(_) | ImageError::Empty) {
        "read"
    } else {
        "decode"
    };
    res.push_failure(res.len(), path, stage, e.key(), e.to_string());
}

fn push_classifications(c: &mut Classifications, b: &BatchBox) {
    for (id, score) in &b.classifications {
        c.category.push(id.clone());
        c.conf.push(*score);
    }
    c.start.push(c.category.len() as u32);
}

fn corrected_row(
    out: &mut ImportedDetections,
    path: &Path,
    boxes: &[BatchBox],
    head: Result<ImageHeader, ImageError>,
    threshold: f64,
) {
    let h = match head {
        Ok(h) => h,
        Err(e) => return header_failure(&mut out.results, path, &e),
    };
    let mut dets = Vec::new();
    let mut confs = Vec::new();
    for b in boxes.iter().filter(|b| b.conf > threshold) {
        let Some(category) = b.category else {
            out.ignored_boxes += 1;
            continue;
        };
        dets.push(Detection {
            bbox: to_pixels(b.bbox, h.width, h.height),
            conf: b.conf as f32,
            category,
        });
        confs.push(b.conf);
        push_classifications(&mut out.classifications, b);
    }
    // The decision compares the file's f64 confidences, not their f32 copies.
    let d = decide_with(&dets, &confs, h.width, h.height);
    out.results
        .push_decided(path, h.width, h.height, h.exif.date, dets, d);
}

fn deepfaune_row(
    out: &mut ImportedDetections,
    path: &Path,
    boxes: &[BatchBox],
    head: Result<ImageHeader, ImageError>,
    threshold: f64,
) {
    let (category, best, count) = match deepfaune_best_box(boxes, threshold) {
        Ok(v) => v,
        Err(reason) => {
            let res = &mut out.results;
            return res.push_failure(res.len(), path, "detect", "format", reason);
        }
    };
    let h = match head {
        Ok(h) => h,
        Err(e) => {
            // DeepFaune: an unreadable animal image is empty but keeps its count.
            header_failure(&mut out.results, path, &e);
            *out.results.count.last_mut().expect("just pushed") = count;
            return;
        }
    };
    // The stored pixel grid: DeepFaune reads the image without its EXIF orientation.
    let (w, hh) = if h.exif.orientation >= 5 {
        (h.height, h.width)
    } else {
        (h.width, h.height)
    };
    let mut dets = Vec::new();
    let mut best_kept = None;
    for (k, b) in boxes.iter().enumerate() {
        if b.conf <= threshold {
            continue;
        }
        let Some(cat) = deepfaune_category(&b.category_id) else {
            out.ignored_boxes += 1;
            continue;
        };
        if Some(k) == best {
            best_kept = Some(dets.len());
        }
        dets.push(Detection {
            bbox: to_pixels(b.bbox, w, hh),
            conf: b.conf as f32,
            category: cat,
        });
        push_classifications(&mut out.classifications, b);
    }
    let kind = match category {
        0 => ImageKind::Empty,
        2 => ImageKind::Human,
        3 => ImageKind::Vehicle,
        // 1, and any other number: "not empty", an animal row (zero logits unless cropped).
        _ => ImageKind::Animal,
    };
    let crop = match (category, best_kept) {
        (1, Some(i)) => crop_square(dets[i].bbox, w, hh),
        _ => None,
    };
    let d = ImageDecision {
        kind,
        best: best_kept,
        count,
        humancount: 0,
        crop,
    };
    out.results.push_decided(path, w, hh, h.exif.date, dets, d);
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
    Ok(to_results(
        &file,
        &base,
        opts.threshold,
        opts.rules,
        &read_header,
    ))
}

#[cfg(test)]
mod tests;
