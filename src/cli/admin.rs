//! The command line's `models` (list, `fetch`, `quantize`), `convert`, `export-classifier` /
//! `export-detector`, `devices`, `agreement` and `review`: their arguments, checks, messages
//! and exit statuses. The work is the core's (`crate::fetch`, `crate::convert`,
//! `crate::runtime`, `crate::results::agreement`); the host is asked only for what the core
//! cannot do ([`AdminHooks`]).

mod models;
#[cfg(test)]
mod tests;

use std::path::Path;

use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};

use super::{check_inputs, flag, fraction, names, number, renamed, take_renamed};
use super::{CliError, CliResult, Hooks, EXIT_OK};
use crate::convert::run::convert;
use crate::error::Error;
use crate::error::ModelError;
use crate::manifest::classifier::{DEFAULT_CLASSIFIER, LANGUAGES, LANGUAGE_ALIASES};
use crate::pipeline::agreement::{agreement, AgreementOptions};

pub use models::{convert_download, fetch_models, STATES_HELP};

/// DeepFaune's default detector mode (`--detector` of `agreement`).
const DEFAULT_DETECTOR_MODE: &str = "DFbsMDS";

const DEVICE_HELP: &str = "where the models run: cpu (default), cuda, directml, coreml, or auto \
(the first accelerator of the installed ONNX Runtime build); `deepfaune-rs devices` lists them";

/// `models quantize`'s checked arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantize {
    /// A built-in id or a manifest.
    pub model: String,
    /// Calibration images (files or folders).
    pub images: Vec<String>,
    /// `static` or `dynamic` (None: the model kind's default).
    pub method: Option<String>,
    /// Calibration images used.
    pub sample: i64,
}

/// `review`'s checked arguments.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Review {
    /// The run's table (the `.checkpoint` suffix taken off).
    pub results: String,
    /// Whether `results.checkpoint` exists (the run can be re-decided).
    pub checkpoint: bool,
    /// Open the page in the browser.
    pub open: bool,
    /// The port (0: a free one).
    pub port: u16,
    /// The reviewer's name.
    pub by: Option<String>,
    /// A table's MegaDetector JSON (only without a checkpoint).
    pub detections: Option<String>,
    /// The settings that replace the checkpoint's (None: the run's).
    pub detector: Option<String>,
    /// See `detector`.
    pub classifier: Option<String>,
    /// See `detector`.
    pub classifier_manifest: Option<String>,
    /// See `detector`.
    pub score_threshold: Option<f64>,
    /// See `detector`.
    pub maxlag: Option<f64>,
    /// See `detector`.
    pub language: Option<String>,
    /// Classes left out of the decision.
    pub disable: Vec<String>,
    /// Use the bird head.
    pub bird_head: bool,
}

/// What these commands need from the host: ONNX Runtime's quantisation tools, the review page's
/// HTTP server, an interruptible pause. Every method has a default: a host that cannot do it
/// (the tests' recorder) says so as an error.
pub trait AdminHooks {
    /// Waits `seconds` between download attempts (the default blocks the thread; a host whose
    /// Ctrl-C must stop the pause does it itself).
    fn sleep(&mut self, seconds: f64) -> Result<(), Error> {
        std::thread::sleep(std::time::Duration::from_secs_f64(
            seconds.clamp(0.0, 3600.0),
        ));
        Ok(())
    }

    /// Whether the user asked to stop (Ctrl-C): polled while the core works.
    fn interrupted(&mut self) -> bool {
        false
    }

    /// Writes the int8 variant of a model; returns what it wrote as `(key, value)` lines.
    fn quantize(&mut self, q: &Quantize) -> Result<Vec<(String, String)>, CliError> {
        let _ = q;
        Err(cannot(
            "quantize a model (ONNX Runtime's quantisation tools)",
        ))
    }

    /// Serves the review page until it is stopped.
    fn review(&mut self, r: &Review) -> Result<(), CliError> {
        let _ = r;
        Err(cannot("serve the review page"))
    }
}

/// The error of a host that cannot do `what`.
fn cannot(what: &str) -> CliError {
    CliError::Failed(format!("this host cannot {what}"))
}

/// The subcommands of this module.
pub fn commands() -> Vec<Command> {
    let mut out = vec![models::command(), convert_command()];
    out.extend(export_commands());
    out.extend([agreement_command(), devices_command(), review_command()]);
    out
}

/// Runs subcommand `name` if it is one of this module's, else `None`.
pub fn dispatch(name: &str, m: &ArgMatches, hooks: &mut dyn Hooks) -> Option<CliResult> {
    Some(match name {
        "models" => models::run(m, hooks),
        "convert" => cmd_convert(m, hooks),
        "export-classifier" => cmd_export("classifier", m, hooks),
        "export-detector" => cmd_export("detector", m, hooks),
        "agreement" => cmd_agreement(m, hooks),
        "devices" => cmd_devices(hooks),
        "review" => cmd_review(m, hooks),
        _ => return None,
    })
}

/// The value of an optional string argument.
fn opt(m: &ArgMatches, id: &str) -> Option<String> {
    m.get_one::<String>(id).cloned()
}

/// The values of a repeated string argument.
fn many(m: &ArgMatches, id: &str) -> Vec<String> {
    m.get_many::<String>(id)
        .into_iter()
        .flatten()
        .cloned()
        .collect()
}

fn convert_command() -> Command {
    Command::new("convert")
        .about("convert a DeepFaune / ultralytics / YOLOv5 PyTorch checkpoint to ONNX (no torch)")
        .arg(Arg::new("checkpoint").value_name("FILE.pt").required(true))
        .arg(
            Arg::new("output")
                .short('o')
                .long("output")
                .help("ONNX to write (default FILE.onnx)"),
        )
        .arg(
            Arg::new("kind")
                .long("kind")
                .value_parser(["classifier", "bird_head", "detector"]),
        )
        .arg(
            Arg::new("size")
                .long("size")
                .value_parser(value_parser!(u32))
                .help("classifier input size (pixels)"),
        )
}

fn export_commands() -> Vec<Command> {
    ["classifier", "detector"]
        .into_iter()
        .map(|what| {
            Command::new(format!("export-{what}"))
                .about(format!(
                    "convert official {what} weights (.pt) to ONNX (the converter of `convert`, \
                     no torch)"
                ))
                .arg(Arg::new("weights").required(true))
                .arg(Arg::new("output").short('o').long("output").required(true))
        })
        .collect()
}

fn agreement_command() -> Command {
    Command::new("agreement")
        .about("run fp32 and int8 side by side on a sample of your images and report agreement")
        .long_about(
            "Runs the same sample of images at fp32 and with the int8 variants (`models \
             quantize`) and reports how often they agree: the per-image decision, the deciding \
             box's IoU, the top-1 class and the sequence prediction, and each run's seconds.",
        )
        .arg(
            Arg::new("inputs")
                .num_args(1..)
                .required(true)
                .help("image files or folders (walked recursively)"),
        )
        .arg(
            Arg::new("sample")
                .long("sample")
                .value_parser(value_parser!(i64))
                .default_value("200")
                .help("images, evenly spread (0 = all; default 200)"),
        )
        .arg(
            Arg::new("detector")
                .long("detector")
                .default_value(DEFAULT_DETECTOR_MODE)
                .help("detector or mode"),
        )
        .arg(
            Arg::new("classifier")
                .long("classifier")
                .default_value(DEFAULT_CLASSIFIER)
                .help("classifier id"),
        )
        .arg(flag("no-classifier", "compare the detector alone"))
        .arg(
            Arg::new("device")
                .long("device")
                .default_value("cpu")
                .help(DEVICE_HELP),
        )
        .arg(
            Arg::new("json")
                .long("json")
                .value_name("FILE")
                .help("also write the figures as JSON"),
        )
}

fn devices_command() -> Command {
    Command::new("devices").about("list the devices the installed ONNX Runtime build can use")
}

fn review_command() -> Command {
    let languages: Vec<&'static str> = LANGUAGES
        .iter()
        .copied()
        .chain(LANGUAGE_ALIASES.iter().map(|(a, _)| *a))
        .collect();
    let cmd = Command::new("review")
        .about("look at and correct a run's results in the browser (local page)")
        .long_about(
            "Starts a page on 127.0.0.1 (a free port, a secret token in the URL) to see the \
             sequences with their boxes, filter them, relabel and verify them with the keyboard, \
             and re-decide with other settings. Corrections go to RESULTS.corrections.jsonl; the \
             results are never edited. With the run's checkpoint (run ... --resume keeps \
             OUTPUT.checkpoint) everything works; a table alone (ours or DeepFaune's CSV/XLSX) is \
             shown and corrected but cannot be re-decided, and its boxes come from --detections.",
        )
        .arg(
            Arg::new("results")
                .required(true)
                .help("the run's table (.csv/.xlsx) or its .checkpoint"),
        )
        .arg(flag("open", "open the page in the browser"))
        .arg(
            Arg::new("port")
                .long("port")
                .value_parser(value_parser!(u16))
                .default_value("0")
                .help("port (default: a free one)"),
        )
        .arg(
            Arg::new("by")
                .long("by")
                .help("your name, recorded with each correction"),
        )
        .arg(
            Arg::new("detections")
                .long("detections")
                .value_name("JSON")
                .help("for a table without its checkpoint: the run's MegaDetector JSON, to draw boxes"),
        )
        .arg(
            Arg::new("detector")
                .long("detector")
                .help("default: the checkpoint's"),
        )
        .arg(
            Arg::new("classifier")
                .long("classifier")
                .help("default: the checkpoint's"),
        )
        .arg(Arg::new("classifier-manifest").long("classifier-manifest"));
    renamed(
        cmd,
        "--score-threshold",
        "--threshold",
        "default: the run's",
        fraction,
    )
    .arg(
        Arg::new("maxlag")
            .long("maxlag")
            .value_parser(number)
            .help("default: the run's"),
    )
    .arg(
        Arg::new("language")
            .long("language")
            .value_parser(clap::builder::PossibleValuesParser::new(languages)),
    )
    .arg(
        Arg::new("disable")
            .long("disable")
            .action(ArgAction::Append)
            .value_name("CLASS[,CLASS...]"),
    )
    .arg(flag("bird-head", ""))
}

/// The lines of a conversion's report, as the old command printed its dict.
fn conversion_lines(r: &crate::convert::run::Report) -> Vec<String> {
    vec![
        format!("output: {}", r.output.display()),
        format!("kind: {}", r.kind),
        format!("sha256: {}", r.sha256),
        format!("source_sha256: {}", r.source_sha256),
        format!("converter_version: {}", r.converter_version),
        format!("seconds: {:.1}", r.seconds),
    ]
}

/// Converts `checkpoint` (of `kind`, found from the file when None) and prints the report; a
/// missing file is a usage error; a checkpoint that cannot be converted, one line (status 1).
fn convert_file(
    checkpoint: &str,
    output: Option<&str>,
    kind: Option<&str>,
    size: Option<u32>,
    hooks: &mut dyn Hooks,
) -> CliResult {
    if !Path::new(checkpoint).is_file() {
        return Err(CliError::Usage(format!(
            "{checkpoint}: no such file (give the path of a .pt checkpoint)"
        )));
    }
    let report = convert(
        Path::new(checkpoint),
        output.map(Path::new),
        kind,
        size,
        true,
        None,
    );
    match report {
        Ok(r) => {
            for line in conversion_lines(&r) {
                hooks.out(&line);
            }
            Ok(EXIT_OK)
        }
        Err(Error::Cancelled) => Err(CliError::Interrupted),
        Err(e @ Error::Output { .. }) => Err(CliError::Failed(e.to_string())),
        Err(e) => Err(CliError::Failed(format!(
            "cannot convert {checkpoint}: {e} (is it a DeepFaune, ultralytics or YOLOv5 \
             checkpoint?)"
        ))),
    }
}

fn cmd_convert(m: &ArgMatches, hooks: &mut dyn Hooks) -> CliResult {
    let checkpoint = opt(m, "checkpoint").unwrap_or_default();
    let output = opt(m, "output");
    let kind = opt(m, "kind");
    let size = m.get_one::<u32>("size").copied();
    convert_file(&checkpoint, output.as_deref(), kind.as_deref(), size, hooks)
}

/// `export-classifier` / `export-detector`: the converter, of that kind.
fn cmd_export(kind: &str, m: &ArgMatches, hooks: &mut dyn Hooks) -> CliResult {
    let weights = opt(m, "weights").unwrap_or_default();
    let output = opt(m, "output");
    convert_file(&weights, output.as_deref(), Some(kind), None, hooks)
}

fn cmd_devices(hooks: &mut dyn Hooks) -> CliResult {
    let devices = crate::runtime::available_devices().map_err(Error::from)?;
    hooks.out(&devices.join(", "));
    Ok(EXIT_OK)
}

fn cmd_agreement(m: &ArgMatches, hooks: &mut dyn Hooks) -> CliResult {
    let inputs = many(m, "inputs");
    check_inputs(&inputs, false)?;
    let json = opt(m, "json");
    if let Some(path) = &json {
        super::check_output(path, "--json", &[], &inputs, &mut Vec::new())?;
    }
    let sample = *m.get_one::<i64>("sample").unwrap_or(&200);
    let opts = AgreementOptions {
        sample: usize::try_from(sample).ok().filter(|&n| n > 0),
        detector: opt(m, "detector").unwrap_or_else(|| DEFAULT_DETECTOR_MODE.into()),
        classifier: if m.get_flag("no-classifier") {
            None
        } else {
            opt(m, "classifier")
        },
        device: opt(m, "device").unwrap_or_else(|| "cpu".into()),
    };
    let paths: Vec<std::path::PathBuf> = inputs.iter().map(Into::into).collect();
    let mut stop = |_: usize, _: usize| {
        if hooks.interrupted() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    };
    let report = agreement(&paths, &opts, &mut stop).map_err(|e| match e {
        // No int8 variant yet: the user's to make (`models quantize`).
        e @ Error::Model(ModelError::WeightsMissing { .. }) => CliError::Usage(e.to_string()),
        e => e.into(),
    })?;
    hooks.out(&report.format());
    if let Some(path) = json {
        crate::fsio::write_atomic(Path::new(&path), report.to_json().as_bytes())?;
    }
    Ok(EXIT_OK)
}

fn cmd_review(m: &ArgMatches, hooks: &mut dyn Hooks) -> CliResult {
    let score_threshold = take_renamed(m, "--score-threshold", "--threshold", hooks)?;
    let given = opt(m, "results").unwrap_or_default();
    if !Path::new(&given).exists() {
        return Err(CliError::Usage(format!(
            "{given}: no such file (give the table or the .checkpoint of a run)"
        )));
    }
    let results = given
        .strip_suffix(".checkpoint")
        .unwrap_or(&given)
        .to_string();
    let checkpoint = Path::new(&format!("{results}.checkpoint")).is_file();
    let detections = opt(m, "detections");
    if checkpoint && detections.is_some() {
        return Err(CliError::Usage(
            "--detections: only for a table without its checkpoint (the checkpoint has the boxes)"
                .into(),
        ));
    }
    let r = Review {
        results,
        checkpoint,
        open: m.get_flag("open"),
        port: *m.get_one::<u16>("port").unwrap_or(&0),
        by: opt(m, "by"),
        detections,
        detector: opt(m, "detector"),
        classifier: opt(m, "classifier"),
        classifier_manifest: opt(m, "classifier-manifest"),
        score_threshold,
        maxlag: m.get_one::<f64>("maxlag").copied(),
        language: opt(m, "language"),
        disable: names(m, "disable"),
        bird_head: m.get_flag("bird-head"),
    };
    hooks.review(&r)?;
    Ok(EXIT_OK)
}
