//! The pipeline, above the stages (run, sequence, review's decisions): [`Pipeline`], a detector set and a classifier with DeepFaune's settings,
//! run over files and folders, over video frames, or over imported boxes, to labelled results.
//!
//! [`PipelineOptions`] holds every setting as plain values; [`Pipeline::new`] checks them (each
//! invalid option is an [`Error::InvalidArgument`] saying what to give instead), takes the
//! defaults the classifier manifest does not leave to the user (the score threshold, the
//! temperatures), and builds the checkpoint fingerprint of each run. The models sit behind locks
//! so that one pipeline can be shared between threads: [`Pipeline::try_models`] (or the blocking
//! [`Pipeline::models`]) takes them, and the [`Models`] guard runs.
//!
//! ```no_run
//! use deepfaune_rs::pipeline::{Detectors, Pipeline, PipelineOptions};
//! use deepfaune_rs::run::RunOptions;
//! # fn main() -> Result<(), deepfaune_rs::error::Error> {
//! let detectors = Detectors::load("md-lite", None, None, &Default::default(), RunOptions::default())?;
//! let pipeline = Pipeline::new(Some(detectors), &PipelineOptions::default())?;
//! // No frame sampler: videos are failed records (the Python package reads them with PyAV).
//! let done = pipeline.models(true).run(&["camera_folder".into()], false, Some("run.ckpt".as_ref()),
//!                                      None, &mut |done, total| { eprintln!("{done}/{total}"); Ok(()) })?;
//! println!("{:?}", done.decided.text.prediction);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use image::RgbImage;

pub mod agreement;
pub mod decided;
pub mod video;

pub use decided::{
    class_thresholds_of, classifications, decide, human_classes, Decided, DecisionSettings,
    Redecide, Texts,
};
pub use video::{no_sampler_failure, Sampled, SampledVideo, VideoSampler};

/// The detector mode of DeepFaune's default setup (`Pipeline()`, `deepfaune-rs run`).
pub const DEFAULT_DETECTOR_MODE: &str = "DFbsMDS";

use crate::classify::{load_classifier, OnnxClassifier};
use crate::detect::loader::{load, LoadOptions};
use crate::detect::{DetectorMode, DetectorSet};
use crate::error::Error;
use crate::image_io::walk::{media_kind, MediaKind};
use crate::import::megadetector::ImportedDetections;
use crate::manifest::classifier::{canonical_language, ClassifierManifest, DEFAULT_CLASSIFIER};
use crate::results::VideoRecord;
use crate::run::checkpoint::{fingerprint, fingerprint_imported};
use crate::run::distributed::{merge, Plan};
use crate::run::frames::run_frames;
use crate::run::imported::digest as imported_digest;
use crate::run::{
    run_imported, run_pipeline_resumable, Checkpoint, ClassifyStage, PipelineResults, Resume,
    RunOptions,
};
use crate::runtime::SessionOptions;
use crate::sequence::kind_from_code;
use crate::sequence::video::{summarize_video, FrameRows, VideoSummary};
use crate::sequence::AggregateOptions;

/// Every setting of a [`Pipeline`] but its detectors, as plain values.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// A built-in id (`deepfaune-v15`), a manifest (`.toml`) or an ONNX file.
    pub classifier: String,
    /// The manifest of an ONNX `classifier` (an id or a `.toml`).
    pub classifier_manifest: Option<String>,
    /// Scores below it give `undefined`; `None`: the classifier manifest's threshold.
    pub score_threshold: Option<f32>,
    /// Longest gap inside a sequence, in seconds (DeepFaune's default: 10).
    pub maxlag_s: f64,
    /// The language of the labels (any the manifest has).
    pub language: String,
    /// Classes switched off (names in any language of the classifier).
    pub disabled_classes: Vec<String>,
    /// `{class name: threshold}` replacing `score_threshold` for those classes.
    pub class_thresholds: BTreeMap<String, f32>,
    /// Load the bird head and refine `bird` into bird groups.
    pub bird_head: bool,
    /// Crops per classifier call (0 counts as 1).
    pub batch_size: usize,
    /// The classifier's ONNX Runtime session (threads, device, int8, cache folder).
    pub session: SessionOptions,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            classifier: DEFAULT_CLASSIFIER.to_string(),
            classifier_manifest: None,
            score_threshold: None,
            maxlag_s: 10.0,
            language: "en".into(),
            disabled_classes: Vec::new(),
            class_thresholds: BTreeMap::new(),
            bird_head: false,
            batch_size: 1,
            session: SessionOptions::default(),
        }
    }
}

impl PipelineOptions {
    /// Checks the settings that need no manifest (done before any model is loaded).
    pub fn validate(&self) -> Result<(), Error> {
        if self
            .score_threshold
            .is_some_and(|t| !(0.0..=1.0).contains(&t))
            || !self.maxlag_s.is_finite()
            || self.maxlag_s < 0.0
        {
            return Err(Error::InvalidArgument(
                "score_threshold must be within 0..1 and maxlag_s >= 0".into(),
            ));
        }
        Ok(())
    }

    /// The decision settings these options give with classifier manifest `m`: its threshold
    /// and temperatures unless given, the classes named resolved to indices (in any of its
    /// languages), the language checked.
    pub fn decision_settings(&self, m: &ClassifierManifest) -> Result<DecisionSettings, Error> {
        self.validate()?;
        let language = self.language.as_str();
        if m.names(language).is_none() {
            return Err(Error::InvalidArgument(format!(
                "language '{language}' is not available for {} (available: {})",
                m.id,
                m.languages().join(", ")
            )));
        }
        let disabled = m.class_indices(&self.disabled_classes).map_err(|unknown| {
            let names = m.names(language).or_else(|| m.names("en"));
            let valid = names.map(|n| n.classes.join(", ")).unwrap_or_default();
            Error::InvalidArgument(format!(
                "unknown classes to disable: {unknown:?} (the classes of {}: {valid}; names in \
                 any of its languages are accepted)",
                m.id
            ))
        })?;
        let bird_class = if self.bird_head {
            m.names("en").and_then(|n| n.bird_class)
        } else {
            None
        };
        let defaults = AggregateOptions::for_manifest(m);
        let opts = AggregateOptions {
            threshold: self.score_threshold.unwrap_or(defaults.threshold),
            disabled,
            bird_class,
            class_thresholds: class_thresholds_of(m, &self.class_thresholds)?,
            ..defaults
        };
        Ok(DecisionSettings {
            language: canonical_language(language).to_string(),
            opts,
            maxlag_s: self.maxlag_s,
        })
    }
}

/// A detector set, possibly shared with other users (the Python `Detector`), with the run
/// options its runs use (threads, batch, window, decoding limits).
#[derive(Clone)]
pub struct Detectors {
    /// The models, used by one run at a time.
    pub set: Arc<Mutex<DetectorSet>>,
    /// How runs with them walk, decode and batch.
    pub run: RunOptions,
    /// The primary detector's confidence threshold (fixed at load: no lock to read).
    pub threshold: f32,
}

impl Detectors {
    /// `set` with `run`, to be shared.
    pub fn new(set: DetectorSet, run: RunOptions) -> Self {
        let threshold = set.primary.manifest.postprocess.threshold;
        Detectors {
            set: Arc::new(Mutex::new(set)),
            run,
            threshold,
        }
    }

    /// Loads detector `model` (and `secondary`, in `mode`) as [`load`] does.
    pub fn load(
        model: &str,
        secondary: Option<&str>,
        mode: Option<DetectorMode>,
        opts: &LoadOptions,
        run: RunOptions,
    ) -> Result<Self, Error> {
        Ok(Detectors::new(load(model, secondary, mode, opts)?, run))
    }
}

/// Detectors + classifier + DeepFaune's sequence logic: one run at a time per pipeline.
pub struct Pipeline {
    /// `None`: the pipeline only runs over given detections.
    detectors: Option<Detectors>,
    classifier: Mutex<OnnxClassifier>,
    /// The classifier's manifest (a copy: read without the lock).
    manifest: ClassifierManifest,
    settings: DecisionSettings,
    batch_size: usize,
}

/// A finished run: its rows and what its settings make of them, rows in DeepFaune's table
/// order (`decided.boxes` gives the boxes' new order).
#[derive(Debug, Clone)]
pub struct Finished {
    /// The rows (detections, logits, embeddings).
    pub results: PipelineResults,
    /// Sequences, predictions, texts and DeepFaune's table.
    pub decided: Decided,
    /// The run's videos, in the order they were given or walked (one record each, failed ones
    /// included); their rows follow the images'.
    pub videos: Vec<VideoRecord>,
}

/// One video's frames run through a pipeline ([`Models::run_frames`]).
#[derive(Debug, Clone)]
pub struct VideoRun {
    /// One row per frame given, in the given order.
    pub results: PipelineResults,
    /// The video's prediction, counts and keyframe from its sampled frames.
    pub summary: VideoSummary,
    /// The prediction and the best label as texts in the pipeline's language.
    pub prediction: String,
    /// The best label whatever the threshold.
    pub top1: String,
    /// `Label::index` of the prediction and of top1.
    pub label_index: usize,
    /// `Label::index` of top1.
    pub top1_index: usize,
    /// The primary detector's confidence threshold.
    pub threshold: f32,
}

/// `m` locked now, or `None` when another thread holds it (a poisoned lock is taken: the models
/// hold no invariant a panic could break half-way).
pub fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

impl Pipeline {
    /// Loads the classifier of `opts` and checks every option against its manifest.
    pub fn new(detectors: Option<Detectors>, opts: &PipelineOptions) -> Result<Self, Error> {
        opts.validate()?;
        let clf = load_classifier(
            &opts.classifier,
            opts.classifier_manifest.as_deref(),
            opts.bird_head,
            opts.session.clone(),
        )?;
        Pipeline::with_classifier(detectors, clf, opts)
    }

    /// A pipeline around a loaded classifier (`opts.classifier*` and `opts.session` unused).
    pub fn with_classifier(
        detectors: Option<Detectors>,
        classifier: OnnxClassifier,
        opts: &PipelineOptions,
    ) -> Result<Self, Error> {
        let settings = opts.decision_settings(&classifier.manifest)?;
        Ok(Pipeline {
            detectors,
            manifest: classifier.manifest.clone(),
            classifier: Mutex::new(classifier),
            settings,
            batch_size: opts.batch_size.max(1),
        })
    }

    /// The classifier's manifest.
    pub fn manifest(&self) -> &ClassifierManifest {
        &self.manifest
    }

    /// The settings runs are decided with.
    pub fn settings(&self) -> &DecisionSettings {
        &self.settings
    }

    /// The detectors, if any.
    pub fn detectors(&self) -> Option<&Detectors> {
        self.detectors.as_ref()
    }

    /// The classes in the pipeline's language.
    pub fn class_names(&self) -> Vec<String> {
        self.manifest
            .names(&self.settings.language)
            .map(|n| n.classes.to_vec())
            .unwrap_or_default()
    }

    /// The models locked for a run now, or `None` when another run holds one of them (never one
    /// held while waiting for the other). `with_detectors`: the detectors too (a run over
    /// imported boxes or a merge needs only the classifier).
    pub fn try_models(&self, with_detectors: bool) -> Option<Models<'_>> {
        let detectors = match (&self.detectors, with_detectors) {
            (Some(d), true) => Some(try_lock(&d.set)?),
            _ => None,
        };
        let classifier = try_lock(&self.classifier)?;
        Some(Models {
            pipeline: self,
            detectors,
            classifier,
            outputs: Vec::new(),
        })
    }

    /// [`Self::try_models`], waiting for them.
    pub fn models(&self, with_detectors: bool) -> Models<'_> {
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            if let Some(m) = self.try_models(with_detectors) {
                return m;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(20));
        }
    }

    /// The checkpoint settings of a run over `inputs`: every setting that changes its rows or
    /// their labels.
    fn checkpoint_settings(
        &self,
        inputs: &[PathBuf],
        keep_embeddings: bool,
        max_pixels: u64,
    ) -> serde_json::Value {
        let o = &self.settings.opts;
        let mut settings = serde_json::json!({
            "inputs": inputs.iter().map(|p| p.to_string_lossy().into_owned()).collect::<Vec<_>>(),
            "threshold": o.threshold,
            "disabled": o.disabled,
            "maxlag_s": self.settings.maxlag_s,
            "language": self.settings.language,
            "keep_embeddings": keep_embeddings,
        });
        // Only when set: checkpoints written before per-class thresholds existed still match.
        if !o.class_thresholds.is_empty() {
            settings["class_thresholds"] = serde_json::json!(o.class_thresholds);
        }
        settings["max_pixels"] = max_pixels.into();
        settings
    }

    /// Sequences, labels and DeepFaune's table of a finished run, its rows in the table's order.
    pub fn finish(&self, mut results: PipelineResults) -> Result<Finished, Error> {
        let decided = decide(&mut results, &self.manifest, &self.settings, &[])?;
        Ok(Finished {
            results,
            decided,
            videos: Vec::new(),
        })
    }
}

/// A pipeline's models, locked for one run.
pub struct Models<'a> {
    pipeline: &'a Pipeline,
    detectors: Option<MutexGuard<'a, DetectorSet>>,
    classifier: MutexGuard<'a, OnnxClassifier>,
    outputs: Vec<PathBuf>,
}

fn no_detector(what: &str) -> Error {
    Error::InvalidArgument(format!("this pipeline has no detector: {what}"))
}

impl Models<'_> {
    /// The files the caller will write this run's results to: the walk passes over them and
    /// their sidecars (`NAME.checkpoint`, `NAME.corrections.jsonl`), as over the checkpoint,
    /// instead of listing them as files it could not read when they are inside an input folder.
    pub fn writing_to(mut self, outputs: Vec<PathBuf>) -> Self {
        self.outputs = outputs;
        self
    }

    fn stage(&mut self, keep_embeddings: bool) -> ClassifyStage<'_> {
        ClassifyStage {
            classifier: &mut self.classifier,
            batch_size: self.pipeline.batch_size,
            keep_embeddings,
        }
    }

    /// The checkpoint fingerprint of a detection run over `inputs`: the models' identities and
    /// every setting that changes the results.
    pub fn fingerprint(
        &self,
        inputs: &[PathBuf],
        keep_embeddings: bool,
    ) -> Result<serde_json::Value, Error> {
        let (Some(set), Some(d)) = (&self.detectors, &self.pipeline.detectors) else {
            return Err(no_detector("its runs have no detector fingerprint"));
        };
        let settings =
            self.pipeline
                .checkpoint_settings(inputs, keep_embeddings, d.run.decode.max_pixels);
        Ok(fingerprint(set, Some(&self.classifier), settings))
    }

    /// Runs the pipeline over files and folders: the images, then the videos (those given,
    /// in the given order, then those the walk met), each read by `sampler` and judged from its
    /// sampled frames ([`Models::run_video`]); without a sampler every video is a failed record
    /// saying what reads frames. Unsupported video formats are listed in the results'
    /// `discovered.unsupported_videos` (given ones first). With `checkpoint`, finished images
    /// and videos are appended to that file and a later run with the same file and settings
    /// resumes where this one stopped. `progress(done, total)` counts images then videos, and
    /// may return an error to stop the run.
    pub fn run(
        &mut self,
        paths: &[PathBuf],
        keep_embeddings: bool,
        checkpoint: Option<&Path>,
        sampler: Option<&mut VideoSampler<'_>>,
        progress: &mut dyn FnMut(usize, usize) -> Result<(), Error>,
    ) -> Result<Finished, Error> {
        let Some(run) = self.pipeline.detectors.as_ref().map(|d| d.run) else {
            return Err(no_detector(
                "pass detections= (a MegaDetector file or its results), or build it with a detector",
            ));
        };
        let mut open = match checkpoint {
            None => None,
            Some(path) => Some(Checkpoint::open(
                path,
                self.fingerprint(paths, keep_embeddings)?,
            )?),
        };
        // Given files by kind (a folder is walked, whatever its name).
        let (mut images, mut videos, mut unsupported) = (Vec::new(), Vec::new(), Vec::new());
        for p in paths {
            match media_kind(p) {
                Some(MediaKind::Video) if !p.is_dir() => videos.push(p.clone()),
                Some(MediaKind::UnsupportedVideo) if !p.is_dir() => unsupported.push(p.clone()),
                _ => images.push(p.clone()),
            }
        }
        let resume = open.as_mut().map(|(c, done)| Resume {
            checkpoint: c,
            done: std::mem::take(done),
            finish: false,
        });
        let mut set = self.detectors.take().expect("locked with the detectors");
        let given_videos = videos.len();
        let outputs = self.outputs.clone();
        let res = run_pipeline_resumable(
            &images,
            &mut set,
            Some(self.stage(keep_embeddings)),
            &run,
            &mut |done, total| progress(done, total + given_videos),
            resume,
            &outputs,
        );
        self.detectors = Some(set);
        let mut res = res?;
        videos.extend(res.discovered.videos.iter().cloned());
        unsupported.append(&mut res.discovered.unsupported_videos);
        res.discovered.unsupported_videos = unsupported;
        let checkpoint = open.as_mut().map(|(c, _)| c);
        let (records, changed) = self.run_videos(
            video::VideoRun {
                paths: videos,
                checkpoint,
                images: res.len(),
            },
            keep_embeddings,
            sampler,
            progress,
        )?;
        if let Some((c, _)) = open.as_mut() {
            // The run is complete once its videos are recorded too.
            c.finish(res.len())?;
        }
        res.changed_since_checkpoint.extend(changed);
        let mut finished = self.pipeline.finish(res)?;
        finished.videos = records;
        Ok(finished)
    }

    /// Runs the classifier over imported boxes (a MegaDetector file's, or a detection run's):
    /// they are the detection step. `inputs` are the paths the user gave (recorded in the
    /// checkpoint's fingerprint with the boxes' digest).
    pub fn run_imported(
        &mut self,
        imported: &ImportedDetections,
        inputs: &[PathBuf],
        keep_embeddings: bool,
        checkpoint: Option<&Path>,
        progress: &mut dyn FnMut(usize, usize) -> Result<(), Error>,
    ) -> Result<Finished, Error> {
        let run = match &self.pipeline.detectors {
            Some(d) => d.run,
            None => RunOptions::default(),
        };
        let mut open = match checkpoint {
            None => None,
            Some(path) => {
                let settings = self.pipeline.checkpoint_settings(
                    inputs,
                    keep_embeddings,
                    run.decode.max_pixels,
                );
                let fp =
                    fingerprint_imported(&imported_digest(imported), &self.classifier, settings);
                Some(Checkpoint::open(path, fp)?)
            }
        };
        let resume = open.as_mut().map(|(c, done)| Resume {
            checkpoint: c,
            done: std::mem::take(done),
            finish: true,
        });
        let res = run_imported(
            imported,
            self.stage(keep_embeddings),
            &run,
            progress,
            resume,
        )?;
        self.pipeline.finish(res)
    }

    /// The results of the single run over `plan`'s inputs from the parts of its units (see
    /// [`crate::run::distributed`]), decided as after any run; and the parts' detector threshold.
    pub fn merge(&self, plan: &Plan, parts: &[String]) -> Result<(Finished, f32), Error> {
        let (res, threshold) = merge(plan, parts)?;
        let classes = self.classifier.manifest.num_classes();
        if !res.is_empty() && res.num_classes != classes {
            return Err(Error::InvalidArgument(format!(
                "the parts have {} classes, this pipeline's classifier {classes}",
                res.num_classes,
            )));
        }
        Ok((self.pipeline.finish(res)?, threshold))
    }

    /// Runs a video's decoded `frames` through detection and classification (one row per
    /// frame) and judges the video from its sampled positions: `slots[k]` is the frame at
    /// sampled position `k`, or `None` when it could not be read.
    pub fn run_frames(
        &mut self,
        frames: Vec<RgbImage>,
        slots: &[Option<usize>],
        source: &Path,
        keep_embeddings: bool,
    ) -> Result<VideoRun, Error> {
        if let Some(bad) = slots.iter().flatten().find(|&&i| i >= frames.len()) {
            return Err(Error::InvalidArgument(format!(
                "slot points at frame {bad} but {} frames were given",
                frames.len()
            )));
        }
        let Some(batch) = self.pipeline.detectors.as_ref().map(|d| d.run.batch_size) else {
            return Err(no_detector(
                "videos need one (build the Pipeline with a detector)",
            ));
        };
        let mut set = self.detectors.take().expect("locked with the detectors");
        let res = run_frames(
            frames,
            source,
            &mut set,
            Some(self.stage(keep_embeddings)),
            batch,
        );
        let threshold = set.primary.manifest.postprocess.threshold;
        self.detectors = Some(set);
        let results = res?;
        let d = &results.detection;
        let kinds: Vec<_> = d.category.iter().map(|&c| kind_from_code(c)).collect();
        let rows = FrameRows {
            kinds: &kinds,
            logits: &results.logits,
            num_classes: results.num_classes,
            bird_logits: &results.bird_logits,
            count: &d.count,
            humancount: &d.humancount,
        };
        let settings = &self.pipeline.settings;
        let summary = summarize_video(&rows, slots, &settings.opts)?;
        let m = &self.pipeline.manifest;
        let names = m.names(&settings.language).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "language '{}' is not available for {}",
                settings.language, m.id
            ))
        })?;
        let bird = settings.opts.bird_class.is_some();
        let p = summary.prediction;
        let (n, g) = (m.num_classes(), m.num_groups());
        Ok(VideoRun {
            prediction: p.label.text(&names, bird),
            top1: p.top1.text(&names, bird),
            label_index: p.label.index(n, g),
            top1_index: p.top1.index(n, g),
            results,
            summary,
            threshold,
        })
    }
}

#[cfg(test)]
mod tests;
