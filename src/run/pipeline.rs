//! The whole per-image pipeline: decode -> detect -> crop -> classify, streamed.
//!
//! Decoding and letterboxing run on worker threads ([`super::ordered_stream`]); inference, the
//! per-image decision and the crop run on the calling thread in input order. Crops wait in a
//! small batch for the classifier; each decoded image is dropped as soon as its crop is cut.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::checkpoint::{
    self, decode_f32, encode_f32, resume_key, Checkpoint, FileIdentity, Record,
};

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::budget::{Permit, PixelBudget};
use super::detection::{
    count_images, own_files, walk_inputs, DetectionResults, Discovered, Failure, RunOptions,
    CATEGORY_FAILED,
};
use super::ordered_stream;
use crate::classify::{prepare_crop, ClassifierOutputs, OnnxClassifier};
use crate::detect::decision::ImageKind;
use crate::detect::detector::{OnnxDetector, PreparedInput};
use crate::detect::DetectorSet;
use crate::error::{Error, ImageError};
use crate::image_io::{read_image, DecodedImage};
use crate::sequence::{
    kind_from_code, predict_all, table_order, AggregateOptions, ImageRows, LogitTable,
    SequencePredictions,
};

/// Results of a pipeline run: the detection columns plus, per image, the classifier's outputs
/// (rows of images without an animal stay zero).
#[derive(Debug, Default, Clone)]
pub struct PipelineResults {
    /// Detection columns and failures.
    pub detection: DetectionResults,
    /// Logits per image (0 when no classifier ran).
    pub num_classes: usize,
    /// Row-major `[images, num_classes]` raw logits.
    pub logits: Vec<f32>,
    /// Embedding width (0 when embeddings were not kept).
    pub embedding_dim: usize,
    /// Row-major `[images, embedding_dim]`.
    pub embeddings: Vec<f32>,
    /// Bird groups (0 without a bird head).
    pub num_bird_groups: usize,
    /// Row-major `[images, num_bird_groups]`.
    pub bird_logits: Vec<f32>,
    /// Whether each image's logits row was filled by the classifier.
    pub classified: Vec<bool>,
    /// Videos and unsupported videos met by the walk (walk failures are in `detection`).
    pub discovered: Discovered,
    /// Images the checkpoint held under their path but that are not the file it recorded
    /// (replaced, edited, or recorded without an identity): processed again, in walk order.
    pub changed_since_checkpoint: Vec<PathBuf>,
    /// Each row's position in the run's input order (the walk's, the checkpoint's), once the
    /// rows were put in another order ([`Self::permute`]); empty while they are in input order.
    pub input_index: Vec<usize>,
}

/// Classification settings of a run.
pub struct ClassifyStage<'a> {
    /// The classifier.
    pub classifier: &'a mut OnnxClassifier,
    /// Crops per inference call.
    pub batch_size: usize,
    /// Keep the embedding of every crop (for re-identification).
    pub keep_embeddings: bool,
}

/// The static names of failure stages and kinds, for records read back from a checkpoint.
fn intern(s: &str) -> &'static str {
    const NAMES: [&str; 12] = [
        "walk",
        "read",
        "decode",
        "detect",
        "io",
        "empty",
        "format",
        "corrupt",
        "too_large",
        "classify",
        "upstream",
        "unsupported",
    ];
    NAMES.iter().find(|n| **n == s).copied().unwrap_or("other")
}

pub(crate) struct Pending {
    pub(crate) row: usize,
    pub(crate) tensor: Vec<f32>,
}

impl PipelineResults {
    /// Empty results shaped for a run: the detector label and the widths of the logit,
    /// embedding and bird-logit rows the classifier stage (if any) will fill.
    pub(crate) fn for_run(set: &DetectorSet, classify: Option<&ClassifyStage<'_>>) -> Self {
        let detector = match &set.secondary {
            Some(s) => format!("{}+{}", set.primary.manifest.id, s.manifest.id),
            None => set.primary.manifest.id.clone(),
        };
        let mut res = match classify {
            Some(stage) => PipelineResults::for_classifier(detector, stage),
            None => {
                let mut res = PipelineResults::default();
                res.detection.detector = detector;
                res
            }
        };
        res.detection.no_person_class = !set.primary.manifest.finds_people()
            && !set
                .secondary
                .as_ref()
                .is_some_and(|s| s.manifest.finds_people());
        res
    }

    /// Empty results labelled `detector`, shaped for the classifier stage `stage`.
    pub(crate) fn for_classifier(detector: String, stage: &ClassifyStage<'_>) -> Self {
        let mut res = PipelineResults::default();
        res.detection.detector = detector;
        let m = &stage.classifier.manifest;
        res.num_classes = m.num_classes();
        res.embedding_dim = if stage.keep_embeddings {
            m.embedding_dim
        } else {
            0
        };
        res.num_bird_groups = if stage.classifier.has_bird_head() {
            m.bird_head.as_ref().map_or(0, |b| b.num_groups())
        } else {
            0
        };
        res
    }

    /// Number of image rows.
    pub fn len(&self) -> usize {
        self.classified.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.classified.is_empty()
    }

    /// DeepFaune's sequences and predictions of these rows with the settings `opts` and
    /// `maxlag_s`, from the stored decisions, dates and logits: what a run ends with, and what
    /// re-deciding a finished run with other settings gives (no model runs again).
    pub fn sequences(
        &self,
        maxlag_s: f64,
        opts: &AggregateOptions,
    ) -> Result<SequencePredictions, Error> {
        // DeepFaune numbers sequences and sums logits in input order: computed in that order
        // whatever order the rows are in now, then put back in theirs.
        let order = self.input_order();
        let at = |k: usize| order.as_ref().map_or(k, |o| o[k]);
        let n = self.len();
        let d = &self.detection;
        let kinds: Vec<ImageKind> = (0..n).map(|k| kind_from_code(d.category[at(k)])).collect();
        let rows_of = |v: &[f32], w: usize| -> Vec<f32> {
            (0..n)
                .flat_map(|k| v[at(k) * w..(at(k) + 1) * w].iter().copied())
                .collect()
        };
        let (logits, bird_logits) = match &order {
            None => (
                std::borrow::Cow::Borrowed(&self.logits[..]),
                std::borrow::Cow::Borrowed(&self.bird_logits[..]),
            ),
            Some(_) => (
                std::borrow::Cow::Owned(rows_of(&self.logits, self.num_classes)),
                std::borrow::Cow::Owned(rows_of(&self.bird_logits, self.num_bird_groups)),
            ),
        };
        let logits = LogitTable::new(&logits, self.num_classes)?;
        let bird = if self.num_bird_groups > 0 {
            Some(LogitTable::new(&bird_logits, self.num_bird_groups)?)
        } else {
            None
        };
        let rows = ImageRows::new(&kinds, logits, bird)?;
        let dates: Vec<Option<i64>> = (0..n)
            .map(|k| d.date[at(k)].as_ref().map(|t| t.seconds))
            .collect();
        let paths: Vec<&Path> = (0..n).map(|k| d.paths[at(k)].as_path()).collect();
        let mut preds = predict_all(&paths, &dates, &rows, maxlag_s, opts)?;
        if let Some(order) = &order {
            // Input position k is row order[k]: the inverse permutation puts them back.
            let mut back = vec![0usize; n];
            for (k, &row) in order.iter().enumerate() {
                back[row] = k;
            }
            preds.permute(&back);
        }
        Ok(preds)
    }

    /// The rows in input order (`result[k]` is the row of input position `k`), `None` when the
    /// rows are in input order already.
    pub fn input_order(&self) -> Option<Vec<usize>> {
        if self.input_index.len() != self.len()
            || self.input_index.iter().enumerate().all(|(k, &i)| k == i)
        {
            return None;
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&r| self.input_index[r]);
        Some(order)
    }

    /// Puts the rows in the order `order` (new row `k` is old row `order[k]`): detection
    /// columns, boxes, failures, logits, embeddings, bird logits, remembering each row's input
    /// position ([`Self::input_index`]). Returns the boxes' new order (see
    /// [`DetectionResults::permute`]).
    pub fn permute(&mut self, order: &[usize]) -> Vec<usize> {
        fn rows(v: &[f32], w: usize, order: &[usize]) -> Vec<f32> {
            order
                .iter()
                .flat_map(|&i| v[i * w..(i + 1) * w].iter().copied())
                .collect()
        }
        if self.input_index.len() != self.len() {
            self.input_index = (0..self.len()).collect();
        }
        self.input_index = order.iter().map(|&i| self.input_index[i]).collect();
        self.classified = order.iter().map(|&i| self.classified[i]).collect();
        self.logits = rows(&self.logits, self.num_classes, order);
        self.embeddings = rows(&self.embeddings, self.embedding_dim, order);
        self.bird_logits = rows(&self.bird_logits, self.num_bird_groups, order);
        self.detection.permute(order)
    }

    /// DeepFaune's sequences and predictions ([`Self::sequences`]), with the rows and the
    /// predictions put in DeepFaune's table order ([`crate::sequence::table_order`]): what a run
    /// ends with, so that row `i` of every column, array and table is the same image. Returns
    /// the predictions and the boxes' new order.
    pub fn decide_in_table_order(
        &mut self,
        maxlag_s: f64,
        opts: &AggregateOptions,
    ) -> Result<(SequencePredictions, Vec<usize>), Error> {
        let mut preds = self.sequences(maxlag_s, opts)?;
        let order = table_order(&self.detection.paths, &preds.seqnum);
        preds.permute(&order);
        let boxes = self.permute(&order);
        Ok((preds, boxes))
    }

    /// The checkpoint record of row `i`.
    pub fn record(&self, i: usize) -> Record {
        self.record_with(&self.detection, i)
    }

    /// The record of row `i` with `d` standing for [`Self::detection`] (which a caller may have
    /// moved out).
    pub fn record_with(&self, d: &DetectionResults, i: usize) -> Record {
        let (path, path_bytes) = checkpoint::path_key(&d.paths[i]);
        let first = d.det_image.partition_point(|&r| (r as usize) < i);
        let end = d.det_image.partition_point(|&r| (r as usize) <= i);
        let boxes = (first..end)
            .map(|k| {
                (
                    d.det_xyxy[k].map(f32::to_bits),
                    d.det_conf[k].to_bits(),
                    d.det_category[k],
                )
            })
            .collect();
        let best = if d.best_detection[i] >= 0 {
            d.best_detection[i] - first as i64
        } else {
            -1
        };
        let failure = d
            .failures
            .iter()
            .find(|f| f.index == Some(i))
            .map(|f| (f.stage.to_string(), f.kind.to_string(), f.reason.clone()));
        let (c, e, g) = (self.num_classes, self.embedding_dim, self.num_bird_groups);
        Record {
            path,
            path_bytes,
            width: d.width[i],
            height: d.height[i],
            date: d.date[i].as_ref().map(|t| (t.text.clone(), t.seconds)),
            category: d.category[i],
            count: d.count[i],
            humancount: d.humancount[i],
            crop: d.crop[i],
            best,
            boxes,
            classified: self.classified[i],
            logits: encode_f32(&self.logits[i * c..(i + 1) * c]),
            embedding: encode_f32(&self.embeddings[i * e..(i + 1) * e]),
            bird_logits: encode_f32(&self.bird_logits[i * g..(i + 1) * g]),
            failure,
            identity: None,
        }
    }

    /// A checkpoint record's float rows (logits, embedding, bird logits), once it is checked to
    /// fit this run: sizes of this run's models, known category codes, a deciding box that is
    /// one of its boxes (a damaged line that is still valid JSON must not become an index out
    /// of range).
    pub fn check_record(&self, rec: &Record) -> Result<[Vec<f32>; 3], Error> {
        let bad = |what: &str| {
            Error::InvalidArgument(format!("checkpoint record of {}: {what}", rec.path))
        };
        let logits = decode_f32(&rec.logits).map_err(|e| bad(&e))?;
        let emb = decode_f32(&rec.embedding).map_err(|e| bad(&e))?;
        let bird = decode_f32(&rec.bird_logits).map_err(|e| bad(&e))?;
        if logits.len() != self.num_classes
            || emb.len() != self.embedding_dim
            || bird.len() != self.num_bird_groups
        {
            return Err(bad("its sizes do not match this run's models"));
        }
        if !(rec.best == -1 || (rec.best >= 0 && (rec.best as usize) < rec.boxes.len())) {
            return Err(bad("its deciding box is not one of its boxes"));
        }
        if !(rec.category <= 3 || rec.category == CATEGORY_FAILED)
            || rec.boxes.iter().any(|b| b.2 > 2)
        {
            return Err(bad("unknown category code"));
        }
        Ok([logits, emb, bird])
    }

    /// Appends a row from a checkpoint record (see [`Self::check_record`]).
    pub fn push_record(&mut self, rec: &Record) -> Result<(), Error> {
        let [logits, emb, bird] = self.check_record(rec)?;
        let d = &mut self.detection;
        let row = d.paths.len();
        let first = d.det_conf.len() as i64;
        d.paths.push(rec.path_buf());
        d.width.push(rec.width);
        d.height.push(rec.height);
        d.date.push(rec.timestamp());
        d.category.push(rec.category);
        d.count.push(rec.count);
        d.humancount.push(rec.humancount);
        d.crop.push(rec.crop);
        d.best_detection
            .push(if rec.best >= 0 { first + rec.best } else { -1 });
        for (xyxy, conf, cat) in &rec.boxes {
            d.det_image.push(row as u32);
            d.det_xyxy.push(xyxy.map(f32::from_bits));
            d.det_conf.push(f32::from_bits(*conf));
            d.det_category.push(*cat);
        }
        if let Some((stage, kind, reason)) = &rec.failure {
            d.failures.push(Failure {
                index: Some(row),
                path: rec.path_buf(),
                stage: intern(stage),
                kind: intern(kind),
                reason: reason.clone(),
            });
        }
        self.logits.extend(logits);
        self.embeddings.extend(emb);
        self.bird_logits.extend(bird);
        self.classified.push(rec.classified);
        Ok(())
    }

    pub(crate) fn push_row(&mut self) {
        self.logits
            .extend(std::iter::repeat_n(0.0, self.num_classes));
        self.embeddings
            .extend(std::iter::repeat_n(0.0, self.embedding_dim));
        self.bird_logits
            .extend(std::iter::repeat_n(0.0, self.num_bird_groups));
        self.classified.push(false);
    }

    pub(crate) fn classify(
        &mut self,
        stage: &mut ClassifyStage<'_>,
        pending: &mut Vec<Pending>,
    ) -> Result<(), Error> {
        let out = infer_crops(stage, pending)?;
        self.apply_classified(pending, &out);
        pending.clear();
        Ok(())
    }

    /// Writes the classifier's outputs for `pending` (in the same order) into their rows.
    fn apply_classified(&mut self, pending: &[Pending], out: &[ClassifierOutputs]) {
        let (c, d, g) = (self.num_classes, self.embedding_dim, self.num_bird_groups);
        let per_crop = out
            .iter()
            .flat_map(|o| (0..o.logits.len() / c.max(1)).map(move |k| (o, k)));
        for (p, (out, k)) in pending.iter().zip(per_crop) {
            self.logits[p.row * c..(p.row + 1) * c]
                .copy_from_slice(&out.logits[k * c..(k + 1) * c]);
            if d > 0 {
                self.embeddings[p.row * d..(p.row + 1) * d]
                    .copy_from_slice(&out.embeddings[k * d..(k + 1) * d]);
            }
            if g > 0 {
                self.bird_logits[p.row * g..(p.row + 1) * g]
                    .copy_from_slice(&out.bird_logits[k * g..(k + 1) * g]);
            }
            self.classified[p.row] = true;
        }
    }
}

/// Runs the classifier over `pending` in batches of the stage's size (the last one shorter),
/// one output per batch.
fn infer_crops(
    stage: &mut ClassifyStage<'_>,
    pending: &[Pending],
) -> Result<Vec<ClassifierOutputs>, Error> {
    pending
        .chunks(stage.batch_size.max(1))
        .map(|chunk| {
            let tensors: Vec<&[f32]> = chunk.iter().map(|p| p.tensor.as_slice()).collect();
            stage.classifier.infer(&tensors, stage.keep_embeddings)
        })
        .collect()
}

/// What a worker made of one image: decoded and letterboxed, a read/decode error, or nothing
/// to do (the checkpoint already holds it).
// A handful in flight at a time (the window): the size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Prepared<'a> {
    /// Read now; with a checkpoint, the file's identity, and whether the checkpoint held another
    /// file under this path.
    Fresh(
        Result<(DecodedImage, PreparedInput, Permit<'a>), ImageError>,
        Option<FileIdentity>,
        bool,
    ),
    Restored,
}

/// An image waiting for a detection batch.
type Waiting<'a> = (PathBuf, DecodedImage, PreparedInput, Permit<'a>);

/// Width x height from the file's header (no decoding); 0 when it cannot be read (the decode
/// then fails on its own).
fn header_pixels(path: &Path) -> u64 {
    // Never open a pipe or a device (it could block): `read_image` reports those.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return 0;
    }
    image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .ok()
        .and_then(|r| r.into_dimensions().ok())
        .map_or(0, |(w, h)| w as u64 * h as u64)
}

/// Runs detection (and classification when `classify` is given) over files and folders.
/// Per-file problems are rows with [`CATEGORY_FAILED`] and entries in `failures`; the run goes
/// on. `progress(done, total)` may return an error to stop.
pub fn run_pipeline(
    inputs: &[PathBuf],
    set: &mut DetectorSet,
    classify: Option<ClassifyStage<'_>>,
    opts: &RunOptions,
    progress: &mut dyn FnMut(usize, usize) -> Result<(), Error>,
) -> Result<PipelineResults, Error> {
    run_pipeline_resumable(inputs, set, classify, opts, progress, None, &[])
}

/// A checkpoint to append to, and the records of the images it already holds.
pub struct Resume<'a> {
    /// The open checkpoint.
    pub checkpoint: &'a mut Checkpoint,
    /// Records already done, keyed as [`checkpoint::path_key`] keys them.
    pub done: HashMap<String, Record>,
    /// Append the completion line once the images are done (false: the caller has more to
    /// record after them, the videos, and appends it itself).
    pub finish: bool,
}

/// Appends rows `*recorded..upto` of `res` to the checkpoint, each with its file's identity
/// (`identities`, one per row; `None` for rows taken from the checkpoint, not appended again),
/// and moves `*recorded` to `upto`.
pub(crate) fn append_rows(
    checkpoint: &mut Checkpoint,
    res: &PipelineResults,
    identities: &[Option<Option<FileIdentity>>],
    recorded: &mut usize,
    upto: usize,
) -> Result<(), Error> {
    while *recorded < upto {
        if let Some(Some(identity)) = identities.get(*recorded) {
            // `identity` is None for a file that could not be identified (unreadable): such a
            // record is never reused, so a resumed run tries the file again.
            let mut rec = res.record(*recorded);
            rec.identity = identity.clone();
            checkpoint.append(&rec)?;
        }
        *recorded += 1;
    }
    Ok(())
}

/// [`run_pipeline`] with a checkpoint: images already in it are not processed again (their
/// records take their place in walk order), and every new image is appended as soon as its
/// results are complete, so an interrupted-then-resumed run gives the same results as one run.
///
/// The folders are walked lazily ([`walk_inputs`]): the first results come at once, however
/// big the tree. A second walk on its own thread counts the images for `progress`; until it
/// has finished, the total passed to `progress` is a lower bound that grows.
///
/// The walk passes over the run's own files: the checkpoint, `outputs` (the files the caller
/// will write the results to) and their sidecars ([`own_files`]).
pub fn run_pipeline_resumable(
    inputs: &[PathBuf],
    set: &mut DetectorSet,
    mut classify: Option<ClassifyStage<'_>>,
    opts: &RunOptions,
    progress: &mut dyn FnMut(usize, usize) -> Result<(), Error>,
    resume: Option<Resume<'_>>,
    outputs: &[PathBuf],
) -> Result<PipelineResults, Error> {
    let (mut checkpoint, mut done_before, finish) = match resume {
        Some(r) => (Some(r.checkpoint), r.done, r.finish),
        None => (None, HashMap::new(), false),
    };
    let own = own_files(checkpoint.as_ref().map(|c| c.path()), outputs);
    let mut res = PipelineResults::for_run(set, classify.as_ref());
    // A damaged record is not trusted: its image is processed again (and recorded anew).
    done_before.retain(|_, rec| res.check_record(rec).is_ok());
    let manifest = set.primary.manifest.clone();
    let decode = opts.decode;
    let batch = opts.batch_size.max(1);
    // Declared before `waiting`, whose images hold permits on it.
    let budget = PixelBudget::new(opts.pixel_budget());
    let mut waiting: Vec<Waiting<'_>> = Vec::with_capacity(batch);
    let mut crops: Vec<Pending> = Vec::new();
    // Per row, in row order: `None` for a row taken from the checkpoint (not appended again),
    // else the identity of its file; and how many rows were appended so far.
    let mut identities: Vec<Option<Option<FileIdentity>>> = Vec::new();
    let mut changed: Vec<PathBuf> = Vec::new();
    let checkpointing = checkpoint.is_some();
    let mut recorded = 0usize;
    let mut done = 0usize;
    let mut last_total = 0usize;

    // Detects the waiting images, records them, and cuts the crops of animal images. The full
    // classifier batches of crops cut from earlier images are classified on a second thread
    // meanwhile, so the two models overlap: while one is in a serial stretch (a small layer, the
    // memory-bound parts, the letterbox and crop work here) the other keeps the cores busy. The
    // batches are the ones a serial run makes (consecutive crops, `batch_size` at a time), so
    // the results are the same.
    let detect_waiting = |waiting: &mut Vec<Waiting<'_>>,
                          res: &mut PipelineResults,
                          crops: &mut Vec<Pending>,
                          classify: &mut Option<ClassifyStage<'_>>,
                          set: &mut DetectorSet|
     -> Result<(), Error> {
        let ready = match classify.as_ref() {
            Some(stage) => crops.len() - crops.len() % stage.batch_size.max(1),
            None => 0,
        };
        let batch: Vec<Pending> = crops.drain(..ready).collect();
        let imgs: Vec<&image::RgbImage> = waiting.iter().map(|p| &p.1.image).collect();
        let prepared: Vec<&PreparedInput> = waiting.iter().map(|p| &p.2).collect();
        let (dets, classified) = match classify.as_mut() {
            Some(stage) if !batch.is_empty() && !imgs.is_empty() => std::thread::scope(|scope| {
                let worker = scope.spawn(|| infer_crops(stage, &batch));
                let dets = set.detect(&imgs, &prepared);
                let classified = worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (dets, Some(classified))
            }),
            Some(stage) if !batch.is_empty() => (Ok(Vec::new()), Some(infer_crops(stage, &batch))),
            _ if imgs.is_empty() => (Ok(Vec::new()), None),
            _ => (set.detect(&imgs, &prepared), None),
        };
        if let Some(out) = classified {
            res.apply_classified(&batch, &out?);
        }
        let dets = dets?;
        drop(batch);
        // Each image (and its pixel permit) is dropped once its crop is cut.
        for ((path, img, _, _permit), d) in waiting.drain(..).zip(dets) {
            let row = res.detection.len();
            res.detection.push_image(&path, &img, d);
            res.push_row();
            if let Some(stage) = classify.as_ref() {
                let crop = res.detection.crop[row];
                if res.detection.category[row] == ImageKind::Animal as u8 && crop[0] >= 0 {
                    let input = &stage.classifier.manifest.input;
                    let mut tensor = vec![0f32; 3 * (input.size * input.size) as usize];
                    prepare_crop(&img.image, crop.map(|v| v as u32), input, &mut tensor);
                    crops.push(Pending { row, tensor });
                }
            }
        }
        Ok(())
    };

    let discovered = Mutex::new(Discovered::passing_over(own));
    let images = walk_inputs(inputs).filter_map(|found| {
        discovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sort_out(found)
    });
    let (counted, count_finished, stop_count) = (
        AtomicUsize::new(0),
        AtomicBool::new(false),
        AtomicBool::new(false),
    );
    std::thread::scope(|scope| -> Result<(), Error> {
        scope.spawn(|| {
            count_images(inputs, &counted, &stop_count);
            count_finished.store(true, Ordering::SeqCst);
        });
        let streamed = ordered_stream(
            images,
            opts.threads,
            opts.window.max(batch),
            Some(&budget),
            |i, path| {
                let identity = if checkpointing {
                    FileIdentity::of(path)
                } else {
                    None
                };
                let mut replaced = false;
                if let Some(rec) = done_before.get(&resume_key(path)) {
                    if identity.is_some() && rec.identity == identity {
                        return Prepared::Restored;
                    }
                    replaced = true;
                }
                // Decoded pixels in flight stay within the budget, whatever the thread count.
                let permit = budget.acquire(i, header_pixels(path));
                let read = read_image(path, &decode).map(|img| {
                    let input = OnnxDetector::prepare(&manifest, &img.image);
                    (img, input, permit)
                });
                Prepared::Fresh(read, identity, replaced)
            },
            |i, path, item| {
                // Rows come out in item order, so the identity of row `i` is pushed now.
                match &item {
                    Prepared::Fresh(_, identity, replaced) => {
                        if *replaced {
                            changed.push(path.clone());
                        }
                        identities.push(Some(identity.clone()));
                    }
                    Prepared::Restored => identities.push(None),
                }
                match item {
                    Prepared::Fresh(Ok((img, input, permit)), ..) => {
                        waiting.push((path, img, input, permit));
                        if waiting.len() >= batch {
                            detect_waiting(&mut waiting, &mut res, &mut crops, &mut classify, set)?;
                        }
                    }
                    Prepared::Fresh(Err(e), ..) => {
                        // Keep row order: earlier waiting images go first.
                        detect_waiting(&mut waiting, &mut res, &mut crops, &mut classify, set)?;
                        let stage = if e.key() == "io" || e.key() == "empty" {
                            "read"
                        } else {
                            "decode"
                        };
                        res.detection
                            .push_failure(i, &path, stage, e.key(), e.to_string());
                        res.push_row();
                    }
                    Prepared::Restored => {
                        detect_waiting(&mut waiting, &mut res, &mut crops, &mut classify, set)?;
                        let rec = &done_before[&resume_key(&path)];
                        res.push_record(rec)?;
                    }
                }
                done += 1;
                if let Some(c) = checkpoint.as_mut() {
                    // Rows before the first crop still waiting for the classifier are complete.
                    let complete = crops.first().map_or(res.len(), |c| c.row);
                    append_rows(c, &res, &identities, &mut recorded, complete)?;
                }
                let found = counted.load(Ordering::SeqCst);
                last_total = if count_finished.load(Ordering::SeqCst) {
                    found.max(done)
                } else {
                    found.max(done + 1)
                };
                progress(done, last_total)
            },
        );
        stop_count.store(true, Ordering::SeqCst);
        streamed
    })?;
    detect_waiting(&mut waiting, &mut res, &mut crops, &mut classify, set)?;
    if let Some(stage) = classify.as_mut() {
        res.classify(stage, &mut crops)?;
    }
    if let Some(c) = checkpoint.as_mut() {
        append_rows(c, &res, &identities, &mut recorded, res.len())?;
        if finish {
            c.finish(res.len())?;
        }
    }
    res.changed_since_checkpoint = changed;
    if last_total != done {
        // The count and the walk disagree (files came or went during the run): end at done.
        progress(done, done)?;
    }
    let mut discovered = discovered.into_inner().unwrap_or_else(|p| p.into_inner());
    discovered.walk_failures.sort_by(|a, b| a.path.cmp(&b.path));
    res.detection
        .failures
        .extend(std::mem::take(&mut discovered.walk_failures));
    res.discovered = discovered;
    debug_assert!(
        res.detection
            .category
            .iter()
            .filter(|&&c| c == CATEGORY_FAILED)
            .count()
            <= res.detection.len()
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_io::Timestamp;
    use crate::manifest::classifier::builtin_classifier;

    /// Rows in walk order: `cam/b` and `cam/a` dated so that `b` comes first in its folder, an
    /// undated `cam/c`, a second folder `d/x` with two boxes; logits that tell the rows apart.
    fn walked() -> PipelineResults {
        let mut r = PipelineResults {
            num_classes: 2,
            ..PipelineResults::default()
        };
        let rows = [
            ("cam/a.jpg", Some(200), 1u8, 1u32),
            ("cam/b.jpg", Some(100), 1, 1),
            ("cam/c.jpg", None, 0, 0),
            ("d/x.jpg", Some(50), 1, 2),
        ];
        for (i, (p, date, category, boxes)) in rows.into_iter().enumerate() {
            let d = &mut r.detection;
            d.paths.push(p.into());
            d.width.push(100);
            d.height.push(100);
            d.date.push(date.map(|s| Timestamp {
                text: format!("t{s}"),
                seconds: s,
            }));
            d.category.push(category);
            d.count.push(boxes);
            d.humancount.push(0);
            d.crop.push([-1; 4]);
            for k in 0..boxes {
                d.det_image.push(i as u32);
                d.det_xyxy.push([i as f32, k as f32, 1.0, 1.0]);
                d.det_conf.push(0.9);
                d.det_category.push(0);
            }
            d.best_detection.push(if boxes > 0 {
                d.det_image.len() as i64 - 1
            } else {
                -1
            });
            r.logits.extend([i as f32, 3.0 - i as f32]);
            r.classified.push(category == 1);
        }
        r
    }

    #[test]
    fn decided_rows_are_in_table_order_and_decide_as_in_walk_order() {
        let opts = AggregateOptions::for_manifest(&builtin_classifier("deepfaune-v14").unwrap());
        let walk = walked();
        let before = walk.sequences(10.0, &opts).unwrap();
        let mut r = walked();
        let (preds, _) = r.decide_in_table_order(10.0, &opts).unwrap();
        // cam: b (100) then a (200, gap 100 > 10) then undated c; then d/x.
        let names: Vec<_> = r
            .detection
            .paths
            .iter()
            .map(|p| p.to_str().unwrap())
            .collect();
        assert_eq!(names, ["cam/b.jpg", "cam/a.jpg", "cam/c.jpg", "d/x.jpg"]);
        assert_eq!(preds.seqnum, [1, 2, 3, 4]);
        assert_eq!(r.input_index, [1, 0, 2, 3]);
        // Every column moved with its row: logits, boxes, the deciding box.
        assert_eq!(r.logits, [1.0, 2.0, 0.0, 3.0, 2.0, 1.0, 3.0, 0.0]);
        assert_eq!(r.detection.det_image, [0, 1, 3, 3]);
        assert_eq!(r.detection.det_xyxy[0][0], 1.0);
        assert_eq!(r.detection.best_detection, [0, 1, -1, 3]);
        for (k, &i) in r.input_index.iter().enumerate() {
            assert_eq!(preds.seqnum[k], before.seqnum[i]);
            assert_eq!(preds.base[k], before.base[i]);
            assert_eq!(preds.sequence[k], before.sequence[i]);
        }
        // Deciding again from the new order gives the same answers, rows in place.
        let again = r.sequences(10.0, &opts).unwrap();
        assert_eq!(again.seqnum, preds.seqnum);
        assert_eq!(again.sequence, preds.sequence);
        // And the input order is still known (distributed parts are written in it).
        assert_eq!(r.input_order(), Some(vec![1, 0, 2, 3]));
        assert_eq!(walk.input_order(), None);
    }
}
