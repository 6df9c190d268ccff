//! The end of `run`: the results of a run (here or on Ray), the corrections journal, the
//! outputs (table, MegaDetector JSON, Camtrap DP, embeddings, sorted folders) and the summary
//! lines on stderr.

use std::cell::RefCell;
use std::ops::DerefMut;
use std::path::{Path, PathBuf};

use super::models::cli_error;
use crate::cli::{report_failures, CliError, Hooks, Progress, EXIT_FAILURES};
use crate::error::Error;
use crate::export::camtrap_dp::{
    read_deployments, write_camtrap_dp, CamtrapOptions, CamtrapSource, UndatedMedia, UtcOffset,
};
use crate::export::megadetector::classifications::write_with_classifications;
use crate::export::sort::{sort_into_folders_with, SortItem, SortMode, SortOptions};
use crate::export::table::{with_video_rows, write_results_csv};
use crate::manifest::classifier::ClassifierManifest;
use crate::pipeline::{
    classifications, decide, human_classes, Decided, DecisionSettings, Finished,
};
use crate::results::video::unsupported_video_failure;
use crate::results::{Failure, VideoRecord, CATEGORY_FAILED};
use crate::review::{apply_corrections_to_videos, read_journal, Correction, Reviewed};
use crate::run::PipelineResults;

/// A finished run's results: its rows (detections inside, in DeepFaune's table order), their
/// decisions, its videos, and what the exports need to know of the run.
pub struct Outcome {
    /// The rows, `results.detection` included.
    pub results: PipelineResults,
    /// Sequences, labels and table of the rows.
    pub decided: Decided,
    /// The run's videos, as recorded (the corrections are applied when written).
    pub videos: Vec<VideoRecord>,
    /// The classifier's manifest.
    pub manifest: ClassifierManifest,
    /// The decision settings of the run.
    pub settings: DecisionSettings,
    /// The confidence threshold the boxes were kept with.
    pub threshold: f32,
    /// The folder the exports' paths are relative to (the one folder run).
    pub root: Option<PathBuf>,
    /// The corrections applied.
    pub journal: Vec<Correction>,
}

impl Outcome {
    /// The outcome of `finished`, decided with `manifest` and `settings`.
    pub fn new(
        finished: Finished,
        manifest: ClassifierManifest,
        settings: DecisionSettings,
        threshold: f32,
        root: Option<PathBuf>,
    ) -> Self {
        Outcome {
            results: finished.results,
            decided: finished.decided,
            videos: finished.videos,
            manifest,
            settings,
            threshold,
            root,
            journal: Vec::new(),
        }
    }

    /// The rows of `results` (already or not yet in table order) decided again.
    pub fn decided(
        mut results: PipelineResults,
        videos: Vec<VideoRecord>,
        manifest: ClassifierManifest,
        settings: DecisionSettings,
        threshold: f32,
        root: Option<PathBuf>,
    ) -> Result<Self, Error> {
        let decided = decide(&mut results, &manifest, &settings, &[])?;
        Ok(Outcome {
            results,
            decided,
            videos,
            manifest,
            settings,
            threshold,
            root,
            journal: Vec::new(),
        })
    }

    /// These results with the corrections journal at `path` applied.
    pub fn with_corrections(mut self, path: &Path) -> Result<Self, Error> {
        self.journal.extend(read_journal(path)?);
        self.decided = decide(
            &mut self.results,
            &self.manifest,
            &self.settings,
            &self.journal,
        )?;
        Ok(self)
    }

    /// The videos with the corrections applied, and what the corrections say of each.
    fn shown_videos(&self) -> Result<(Vec<VideoRecord>, Vec<Option<Reviewed>>), Error> {
        let mut videos = self.videos.clone();
        let names = self
            .manifest
            .names(&self.settings.language)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "language '{}' is not available for {}",
                    self.settings.language, self.manifest.id
                ))
            })?;
        let bird = self.settings.opts.bird_class.is_some();
        let reviewed =
            apply_corrections_to_videos(&mut videos, &self.journal, &self.manifest, &names, bird)?;
        Ok((videos, reviewed))
    }
}

/// Where the outputs of a run go, and how.
pub struct Outputs {
    /// `-o`: the table (.csv or .xlsx).
    pub table: String,
    /// `--csv-safe`.
    pub csv_safe: bool,
    /// `--json`.
    pub json: Option<String>,
    /// `--camtrap-dp` with `--deployments`, `--timezone`, `--camtrap-metadata`.
    pub camtrap_dp: Option<String>,
    /// Camtrap DP deployments (CSV).
    pub deployments: Option<String>,
    /// The camera clocks' UTC offset.
    pub timezone: Option<String>,
    /// Camtrap DP package metadata (JSON).
    pub camtrap_metadata: Option<String>,
    /// `--embeddings` (.npz).
    pub embeddings: Option<String>,
    /// `--sort-into` with `--sort-mode` and `--blur-humans`.
    pub sort_into: Option<String>,
    /// copy, move or symlink.
    pub sort_mode: String,
    /// Blur people in sorted copies.
    pub blur_humans: bool,
    /// `--corrections` (JSONL).
    pub corrections: Option<String>,
}

/// Writes the outputs of `outcome`, prints the summary, and returns the exit status.
pub fn finish(outcome: Outcome, out: &Outputs, hooks: &mut dyn Hooks) -> Result<i32, CliError> {
    let outcome = match &out.corrections {
        Some(path) => outcome
            .with_corrections(Path::new(path))
            .map_err(cli_error)?,
        None => outcome,
    };
    let (videos, video_reviewed) = outcome.shown_videos().map_err(cli_error)?;
    let table = with_video_rows(outcome.decided.table.clone(), &videos);
    let path = Path::new(&out.table);
    if out.table.to_lowercase().ends_with(".xlsx") {
        hooks.write_excel(&table, !videos.is_empty(), path, out.csv_safe)
    } else {
        write_results_csv(path, &table, out.csv_safe)
    }
    .map_err(cli_error)?;
    if let Some(json) = &out.json {
        write_json(&outcome, &videos, Path::new(json)).map_err(cli_error)?;
    }
    if let Some(folder) = &out.camtrap_dp {
        let found = write_camtrap(&outcome, &videos, &video_reviewed, out).map_err(cli_error)?;
        hooks.err(&format!("Camtrap DP package -> {folder}"));
        for w in found {
            hooks.err(&format!("  warning: {w}"));
        }
    }
    let res = &outcome.results;
    if let Some(npz) = &out.embeddings {
        if res.embedding_dim == 0 {
            return Err(CliError::Failed(
                "the run did not keep embeddings (Pipeline.run(keep_embeddings=True))".into(),
            ));
        }
        hooks
            .save_embeddings(
                Path::new(npz),
                &res.detection.paths,
                &res.embeddings,
                res.embedding_dim,
            )
            .map_err(cli_error)?;
    }
    let failed = failures(
        &res.detection.failures,
        &videos,
        &res.discovered.unsupported_videos,
    );
    let n_seq = outcome
        .decided
        .preds
        .seqnum
        .iter()
        .copied()
        .max()
        .unwrap_or(0);
    hooks.err(&format!(
        "{} images, {n_seq} sequences, {} videos{} -> {}",
        res.detection.len(),
        videos.len(),
        skipped(&failed),
        out.table
    ));
    if res.discovered.skipped_metadata > 0 {
        hooks.err(&format!(
            "{} NAS/OS metadata file(s) or folder(s) skipped (@eaDir, ._*, .DS_Store, Thumbs.db, \
             __MACOSX)",
            res.discovered.skipped_metadata
        ));
    }
    let changed = &res.changed_since_checkpoint;
    if !changed.is_empty() {
        hooks.err(&format!(
            "{} image(s) changed since the checkpoint, processed again:",
            changed.len()
        ));
        for p in changed {
            hooks.err(&format!("  {}", p.display()));
        }
    }
    let lines: Vec<(String, String)> = failed
        .iter()
        .map(|f| (f.path.display().to_string(), f.reason.clone()))
        .collect();
    let mut status = report_failures(&lines, hooks);
    if let Some(dest) = &out.sort_into {
        if sort(&outcome, &videos, dest, out, hooks)? {
            status = EXIT_FAILURES;
        }
    }
    Ok(status)
}

/// The progress callback of a run: `bar` (if any) and, at every step, the host's Ctrl-C check.
pub fn progress_with<'a, 'h: 'a, H: DerefMut<Target = dyn Hooks + 'h> + 'a>(
    mut bar: Option<Progress>,
    host: &'a RefCell<H>,
) -> impl FnMut(usize, usize) -> Result<(), Error> + 'a {
    move |done, total| {
        host.borrow_mut().check_interrupt()?;
        match bar.as_mut() {
            Some(b) => b(done, total),
            None => Ok(()),
        }
    }
}

/// Every file that could not be processed: the images' and the walk's, the failed videos',
/// then the video files in formats DeepFaune does not read.
pub fn failures(
    images: &[Failure],
    videos: &[VideoRecord],
    unsupported: &[PathBuf],
) -> Vec<Failure> {
    let mut out = images.to_vec();
    for v in videos {
        if let Some(f) = &v.failure {
            out.push(Failure {
                index: None,
                path: v.path.clone(),
                stage: if f.stage == "decode" {
                    "decode"
                } else {
                    "read"
                },
                kind: if f.kind == "unsupported" {
                    "unsupported"
                } else {
                    "other"
                },
                reason: f.reason.clone(),
            });
        }
    }
    out.extend(unsupported.iter().map(|p| unsupported_video_failure(p)));
    out
}

/// The summary's note on files the walk skipped (their type is not one DeepFaune reads).
pub fn skipped(failures: &[Failure]) -> String {
    let n = failures
        .iter()
        .filter(|f| f.stage == "walk" && f.kind == "unsupported")
        .count();
    if n > 0 {
        format!(", {n} file(s) skipped (unsupported type, listed below)")
    } else {
        String::new()
    }
}

/// `(path, reason)` of each failure, as [`report_failures`] lists them.
pub fn failure_lines(failures: &[Failure]) -> Vec<(String, String)> {
    failures
        .iter()
        .map(|f| (f.path.display().to_string(), f.reason.clone()))
        .collect()
}

/// MegaDetector batch JSON with the species (`--json`).
fn write_json(o: &Outcome, videos: &[VideoRecord], path: &Path) -> Result<(), Error> {
    let human = human_classes(&o.decided.reviewed);
    let cls = classifications(&o.manifest, &o.results, &o.settings, &human);
    write_with_classifications(
        &o.results.detection,
        videos,
        path,
        o.root.as_deref(),
        o.threshold,
        &cls,
    )
}

/// The Camtrap DP package (`--camtrap-dp`); returns its warnings.
fn write_camtrap(
    o: &Outcome,
    videos: &[VideoRecord],
    video_reviewed: &[Option<Reviewed>],
    out: &Outputs,
) -> Result<Vec<String>, Error> {
    let bad = |m: String| Error::InvalidArgument(m);
    let deployments = match &out.deployments {
        Some(p) => Some(read_deployments(Path::new(p))?),
        None => None,
    };
    let timezone = match &out.timezone {
        Some(t) => Some(UtcOffset::from_argument(t)?),
        None => None,
    };
    let metadata = match &out.camtrap_metadata {
        None => serde_json::Map::new(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| bad(format!("--camtrap-metadata {p}: {e}")))?;
            match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(serde_json::Value::Object(m)) => m,
                Ok(_) => return Err(bad("metadata must be a JSON object".into())),
                Err(e) => return Err(bad(format!("--camtrap-metadata {p}: {e}"))),
            }
        }
    };
    let opts = CamtrapOptions {
        deployments,
        deployment_of: Default::default(),
        timezone,
        root: o.root.clone(),
        undated: UndatedMedia::Exclude,
        metadata,
    };
    let src = CamtrapSource {
        detection: &o.results.detection,
        predictions: &o.decided.preds,
        manifest: &o.manifest,
        videos,
        reviewed: &o.decided.reviewed,
        video_reviewed,
    };
    write_camtrap_dp(
        &src,
        Path::new(out.camtrap_dp.as_deref().unwrap_or(".")),
        &opts,
    )
}

/// Sorts the images and videos into folders (`--sort-into`) and reports it; whether some
/// files were not sorted.
fn sort(
    o: &Outcome,
    videos: &[VideoRecord],
    dest: &str,
    out: &Outputs,
    hooks: &mut dyn Hooks,
) -> Result<bool, CliError> {
    let mode = match out.sort_mode.as_str() {
        "move" => SortMode::Move,
        "symlink" => SortMode::Symlink,
        _ => SortMode::Copy,
    };
    let d = &o.results.detection;
    if out.blur_humans && d.no_person_class {
        return Err(CliError::Usage(format!(
            "invalid argument: blur_humans: the detector ({}) has no person class, so people are \
             neither found nor blurred; run with one that finds people (DFbsMDS, MDS, DF)",
            d.detector
        )));
    }
    let mut person: Vec<Vec<[f32; 4]>> = vec![Vec::new(); d.len()];
    for k in 0..d.det_image.len() {
        if d.det_category[k] == 1 {
            person[d.det_image[k] as usize].push(d.det_xyxy[k]);
        }
    }
    let items: Vec<SortItem<'_>> = (0..d.len())
        .filter(|&i| d.category[i] != CATEGORY_FAILED)
        .map(|i| SortItem {
            source: &d.paths[i],
            class: &o.decided.text.prediction[i],
            person_boxes: &person[i],
        })
        .chain(
            videos
                .iter()
                .filter(|v| v.failure.is_none())
                .map(|v| SortItem {
                    source: &v.path,
                    class: &v.prediction,
                    person_boxes: &[],
                }),
        )
        .collect();
    let opts = SortOptions {
        mode,
        blur_humans: out.blur_humans,
        timestamp: local_stamp(),
    };
    let report = sort_into_folders_with(Path::new(dest), &items, &opts, &mut || {
        hooks.check_interrupt()
    })
    .map_err(cli_error)?;
    hooks.err(&format!(
        "sorted {} files into {}",
        report.placed.len(),
        report.root.display()
    ));
    for f in &report.failures {
        hooks.err(&format!(
            "  not sorted: {}: {}",
            f.source.display(),
            f.reason
        ));
    }
    Ok(!report.failures.is_empty())
}

/// DeepFaune's sorted-folder name: the local time as `%d-%m-%Y_%H-%M-%S` (`None`: the core's
/// UTC stamp).
fn local_stamp() -> Option<String> {
    #[cfg(unix)]
    {
        // SAFETY: `time` and `localtime_r` write only into the values given.
        unsafe {
            let now = libc::time(std::ptr::null_mut());
            let mut tm: libc::tm = std::mem::zeroed();
            if !libc::localtime_r(&now, &mut tm).is_null() {
                return Some(format!(
                    "{:02}-{:02}-{:04}_{:02}-{:02}-{:02}",
                    tm.tm_mday,
                    tm.tm_mon + 1,
                    tm.tm_year + 1900,
                    tm.tm_hour,
                    tm.tm_min,
                    tm.tm_sec
                ));
            }
        }
    }
    None
}
