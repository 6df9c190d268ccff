//! The end of a run: stored rows (logits, detections, dates) turned into DeepFaune's
//! predictions, label texts and table with a run's [`DecisionSettings`], after a run and again
//! when a finished run is re-decided with other settings or corrections.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::export::megadetector::classifications::Classifications;
use crate::export::table::{results_table, ResultRow};
use crate::manifest::classifier::ClassifierManifest;
use crate::review::{apply_corrections, Correction, Reviewed};
use crate::sequence::{AggregateOptions, Label, Prediction, SequencePredictions};

use crate::run::PipelineResults;

/// The settings that turn stored logits into predictions.
#[derive(Debug, Clone)]
pub struct DecisionSettings {
    /// The canonical language of the label texts (`en`, `fr`, ...).
    pub language: String,
    /// Threshold, per-class thresholds, disabled classes, bird head, temperatures.
    pub opts: AggregateOptions,
    /// Longest gap inside a sequence, in seconds.
    pub maxlag_s: f64,
}

/// What [`DecisionSettings::redecide`] changes; `None` keeps the run's setting.
#[derive(Debug, Clone, Default)]
pub struct Redecide {
    /// A score threshold within 0..1.
    pub score_threshold: Option<f32>,
    /// `{class name (any language): threshold}`, replacing all per-class thresholds.
    pub class_thresholds: Option<BTreeMap<String, f32>>,
    /// Class names (any language), replacing the run's list.
    pub disabled_classes: Option<Vec<String>>,
    /// `maxlag_s` >= 0.
    pub maxlag_s: Option<f64>,
}

impl DecisionSettings {
    /// These settings with `changes` applied, each checked against `manifest`.
    pub fn redecide(
        &self,
        manifest: &ClassifierManifest,
        changes: Redecide,
    ) -> Result<DecisionSettings, Error> {
        let bad = |m: String| Error::InvalidArgument(m);
        let mut settings = self.clone();
        if let Some(t) = changes.score_threshold {
            if !(0.0..=1.0).contains(&t) {
                return Err(bad(format!(
                    "score_threshold must be within 0..1 (got {t})"
                )));
            }
            settings.opts.threshold = t;
        }
        if let Some(m) = changes.maxlag_s {
            if !m.is_finite() || m < 0.0 {
                return Err(bad(format!("maxlag_s must be >= 0 (got {m})")));
            }
            settings.maxlag_s = m;
        }
        if let Some(names) = changes.disabled_classes {
            settings.opts.disabled = manifest
                .class_indices(&names)
                .map_err(|unknown| bad(format!("unknown classes to disable: {unknown:?}")))?;
        }
        if let Some(given) = changes.class_thresholds {
            settings.opts.class_thresholds = class_thresholds_of(manifest, &given)?;
        }
        Ok(settings)
    }
}

/// The label texts of a decided run, one per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Texts {
    /// Per-image prediction.
    pub predictionbase: Vec<String>,
    /// Per-sequence prediction, on each image.
    pub prediction: Vec<String>,
    /// Per-sequence best label whatever the threshold.
    pub top1: Vec<String>,
}

/// What the settings and the corrections journal make of a run's stored rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    /// Sequences and predictions, per row.
    pub preds: SequencePredictions,
    /// The predictions as texts in the settings' language.
    pub text: Texts,
    /// DeepFaune's table.
    pub table: Vec<ResultRow>,
    /// The classes in the settings' language (the logits' columns).
    pub class_names: Vec<String>,
    /// What the corrections say, per row.
    pub reviewed: Vec<Option<Reviewed>>,
    /// File entries of the journal that name no row.
    pub unknown_files: usize,
    /// The boxes' new order (`DetectionResults::permute`), for columns kept beside them.
    pub boxes: Vec<usize>,
}

/// Sequences and predictions with `res`'s rows put in DeepFaune's table order
/// (`PipelineResults::decide_in_table_order`), then the corrections, then the texts and
/// DeepFaune's table.
pub fn decide(
    res: &mut PipelineResults,
    manifest: &ClassifierManifest,
    settings: &DecisionSettings,
    journal: &[Correction],
) -> Result<Decided, Error> {
    let (mut preds, boxes) = res.decide_in_table_order(settings.maxlag_s, &settings.opts)?;
    let (reviewed, unknown_files) =
        apply_corrections(&res.detection.paths, &mut preds, journal, manifest)?;
    let names = manifest.names(&settings.language).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "language '{}' is not available for {}",
            settings.language, manifest.id
        ))
    })?;
    let bird = settings.opts.bird_class.is_some();
    let label = |p: &Prediction, top1: bool| {
        if top1 {
            p.top1.text(&names, bird)
        } else {
            p.label.text(&names, bird)
        }
    };
    let text = Texts {
        predictionbase: preds.base.iter().map(|p| label(p, false)).collect(),
        prediction: preds.sequence.iter().map(|p| label(p, false)).collect(),
        top1: preds.sequence.iter().map(|p| label(p, true)).collect(),
    };
    let d = &res.detection;
    let dates: Vec<Option<&str>> = d
        .date
        .iter()
        .map(|t| t.as_ref().map(|t| t.text.as_str()))
        .collect();
    let mut failed: Vec<Option<&str>> = vec![None; d.len()];
    for f in &d.failures {
        if let Some(i) = f.index.filter(|&i| i < failed.len()) {
            failed[i] = Some(f.reason.as_str());
        }
    }
    let table = results_table(
        &d.paths,
        &dates,
        &preds,
        &d.count,
        &d.humancount,
        &failed,
        &names,
        bird,
    )?;
    Ok(Decided {
        preds,
        text,
        table,
        class_names: names.classes.to_vec(),
        reviewed,
        unknown_files,
        boxes,
    })
}

/// `{class name (any language): threshold}` as `(index, threshold)`, each within 0..1.
pub fn class_thresholds_of(
    m: &ClassifierManifest,
    given: &BTreeMap<String, f32>,
) -> Result<Vec<(usize, f32)>, Error> {
    let mut out = Vec::new();
    for (name, &t) in given {
        if !(0.0..=1.0).contains(&t) {
            return Err(Error::InvalidArgument(format!(
                "class threshold of '{name}' must be within 0..1 (got {t})"
            )));
        }
        let idx = m
            .class_indices(std::slice::from_ref(name))
            .map_err(|unknown| {
                Error::InvalidArgument(format!("unknown classes in class_thresholds: {unknown:?}"))
            })?;
        out.extend(idx.into_iter().map(|i| (i, t)));
    }
    out.sort_by_key(|&(i, _)| i);
    Ok(out)
}

/// Per image, the class a person gave it in the corrections (`reviewed`), for the MegaDetector
/// file's `classifications` (see [`classifications`]).
pub fn human_classes(reviewed: &[Option<Reviewed>]) -> Vec<Option<usize>> {
    reviewed
        .iter()
        .map(|r| match r.as_ref().and_then(|r| r.label) {
            Some(Label::Class(c)) => Some(c),
            _ => None,
        })
        .collect()
}

/// What the MegaDetector file's `classifications` take from a decided run: the English class
/// names, the logits at the manifest's single-image temperature, the disabled classes, and the
/// classes people gave (`human`, from [`human_classes`]).
pub fn classifications<'a>(
    manifest: &'a ClassifierManifest,
    results: &'a PipelineResults,
    settings: &'a DecisionSettings,
    human: &'a [Option<usize>],
) -> Classifications<'a> {
    Classifications {
        class_names: manifest.classes.get("en").map(Vec::as_slice).unwrap_or(&[]),
        logits: &results.logits,
        classified: &results.classified,
        disabled: &settings.opts.disabled,
        temperature: manifest.temperatures().image,
        human,
    }
}
