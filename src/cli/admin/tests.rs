//! The admin commands through `crate::cli::main` with a recording host. Expected texts are the
//! old Python command line's (`git show main:python/deepfaune_rs/cli.py`); hashes come from
//! `sha2` over the files, separately from the converter's own.

use std::ffi::OsString;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::super::{main, reid, run, Io, Progress, EXIT_ERROR, EXIT_OK, EXIT_USAGE};
use super::{AdminHooks, Quantize, Review};
use crate::cli::CliError;
use crate::results::agreement::{ClassificationAgreement, DetectionAgreement, Report};

/// A host that records what the command line writes and what it asks of the hooks.
#[derive(Default)]
struct Recorder {
    out: Vec<String>,
    err: Vec<String>,
    quantized: Vec<Quantize>,
    reviewed: Vec<Review>,
    /// Ctrl-C pressed.
    stop: bool,
}

impl Io for Recorder {
    fn out(&mut self, text: &str) {
        self.out.push(text.into());
    }
    fn err(&mut self, text: &str) {
        self.err.push(text.into());
    }
    fn progress(&mut self, _: &str, _: &str) -> Option<Progress> {
        None
    }
    fn has_module(&mut self, _: &str) -> bool {
        false
    }
}
impl run::RunHooks for Recorder {}
impl reid::ReidHooks for Recorder {}

impl AdminHooks for Recorder {
    fn interrupted(&mut self) -> bool {
        self.stop
    }
    fn sleep(&mut self, _: f64) -> Result<(), crate::error::Error> {
        Ok(())
    }
    fn quantize(&mut self, q: &Quantize) -> Result<Vec<(String, String)>, CliError> {
        self.quantized.push(q.clone());
        Ok(vec![("method".into(), "static".into())])
    }
    fn review(&mut self, r: &Review) -> Result<(), CliError> {
        self.reviewed.push(r.clone());
        Ok(())
    }
}

fn cli(args: &[&str], host: &mut Recorder) -> i32 {
    let argv: Vec<OsString> = args.iter().map(OsString::from).collect();
    main(&argv, host)
}

fn sha_of(path: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/convert")
        .join(name)
}

fn ort_ready() -> bool {
    crate::runtime::DYLIB_ENV_VARS
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

#[test]
fn convert_a_missing_file_is_usage_and_junk_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pt");
    let missing = missing.to_str().unwrap();
    let mut r = Recorder::default();
    assert_eq!(cli(&["convert", missing], &mut r), EXIT_USAGE);
    assert_eq!(
        r.err,
        [format!(
            "deepfaune-rs: error: {missing}: no such file (give the path of a .pt checkpoint)"
        )]
    );
    let junk = dir.path().join("junk.pt");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    let mut r = Recorder::default();
    assert_eq!(
        cli(&["convert", junk.to_str().unwrap()], &mut r),
        EXIT_ERROR
    );
    assert_eq!(r.err.len(), 1, "{:?}", r.err);
    let prefix = format!("deepfaune-rs: error: cannot convert {}: ", junk.display());
    assert!(r.err[0].starts_with(&prefix), "{:?}", r.err);
    assert!(r.err[0].ends_with("(is it a DeepFaune, ultralytics or YOLOv5 checkpoint?)"));
    assert!(!dir.path().join("junk.onnx").exists());
    let mut r = Recorder::default();
    assert_eq!(
        cli(&["convert", missing, "--kind", "nope"], &mut r),
        EXIT_USAGE
    );
    assert_eq!(r.err.len(), 1, "{:?}", r.err);
    // (Where to look is clap's usage context, which an invalid value does not carry: the line
    // ends with "(see deepfaune-rs --help)", src/cli/mod.rs's parse_error.)
    assert!(
        r.err[0].contains("'nope'") && r.err[0].contains("--kind"),
        "{:?}",
        r.err
    );
    assert!(r.err[0].ends_with("--help)"), "{:?}", r.err);
}

#[test]
fn convert_and_export_write_the_onnx_and_print_its_report() {
    if !ort_ready() {
        eprintln!("skipped: DEEPFAUNE_ORT_DYLIB not set");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("bird_head.pt");
    let out = dir.path().join("b.onnx");
    let mut r = Recorder::default();
    let args = [
        "convert",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    assert_eq!(cli(&args, &mut r), EXIT_OK, "{:?}", r.err);
    assert_eq!(r.out.len(), 6, "{:?}", r.out);
    assert_eq!(r.out[0], format!("output: {}", out.display()));
    assert_eq!(r.out[1], "kind: bird_head");
    assert_eq!(r.out[2], format!("sha256: {}", sha_of(&out)));
    assert_eq!(r.out[3], format!("source_sha256: {}", sha_of(&src)));
    assert_eq!(r.out[4], "converter_version: 1");
    assert!(r.out[5].starts_with("seconds: "), "{:?}", r.out);
    // export-detector is the same converter, told the kind: a bird head is refused.
    let mut r = Recorder::default();
    let args = [
        "export-detector",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    assert_eq!(cli(&args, &mut r), EXIT_ERROR);
    assert!(
        r.err[0].contains("holds a bird_head, not a detector"),
        "{:?}",
        r.err
    );
    let mut r = Recorder::default();
    // -o is required (the missing option's name is on clap's next line, which src/cli/mod.rs's
    // one-line parse_error drops).
    assert_eq!(cli(&["export-classifier", "x.pt"], &mut r), EXIT_USAGE);
    assert_eq!(r.err.len(), 1, "{:?}", r.err);
    assert!(r.err[0].ends_with("(see deepfaune-rs export-classifier --help)"));
}

#[test]
fn models_lists_every_file_and_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().to_str().unwrap();
    let mut r = Recorder::default();
    assert_eq!(cli(&["models", "--folder", folder], &mut r), EXIT_OK);
    assert_eq!(
        r.out[0],
        format!("model directory: {folder} (set DEEPFAUNE_RS_MODELS to change it)")
    );
    let md_lite = r.out.iter().find(|l| l.starts_with("md-lite ")).unwrap();
    let words: Vec<&str> = md_lite.split_whitespace().collect();
    assert_eq!(words[..3], ["md-lite", "detector", "embedded"]);
    let df = r.out.iter().position(|l| l.starts_with("df ")).unwrap();
    assert_eq!(r.out[df].split_whitespace().nth(2), Some("missing"));
    // The expected path on the next line, indented by 16.
    assert!(r.out[df + 1].starts_with(&format!("{:16}{folder}/", "")));
    assert!(r.out.iter().any(|l| l.starts_with("  + bird head")));
    let n = r.out.len();
    assert_eq!(
        r.out[n - 2],
        "states: embedded, missing, downloaded, converted, verified (deepfaune-rs models -h)"
    );
    assert_eq!(
        r.out[n - 1],
        "fetch DeepFaune's default setup: deepfaune-rs models fetch deepfaune"
    );
}

#[test]
fn models_fetch_an_unknown_target_is_one_usage_line_and_the_embedded_one_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().to_str().unwrap();
    let mut r = Recorder::default();
    let code = cli(&["models", "fetch", "nope", "--folder", folder], &mut r);
    assert_eq!(code, EXIT_USAGE);
    assert_eq!(r.err.len(), 1, "{:?}", r.err);
    assert!(r.err[0].starts_with("deepfaune-rs: error: ") && r.err[0].contains("'nope'"));
    let mut r = Recorder::default();
    let args = [
        "models",
        "fetch",
        "md-lite",
        "--folder",
        folder,
        "--no-progress",
    ];
    assert_eq!(cli(&args, &mut r), EXIT_OK, "{:?}", r.err);
    assert_eq!(r.out.len(), 1, "{:?}", r.out);
    let words: Vec<&str> = r.out[0].split_whitespace().collect();
    assert_eq!(words[..2], ["md-lite", "embedded"]);
    assert!(r.out[0].starts_with(&format!("{:<24} embedded   ", "md-lite")));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn quantize_checks_the_images_then_prints_what_the_host_wrote() {
    let mut r = Recorder::default();
    let code = cli(
        &["models", "quantize", "md-lite", "--images", "/no/such"],
        &mut r,
    );
    assert_eq!(code, EXIT_USAGE);
    assert_eq!(
        r.err,
        ["deepfaune-rs: error: /no/such: no such file or folder"]
    );
    assert!(r.quantized.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().to_str().unwrap();
    let mut r = Recorder::default();
    let args = [
        "models", "quantize", "md-lite", "--images", images, "--method", "static",
    ];
    assert_eq!(cli(&args, &mut r), EXIT_OK);
    assert_eq!(
        r.quantized,
        [Quantize {
            model: "md-lite".into(),
            images: vec![images.into()],
            method: Some("static".into()),
            sample: 64,
        }]
    );
    assert_eq!(r.out, ["method: static"]);
    let mut r = Recorder::default();
    assert_eq!(
        cli(&["models", "quantize", "x", "--method", "fast"], &mut r),
        EXIT_USAGE
    );
    assert_eq!(r.err.len(), 1);
}

fn report() -> Report {
    Report {
        detector: "md-lite".into(),
        classifier: None,
        detection: DetectionAgreement {
            images: 4,
            decision_agreement: 0.75,
            decision_changes: vec![("animal->empty".into(), 1)],
            boxes_compared: 3,
            best_box_iou_mean: 0.95,
            best_box_iou_min: 0.9,
            best_box_iou_ge_0_9: 1.0,
        },
        classification: None,
        fp32_seconds: 2.0,
        int8_seconds: 1.0,
    }
}

#[test]
fn agreement_checks_its_inputs_and_an_empty_sample_is_usage() {
    let mut r = Recorder::default();
    assert_eq!(cli(&["agreement", "/no/such"], &mut r), EXIT_USAGE);
    assert_eq!(
        r.err,
        ["deepfaune-rs: error: /no/such: no such file or folder"]
    );
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().to_str().unwrap();
    let mut r = Recorder::default();
    assert_eq!(
        cli(&["agreement", images, "--sample", "0"], &mut r),
        EXIT_USAGE
    );
    assert_eq!(
        r.err,
        [format!(
            "deepfaune-rs: error: invalid argument: no image files in {images}"
        )]
    );
    let mut r = Recorder::default();
    assert_eq!(
        cli(&["agreement", images, "--sample", "x"], &mut r),
        EXIT_USAGE
    );
    assert_eq!(r.err.len(), 1);
    assert!(r.out.is_empty());
}

#[test]
fn agreement_without_the_int8_variant_says_how_to_make_it() {
    if !ort_ready() {
        eprintln!("skipped: DEEPFAUNE_ORT_DYLIB not set");
        return;
    }
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/buow");
    if !shared.is_dir()
        || crate::manifest::model_dir()
            .join("md-lite-int8.toml")
            .exists()
    {
        eprintln!("skipped: no ../shared/testdata, or an int8 md-lite in the model directory");
        return;
    }
    let mut r = Recorder::default();
    let args = [
        "agreement",
        shared.to_str().unwrap(),
        "--sample",
        "1",
        "--detector",
        "md-lite",
    ];
    assert_eq!(
        cli(&[&args[..], &["--no-classifier"]].concat(), &mut r),
        EXIT_USAGE
    );
    assert_eq!(r.err.len(), 1, "{:?}", r.err);
    assert!(
        r.err[0].contains("deepfaune-rs models quantize md-lite"),
        "{:?}",
        r.err
    );
    assert!(r.out.is_empty());
}

#[test]
fn the_report_reads_as_the_python_one_did() {
    // Expected lines written by hand from format_report's f-strings on main.
    let mut r = report();
    assert_eq!(
        r.format(),
        "images compared            4 (detector md-lite)\n\
         decision agreement         75.0 %  changes: {'animal->empty': 1}\n\
         best-box IoU               mean 0.9500, min 0.9000, >= 0.9: 100.0 % (3 images with a \
         box in both)\n\
         seconds                    fp32 2.0, int8 1.0 (2.00x, including model loading)"
    );
    r.classifier = Some("deepfaune-v15".into());
    r.detection.decision_changes.clear();
    r.detection.best_box_iou_mean = f64::NAN;
    r.detection.best_box_iou_min = f64::NAN;
    r.detection.best_box_iou_ge_0_9 = f64::NAN;
    r.classification = Some(ClassificationAgreement {
        classified_both: 2,
        top1_agreement: 0.5,
        sequence_prediction_agreement: f64::NAN,
    });
    r.int8_seconds = 0.0;
    r.fp32_seconds = 1.25;
    let lines: Vec<String> = r.format().lines().map(String::from).collect();
    assert_eq!(
        lines[0],
        "images compared            4 (detector md-lite, classifier deepfaune-v15)"
    );
    assert_eq!(lines[1], "decision agreement         75.0 %");
    assert_eq!(
        lines[2],
        "best-box IoU               mean nan, min nan, >= 0.9: n/a (3 images with a box in both)"
    );
    assert_eq!(
        lines[3],
        "top-1 class agreement      50.0 % (2 images classified in both)"
    );
    assert_eq!(lines[4], "sequence prediction agr.   n/a");
    assert_eq!(
        lines[5],
        "seconds                    fp32 1.25, int8 0.0 (nanx, including model loading)"
    );
    // json.dump(indent=1) of the dict: NaN as Python writes it.
    let json = r.to_json();
    assert!(json.starts_with("{\n \"images\": 4,\n \"detector\": \"md-lite\",\n"));
    assert!(json.contains("\n \"decision_changes\": {},\n"));
    assert!(json.contains("\n \"best_box_iou_mean\": NaN,\n"));
    assert!(json.ends_with("\n \"sequence_prediction_agreement\": NaN\n}"));
}

#[test]
fn review_checks_its_results_and_hands_the_settings_to_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("r.csv");
    let t = table.to_str().unwrap().to_string();
    let mut r = Recorder::default();
    assert_eq!(cli(&["review", &t], &mut r), EXIT_USAGE);
    assert_eq!(
        r.err,
        [format!(
            "deepfaune-rs: error: {t}: no such file (give the table or the .checkpoint of a run)"
        )]
    );
    std::fs::write(&table, "filename\n").unwrap();
    let mut r = Recorder::default();
    let args = [
        "review",
        &t,
        "--detections",
        "md.json",
        "--port",
        "8123",
        "--open",
    ];
    assert_eq!(cli(&args, &mut r), EXIT_OK, "{:?}", r.err);
    assert_eq!(
        r.reviewed,
        [Review {
            results: t.clone(),
            checkpoint: false,
            open: true,
            port: 8123,
            detections: Some("md.json".into()),
            ..Default::default()
        }]
    );
    // With the checkpoint: given by its own name, the table's is used; --detections refused.
    let checkpoint = format!("{t}.checkpoint");
    std::fs::write(&checkpoint, "x").unwrap();
    let mut r = Recorder::default();
    assert_eq!(
        cli(&["review", &checkpoint, "--detections", "m.json"], &mut r),
        EXIT_USAGE
    );
    assert_eq!(
        r.err,
        [
            "deepfaune-rs: error: --detections: only for a table without its checkpoint (the \
          checkpoint has the boxes)"
        ]
    );
    let mut r = Recorder::default();
    let args = [
        "review",
        &checkpoint,
        "--threshold",
        "0.4",
        "--disable",
        "fox,badger",
        "--disable",
        "wolf",
        "--language",
        "sv",
        "--maxlag",
        "20",
        "--bird-head",
    ];
    assert_eq!(cli(&args, &mut r), EXIT_OK, "{:?}", r.err);
    assert_eq!(
        r.err,
        ["deepfaune-rs: warning: --threshold is deprecated, use --score-threshold"]
    );
    let got = &r.reviewed[0];
    assert_eq!((got.results.as_str(), got.checkpoint), (t.as_str(), true));
    assert_eq!(got.score_threshold, Some(0.4));
    assert_eq!(got.disable, ["fox", "badger", "wolf"]);
    assert_eq!(
        (got.language.as_deref(), got.maxlag),
        (Some("sv"), Some(20.0))
    );
    assert!(got.bird_head);
    let mut r = Recorder::default();
    assert_eq!(cli(&["review", &t, "--language", "xx"], &mut r), EXIT_USAGE);
    assert_eq!(r.err.len(), 1);
    assert!(r.reviewed.is_empty());
}

#[test]
fn devices_lists_cpu_first() {
    if !ort_ready() {
        eprintln!("skipped: DEEPFAUNE_ORT_DYLIB not set");
        return;
    }
    let mut r = Recorder::default();
    assert_eq!(cli(&["devices"], &mut r), EXIT_OK, "{:?}", r.err);
    assert_eq!(r.out.len(), 1);
    assert!(
        r.out[0] == "cpu" || r.out[0].starts_with("cpu, "),
        "{:?}",
        r.out
    );
}

#[test]
fn a_host_without_the_hooks_says_so() {
    #[derive(Default)]
    struct Bare(Vec<String>);
    impl Io for Bare {
        fn out(&mut self, _: &str) {}
        fn err(&mut self, text: &str) {
            self.0.push(text.into());
        }
        fn progress(&mut self, _: &str, _: &str) -> Option<Progress> {
            None
        }
        fn has_module(&mut self, _: &str) -> bool {
            false
        }
    }
    impl run::RunHooks for Bare {}
    impl reid::ReidHooks for Bare {}
    impl AdminHooks for Bare {}
    let mut b = Bare::default();
    let argv: Vec<OsString> = ["models", "quantize", "md-lite"]
        .iter()
        .map(OsString::from)
        .collect();
    assert_eq!(main(&argv, &mut b), EXIT_ERROR);
    assert_eq!(
        b.0,
        [
            "deepfaune-rs: error: this host cannot quantize a model (ONNX Runtime's quantisation \
          tools)"
        ]
    );
}

/// A file served at a `file://` URL (`name` in `dir/served`), as a built-in model's artifact
/// of `kind` without published checks.
fn served(dir: &Path, name: &str, data: &[u8], kind: &str) -> crate::fetch::Artifact {
    let served = dir.join("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::write(served.join(name), data).unwrap();
    crate::fetch::Artifact {
        model_id: "df".into(),
        role: "model".into(),
        kind: kind.into(),
        file: name.replace(".pt", ".onnx"),
        url: format!("file://{}/{name}", served.display()),
        url_format: "pt".into(),
        ..Default::default()
    }
}

#[test]
fn fetch_records_a_download_refuses_a_changed_one_and_takes_it_when_told() {
    use super::models::{fetch_artifacts, fetched_line, How};
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<u8> = (0..8000u32).map(|i| (i * 7 % 251) as u8).collect();
    let a = served(dir.path(), "w.pt", &first, "detector");
    let folder = dir.path().join("models");
    let mut how = How {
        progress: true,
        convert: false,
        accept_new_hash: false,
    };
    let mut r = Recorder::default();
    let done = fetch_artifacts(std::slice::from_ref(&a), &folder, how, &mut r).unwrap();
    let line = fetched_line(&done[0]);
    assert!(
        line.starts_with(&format!("df{} downloaded ", " ".repeat(22))),
        "{line}"
    );
    assert!(
        line.ends_with(&format!(" (downloaded from {})", a.url)),
        "{line}"
    );
    assert!(
        r.err.contains(&format!("downloading w.pt from {}", a.url)),
        "{:?}",
        r.err
    );
    assert_eq!(
        sha_of(&folder.join("w.pt")),
        format!("{:x}", Sha256::digest(&first))
    );
    // The publisher's file changes and the local copy is gone: refused in one line naming
    // the new hash and the option; taken with it.
    std::fs::remove_file(folder.join("w.pt")).unwrap();
    let second: Vec<u8> = first.iter().map(|b| b ^ 1).collect();
    served(dir.path(), "w.pt", &second, "detector");
    how.progress = false;
    let mut r = Recorder::default();
    let e = fetch_artifacts(std::slice::from_ref(&a), &folder, how, &mut r).unwrap_err();
    let text = CliError::from(e);
    let CliError::Failed(text) = text else {
        panic!("{text:?}")
    };
    let new = format!("{:x}", Sha256::digest(&second));
    assert!(
        text.contains(&new) && text.contains("--accept-new-hash"),
        "{text}"
    );
    assert!(!text.contains('\n'));
    assert!(!folder.join("w.pt").exists());
    assert!(r.err.is_empty(), "no lines without progress: {:?}", r.err);
    how.accept_new_hash = true;
    fetch_artifacts(std::slice::from_ref(&a), &folder, how, &mut r).unwrap();
    assert_eq!(std::fs::read(folder.join("w.pt")).unwrap(), second);
}

#[test]
fn fetch_converts_with_the_core_converter_and_says_so() {
    use super::models::{fetch_artifacts, fetched_line, How};
    if !ort_ready() {
        eprintln!("skipped: DEEPFAUNE_ORT_DYLIB not set");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pt = std::fs::read(fixture("bird_head.pt")).unwrap();
    let a = served(dir.path(), "bird_head.pt", &pt, "bird_head");
    let folder = dir.path().join("models");
    let how = How {
        progress: true,
        convert: true,
        accept_new_hash: false,
    };
    let mut r = Recorder::default();
    let done = fetch_artifacts(std::slice::from_ref(&a), &folder, how, &mut r).unwrap();
    let onnx = folder.join("bird_head.onnx");
    assert_eq!(
        fetched_line(&done[0]),
        format!(
            "df{} verified   {} (downloaded from {}, converted)",
            " ".repeat(22),
            onnx.display(),
            a.url
        )
    );
    assert_eq!(done[0].sha256.as_deref(), Some(sha_of(&onnx).as_str()));
    assert!(r
        .err
        .contains(&"converting bird_head.pt -> bird_head.onnx".to_string()));
    assert!(r
        .err
        .iter()
        .any(|l| l.starts_with("  bird_head.onnx: done in ")));
}

#[test]
fn ctrl_c_stops_a_download_and_a_comparison() {
    use super::models::{fetch_artifacts, How};
    let dir = tempfile::tempdir().unwrap();
    let a = served(dir.path(), "w.pt", &[7u8; 5000], "detector");
    let folder = dir.path().join("models");
    let how = How {
        progress: false,
        convert: false,
        accept_new_hash: false,
    };
    let mut r = Recorder {
        stop: true,
        ..Default::default()
    };
    let e = fetch_artifacts(std::slice::from_ref(&a), &folder, how, &mut r).unwrap_err();
    assert!(matches!(e, crate::error::Error::Cancelled), "{e:?}");
    assert!(!folder.join("w.pt").exists());
    // The comparison polls as each image is done: it stops at the first one (a bad file here).
    let images = dir.path().join("served");
    std::fs::write(images.join("x.jpg"), b"not a jpeg").unwrap();
    let mut r = Recorder {
        stop: true,
        ..Default::default()
    };
    let args = [
        "agreement",
        images.to_str().unwrap(),
        "--detector",
        "md-lite",
        "--no-classifier",
    ];
    if ort_ready() {
        assert_eq!(
            cli(&args, &mut r),
            super::super::EXIT_INTERRUPTED,
            "{:?}",
            r.err
        );
        assert_eq!(r.err, ["interrupted"]);
    }
}
