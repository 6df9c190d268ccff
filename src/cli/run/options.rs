//! The options of `detect` and `run`: names, defaults, choices and help texts, those of the
//! Python command line they replace.

use clap::{value_parser, Arg, ArgAction, Command};

use crate::cli::{flag, fraction, renamed, seconds};
use crate::manifest::classifier::{DEFAULT_CLASSIFIER, LANGUAGES, LANGUAGE_ALIASES};

/// `--fetch`'s help.
pub const FETCH_HELP: &str = "download, check and convert the official weights the run needs \
     when they are missing (otherwise a missing model is an error naming the `deepfaune-rs \
     models fetch` command)";

/// `--device`'s help.
pub const DEVICE_HELP: &str = "where the models run: cpu (default), cuda, directml, coreml, or \
     auto (the first accelerator of the installed ONNX Runtime build); `deepfaune-rs devices` \
     lists them";

/// An option taking a value.
fn value(id: &'static str, help: &'static str) -> Arg {
    Arg::new(id).long(id).help(help)
}

/// A value among `valid`, refused as argparse did: `invalid choice: 'x' (choose from 'a', 'b')`.
fn choice(valid: Vec<&'static str>) -> impl Fn(&str) -> Result<String, String> + Clone {
    move |text: &str| {
        if valid.contains(&text) {
            return Ok(text.to_string());
        }
        let listed: Vec<String> = valid.iter().map(|v| format!("'{v}'")).collect();
        Err(format!(
            "invalid choice: '{text}' (choose from {})",
            listed.join(", ")
        ))
    }
}

/// Numbers given to options `ids` may be negative (`--maxlag -5` is then refused by its parser
/// with its own message, not taken for an option).
fn negatives(cmd: Command, ids: &[&'static str]) -> Command {
    ids.iter().fold(cmd, |cmd, id| {
        cmd.mut_arg(*id, |a| a.allow_negative_numbers(true))
    })
}

/// The image/video inputs.
fn inputs() -> Arg {
    Arg::new("inputs")
        .num_args(1..)
        .required(true)
        .help("image/video files or folders (walked recursively)")
}

/// `--device` and `--int8`.
fn speed_options(cmd: Command) -> Command {
    cmd.arg(value("device", DEVICE_HELP).default_value("cpu"))
        .arg(flag(
            "int8",
            "use the models' int8 variants (made by `deepfaune-rs models quantize ID`; check \
             them on your images with `deepfaune-rs agreement FOLDER`)",
        ))
}

/// `detect`.
pub fn detect() -> Command {
    let cmd = Command::new("detect")
        .about("detect animals, people and vehicles; write MegaDetector JSON")
        .arg(inputs())
        .arg(
            value("output", "MegaDetector batch JSON 1.6 to write")
                .short('o')
                .required(true),
        )
        .arg(value(
            "model",
            "built-in id (md-lite = embedded default, df, mds, mdr), a DeepFaune mode (DF, MDS, \
             MDR, DFbsMDS, DFMDS), a manifest .toml, or an .onnx file",
        )
        .default_value("md-lite"));
    let cmd = renamed(
        cmd,
        "--detection-threshold",
        "--threshold",
        "detector confidence (0-1)",
        fraction,
    )
    .arg(value("manifest", "manifest for a bare .onnx model"))
    .arg(
        value("threads", "decode threads (default: cores)")
            .value_parser(value_parser!(usize))
            .default_value("0"),
    )
    .arg(flag("no-progress", "no progress bar"))
    .arg(flag("fetch", FETCH_HELP));
    let cmd = negatives(
        cmd,
        &["detection-threshold", "deprecated-threshold", "threads"],
    );
    speed_options(cmd)
}

/// `run`.
pub fn run() -> Command {
    let languages: Vec<&'static str> = LANGUAGES
        .iter()
        .copied()
        .chain(LANGUAGE_ALIASES.iter().map(|(a, _)| *a))
        .collect();
    let cmd = Command::new("run")
        .about("the whole DeepFaune pipeline: species, sequences, table")
        .arg(inputs())
        .arg(
            value("output", "table to write: .csv or .xlsx")
                .short('o')
                .required(true),
        )
        .arg(value(
            "detector",
            "detector or mode (default DFbsMDS; none with --detections)",
        ))
        .arg(
            value(
                "detections",
                "someone else's boxes as the detection step: a MegaDetector batch file \
                 (MegaDetector v5/v1000, SpeciesNet, ours) whose images are classified and \
                 sequenced without detecting again; its relative paths are relative to the one \
                 input folder",
            )
            .value_name("JSON"),
        )
        .arg(
            value(
                "json-rules",
                "with --detections: the package's rules (default) or DeepFaune's PredictorJSON \
                 exactly (most confident box of any category decides, no EXIF rotation, ...)",
            )
            .value_parser(choice(vec!["corrected", "deepfaune"]))
            .default_value("corrected"),
        );
    let cmd = renamed(
        cmd,
        "--detection-threshold",
        "--detector-threshold",
        "detector confidence (0-1)",
        fraction,
    )
    .arg(
        value(
            "classifier",
            "id (default deepfaune-v15), manifest .toml or .onnx",
        )
        .default_value(DEFAULT_CLASSIFIER),
    )
    .arg(value("classifier-manifest", "manifest for a bare .onnx"));
    let cmd = renamed(
        cmd,
        "--score-threshold",
        "--threshold",
        "class score below it = undefined (0-1; default: the classifier's, 0.8 for DeepFaune)",
        fraction,
    )
    .arg(
        value("maxlag", "seconds between images of a sequence")
            .value_parser(seconds)
            .default_value("10"),
    )
    .arg(
        value(
            "language",
            "labels' language; no, se (or sv) and pt need DeepFaune 1.5's classifier",
        )
        .value_parser(choice(languages))
        .default_value("en"),
    )
    .arg(
        value(
            "disable",
            "classes to ignore: comma-separated, or the option repeated",
        )
        .value_name("CLASS[,CLASS...]")
        .action(ArgAction::Append),
    )
    .arg(flag("bird-head", "refine birds into 8 groups"))
    .arg(value(
        "json",
        "also write MegaDetector batch JSON (with species) here",
    ))
    .arg(value("camtrap-dp", "write a Camtrap DP package").value_name("FOLDER"))
    .arg(
        value(
            "deployments",
            "Camtrap DP deployments (deploymentID = folder name, latitude, longitude, ...)",
        )
        .value_name("CSV"),
    )
    .arg(
        value(
            "timezone",
            "camera clocks' UTC offset for Camtrap DP: +02:00, or --timezone=-05:00 when negative",
        )
        .allow_hyphen_values(true),
    )
    .arg(
        value(
            "camtrap-metadata",
            "Camtrap DP package metadata (title, contributors, project: title, samplingDesign, \
             captureMethod)",
        )
        .value_name("JSON"),
    )
    .arg(value("sort-into", "sort images and videos into folders").value_name("DEST"))
    .arg(
        Arg::new("sort-mode")
            .long("sort-mode")
            .value_parser(choice(vec!["copy", "move", "symlink"]))
            .default_value("copy"),
    )
    .arg(flag("blur-humans", "blur people in sorted copies"))
    .arg(flag(
        "resume",
        "record progress in OUTPUT.checkpoint and resume from it after an interruption",
    ))
    .arg(
        value(
            "embeddings",
            "also write the classifier's crop embeddings (for re-identification) to this .npz \
             (arrays filename and embedding; not kept otherwise, which saves memory and \
             checkpoint space)",
        )
        .value_name("NPZ"),
    )
    .arg(flag(
        "csv-safe",
        "put a single quote in front of table cells a spreadsheet would run as formulas (names \
         starting with =, +, -, @); DeepFaune writes them unchanged",
    ))
    .arg(
        value(
            "ray",
            "run on a Ray cluster (extra [ray]): 'auto', HOST:PORT or ray://HOST:PORT; one work \
             unit per folder, the same outputs as one machine",
        )
        .value_name("ADDRESS"),
    )
    .arg(
        value("actors", "with --ray: pipelines run at once")
            .value_parser(value_parser!(i64))
            .allow_negative_numbers(true)
            .default_value("1"),
    )
    .arg(
        value(
            "checkpoint-dir",
            "with --ray: one checkpoint per folder here (storage every node sees); a job started \
             again skips the folders already done",
        )
        .value_name("DIR"),
    )
    .arg(
        Arg::new("no-progress")
            .long("no-progress")
            .action(ArgAction::SetTrue),
    )
    .arg(flag("fetch", FETCH_HELP))
    .arg(
        value(
            "corrections",
            "apply a corrections journal (what `deepfaune-rs review` writes) before writing the \
             outputs",
        )
        .value_name("JSONL"),
    );
    let cmd = negatives(
        cmd,
        &[
            "detection-threshold",
            "deprecated-detector-threshold",
            "score-threshold",
            "deprecated-threshold",
            "maxlag",
        ],
    );
    speed_options(cmd)
}
