//! `deepfaune-rs run`: the checks made before any image is processed, then the whole pipeline
//! on this machine (the core's [`Pipeline`]) or on a Ray cluster (the host's).

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use clap::ArgMatches;

use super::finish::{finish, progress_with, Outcome, Outputs};
use super::models::{
    cli_error, detector_ids, finds_people, load_detectors, model_names, paths, require, session,
};
use super::RayRequest;
use crate::cli::{
    absolute, check_inputs, check_output, names, take_renamed, CliError, CliResult, Hooks,
};
use crate::import::megadetector::{read, JsonRules, ReadOptions};
use crate::pipeline::{Detectors, Pipeline, PipelineOptions, DEFAULT_DETECTOR_MODE};

/// The options of one `run`, read from the command line.
struct RunArgs {
    inputs: Vec<String>,
    detector: Option<String>,
    detections: Option<String>,
    json_rules: String,
    detection_threshold: Option<f64>,
    classifier: String,
    classifier_manifest: Option<String>,
    score_threshold: Option<f64>,
    maxlag_s: f64,
    language: String,
    disable: Vec<String>,
    bird_head: bool,
    resume: bool,
    ray: Option<String>,
    actors: i64,
    checkpoint_dir: Option<String>,
    progress: bool,
    fetch: bool,
    device: String,
    int8: bool,
    out: Outputs,
}

impl RunArgs {
    fn read(m: &ArgMatches, hooks: &mut dyn Hooks) -> Result<Self, CliError> {
        let text = |id: &str| m.get_one::<String>(id).cloned();
        let detection_threshold =
            take_renamed(m, "--detection-threshold", "--detector-threshold", hooks)?;
        let score_threshold = take_renamed(m, "--score-threshold", "--threshold", hooks)?;
        Ok(RunArgs {
            inputs: m
                .get_many::<String>("inputs")
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            detector: text("detector"),
            detections: text("detections"),
            json_rules: text("json-rules").unwrap_or_default(),
            detection_threshold,
            classifier: text("classifier").unwrap_or_default(),
            classifier_manifest: text("classifier-manifest"),
            score_threshold,
            maxlag_s: m.get_one::<f64>("maxlag").copied().unwrap_or(10.0),
            language: text("language").unwrap_or_default(),
            disable: names(m, "disable"),
            bird_head: m.get_flag("bird-head"),
            resume: m.get_flag("resume"),
            ray: text("ray"),
            actors: m.get_one::<i64>("actors").copied().unwrap_or(1),
            checkpoint_dir: text("checkpoint-dir"),
            progress: !m.get_flag("no-progress"),
            fetch: m.get_flag("fetch"),
            device: text("device").unwrap_or_default(),
            int8: m.get_flag("int8"),
            out: Outputs {
                table: text("output").unwrap_or_default(),
                csv_safe: m.get_flag("csv-safe"),
                json: text("json"),
                camtrap_dp: text("camtrap-dp"),
                deployments: text("deployments"),
                timezone: text("timezone"),
                camtrap_metadata: text("camtrap-metadata"),
                embeddings: text("embeddings"),
                sort_into: text("sort-into"),
                sort_mode: text("sort-mode").unwrap_or_default(),
                blur_humans: m.get_flag("blur-humans"),
                corrections: text("corrections"),
            },
        })
    }

    fn precision(&self) -> &'static str {
        if self.int8 {
            "int8"
        } else {
            "fp32"
        }
    }
}

/// Runs `run`.
pub fn run(m: &ArgMatches, hooks: &mut dyn Hooks) -> CliResult {
    let a = RunArgs::read(m, hooks)?;
    if a.detections.is_some() && a.inputs.len() != 1 {
        return Err(CliError::Usage(
            "with --detections, give the one folder its paths are relative to".into(),
        ));
    }
    if a.ray.is_some() || a.checkpoint_dir.is_some() {
        if let Some(wrong) = ray_usage(&a, hooks) {
            return Err(CliError::Usage(wrong));
        }
    }
    check_inputs(&a.inputs, !a.disable.is_empty())?;
    check_outputs(&a, hooks)?;
    if let Some(c) = a
        .out
        .corrections
        .as_deref()
        .filter(|c| !Path::new(c).is_file())
    {
        return Err(CliError::Usage(format!(
            "--corrections {c}: no such file (the journal the review page writes is \
             RESULTS.corrections.jsonl)"
        )));
    }
    // With --detections the file's boxes are the detection step: no detector unless one is named.
    let detector = match (&a.detector, &a.detections) {
        (None, None) => Some(DEFAULT_DETECTOR_MODE.to_string()),
        (d, _) => d.clone(),
    };
    // All the models of the run at once, before anything is loaded.
    if !a.int8 {
        let classifier =
            crate::fetch::classifier_id(&a.classifier).map_err(|e| cli_error(e.into()))?;
        let ids = detector_ids(detector.as_deref())?;
        require(
            &ids,
            classifier.as_deref(),
            a.bird_head,
            a.fetch,
            a.progress,
            hooks,
        )?;
    }
    let outcome = match &a.ray {
        Some(address) => run_on_ray(&a, address, detector, hooks)?,
        None => run_here(&a, detector, hooks)?,
    };
    finish(outcome, &a.out, hooks)
}

/// What is wrong with the options of a run on Ray (one line with its hint), or None.
fn ray_usage(a: &RunArgs, hooks: &mut dyn Hooks) -> Option<String> {
    if a.ray.is_none() {
        Some("--checkpoint-dir goes with --ray ADDRESS (on one machine, use --resume)".into())
    } else if a.detections.is_some() || a.resume {
        Some(
            "--ray runs detection itself: no --detections; --checkpoint-dir DIR, not --resume"
                .into(),
        )
    } else if a.actors < 1 {
        Some("--actors must be at least 1".into())
    } else if !hooks.has_module("ray") {
        Some("--ray needs Ray Data: pip install 'deepfaune-rs[ray]'".into())
    } else {
        None
    }
}

/// Refuses, before any image is processed, outputs that could not be written or would clobber
/// something, and missing input files of the outputs.
fn check_outputs(a: &RunArgs, hooks: &mut dyn Hooks) -> Result<(), CliError> {
    let o = &a.out;
    let mut outputs = Vec::new();
    check_output(&o.table, "-o", &[".csv", ".xlsx"], &a.inputs, &mut outputs)?;
    if o.table.to_lowercase().ends_with(".xlsx") && !hooks.has_module("openpyxl") {
        return Err(CliError::Usage(
            "-o .xlsx needs openpyxl: pip install 'deepfaune-rs[excel]' (or write .csv)".into(),
        ));
    }
    if let Some(json) = &o.json {
        check_output(json, "--json", &[".json"], &a.inputs, &mut outputs)?;
    }
    if let Some(npz) = &o.embeddings {
        check_output(npz, "--embeddings", &[".npz"], &a.inputs, &mut outputs)?;
    }
    for (option, folder) in [
        ("--camtrap-dp", &o.camtrap_dp),
        ("--sort-into", &o.sort_into),
    ] {
        let Some(folder) = folder else { continue };
        let p = Path::new(folder);
        if p.exists() && !p.is_dir() {
            return Err(CliError::Usage(format!(
                "{option} {folder}: is a file; give a folder"
            )));
        }
        let parent = absolute(p)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        if !parent.is_dir() {
            return Err(CliError::Usage(format!(
                "{option} {folder}: folder {} does not exist; create it first",
                parent.display()
            )));
        }
    }
    for (option, file) in [
        ("--deployments", &o.deployments),
        ("--camtrap-metadata", &o.camtrap_metadata),
        ("--detections", &a.detections),
    ] {
        if let Some(file) = file.as_ref().filter(|f| !Path::new(f).is_file()) {
            return Err(CliError::Usage(format!("{option} {file}: no such file")));
        }
    }
    Ok(())
}

/// `--blur-humans` needs a detector with a person class.
fn check_blur(a: &RunArgs, det: Option<&Detectors>) -> Result<(), CliError> {
    match det {
        Some(d) if a.out.blur_humans && !finds_people(d) => Err(CliError::Usage(format!(
            "--blur-humans: the detector ({}) has no person class, so people would be copied \
             unblurred; use --detector DFbsMDS, MDS or DF",
            model_names(d)
        ))),
        _ => Ok(()),
    }
}

/// The run on this machine.
fn run_here(
    a: &RunArgs,
    detector: Option<String>,
    hooks: &mut dyn Hooks,
) -> Result<Outcome, CliError> {
    let session = session(&a.device, a.int8)?;
    let det = match &detector {
        Some(d) => Some(load_detectors(
            d,
            a.detection_threshold,
            None,
            0,
            session.clone(),
        )?),
        None => None,
    };
    check_blur(a, det.as_ref())?;
    let opts = PipelineOptions {
        classifier: a.classifier.clone(),
        classifier_manifest: a.classifier_manifest.clone(),
        score_threshold: a.score_threshold.map(|t| t as f32),
        maxlag_s: a.maxlag_s,
        language: a.language.clone(),
        disabled_classes: a.disable.clone(),
        bird_head: a.bird_head,
        session,
        ..PipelineOptions::default()
    };
    opts.validate().map_err(cli_error)?;
    let threshold = det.as_ref().map(|d| d.threshold);
    let pipeline = Pipeline::new(det, &opts).map_err(cli_error)?;
    let checkpoint = a
        .resume
        .then(|| PathBuf::from(format!("{}.checkpoint", a.out.table)));
    let keep_embeddings = a.out.embeddings.is_some();
    let bar = if a.progress {
        hooks.progress("deepfaune", "img")
    } else {
        None
    };
    // The progress and the video sampler both ask the host, one at a time.
    let host = RefCell::new(hooks);
    let mut progress = progress_with(bar, &host);
    let (finished, threshold, root) = match &a.detections {
        Some(file) => {
            let root = PathBuf::from(&a.inputs[0]);
            if !root.is_dir() {
                return Err(CliError::Usage(
                    "with detections=, inputs is the one folder the file's paths are relative to"
                        .into(),
                ));
            }
            let rules = JsonRules::parse(&a.json_rules).map_err(cli_error)?;
            let read_opts = ReadOptions {
                root: Some(root.clone()),
                rules,
                ..ReadOptions::default()
            };
            let imported = read(Path::new(file), &read_opts).map_err(cli_error)?;
            let mut models = pipeline.models(false);
            let finished = models
                .run_imported(
                    &imported,
                    std::slice::from_ref(&root),
                    keep_embeddings,
                    checkpoint.as_deref(),
                    &mut progress,
                )
                .map_err(cli_error)?;
            (finished, imported.threshold as f32, Some(root))
        }
        None => {
            let inputs = paths(&a.inputs);
            let outputs = [
                Some(&a.out.table),
                a.out.json.as_ref(),
                a.out.embeddings.as_ref(),
            ]
            .into_iter()
            .flatten()
            .map(PathBuf::from)
            .collect();
            let mut models = pipeline.models(true).writing_to(outputs);
            let mut sampler = |p: &Path| host.borrow_mut().sample_video(p);
            let finished = models
                .run(
                    &inputs,
                    keep_embeddings,
                    checkpoint.as_deref(),
                    Some(&mut sampler),
                    &mut progress,
                )
                .map_err(cli_error)?;
            let root = match inputs.as_slice() {
                [p] if p.is_dir() => Some(p.clone()),
                _ => None,
            };
            (finished, threshold.unwrap_or(0.0), root)
        }
    };
    Ok(Outcome::new(
        finished,
        pipeline.manifest().clone(),
        pipeline.settings().clone(),
        threshold,
        root,
    ))
}

/// The run on a Ray cluster (the host's `distributed.run`), and its line on stderr.
fn run_on_ray(
    a: &RunArgs,
    address: &str,
    detector: Option<String>,
    hooks: &mut dyn Hooks,
) -> Result<Outcome, CliError> {
    if a.out.blur_humans {
        // The actors load the detector; the driver only to check this.
        if let Some(d) = &detector {
            let det = load_detectors(
                d,
                a.detection_threshold,
                None,
                0,
                session(&a.device, a.int8)?,
            )?;
            check_blur(a, Some(&det))?;
        }
    }
    let request = RayRequest {
        inputs: a.inputs.clone(),
        detector,
        detection_threshold: a.detection_threshold,
        classifier: a.classifier.clone(),
        classifier_manifest: a.classifier_manifest.clone(),
        score_threshold: a.score_threshold,
        maxlag_s: a.maxlag_s,
        language: a.language.clone(),
        disabled_classes: a.disable.clone(),
        bird_head: a.bird_head,
        device: a.device.clone(),
        precision: a.precision().into(),
        address: address.into(),
        actors: a.actors,
        checkpoint_dir: a.checkpoint_dir.clone(),
        keep_embeddings: a.out.embeddings.is_some(),
        progress: a.progress,
    };
    let done = hooks.run_on_ray(&request).map_err(cli_error)?;
    let place = match &a.checkpoint_dir {
        Some(dir) => format!(" taken whole from {dir}"),
        None => " restored".into(),
    };
    hooks.err(&format!(
        "{} folders: {} run, {}{place}",
        done.units, done.ran, done.restored
    ));
    Ok(done.outcome)
}
