//! `run` and `detect` through [`crate::cli::main`] with a recording host: the checks made
//! before any image is processed (the old Python command line's messages and statuses), the
//! requests made of the host, and real runs of the embedded detector over the shared test
//! images (they need ONNX Runtime, `DEEPFAUNE_ORT_DYLIB`, and ../shared; without them they say
//! so and pass).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::{RayRequest, RayRun, RunHooks};
use crate::cli::{main, Io, Progress, EXIT_OK, EXIT_USAGE};
use crate::error::Error;
use crate::export::table::ResultRow;

/// A host that records what the command line writes and asks.
#[derive(Default)]
struct Recorder {
    out: Vec<String>,
    err: Vec<String>,
    /// The optional Python modules "installed".
    modules: Vec<&'static str>,
    ray: Vec<RayRequest>,
    fetched: Vec<Vec<String>>,
    excel: Vec<(usize, bool, PathBuf, bool)>,
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
    fn has_module(&mut self, name: &str) -> bool {
        self.modules.contains(&name)
    }
}

impl RunHooks for Recorder {
    fn run_on_ray(&mut self, request: &RayRequest) -> Result<RayRun, Error> {
        self.ray.push(request.clone());
        Err(Error::InvalidArgument("no cluster here".into()))
    }
    fn fetch_models(&mut self, ids: &[String], _: bool) -> Result<(), Error> {
        self.fetched.push(ids.to_vec());
        Ok(())
    }
    fn write_excel(
        &mut self,
        rows: &[ResultRow],
        videos: bool,
        path: &Path,
        csv_safe: bool,
    ) -> Result<(), Error> {
        self.excel
            .push((rows.len(), videos, path.to_path_buf(), csv_safe));
        Ok(())
    }
}
impl crate::cli::admin::AdminHooks for Recorder {}
impl crate::cli::reid::ReidHooks for Recorder {}

/// Runs the command line; its status and the recorder.
fn cli(args: &[&str], modules: &[&'static str]) -> (i32, Recorder) {
    let mut r = Recorder {
        modules: modules.to_vec(),
        ..Recorder::default()
    };
    let argv: Vec<OsString> = args.iter().map(OsString::from).collect();
    let status = main(&argv, &mut r);
    (status, r)
}

/// The one line of a usage error (status 2), without its prefix.
fn usage(args: &[&str], modules: &[&'static str]) -> String {
    let (status, r) = cli(args, modules);
    assert_eq!(status, EXIT_USAGE, "{args:?}: {:?}", r.err);
    assert_eq!(r.err.len(), 1, "{args:?}: {:?}", r.err);
    r.err[0]
        .strip_prefix("deepfaune-rs: error: ")
        .unwrap_or_else(|| panic!("{:?}", r.err))
        .to_string()
}

/// A temporary folder with one (empty) image, and a path for the table in another folder.
fn scene() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("cam")).unwrap();
    std::fs::write(dir.path().join("cam/a.jpg"), b"").unwrap();
    let s = |p: &str| dir.path().join(p).to_string_lossy().into_owned();
    let (input, table) = (s("cam"), s("t.csv"));
    (dir, input, table)
}

#[test]
fn inputs_and_outputs_are_checked_before_any_image() {
    let (dir, cam, table) = scene();
    let missing = dir.path().join("nope").to_string_lossy().into_owned();
    assert_eq!(
        usage(&["run", &missing, "-o", &table], &[]),
        format!("{missing}: no such file or folder")
    );
    // A folder name swallowed by --disable gets the hint.
    assert_eq!(
        usage(&["run", &missing, "-o", &table, "--disable", "badger"], &[]),
        format!("{missing}: no such file or folder (several classes to --disable: --disable a,b)")
    );
    assert_eq!(
        usage(&["detect", &cam, "-o", "r.csv"], &[]),
        "-o r.csv: give a file name ending in .json"
    );
    assert_eq!(
        usage(&["run", &cam, "-o", "r.json"], &[]),
        "-o r.json: give a file name ending in .csv or .xlsx"
    );
    let xlsx = dir.path().join("t.xlsx").to_string_lossy().into_owned();
    assert_eq!(
        usage(&["run", &cam, "-o", &xlsx], &[]),
        "-o .xlsx needs openpyxl: pip install 'deepfaune-rs[excel]' (or write .csv)"
    );
    assert_eq!(
        usage(&["run", &cam, "-o", &table, "--json", &table], &[]),
        format!("--json {table}: give a file name ending in .json")
    );
    let image = dir.path().join("cam/a.jpg").to_string_lossy().into_owned();
    assert_eq!(
        usage(&["run", &cam, "-o", &table, "--camtrap-dp", &image], &[]),
        format!("--camtrap-dp {image}: is a file; give a folder")
    );
    let deep = dir.path().join("x/y").to_string_lossy().into_owned();
    assert_eq!(
        usage(&["run", &cam, "-o", &table, "--sort-into", &deep], &[]),
        format!(
            "--sort-into {deep}: folder {} does not exist; create it first",
            dir.path().join("x").display()
        )
    );
    for option in ["--deployments", "--camtrap-metadata", "--detections"] {
        assert_eq!(
            usage(&["run", &cam, "-o", &table, option, &missing], &[]),
            format!("{option} {missing}: no such file")
        );
    }
    assert_eq!(
        usage(&["run", &cam, "-o", &table, "--corrections", &missing], &[]),
        format!(
            "--corrections {missing}: no such file (the journal the review page writes is \
             RESULTS.corrections.jsonl)"
        )
    );
    assert_eq!(
        usage(
            &["run", &cam, &cam, "-o", &table, "--detections", &image],
            &[]
        ),
        "with --detections, give the one folder its paths are relative to"
    );
}

#[test]
fn numbers_and_choices_are_refused_with_the_old_messages() {
    let (_dir, cam, table) = scene();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", cam.as_str(), "-o", table.as_str()];
        args.extend_from_slice(extra);
        usage(&args, &[])
    };
    assert!(run(&["--maxlag", "-5"]).contains("-5 must be a number of seconds >= 0"));
    assert!(run(&["--threshold", "1.5"]).contains("1.5 is outside 0..1"));
    assert!(run(&["--detection-threshold", "-0.1"]).contains("-0.1 is outside 0..1"));
    assert!(run(&["--threshold", "nan"]).contains("nan is outside 0..1"));
    let line = run(&["--language", "xx"]);
    let choices = "'en', 'fr', 'it', 'de', 'es', 'no', 'se', 'pt', 'sv'";
    let says = format!("invalid choice: 'xx' (choose from {choices})");
    assert!(line.contains(&says) && line.ends_with("--help)"), "{line}");
    assert_eq!(
        run(&["--threshold", "0.5", "--score-threshold", "0.5"]),
        "give --score-threshold or --threshold (its old name), not both"
    );
}

#[test]
fn ray_options_are_checked_and_handed_to_the_host() {
    let (_dir, cam, table) = scene();
    let base = ["run", cam.as_str(), "-o", table.as_str()];
    let with = |extra: &[&str], modules: &[&'static str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        usage(&args, modules)
    };
    assert_eq!(
        with(&["--checkpoint-dir", &cam], &[]),
        "--checkpoint-dir goes with --ray ADDRESS (on one machine, use --resume)"
    );
    assert_eq!(
        with(&["--ray", "auto", "--resume"], &[]),
        "--ray runs detection itself: no --detections; --checkpoint-dir DIR, not --resume"
    );
    assert_eq!(
        with(&["--ray", "auto", "--actors", "0"], &[]),
        "--actors must be at least 1"
    );
    assert_eq!(
        with(&["--ray", "auto"], &[]),
        "--ray needs Ray Data: pip install 'deepfaune-rs[ray]'"
    );
    // With Ray installed the run is the host's (int8: no weights check before).
    let mut args = base.to_vec();
    args.extend_from_slice(&[
        "--ray",
        "auto",
        "--actors",
        "2",
        "--int8",
        "--disable",
        "badger,fox",
        "--disable",
        "cat",
        "--maxlag",
        "20",
        "--no-progress",
    ]);
    let (status, r) = cli(&args, &["ray"]);
    assert_eq!(status, EXIT_USAGE, "{:?}", r.err);
    assert_eq!(
        r.err,
        ["deepfaune-rs: error: invalid argument: no cluster here"]
    );
    assert_eq!(
        r.ray,
        [RayRequest {
            inputs: vec![cam.clone()],
            detector: Some("DFbsMDS".into()),
            detection_threshold: None,
            classifier: "deepfaune-v15".into(),
            classifier_manifest: None,
            score_threshold: None,
            maxlag_s: 20.0,
            language: "en".into(),
            disabled_classes: vec!["badger".into(), "fox".into(), "cat".into()],
            bird_head: false,
            device: "cpu".into(),
            precision: "int8".into(),
            address: "auto".into(),
            actors: 2,
            checkpoint_dir: None,
            keep_embeddings: false,
            progress: false,
        }]
    );
}

#[test]
fn help_and_unknown_models_are_one_answer() {
    let (status, r) = cli(&["run", "--help"], &[]);
    assert_eq!(status, EXIT_OK);
    assert!(r.out[0].contains("the whole DeepFaune pipeline: species, sequences, table"));
    assert!(r.out[0].contains("--json-rules"));
    let (_dir, cam, _) = scene();
    let json = format!("{cam}/../d.json");
    let line = usage(&["detect", &cam, "-o", &json, "--model", "md-lit"], &[]);
    assert!(
        line.contains("unknown model 'md-lit'") && line.contains("md-lite"),
        "{line}"
    );
}

// The tests below run ONNX models.

/// `../shared/<path>` (or under `DEEPFAUNE_SHARED`, the images under `DEEPFAUNE_TESTDATA`).
fn shared(path: &str) -> PathBuf {
    if let (Some(d), Some(rest)) = (
        std::env::var_os("DEEPFAUNE_TESTDATA"),
        path.strip_prefix("testdata/"),
    ) {
        return PathBuf::from(d).join(rest);
    }
    std::env::var_os("DEEPFAUNE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
        .join(path)
}

fn runtime_and_images() -> bool {
    if let Err(e) = crate::runtime::environment() {
        eprintln!("skipped: {e}");
        return false;
    }
    let ok = shared("testdata/buow").is_dir()
        && shared("models/pixel_classifier_182_c38.onnx").is_file();
    if !ok {
        eprintln!("skipped: ../shared/testdata or ../shared/models missing");
    }
    ok
}

/// The JPEG files of `folder` (DeepFaune reads them all), counted by listing it.
fn jpegs(folder: &Path) -> usize {
    std::fs::read_dir(folder)
        .unwrap()
        .filter(|e| {
            let name = e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .to_lowercase();
            name.ends_with(".jpg") || name.ends_with(".jpeg")
        })
        .count()
}

#[test]
fn detect_writes_megadetector_json_and_counts_its_categories() {
    if !runtime_and_images() {
        return;
    }
    let folder = shared("testdata/buow");
    let n = jpegs(&folder);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("md.json");
    let (status, r) = cli(
        &[
            "detect",
            folder.to_str().unwrap(),
            "-o",
            json.to_str().unwrap(),
            "--no-progress",
        ],
        &[],
    );
    assert_eq!(status, EXIT_OK, "{:?}", r.err);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), n);
    // The summary's counts, from the file: an image with a kept box is an animal (md-lite's
    // only class is "1"), the others empty.
    let animals = images
        .iter()
        .filter(|im| {
            im["detections"]
                .as_array()
                .is_some_and(|d| d.iter().any(|b| b["category"] == "1"))
        })
        .count();
    let mut counts = vec![];
    if animals > 0 {
        counts.push(format!("animal: {animals}"));
    }
    if n > animals {
        counts.push(format!("empty: {}", n - animals));
    }
    assert_eq!(
        r.err,
        [format!(
            "{n} images ({}) -> {}",
            counts.join(", "),
            json.display()
        )]
    );
}

#[test]
fn run_writes_the_table_skips_its_own_outputs_and_resumes() {
    if !runtime_and_images() {
        return;
    }
    // The images in a folder of their own, the outputs written inside it: the walk passes
    // over them (no failure rows), the second run resumes from the checkpoint.
    let dir = tempfile::tempdir().unwrap();
    let cam = dir.path().join("cam");
    std::fs::create_dir(&cam).unwrap();
    let source = shared("testdata/buow");
    let mut names: Vec<_> = std::fs::read_dir(&source)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().to_lowercase().ends_with(".jpg"))
        .collect();
    names.sort();
    for name in names.iter().take(3) {
        std::fs::copy(source.join(name), cam.join(name)).unwrap();
    }
    let table = cam.join("t.csv");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-pixel-c38.toml");
    let classifier = shared("models/pixel_classifier_182_c38.onnx");
    let args = [
        "run",
        cam.to_str().unwrap(),
        "-o",
        table.to_str().unwrap(),
        "--detector",
        "md-lite",
        "--classifier",
        classifier.to_str().unwrap(),
        "--classifier-manifest",
        manifest.to_str().unwrap(),
        "--resume",
        "--no-progress",
    ];
    let (status, r) = cli(&args, &[]);
    assert_eq!(status, EXIT_OK, "{:?}", r.err);
    let first = std::fs::read_to_string(&table).unwrap();
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines.len(), 4, "{first}");
    assert!(lines[0].starts_with("filename,date,seqnum,predictionbase,scorebase,prediction"));
    // One row per image (in DeepFaune's order: by sequence, then name).
    for name in names.iter().take(3) {
        let name = name.to_string_lossy();
        assert_eq!(
            lines.iter().filter(|l| l.contains(&*name)).count(),
            1,
            "{first}"
        );
    }
    assert!(cam.join("t.csv.checkpoint").is_file());
    let summary = &r.err[0];
    assert!(summary.starts_with("3 images, "), "{summary}");
    assert!(
        summary.ends_with(&format!(" 0 videos -> {}", table.display())),
        "{summary}"
    );
    let (status, again) = cli(&args, &[]);
    assert_eq!((status, &again.err), (EXIT_OK, &r.err));
    assert_eq!(std::fs::read_to_string(&table).unwrap(), first);
    // The table as XLSX goes to the host, with the same rows (the images given by name).
    let xlsx = dir.path().join("t.xlsx");
    let images: Vec<String> = names
        .iter()
        .take(3)
        .map(|n| cam.join(n).to_string_lossy().into_owned())
        .collect();
    let mut args: Vec<&str> = vec!["run"];
    args.extend(images.iter().map(String::as_str));
    args.extend([
        "-o",
        xlsx.to_str().unwrap(),
        "--csv-safe",
        "--detector",
        "md-lite",
    ]);
    args.extend(["--classifier", classifier.to_str().unwrap()]);
    args.extend([
        "--classifier-manifest",
        manifest.to_str().unwrap(),
        "--no-progress",
    ]);
    let (status, r) = cli(&args, &["openpyxl"]);
    assert_eq!(status, EXIT_OK, "{:?}", r.err);
    assert_eq!(r.excel, [(3, false, xlsx.clone(), true)]);
}
