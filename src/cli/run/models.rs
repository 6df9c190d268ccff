//! The models of `run` and `detect`: the weights check made before anything is loaded (or the
//! fetch, `--fetch`), and the detectors as the Python `Detector` builds them.

use std::path::PathBuf;

use crate::cli::{CliError, Hooks};
use crate::detect::loader::LoadOptions;
use crate::error::Error;
use crate::error::RuntimeError;
use crate::fetch;
use crate::pipeline::Detectors;
use crate::run::RunOptions;
use crate::runtime::{Device, SessionOptions};

/// A core error as the command line reports it: an unknown model or device, a bad argument is
/// the user's to correct (exit 2); the rest a failure (1).
pub fn cli_error(e: Error) -> CliError {
    match e {
        Error::Runtime(RuntimeError::Unavailable(_)) => CliError::Usage(e.to_string()),
        e => e.into(),
    }
}

/// Checks that the built-in weights of a run (`detectors`' ids, `classifier`, its bird head)
/// are in the model directory: missing ones are one error naming them all and the command that
/// fetches them, or (`fetch_first`) they are fetched by the host first.
pub fn require(
    detectors: &[String],
    classifier: Option<&str>,
    bird_head: bool,
    fetch_first: bool,
    progress: bool,
    hooks: &mut dyn Hooks,
) -> Result<(), CliError> {
    let folder = crate::manifest::model_dir();
    let gone = fetch::missing(detectors, classifier, bird_head, &[], &folder)
        .map_err(|e| cli_error(e.into()))?;
    if gone.is_empty() {
        return Ok(());
    }
    if !fetch_first {
        let arts: Vec<fetch::Artifact> = gone.iter().map(|(a, _)| a.clone()).collect();
        let command = fetch::fetch_command(&arts);
        return Err(CliError::Failed(fetch::missing_message(&gone, &command)));
    }
    let mut ids: Vec<String> = Vec::new();
    for (a, _) in &gone {
        if !ids.contains(&a.model_id) {
            ids.push(a.model_id.clone());
        }
    }
    hooks.fetch_models(&ids, progress).map_err(cli_error)
}

/// The built-in detector ids of detector spec `model` (none for a file or manifest).
pub fn detector_ids(model: Option<&str>) -> Result<Vec<String>, CliError> {
    match model {
        Some(m) => fetch::detector_ids(&[m]).map_err(|e| cli_error(e.into())),
        None => Ok(Vec::new()),
    }
}

/// ONNX Runtime's options for `device` and the int8 variants (`int8`).
pub fn session(device: &str, int8: bool) -> Result<SessionOptions, CliError> {
    let device = Device::parse(device).map_err(|e| cli_error(e.into()))?;
    Ok(SessionOptions {
        device,
        int8,
        ..SessionOptions::default()
    })
}

/// Loads detector `model` as `Detector(model, detection_threshold=..., manifest=...,
/// threads=..., device=..., precision=...)` does.
pub fn load_detectors(
    model: &str,
    threshold: Option<f64>,
    manifest: Option<&str>,
    threads: usize,
    session: SessionOptions,
) -> Result<Detectors, CliError> {
    let opts = LoadOptions {
        threshold: threshold.map(|t| t as f32),
        weights: Default::default(),
        manifest: manifest.map(str::to_string),
        session,
    };
    let mut run = RunOptions::default();
    if threads > 0 {
        run.threads = threads;
        run.window = 2 * threads;
    }
    Detectors::load(model, None, None, &opts, run).map_err(cli_error)
}

/// Whether a detector of the set has a person class.
pub fn finds_people(d: &Detectors) -> bool {
    let set = d.set.lock().unwrap_or_else(|p| p.into_inner());
    set.primary.manifest.finds_people()
        || set
            .secondary
            .as_ref()
            .is_some_and(|s| s.manifest.finds_people())
}

/// The ids of the set's models, primary first, joined with `+`.
pub fn model_names(d: &Detectors) -> String {
    let set = d.set.lock().unwrap_or_else(|p| p.into_inner());
    std::iter::once(set.primary.manifest.id.clone())
        .chain(set.secondary.as_ref().map(|s| s.manifest.id.clone()))
        .collect::<Vec<_>>()
        .join("+")
}

/// The inputs as paths.
pub fn paths(inputs: &[String]) -> Vec<PathBuf> {
    inputs.iter().map(PathBuf::from).collect()
}
