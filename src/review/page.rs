//! The review page's state: the rows a result shows (its images, then its videos, each video a
//! sequence of its own), each relabel applied in place as it is made, and the page's questions
//! answered from them: the filtered sequences, a page of them as JSON, the counts.
//!
//! The rows come from a run ([`ReviewRows::of_run`], the journal already applied by
//! [`super::apply_corrections`]) or from a results table read without its run
//! ([`ReviewRows::of_table`], its boxes from a MegaDetector file of the same run). A change the
//! page makes is one journal line ([`ReviewRows::change`]): appended and synced, then applied to
//! the rows it names only, with the same rule as the whole journal
//! ([`super::corrections::reviewed_after`]).
//!
//! A row's JSON (`row`) holds: `id`, `path`, `name`, `folder`, `w`, `h` (upright pixels),
//! `date`, `category` (0 empty, 1 animal, 2 human, 3 vehicle, 255 failed), `failed`, `boxes`
//! (`[x1, y1, x2, y2, category, confidence, classified]`, pixels to 0.1, confidence to 0.001),
//! `seqnum`, `predictionbase`, `scorebase`, `prediction`, `score`, `top1` (scores to 0.01),
//! `count`, `humancount`, `reviewed` (`null` or `{label, verified, by, time}`), `video`,
//! `keyframe` and `unavailable` (why a video row has no picture, else `null`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

use serde_json::{json, Value};

use super::corrections::{append_correction, now_iso, reviewed_after, Correction};
use super::labels::table_labels;
use crate::error::Error;
use crate::import::megadetector::{read, ReadOptions};
use crate::manifest::classifier::LabelNames;
use crate::results::{DetectionResults, Reviewed, VideoRecord};
use crate::sequence::SequencePredictions;

/// One box on a row's picture.
#[derive(Debug, Clone, PartialEq)]
pub struct RowBox {
    /// `[x1, y1, x2, y2]` in upright pixels.
    pub xyxy: [f32; 4],
    /// Detector category (0 animal, 1 person, 2 vehicle).
    pub category: u8,
    /// Detector confidence.
    pub conf: f32,
    /// The box the row's label was decided from.
    pub classified: bool,
}

/// One row of the page: an image, or a video (its keyframe's picture).
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Its name in the journal: its path as the results hold it.
    pub key: String,
    /// The file to show.
    pub path: String,
    /// EXIF date text (`YYYY:MM:DD HH:MM:SS`), if any.
    pub date: Option<String>,
    /// 0 empty, 1 animal, 2 human, 3 vehicle, 255 failed.
    pub category: u8,
    /// Width and height in upright pixels (0 when unknown).
    pub size: [u32; 2],
    /// Its boxes.
    pub boxes: Vec<RowBox>,
    /// The file could not be processed.
    pub failed: bool,
    /// Its sequence.
    pub seqnum: u64,
    /// The image judged alone.
    pub predictionbase: String,
    /// Its score.
    pub scorebase: f64,
    /// Its sequence judged as a whole.
    pub prediction: String,
    /// Its score.
    pub score: f64,
    /// The sequence's best label whatever the threshold.
    pub top1: String,
    /// Animal boxes.
    pub count: u32,
    /// Person boxes.
    pub humancount: u32,
    /// What the journal says of it.
    pub reviewed: Option<Reviewed<String>>,
    /// A video's row.
    pub video: bool,
    /// The frame a video's decision came from.
    pub keyframe: Option<u64>,
}

/// The columns of a run the page shows ([`ReviewRows::of_run`]).
pub struct RunRows<'a> {
    /// Boxes, sizes, dates, failures, in the table's row order.
    pub detection: &'a DetectionResults,
    /// Sequences and scores.
    pub preds: &'a SequencePredictions,
    /// The predictions as texts: each image's, its sequence's, its sequence's best label.
    pub predictionbase: &'a [String],
    /// Its sequence's.
    pub prediction: &'a [String],
    /// Its sequence's best label whatever the threshold.
    pub top1: &'a [String],
    /// What the journal says per image.
    pub reviewed: &'a [Option<Reviewed>],
    /// What the journal says per video.
    pub video_reviewed: &'a [Option<Reviewed>],
    /// The run's videos, corrections applied (none: the notebook pictures show images only).
    pub videos: &'a [VideoRecord],
    /// The labels in the results' language.
    pub names: Option<LabelNames<'a>>,
    /// With the bird head's wording.
    pub bird_head: bool,
}

/// A results table's columns as read (CSV or XLSX cells as text; [`ReviewRows::of_table`]).
#[derive(Debug, Clone, Default)]
pub struct TableColumns {
    /// Required: `filename`, `seqnum`, `predictionbase`, `scorebase`, `prediction`, `score`.
    pub columns: HashMap<String, Vec<String>>,
}

/// The page's filter (the query of `/api/sequences`): a prediction, a kind of sequence
/// (`show`: `undefined`, `empty`, `human`, `failed`, `unverified`), a score range, a folder
/// and a date range (`YYYY-MM-DD`); empty or `all` is no filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// The sequence's prediction.
    pub class: String,
    /// A kind of sequence.
    pub show: String,
    /// Lowest sequence score (two decimals).
    pub min: Option<f64>,
    /// Highest sequence score.
    pub max: Option<f64>,
    /// The first row's folder.
    pub folder: String,
    /// Some row dated on or after this (`YYYY-MM-DD[ HH:MM:SS]`).
    pub from: String,
    /// Some row dated on or before this day (`YYYY-MM-DD`).
    pub to: String,
}

/// Sequences per page when the query does not say.
pub const PAGE_SIZE: usize = 25;
/// Sequences per page at most.
pub const PAGE_MAX: usize = 200;

/// The rows of a result as the review page and the notebooks show them.
#[derive(Debug, Clone)]
pub struct ReviewRows {
    rows: Vec<Row>,
    /// Row of each journal name.
    index: HashMap<String, usize>,
    /// Rows grouped by sequence number (ascending; rows in order within one).
    sequences: Vec<Vec<usize>>,
    /// The labels a change may give, and whose they are (for the error naming a wrong one).
    labels: Vec<String>,
    owner: String,
    /// Every prediction shown since loading (the page's class list).
    predictions: BTreeSet<String>,
    /// Why no video row has a picture here (a video reader is missing), if so.
    no_video_picture: Option<String>,
    /// The last filter's sequences: paging through one filter tests them once.
    picked: Option<(Filter, Vec<usize>)>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

/// `x` rounded to `digits` decimals as Python's `round` does (the exact binary value, ties to
/// even), so the JSON holds what the page and the notebooks have always shown.
pub fn round_to(x: f64, digits: usize) -> f64 {
    format!("{x:.digits$}").parse().unwrap_or(x)
}

/// Python's `os.path.dirname` and `basename` of a path text.
pub(crate) fn split_name(p: &str) -> (&str, &str) {
    let sep = |c: char| c == '/' || (cfg!(windows) && c == '\\');
    let cut = p.rfind(sep).map_or(0, |i| i + 1);
    let head = &p[..cut];
    let trimmed = head.trim_end_matches(sep);
    (if trimmed.is_empty() { head } else { trimmed }, &p[cut..])
}

fn text_of(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A path made absolute and lexically normal (`os.path.normpath(os.path.abspath(p))`).
fn normal(p: &Path) -> PathBuf {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A number cell: `int(float(v))` / `float(v)`, 0 when empty or not a number.
fn number(v: &str) -> f64 {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .unwrap_or(0.0)
}

impl ReviewRows {
    fn new(rows: Vec<Row>, labels: Vec<String>, owner: String) -> Self {
        let index = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.key.clone(), i))
            .collect();
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| rows[i].seqnum); // stable: rows in order within a sequence
        let mut sequences: Vec<Vec<usize>> = Vec::new();
        let mut last = None;
        for i in order {
            if last != Some(rows[i].seqnum) {
                sequences.push(Vec::new());
                last = Some(rows[i].seqnum);
            }
            sequences.last_mut().expect("pushed").push(i);
        }
        let predictions = rows.iter().map(|r| r.prediction.clone()).collect();
        ReviewRows {
            rows,
            index,
            sequences,
            labels,
            owner,
            predictions,
            no_video_picture: None,
            picked: None,
        }
    }

    /// The rows of a run: its images in the table's order, then (when `run.videos` holds any)
    /// one row per video, each its own sequence numbered after the images', with its keyframe
    /// and that frame's deciding box. `labels`: the labels a change may give.
    pub fn of_run(run: RunRows<'_>, labels: Vec<String>, owner: String) -> Self {
        let d = run.detection;
        let failed: std::collections::HashSet<&Path> =
            d.failures.iter().map(|f| f.path.as_path()).collect();
        let mut boxes: Vec<Vec<RowBox>> = vec![Vec::new(); d.paths.len()];
        for (k, &i) in d.det_image.iter().enumerate() {
            boxes[i as usize].push(RowBox {
                xyxy: d.det_xyxy[k],
                category: d.det_category[k],
                conf: d.det_conf[k],
                classified: d.best_detection[i as usize] == k as i64,
            });
        }
        let text = |r: &Option<Reviewed>| -> Option<Reviewed<String>> {
            r.as_ref().map(|r| Reviewed {
                label: match (r.label, &run.names) {
                    (Some(l), Some(n)) => Some(l.text(n, run.bird_head)),
                    _ => None,
                },
                verified: r.verified,
                by: r.by.clone(),
                time: r.time.clone(),
            })
        };
        let mut rows: Vec<Row> = boxes
            .into_iter()
            .enumerate()
            .map(|(i, boxes)| {
                let (base, seq) = (&run.preds.base[i], &run.preds.sequence[i]);
                Row {
                    key: text_of(&d.paths[i]),
                    path: text_of(&d.paths[i]),
                    date: d.date[i].as_ref().map(|t| t.text.clone()),
                    category: d.category[i],
                    size: [d.width[i], d.height[i]],
                    boxes,
                    failed: failed.contains(d.paths[i].as_path()),
                    seqnum: u64::from(run.preds.seqnum[i]),
                    predictionbase: run.predictionbase[i].clone(),
                    scorebase: base.score,
                    prediction: run.prediction[i].clone(),
                    score: seq.score,
                    top1: run.top1[i].clone(),
                    count: d.count[i],
                    humancount: d.humancount[i],
                    reviewed: run.reviewed.get(i).and_then(text),
                    video: false,
                    keyframe: None,
                }
            })
            .collect();
        let first_seq = rows.iter().map(|r| r.seqnum).max().unwrap_or(0) + 1;
        for (k, v) in run.videos.iter().enumerate() {
            let mut row = video_row(v, first_seq + k as u64);
            row.reviewed = run.video_reviewed.get(k).and_then(text);
            rows.push(row);
        }
        ReviewRows::new(rows, labels, owner)
    }

    /// The rows of a results table read without its run (`table`: its file, whose folder
    /// relative names are read from). Columns beyond the required ones are optional: `top1`,
    /// `count`, `humancount`, `date` (or `dates`), `status` (`failed...` marks a failed row),
    /// `media_type` and `keyframe` (our table's videos, the rows after the images). The labels
    /// are those of the built-in classifier whose labels name the table's (else the table's
    /// own); `detections`: a MegaDetector file of the same run, for the boxes and sizes.
    pub fn of_table(
        table: &Path,
        cols: &TableColumns,
        detections: Option<&Path>,
    ) -> Result<(Self, Option<super::TableLabels>), Error> {
        const REQUIRED: [&str; 6] = [
            "filename",
            "seqnum",
            "predictionbase",
            "scorebase",
            "prediction",
            "score",
        ];
        let c = &cols.columns;
        let missing: Vec<&str> = REQUIRED
            .into_iter()
            .filter(|k| !c.contains_key(*k))
            .collect();
        if !missing.is_empty() {
            return Err(bad(format!(
                "{}: not a results table, missing columns {} (give the CSV/XLSX of a DeepFaune or \
                 deepfaune-rs run, or its .checkpoint)",
                table.display(),
                missing.join(", ")
            )));
        }
        let n = c["filename"].len();
        let col = |k: &str| -> Vec<String> {
            c.get(k).cloned().unwrap_or_else(|| vec![String::new(); n])
        };
        let (pb, pred) = (col("predictionbase"), col("prediction"));
        let top1 = c.get("top1").cloned().unwrap_or_else(|| pred.clone());
        let texts: BTreeSet<&String> = pb
            .iter()
            .chain(&pred)
            .chain(c.get("top1").into_iter().flatten())
            .collect();
        let texts: Vec<&String> = texts.into_iter().collect();
        let found = table_labels(&texts);
        let (labels, owner, kinds) = match &found {
            Some(t) => (
                t.labels.clone(),
                t.classifier.clone(),
                [
                    t.special[0].clone(),
                    t.special[1].clone(),
                    t.special[2].clone(),
                ],
            ),
            None => (
                texts
                    .iter()
                    .filter(|t| !t.is_empty())
                    .map(|t| t.to_string())
                    .collect(),
                "this table".to_string(),
                ["empty".into(), "human".into(), "vehicle".into()],
            ),
        };
        let folder = normal(table)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let dates = c
            .get("date")
            .or_else(|| c.get("dates"))
            .cloned()
            .unwrap_or_else(|| vec![String::new(); n]);
        let (status, media, keyframe) = (col("status"), col("media_type"), col("keyframe"));
        let videos: Vec<usize> = (0..n).filter(|&k| media[k] == "video").collect();
        let video_from =
            if !videos.is_empty() && videos == (n - videos.len()..n).collect::<Vec<_>>() {
                n - videos.len()
            } else {
                n
            };
        let (scorebase, score, count, humancount, seqnum) = (
            col("scorebase"),
            col("score"),
            col("count"),
            col("humancount"),
            col("seqnum"),
        );
        let rows: Vec<Row> = (0..n)
            .map(|i| {
                let key = c["filename"][i].clone();
                let failed = status[i].starts_with("failed");
                let category = if failed {
                    0
                } else {
                    match kinds.iter().position(|k| *k == pb[i]) {
                        Some(0) => 0,
                        Some(1) => 2,
                        Some(_) => 3,
                        None => 1,
                    }
                };
                let video = i >= video_from;
                Row {
                    path: text_of(&resolve(&key, &folder)),
                    key,
                    date: Some(dates[i].clone()).filter(|d| !d.is_empty()),
                    category,
                    size: [0, 0],
                    boxes: Vec::new(),
                    failed,
                    seqnum: number(&seqnum[i]) as u64,
                    predictionbase: pb[i].clone(),
                    scorebase: number(&scorebase[i]),
                    prediction: pred[i].clone(),
                    score: number(&score[i]),
                    top1: top1[i].clone(),
                    count: number(&count[i]) as u32,
                    humancount: number(&humancount[i]) as u32,
                    reviewed: None,
                    video,
                    keyframe: if video {
                        keyframe[i].trim().parse::<f64>().ok().map(|k| k as u64)
                    } else {
                        None
                    },
                }
            })
            .collect();
        let mut out = ReviewRows::new(rows, labels, owner);
        if let Some(md) = detections {
            out.add_megadetector_boxes(md)?;
        }
        Ok((out, found))
    }

    /// The boxes, sizes and categories of a MegaDetector file, matched to the rows by path.
    fn add_megadetector_boxes(&mut self, md: &Path) -> Result<(), Error> {
        if !md.is_file() {
            return Err(bad(format!("--detections {}: no such file", md.display())));
        }
        let opts = ReadOptions::default();
        let det = read(md, &opts)
            .map_err(|e| bad(format!("--detections {}: {e}", md.display())))?
            .results;
        let row_of: HashMap<PathBuf, usize> = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| (normal(Path::new(&r.path)), i))
            .collect();
        let rows_of_image: Vec<Option<usize>> = det
            .paths
            .iter()
            .map(|p| row_of.get(&normal(p)).copied())
            .collect();
        for (j, i) in rows_of_image.iter().enumerate() {
            let Some(&i) = i.as_ref() else { continue };
            let row = &mut self.rows[i];
            row.size = [det.width[j], det.height[j]];
            row.boxes.clear();
            if !row.failed {
                row.category = det.category[j];
            }
        }
        for (k, &j) in det.det_image.iter().enumerate() {
            let Some(i) = rows_of_image[j as usize] else {
                continue;
            };
            self.rows[i].boxes.push(RowBox {
                xyxy: det.det_xyxy[k],
                category: det.det_category[k],
                conf: det.det_conf[k],
                classified: det.best_detection[j as usize] == k as i64,
            });
        }
        Ok(())
    }

    /// Says why video rows have no picture here (`None`: they have one, unless their video
    /// could not be read).
    pub fn set_no_video_picture(&mut self, reason: Option<String>) {
        self.no_video_picture = reason;
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The rows of each sequence, by sequence number.
    pub fn sequences(&self) -> &[Vec<usize>] {
        &self.sequences
    }

    /// The labels a change may give.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Every prediction shown since the rows were made, sorted.
    pub fn predictions(&self) -> Vec<String> {
        self.predictions.iter().cloned().collect()
    }

    /// The rows' folders, sorted, once each.
    pub fn folders(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.rows.iter().map(|r| split_name(&r.path).0).collect();
        set.into_iter().map(str::to_string).collect()
    }

    /// Why row `i` (a video) has no picture, else `None`.
    fn unavailable(&self, r: &Row) -> Option<String> {
        if !r.video {
            return None;
        }
        if let Some(why) = &self.no_video_picture {
            return Some(format!("no keyframe picture: {why}"));
        }
        r.failed
            .then(|| "no keyframe picture: the video could not be read".to_string())
    }

    /// Row `i` as the page's JSON (see the module doc).
    pub fn row_json(&self, i: usize) -> Value {
        let r = &self.rows[i];
        let (folder, name) = split_name(&r.path);
        let boxes: Vec<Value> = r
            .boxes
            .iter()
            .map(|b| {
                let mut v: Vec<Value> = b
                    .xyxy
                    .iter()
                    .map(|&x| json!(round_to(x.into(), 1)))
                    .collect();
                v.push(json!(b.category));
                v.push(json!(round_to(b.conf.into(), 3)));
                v.push(json!(b.classified));
                Value::Array(v)
            })
            .collect();
        json!({
            "id": i,
            "path": r.path,
            "name": name,
            "folder": folder,
            "w": r.size[0],
            "h": r.size[1],
            "date": r.date,
            "category": r.category,
            "failed": r.failed,
            "boxes": boxes,
            "seqnum": r.seqnum,
            "predictionbase": r.predictionbase,
            "scorebase": round_to(r.scorebase, 2),
            "prediction": r.prediction,
            "score": round_to(r.score, 2),
            "top1": r.top1,
            "count": r.count,
            "humancount": r.humancount,
            "reviewed": r.reviewed,
            "video": r.video,
            "keyframe": if r.video { json!(r.keyframe) } else { Value::Null },
            "unavailable": self.unavailable(r),
        })
    }

    /// A sequence (its rows) as the page lists it: the sequence's answer, its largest count,
    /// its first date, whether every row is verified, and its rows.
    pub fn sequence_json(&self, members: &[usize]) -> Value {
        let first = &self.rows[members[0]];
        let rows = members.iter().map(|&i| &self.rows[i]);
        let date = rows.clone().filter_map(|r| r.date.as_deref()).min();
        let images: Vec<Value> = members
            .iter()
            .map(|&i| {
                let mut row = self.row_json(i);
                let m = row.as_object_mut().expect("an object");
                m.insert("label".into(), m["predictionbase"].clone());
                m.insert("score".into(), m["scorebase"].clone());
                for k in [
                    "path",
                    "folder",
                    "category",
                    "seqnum",
                    "predictionbase",
                    "scorebase",
                ] {
                    m.remove(k);
                }
                for k in ["top1", "count", "humancount"] {
                    m.remove(k);
                }
                row
            })
            .collect();
        json!({
            "seqnum": first.seqnum,
            "prediction": first.prediction,
            "score": round_to(first.score, 2),
            "top1": first.top1,
            "count": rows.clone().map(|r| r.count).max().unwrap_or(0),
            "date": date,
            "folder": split_name(&first.path).0,
            "verified": rows.clone().all(|r| r.reviewed.as_ref().is_some_and(|v| v.verified)),
            "images": images,
        })
    }

    /// Whether sequence `seq` passes `f`.
    fn matches(&self, f: &Filter, seq: &[usize]) -> bool {
        let first = &self.rows[seq[0]];
        let rows = || seq.iter().map(|&k| &self.rows[k]);
        if !f.class.is_empty() && first.prediction != f.class {
            return false;
        }
        let shown = match f.show.as_str() {
            "undefined" => first.top1 != first.prediction,
            "empty" => rows().all(|r| r.category == 0),
            "human" => rows().any(|r| r.category == 2),
            "failed" => rows().any(|r| r.failed),
            "unverified" => !rows().all(|r| r.reviewed.as_ref().is_some_and(|v| v.verified)),
            _ => true,
        };
        if !shown {
            return false;
        }
        let score = round_to(first.score, 2);
        if f.min.is_some_and(|lo| score < lo) || f.max.is_some_and(|hi| score > hi) {
            return false;
        }
        if !f.folder.is_empty() && split_name(&first.path).0 != f.folder {
            return false;
        }
        if !f.from.is_empty() || !f.to.is_empty() {
            // EXIF `YYYY:MM:DD HH:MM:SS` as `YYYY-MM-DD HH:MM:SS`: comparable to a date input.
            let dates: Vec<String> = rows()
                .filter_map(|r| r.date.as_deref())
                .filter(|d| !d.is_empty())
                .map(|d| {
                    let cut = d.char_indices().nth(10).map_or(d.len(), |(i, _)| i);
                    d[..cut].replace(':', "-") + &d[cut..]
                })
                .collect();
            let (Some(lo), Some(hi)) = (dates.iter().min(), dates.iter().max()) else {
                return false;
            };
            if !f.from.is_empty() && *hi < f.from {
                return false;
            }
            let day = lo
                .char_indices()
                .nth(10)
                .map_or(lo.as_str(), |(i, _)| &lo[..i]);
            if !f.to.is_empty() && day > f.to.as_str() {
                return false;
            }
        }
        true
    }

    /// The sequences (indices into [`Self::sequences`]) that pass `f`.
    pub fn filter(&mut self, f: &Filter) -> &[usize] {
        let fresh = match &self.picked {
            Some((g, _)) => g != f,
            None => true,
        };
        if fresh {
            let picked = (0..self.sequences.len())
                .filter(|&s| *f == Filter::default() || self.matches(f, &self.sequences[s]))
                .collect();
            self.picked = Some((f.clone(), picked));
        }
        &self.picked.as_ref().expect("just set").1
    }

    /// A page of the query's sequences (`offset`, `limit`: at most [`PAGE_MAX`]) as the page's
    /// JSON: `{total, offset, limit, items}`.
    pub fn page(&mut self, query: &HashMap<String, String>) -> Result<Value, Error> {
        let number = |k: &str, default: i64| -> Result<i64, Error> {
            match query.get(k).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => v
                    .parse()
                    .map_err(|_| bad(format!("{k}: '{v}' is not a whole number"))),
            }
        };
        let offset = number("offset", 0)?.max(0) as usize;
        let limit = number("limit", PAGE_SIZE as i64)?.clamp(1, PAGE_MAX as i64) as usize;
        let f = Filter::from_query(query)?;
        let picked = self.filter(&f).to_vec();
        let items: Vec<Value> = picked
            .iter()
            .skip(offset)
            .take(limit)
            .map(|&s| self.sequence_json(&self.sequences[s]))
            .collect();
        Ok(json!({"total": picked.len(), "offset": offset, "limit": limit, "items": items}))
    }

    /// Applies one journal line to the rows it names from `start` on, in place, as the core
    /// applies a journal to a run: a relabelled row takes the label with score 1.0 as its own,
    /// its sequence's and its top1; its review merges ([`reviewed_after`]). A label that is not
    /// one of [`Self::labels`] is an error naming the line. Returns the rows changed.
    pub fn apply(&mut self, c: &Correction, start: usize) -> Result<Vec<usize>, Error> {
        if let Some(label) = &c.label {
            if !self.labels.contains(label) {
                return Err(bad(format!(
                    "correction at {}: '{label}' is not a label of {}",
                    c.time, self.owner
                )));
            }
            self.predictions.insert(label.clone());
        }
        let mut changed = Vec::new();
        for f in &c.files {
            let Some(&i) = self.index.get(f) else {
                continue;
            };
            if i < start {
                continue;
            }
            let r = &mut self.rows[i];
            if let Some(label) = &c.label {
                r.predictionbase = label.clone();
                r.prediction = label.clone();
                r.top1 = label.clone();
                r.scorebase = 1.0;
                r.score = 1.0;
            }
            r.reviewed = Some(reviewed_after(r.reviewed.take(), c, c.label.clone()));
            changed.push(i);
        }
        self.picked = None;
        Ok(changed)
    }

    /// The page's change: rows `ids` relabelled (`label`) and/or verified, as one line
    /// appended to the journal at `journal` (synced), then applied to these rows. Returns the
    /// line.
    pub fn change(
        &mut self,
        journal: &Path,
        ids: &[i64],
        label: Option<String>,
        verified: bool,
        scope: &str,
        by: Option<String>,
    ) -> Result<Correction, Error> {
        if ids.is_empty() || ids.iter().any(|&i| i < 0 || i as usize >= self.rows.len()) {
            return Err(bad("ids: give image numbers of these results"));
        }
        if let Some(l) = &label {
            if !self.labels.contains(l) {
                return Err(bad(format!("'{l}' is not one of the labels")));
            }
        }
        if !["image", "sequence", "page"].contains(&scope) {
            return Err(bad("scope: image, sequence or page"));
        }
        let c = Correction {
            time: now_iso(),
            files: ids
                .iter()
                .map(|&i| self.rows[i as usize].key.clone())
                .collect(),
            scope: scope.to_string(),
            label,
            verified,
            by,
        };
        append_correction(journal, &c)?;
        self.apply(&c, 0)?;
        Ok(c)
    }

    /// Up to `n` rows predicted `prediction` (the sequence's label), or of detection `kind`
    /// (`empty`, `animal`, `person`, `vehicle`: not failed; `failed`), else the first ones.
    pub fn pick(
        &self,
        prediction: Option<&str>,
        kind: Option<&str>,
        n: usize,
    ) -> Result<Vec<usize>, Error> {
        const KINDS: [&str; 4] = ["empty", "animal", "person", "vehicle"];
        let code =
            match kind {
                None | Some("failed") => None,
                Some(k) => {
                    Some(KINDS.iter().position(|x| *x == k).ok_or_else(|| {
                        bad(format!("kind '{k}': use {} or failed", KINDS.join(", ")))
                    })? as u8)
                }
            };
        Ok((0..self.rows.len())
            .filter(|&i| {
                let r = &self.rows[i];
                prediction.is_none_or(|p| r.prediction == p)
                    && (kind != Some("failed") || r.failed)
                    && code.is_none_or(|c| r.category == c && !r.failed)
            })
            .take(n)
            .collect())
    }

    /// The first row whose path, or file name, is `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.rows
            .iter()
            .position(|r| r.path == name || split_name(&r.path).1 == name)
    }
}

impl Filter {
    /// The filter of a query (`class`, `show`, `min`, `max`, `folder`, `from`, `to`).
    pub fn from_query(q: &HashMap<String, String>) -> Result<Filter, Error> {
        let text = |k: &str| -> String {
            match q.get(k).map(String::as_str) {
                None | Some("all") => String::new(),
                Some(v) => v.to_string(),
            }
        };
        let score = |k: &str| -> Result<Option<f64>, Error> {
            let v = text(k);
            if v.is_empty() {
                return Ok(None);
            }
            v.trim()
                .parse()
                .map(Some)
                .map_err(|_| bad(format!("{k}: '{v}' is not a number")))
        };
        Ok(Filter {
            class: text("class"),
            show: text("show"),
            min: score("min")?,
            max: score("max")?,
            folder: text("folder"),
            from: text("from"),
            to: text("to"),
        })
    }
}

/// A table's file name as a path to read: as written when absolute; else beside the table, or
/// (a run given a relative folder writes names relative to where it ran) from the working
/// folder.
fn resolve(name: &str, folder: &Path) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    let beside = folder.join(p);
    if !beside.exists() && p.exists() {
        return std::path::absolute(p).unwrap_or(beside);
    }
    beside
}

/// A video's row: its answer, its keyframe, and that frame's deciding box.
fn video_row(v: &VideoRecord, seqnum: u64) -> Row {
    let failed = v.failure.is_some();
    let category = if failed || (v.count == 0 && v.humancount == 0) {
        0
    } else if v.count > 0 {
        1
    } else {
        2
    };
    let boxes = match (v.bbox, failed) {
        (Some(b), false) => {
            let r1 = |x: [f32; 4]| x.map(|c| round_to(c.into(), 1));
            let conf = v
                .detections
                .iter()
                .find(|d| Some(d.frame_number) == v.keyframe && r1(d.xyxy) == r1(b))
                .map_or(0.0, |d| d.conf);
            vec![RowBox {
                xyxy: b,
                category: 0,
                conf,
                classified: true,
            }]
        }
        _ => Vec::new(),
    };
    let path = text_of(&v.path);
    Row {
        key: path.clone(),
        path,
        date: v.date.clone(),
        category,
        size: [v.frame_size.0, v.frame_size.1],
        boxes,
        failed,
        seqnum,
        predictionbase: v.prediction.clone(),
        scorebase: v.score,
        prediction: v.prediction.clone(),
        score: v.score,
        top1: v.top1.clone(),
        count: v.count,
        humancount: v.humancount,
        reviewed: None,
        video: true,
        keyframe: v.keyframe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_io::exif::Timestamp;
    use crate::manifest::classifier::builtin_classifier;
    use crate::review::apply_corrections;
    use crate::sequence::{Label, Prediction};

    /// Three images (one with two boxes, one failed) in two sequences, and two videos (one
    /// failed), as a run of deepfaune-v15 in English holds them.
    fn run() -> (DetectionResults, SequencePredictions, Vec<VideoRecord>) {
        let mut d = DetectionResults::default();
        for (k, (p, cat, date)) in [
            ("cam/a.jpg", 1u8, Some("2021:06:01 10:00:00")),
            ("cam/b.jpg", 0, Some("2021:06:03 10:00:00")),
        ]
        .into_iter()
        .enumerate()
        {
            d.paths.push(p.into());
            d.width.push(640);
            d.height.push(480);
            d.date.push(date.map(|t| Timestamp {
                text: t.into(),
                seconds: k as i64,
            }));
            d.category.push(cat);
            d.count.push(u32::from(cat == 1));
            d.humancount.push(0);
            d.crop.push([-1; 4]);
            d.best_detection.push(if cat == 1 { 1 } else { -1 });
        }
        d.det_image = vec![0, 0];
        d.det_xyxy = vec![[1.25, 2.0, 30.04, 40.0], [10.0, 20.0, 110.55, 220.0]];
        d.det_conf = vec![0.25, 0.8765];
        d.det_category = vec![1, 0];
        d.push_failure(
            2,
            Path::new("other/c.jpg"),
            "decode",
            "corrupt",
            "bad".into(),
        );
        let m = builtin_classifier("deepfaune-v15").unwrap();
        let en = m.names("en").unwrap();
        let fox = Label::Class(en.classes.iter().position(|c| c == "fox").unwrap());
        let p = |label, score| Prediction {
            label,
            score,
            top1: label,
        };
        let preds = SequencePredictions {
            seqnum: vec![1, 1, 2],
            base: vec![p(fox, 0.91), p(Label::Empty, 1.0), p(Label::Empty, 1.0)],
            sequence: vec![p(fox, 0.95), p(fox, 0.95), p(Label::Empty, 1.0)],
        };
        let video: VideoRecord = serde_json::from_str(
            r#"{"path": "cam/fox.mp4", "prediction": "fox", "score": 0.62, "top1": "fox",
                "label_index": 12, "top1_index": 12, "count": 1, "keyframe": 4,
                "box": [10.0, 20.0, 110.0, 220.0], "frame_size": [320, 240],
                "detections": [{"frame_number": 2, "category": 0, "conf": 0.5,
                                "xyxy": [10.0, 20.0, 110.0, 220.0]},
                               {"frame_number": 4, "category": 0, "conf": 0.7,
                                "xyxy": [10.02, 20.0, 110.0, 220.0]}]}"#,
        )
        .unwrap();
        let broken: VideoRecord = serde_json::from_str(
            r#"{"path": "cam/broken.mp4", "prediction": "empty", "score": 1.0, "top1": "empty",
                "label_index": 0, "top1_index": 0,
                "failure": {"stage": "read", "kind": "corrupt", "reason": "no stream"}}"#,
        )
        .unwrap();
        (d, preds, vec![broken, video])
    }

    fn texts(preds: &SequencePredictions) -> [Vec<String>; 3] {
        let m = builtin_classifier("deepfaune-v15").unwrap();
        let en = m.names("en").unwrap();
        let t = |l: Label| l.text(&en, false);
        [
            preds.base.iter().map(|p| t(p.label)).collect(),
            preds.sequence.iter().map(|p| t(p.label)).collect(),
            preds.sequence.iter().map(|p| t(p.top1)).collect(),
        ]
    }

    fn rows_of(
        d: &DetectionResults,
        preds: &SequencePredictions,
        reviewed: &[Option<Reviewed>],
        videos: &[VideoRecord],
    ) -> ReviewRows {
        let m = builtin_classifier("deepfaune-v15").unwrap();
        let labels = super::super::label_texts(&m, "en", false).unwrap();
        let [predictionbase, prediction, top1] = texts(preds);
        let run = RunRows {
            detection: d,
            preds,
            predictionbase: &predictionbase,
            prediction: &prediction,
            top1: &top1,
            reviewed,
            video_reviewed: &[],
            videos,
            names: m.names("en"),
            bird_head: false,
        };
        ReviewRows::of_run(run, labels, m.id.clone())
    }

    use crate::review::corrections::tests::entry_by as entry;

    #[test]
    fn rows_of_a_run_are_its_images_then_its_videos() {
        let (d, preds, videos) = run();
        let mut rows = rows_of(&d, &preds, &[], &videos);
        assert_eq!(rows.len(), 5);
        assert_eq!(rows.sequences(), [vec![0, 1], vec![2], vec![3], vec![4]]);
        // Written out by hand: Python's round() of each value, the page's keys.
        let a = rows.row_json(0);
        assert_eq!(
            a,
            json!({"id": 0, "path": "cam/a.jpg", "name": "a.jpg", "folder": "cam", "w": 640,
                   "h": 480, "date": "2021:06:01 10:00:00", "category": 1, "failed": false,
                   "boxes": [[1.2, 2.0, 30.0, 40.0, 1, 0.25, false],
                             [10.0, 20.0, 110.6, 220.0, 0, 0.877, true]],
                   "seqnum": 1, "predictionbase": "fox", "scorebase": 0.91,
                   "prediction": "fox", "score": 0.95, "top1": "fox", "count": 1,
                   "humancount": 0, "reviewed": null, "video": false, "keyframe": null,
                   "unavailable": null})
        );
        let failed = rows.row_json(2);
        assert_eq!(
            (failed["failed"].clone(), failed["category"].clone()),
            (json!(true), json!(255))
        );
        assert_eq!(failed["folder"], "other");
        // Each video is a sequence after the images'; its box is the keyframe's, with that
        // frame's confidence; the failed one has none and says why it has no picture.
        let (broken, fox) = (rows.row_json(3), rows.row_json(4));
        assert_eq!(
            (broken["seqnum"].clone(), fox["seqnum"].clone()),
            (json!(3), json!(4))
        );
        assert_eq!(broken["boxes"], json!([]));
        assert_eq!(broken["category"], 0);
        assert_eq!(
            broken["unavailable"],
            "no keyframe picture: the video could not be read"
        );
        assert_eq!(
            fox["boxes"],
            json!([[10.0, 20.0, 110.0, 220.0, 0, 0.7, true]])
        );
        assert_eq!(
            (fox["w"].clone(), fox["keyframe"].clone()),
            (json!(320), json!(4))
        );
        assert_eq!(
            (fox["video"].clone(), fox["category"].clone()),
            (json!(true), json!(1))
        );
        assert_eq!(fox["unavailable"], Value::Null);
        rows.set_no_video_picture(Some("PyAV is missing".into()));
        assert_eq!(
            rows.row_json(4)["unavailable"],
            "no keyframe picture: PyAV is missing"
        );
        assert_eq!(rows.row_json(0)["unavailable"], Value::Null);
        assert_eq!(rows.folders(), ["cam", "other"]);
        assert_eq!(rows.predictions(), ["empty", "fox"]);
        assert_eq!(rows.find("b.jpg"), Some(1));
        assert_eq!(rows.find("cam/fox.mp4"), Some(4));
        assert_eq!(rows.pick(None, Some("failed"), 9).unwrap(), [2, 3]);
        assert_eq!(rows.pick(Some("fox"), None, 9).unwrap(), [0, 1, 4]);
        assert_eq!(rows.pick(None, Some("empty"), 9).unwrap(), [1]);
        assert!(rows.pick(None, Some("bird"), 9).is_err());
    }

    #[test]
    fn lines_applied_in_place_equal_the_whole_journal_applied_to_the_run() {
        let (d, preds, _) = run();
        let mut rows = rows_of(&d, &preds, &[], &[]);
        let journal = [
            entry(&["cam/a.jpg", "cam/b.jpg"], Some("chamois"), false, "ann"),
            entry(&["cam/a.jpg"], Some("lynx"), false, "ann"),
            entry(
                &["cam/a.jpg", "cam/b.jpg", "nowhere.jpg"],
                None,
                true,
                "bob",
            ),
            entry(&["other/c.jpg"], Some("wolf"), false, "bob"),
        ];
        for c in &journal {
            rows.apply(c, 0).unwrap();
        }
        // Independent: the core's apply_corrections over the whole run, rows made again.
        let m = builtin_classifier("deepfaune-v15").unwrap();
        let mut whole = preds.clone();
        let (reviewed, unknown) = apply_corrections(&d.paths, &mut whole, &journal, &m).unwrap();
        assert_eq!(unknown, 1);
        let again = rows_of(&d, &whole, &reviewed, &[]);
        for i in 0..rows.len() {
            assert_eq!(rows.row_json(i), again.row_json(i), "row {i}");
        }
        let a = rows.row_json(0);
        assert_eq!(
            (a["prediction"].clone(), a["score"].clone()),
            (json!("lynx"), json!(1.0))
        );
        assert_eq!(a["reviewed"]["verified"], true);
        assert_eq!(rows.row_json(1)["reviewed"]["label"], "chamois");
        // A label of no classifier is refused, naming the line.
        let bad = entry(&["cam/a.jpg"], Some("unicorn"), false, "x");
        let e = rows.apply(&bad, 0).unwrap_err().to_string();
        assert!(e.contains("unicorn") && e.contains("deepfaune-v15"), "{e}");
        // The page's change: appended to the journal, then applied.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv.corrections.jsonl");
        let c = rows
            .change(&path, &[1], Some("wolf".into()), true, "sequence", None)
            .unwrap();
        assert_eq!(crate::review::read_journal(&path).unwrap(), vec![c]);
        assert_eq!(rows.row_json(1)["prediction"], "wolf");
        assert!(rows.change(&path, &[7], None, true, "image", None).is_err());
        assert!(rows
            .change(&path, &[0], None, true, "folder", None)
            .is_err());
        assert!(rows
            .change(&path, &[0], Some("unicorn".into()), true, "image", None)
            .is_err());
        assert_eq!(crate::review::read_journal(&path).unwrap().len(), 1);
    }

    fn ids(page: &Value) -> Vec<Vec<u64>> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                s["images"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["id"].as_u64().unwrap())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn filters_pages_and_counts() {
        let (d, preds, videos) = run();
        let mut rows = rows_of(&d, &preds, &[], &videos);
        let q = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut got = |pairs: &[(&str, &str)]| ids(&rows.page(&q(pairs)).unwrap());
        assert_eq!(got(&[]), [vec![0, 1], vec![2], vec![3], vec![4]]);
        assert_eq!(got(&[("class", "fox")]), [vec![0, 1], vec![4]]);
        assert_eq!(got(&[("class", "all"), ("show", "all")]).len(), 4);
        assert_eq!(got(&[("show", "empty")]), [vec![3]]); // a failed image is not empty
        assert_eq!(got(&[("show", "failed")]), [vec![2], vec![3]]);
        assert_eq!(got(&[("show", "human")]), Vec::<Vec<u64>>::new());
        assert_eq!(got(&[("min", "0.9"), ("max", "0.95")]), [vec![0, 1]]);
        assert_eq!(got(&[("max", "0.7")]), [vec![4]]);
        assert_eq!(got(&[("folder", "other")]), [vec![2]]);
        // Dates: a sequence is kept when some image is dated within the range.
        assert_eq!(got(&[("from", "2021-06-02")]), [vec![0, 1]]);
        assert_eq!(got(&[("to", "2021-06-01")]), [vec![0, 1]]);
        assert_eq!(got(&[("to", "2021-05-31")]), Vec::<Vec<u64>>::new());
        assert_eq!(got(&[("offset", "1"), ("limit", "2")]), [vec![2], vec![3]]);
        let page = rows.page(&q(&[("limit", "0")])).unwrap();
        assert_eq!(
            (page["total"].clone(), page["limit"].clone()),
            (json!(4), json!(1))
        );
        let seq = &page["items"][0];
        assert_eq!(seq["date"], "2021:06:01 10:00:00");
        assert_eq!(
            (seq["count"].clone(), seq["verified"].clone()),
            (json!(1), json!(false))
        );
        let first = &seq["images"][0];
        assert_eq!(
            (first["label"].clone(), first["score"].clone()),
            (json!("fox"), json!(0.91))
        );
        assert!(first.get("path").is_none() && first.get("top1").is_none());
        assert!(rows.page(&q(&[("min", "high")])).is_err());
        assert!(rows.page(&q(&[("limit", "ten")])).is_err());
        // Verified sequences leave the "unverified" list; a relabel leaves "undefined" too.
        let c = entry(&["cam/a.jpg", "cam/b.jpg"], None, true, "ann");
        rows.apply(&c, 0).unwrap();
        let unverified = ids(&rows.page(&q(&[("show", "unverified")])).unwrap());
        assert_eq!(unverified, [vec![2], vec![3], vec![4]]);
    }

    #[test]
    fn a_table_read_without_its_run() {
        let cols = |pairs: &[(&str, &[&str])]| TableColumns {
            columns: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect(),
        };
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join("t.csv");
        let t = cols(&[
            ("filename", &["a.jpg", "b.jpg", "c.mp4"]),
            ("seqnum", &["1", "2", "3"]),
            ("predictionbase", &["vide", "humain", "renard"]),
            ("scorebase", &["1.0", "0.5", "x"]),
            ("prediction", &["vide", "humain", "renard"]),
            ("score", &["1.0", "0.5", "0.62"]),
            ("status", &["ok", "failed: decode", "ok"]),
            ("media_type", &["image", "image", "video"]),
            ("keyframe", &["", "", "4.0"]),
        ]);
        let (mut rows, found) = ReviewRows::of_table(&table, &t, None).unwrap();
        assert_eq!(found.unwrap().language, "fr");
        let r: Vec<Value> = (0..3).map(|i| rows.row_json(i)).collect();
        assert_eq!(
            r[0]["path"],
            dir.path().join("a.jpg").to_string_lossy().as_ref()
        );
        assert_eq!(
            [&r[0]["category"], &r[1]["category"], &r[2]["category"]],
            [0, 0, 1]
        );
        assert_eq!(r[1]["failed"], true);
        assert_eq!(
            (r[2]["video"].clone(), r[2]["keyframe"].clone()),
            (json!(true), json!(4))
        );
        assert_eq!(
            (r[2]["scorebase"].clone(), r[1]["video"].clone()),
            (json!(0.0), json!(false))
        );
        let c = entry(&["a.jpg"], Some("loup"), false, "ann");
        assert_eq!(rows.apply(&c, 0).unwrap(), [0]);
        assert!(rows
            .apply(&entry(&["a.jpg"], Some("wolf"), false, "a"), 0)
            .is_err());
        let missing = cols(&[("filename", &["a.jpg"]), ("seqnum", &["1"])]);
        let e = ReviewRows::of_table(&table, &missing, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("missing columns predictionbase, scorebase, prediction, score"),
            "{e}"
        );
    }

    #[test]
    fn rounds_as_python_does() {
        assert_eq!(round_to(2.25, 1), 2.2);
        assert_eq!(round_to(0.125, 2), 0.12);
        assert_eq!(round_to(1.05, 1), 1.1);
        assert_eq!(split_name("cam/x/a.jpg"), ("cam/x", "a.jpg"));
        assert_eq!(split_name("a.jpg"), ("", "a.jpg"));
        assert_eq!(split_name("/a.jpg"), ("/", "a.jpg"));
    }
}
