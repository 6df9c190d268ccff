//! `deepfaune-rs detect`: MegaDetector batch JSON of images and folders.

use std::cell::RefCell;
use std::collections::BTreeMap;

use clap::ArgMatches;

use super::finish::{failure_lines, progress_with, skipped};
use super::models::{cli_error, detector_ids, load_detectors, paths, require, session};
use crate::cli::{check_inputs, check_output, report_failures, take_renamed, CliResult, Hooks};
use crate::pipeline::try_lock;
use crate::run::detect_files;

/// The names of the per-image category codes.
pub const CATEGORY_NAMES: [(u8, &str); 5] = [
    (0, "empty"),
    (1, "animal"),
    (2, "human"),
    (3, "vehicle"),
    (255, "failed"),
];

/// The name of category code `code`.
fn category_name(code: u8) -> &'static str {
    CATEGORY_NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("unknown", |(_, n)| n)
}

/// Runs `detect`.
pub fn detect(m: &ArgMatches, hooks: &mut dyn Hooks) -> CliResult {
    let threshold = take_renamed(m, "--detection-threshold", "--threshold", hooks)?;
    let inputs: Vec<String> = m
        .get_many::<String>("inputs")
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let output = m.get_one::<String>("output").cloned().unwrap_or_default();
    let model = m.get_one::<String>("model").cloned().unwrap_or_default();
    let int8 = m.get_flag("int8");
    let progress = !m.get_flag("no-progress");
    check_inputs(&inputs, false)?;
    check_output(&output, "-o", &[".json"], &inputs, &mut Vec::new())?;
    if !int8 {
        let ids = detector_ids(Some(&model))?;
        require(&ids, None, false, m.get_flag("fetch"), progress, hooks)?;
    }
    let threads = m.get_one::<usize>("threads").copied().unwrap_or(0);
    let session = session(m.get_one::<String>("device").map_or("cpu", |s| s), int8)?;
    let manifest = m.get_one::<String>("manifest").map(String::as_str);
    let detectors = load_detectors(&model, threshold, manifest, threads, session)?;
    let input_paths = paths(&inputs);
    let bar = if progress {
        hooks.progress("detect", "img")
    } else {
        None
    };
    let res = {
        let mut set = try_lock(&detectors.set).expect("a detector of this command alone");
        let host = RefCell::new(&mut *hooks);
        let mut hook = progress_with(bar, &host);
        detect_files(
            &input_paths,
            &mut set,
            &detectors.run,
            &mut hook,
            &[output.clone().into()],
        )
        .map_err(cli_error)?
    };
    // Names relative to the folder run; a file given by name keeps its path.
    let root = match input_paths.as_slice() {
        [p] if p.is_dir() => Some(p.as_path()),
        _ => None,
    };
    crate::export::megadetector::write(&res, output.as_ref(), root, detectors.threshold)
        .map_err(cli_error)?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for &c in &res.category {
        *counts.entry(category_name(c)).or_default() += 1;
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let failures = failure_lines(&res.failures);
    hooks.err(&format!(
        "{} images ({}){} -> {output}",
        res.len(),
        summary.join(", "),
        skipped(&res.failures)
    ));
    Ok(report_failures(&failures, hooks))
}
