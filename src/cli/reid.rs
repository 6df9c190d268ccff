//! The command line's `reid build|query|update|eval`: lynx-id's workflow.
//!
//! - `build`: embed labelled pictures (a CSV `filepath,lynx_id[,date,location]`) into a new
//!   knowledge base folder (`informations.csv` + `embeddings.safetensors`).
//! - `query`: embed new pictures and write lynx-id's results table (`individual_predicted`,
//!   `is_new`, `latest_picture_individual_predicted`, `location_closest_individual`,
//!   `neighbor_1..5`) plus their embeddings, as lynx-id's `infer` does.
//! - `update`: merge a (checked) results table and its embeddings into the base on `filepath`,
//!   as lynx-id's `knowledge_base` script does.
//! - `eval`: retrieval figures for labelled queries (top-1, CMC@k, mAP@k, "new"
//!   precision/recall), the threshold chosen on a validation split.
//!
//! Crops: MegaDetector-style columns `bbox_x,bbox_y,bbox_w,bbox_h` (normalised) in the CSV, else
//! `--boxes` (a MegaDetector batch JSON), else the whole image with `--whole-image`, else the
//! detector's animal crop (`--detector`). The tables, crops, embedding and files written are
//! `crate::reid`'s; this module holds the arguments, the checks and the messages.

use std::path::{Path, PathBuf};

use clap::{value_parser, Arg, ArgAction, ArgGroup, ArgMatches, Command};

use super::{
    flag, number, renamed, take_renamed, CliError, CliResult, Hooks, EXIT_FAILURES, EXIT_OK,
};
use crate::detect::loader::{load, LoadOptions};
use crate::error::Error;
use crate::reid::boxes::read_best_boxes;
use crate::reid::embed::{
    builtin_embedder, embedder_source, BoxFormat, CropBox, Embedder, EmbeddingManifest,
};
use crate::reid::evaluate::{default_thresholds, validation_split, Evaluation, ThresholdChoice};
use crate::reid::kb::{read_embeddings_file, KnowledgeBase};
use crate::reid::query::OpenSet;
use crate::reid::table::{
    build, embedded_rows, evaluate_rows, query_to_files, update_from_files, QueryOutputs, Table,
};
use crate::run::{detect_files, RunOptions};
use crate::runtime::SessionOptions;

/// The `reid` extra's Python modules, checked before a command runs: pandas (the tables'
/// `to_pandas`) and safetensors (the embedding files users read and write beside the commands).
pub const EXTRA_MODULES: [&str; 2] = ["pandas", "safetensors"];

/// What these commands need from the host. Every method has a default: a host that cannot do it
/// (the tests' recorder) says so as an error.
pub trait ReidHooks {
    /// numpy's `default_rng(seed).permutation(n)`: `eval`'s validation split is drawn as
    /// lynx-id draws it.
    fn permutation(&mut self, seed: u64, n: usize) -> Result<Vec<usize>, Error> {
        let _ = (seed, n);
        Err(Error::InvalidArgument(
            "this host cannot draw numpy's seeded permutation; give --distance-threshold".into(),
        ))
    }
}

/// The subcommands of this module: `reid` and its four commands.
pub fn commands() -> Vec<Command> {
    let build = embedding_args(
        Command::new("build")
            .about("create a knowledge base from labelled pictures")
            .arg(
                Arg::new("labels")
                    .required(true)
                    .help("CSV with filepath, lynx_id (optional date, location, bbox_*)"),
            )
            .arg(output(true, "knowledge base folder to write")),
    );
    let query = Command::new("query")
        .about("identify new pictures against a knowledge base")
        .arg(Arg::new("kb").required(true).help("knowledge base folder"))
        .arg(
            Arg::new("inputs")
                .required(true)
                .help("CSV with filepath (optional date, location, bbox_*) or a folder"),
        )
        .arg(output(true, "results CSV (lynx-id's columns)"))
        .arg(
            Arg::new("embeddings-output")
                .long("embeddings-output")
                .help("safetensors of the query embeddings"),
        )
        .arg(k_arg().help("neighbours per query"));
    let query = distance_threshold(query, "cosine distance for 'new'")
        .arg(flag("gaussian", "lynx-id's per-dimension Gaussian test"))
        // One way of telling a new individual: a threshold (under either name) or the Gaussian test.
        .group(
            ArgGroup::new("open-set")
                .args(["distance-threshold", "deprecated-threshold", "gaussian"])
                .multiple(false),
        )
        .arg(
            Arg::new("seed")
                .long("seed")
                .value_parser(value_parser!(u64))
                .help("seed for the ids of new individuals"),
        );
    let query = embedding_args(query);
    let update = Command::new("update")
        .about("merge checked results into a knowledge base")
        .arg(Arg::new("kb").required(true).help("knowledge base folder"))
        .arg(
            Arg::new("results")
                .required(true)
                .help("CSV with filepath and individual_predicted (or lynx_id)"),
        )
        .arg(
            Arg::new("embeddings")
                .required(true)
                .help("safetensors with the results' embeddings (key embeddings)"),
        )
        .arg(output(false, "write here instead of over the base"));
    let eval = Command::new("eval")
        .about("retrieval figures for labelled queries")
        .arg(Arg::new("kb").required(true).help("knowledge base folder"))
        .arg(
            Arg::new("labels")
                .required(true)
                .help("CSV with filepath, lynx_id ('New' or absent id = new)"),
        )
        .arg(k_arg());
    let eval = distance_threshold(eval, "fixed threshold (no sweep)")
        .arg(
            Arg::new("validation-fraction")
                .long("validation-fraction")
                .value_parser(number)
                .default_value("0.5"),
        )
        .arg(
            Arg::new("seed")
                .long("seed")
                .value_parser(value_parser!(u64))
                .default_value("0"),
        )
        .arg(
            Arg::new("query-embeddings")
                .long("query-embeddings")
                .help("precomputed safetensors, same order"),
        )
        .arg(output(false, "write the figures as JSON here"));
    let eval = embedding_args(eval);
    vec![Command::new("reid")
        .about("individual re-identification (lynx-id)")
        .subcommand_required(true)
        .subcommands([build, query, update, eval])]
}

/// `--distance-threshold` and its old name `--threshold` (see [`renamed`]).
fn distance_threshold(cmd: Command, help: &'static str) -> Command {
    renamed(cmd, "--distance-threshold", "--threshold", help, number)
}

/// `-o/--output`.
fn output(required: bool, help: &'static str) -> Arg {
    Arg::new("output")
        .short('o')
        .long("output")
        .required(required)
        .help(help)
}

/// `-k`, the neighbours per query (default 5).
fn k_arg() -> Arg {
    Arg::new("k")
        .short('k')
        .value_parser(value_parser!(usize))
        .default_value("5")
}

/// The options of the commands that embed pictures.
fn embedding_args(cmd: Command) -> Command {
    cmd.arg(
        Arg::new("model")
            .long("model")
            .default_value("yolox-embed")
            .help("embedding manifest id or .toml"),
    )
    .arg(
        Arg::new("weights")
            .long("weights")
            .help("the model's .onnx (else the model directory)"),
    )
    .arg(
        Arg::new("boxes")
            .long("boxes")
            .help("MegaDetector batch JSON with the animal boxes"),
    )
    .arg(
        Arg::new("detector")
            .long("detector")
            .default_value("md-lite")
            .help("detector for crops when no boxes"),
    )
    .arg(
        Arg::new("whole-image")
            .long("whole-image")
            .action(ArgAction::SetTrue)
            .help("embed whole images, no crops"),
    )
    .arg(
        Arg::new("batch-size")
            .long("batch-size")
            .value_parser(value_parser!(usize))
            .default_value("8"),
    )
}

/// Runs `reid <command>` if `name` is `reid`, else `None`.
pub fn dispatch(name: &str, m: &ArgMatches, hooks: &mut dyn Hooks) -> Option<CliResult> {
    if name != "reid" {
        return None;
    }
    let (command, m) = m.subcommand()?;
    Some(run(command, m, hooks))
}

/// The string value of option `id` (None when absent or not an option of this command).
fn text<'a>(m: &'a ArgMatches, id: &str) -> Option<&'a str> {
    m.try_get_one::<String>(id)
        .ok()
        .flatten()
        .map(String::as_str)
}

fn run(command: &str, m: &ArgMatches, hooks: &mut dyn Hooks) -> CliResult {
    let threshold = if m.try_contains_id("distance-threshold").is_ok() {
        take_renamed(m, "--distance-threshold", "--threshold", hooks)?
    } else {
        None
    };
    check(command, m, hooks)?;
    let result = match command {
        "build" => cmd_build(m, hooks),
        "query" => cmd_query(m, threshold, hooks),
        "update" => cmd_update(m, hooks),
        "eval" => cmd_eval(m, threshold, hooks),
        other => return Err(CliError::Usage(format!("unknown command reid {other}"))),
    };
    result.map_err(CliError::from)
}

/// The extras the command needs, and its inputs, before any picture is embedded.
fn check(command: &str, m: &ArgMatches, hooks: &mut dyn Hooks) -> Result<(), CliError> {
    let missing: Vec<&str> = EXTRA_MODULES
        .into_iter()
        .filter(|name| !hooks.has_module(name))
        .collect();
    if !missing.is_empty() {
        return Err(CliError::Usage(format!(
            "reid {command} needs {}: pip install 'deepfaune-rs[reid]'",
            missing.join(" and ")
        )));
    }
    let inputs = [
        "kb",
        "labels",
        "inputs",
        "results",
        "embeddings",
        "query-embeddings",
    ];
    for path in inputs.into_iter().filter_map(|id| text(m, id)) {
        if !Path::new(path).exists() {
            return Err(CliError::Usage(format!("{path}: no such file or folder")));
        }
    }
    if let Some(kb) = text(m, "kb").filter(|kb| !Path::new(kb).is_dir()) {
        return Err(CliError::Usage(format!(
            "{kb}: a knowledge base is a folder (reid build -o FOLDER makes one)"
        )));
    }
    Ok(())
}

/// The embeddings of a table's pictures, `[rows, dim]` row-major (NaN rows for the pictures
/// that failed, each printed on stderr), and whether any failed.
struct Embedded {
    values: Vec<f32>,
    dim: usize,
    failed: bool,
}

fn embed(table: &Table, m: &ArgMatches, hooks: &mut dyn Hooks) -> Result<Embedded, Error> {
    let model = text(m, "model").unwrap_or("yolox-embed");
    let manifest = if model.ends_with(".toml") {
        EmbeddingManifest::from_file(Path::new(model))?
    } else {
        builtin_embedder(model)?
    };
    let source = embedder_source(&manifest, text(m, "weights").map(PathBuf::from))?;
    let mut embedder = Embedder::new(manifest, &source, SessionOptions::default())?;
    let names = table.filepaths()?;
    let paths: Vec<PathBuf> = names.iter().map(PathBuf::from).collect();
    let md = text(m, "boxes")
        .map(|p| read_best_boxes(Path::new(p), "1", 0.0))
        .transpose()?;
    let crops = match table.crops(md.as_ref())? {
        Some(c) => c,
        None if m.get_flag("whole-image") => Vec::new(),
        None => detector_crops(text(m, "detector").unwrap_or("md-lite"), &paths)?,
    };
    let batch = m.get_one::<usize>("batch-size").copied().unwrap_or(8);
    let res = embedder.embed_files(&paths, &crops, batch)?;
    for (i, reason) in &res.failures {
        let path = names.get(*i).map(String::as_str).unwrap_or("?");
        hooks.err(&format!("  {path}: {reason}"));
    }
    Ok(Embedded {
        values: res.embeddings,
        dim: res.dim,
        failed: !res.failures.is_empty(),
    })
}

/// The detector's square animal crop of each picture, as DeepFaune classifies them (no crop:
/// a NaN box, so that picture fails).
fn detector_crops(detector: &str, paths: &[PathBuf]) -> Result<Vec<CropBox>, Error> {
    let mut set = load(detector, None, None, &LoadOptions::default())?;
    let res = detect_files(
        paths,
        &mut set,
        &RunOptions::default(),
        &mut |_, _| Ok(()),
        &[],
    )?;
    Ok(res
        .crop
        .iter()
        .map(|c| CropBox::Box {
            coords: if c.iter().all(|&v| v == -1) {
                [f64::NAN; 4]
            } else {
                c.map(f64::from)
            },
            format: BoxFormat::PixelsXyxy,
            square: false,
        })
        .collect())
}

fn status(failed: bool) -> i32 {
    if failed {
        EXIT_FAILURES
    } else {
        EXIT_OK
    }
}

/// `KnowledgeBase(N pictures, M individuals, dim=D)`, as the base's Python `repr` says it.
fn describe(kb: &KnowledgeBase) -> String {
    format!(
        "KnowledgeBase({} pictures, {} individuals, dim={})",
        kb.len(),
        kb.individuals().len(),
        kb.dim()
    )
}

fn required<'a>(m: &'a ArgMatches, id: &str) -> &'a str {
    text(m, id).unwrap_or_default()
}

fn cmd_build(m: &ArgMatches, hooks: &mut dyn Hooks) -> Result<i32, Error> {
    let table = Table::read(Path::new(required(m, "labels")))?;
    let e = embed(&table, m, hooks)?;
    let kb = build(&table, &e.values, e.dim)?;
    let output = required(m, "output");
    kb.save(Path::new(output))?;
    hooks.err(&format!("{} -> {output}", describe(&kb)));
    Ok(status(e.failed))
}

fn cmd_query(m: &ArgMatches, threshold: Option<f64>, hooks: &mut dyn Hooks) -> Result<i32, Error> {
    let kb = KnowledgeBase::load(Path::new(required(m, "kb")))?;
    let table = Table::read(Path::new(required(m, "inputs")))?;
    let e = embed(&table, m, hooks)?;
    let open = match (threshold, m.get_flag("gaussian")) {
        (Some(t), _) => OpenSet::Threshold(t as f32),
        (None, true) => OpenSet::Gaussian(Default::default()),
        (None, false) => OpenSet::Closed,
    };
    let output = required(m, "output");
    let outputs = QueryOutputs {
        results: PathBuf::from(output),
        embeddings: text(m, "embeddings-output").map(PathBuf::from),
    };
    let k = m.get_one::<usize>("k").copied().unwrap_or(5);
    let seed = m.get_one::<u64>("seed").copied();
    let s = query_to_files(&kb, &table, &e.values, k, &open, seed, &outputs)?;
    hooks.err(&format!(
        "{} queries, {} new individual(s) -> {output}",
        s.queries, s.new
    ));
    Ok(status(e.failed))
}

fn cmd_update(m: &ArgMatches, hooks: &mut dyn Hooks) -> Result<i32, Error> {
    let folder = required(m, "kb");
    let mut kb = KnowledgeBase::load(Path::new(folder))?;
    let (updated, added) = update_from_files(
        &mut kb,
        Path::new(required(m, "results")),
        Path::new(required(m, "embeddings")),
    )?;
    kb.save(Path::new(text(m, "output").unwrap_or(folder)))?;
    hooks.err(&format!(
        "{updated} updated, {added} added: {}",
        describe(&kb)
    ));
    Ok(EXIT_OK)
}

fn cmd_eval(m: &ArgMatches, threshold: Option<f64>, hooks: &mut dyn Hooks) -> Result<i32, Error> {
    let kb = KnowledgeBase::load(Path::new(required(m, "kb")))?;
    let table = Table::read(Path::new(required(m, "labels")))?;
    let (values, failed) = match text(m, "query-embeddings") {
        Some(p) => (read_embeddings_file(Path::new(p))?.0, false),
        None => {
            let e = embed(&table, m, hooks)?;
            (e.values, e.failed)
        }
    };
    let choice = match threshold {
        Some(t) => ThresholdChoice::Fixed(t),
        None => {
            let n = embedded_rows(&values, kb.dim())
                .into_iter()
                .filter(|&ok| ok)
                .count();
            let seed = m.get_one::<u64>("seed").copied().unwrap_or(0);
            let fraction = m
                .get_one::<f64>("validation-fraction")
                .copied()
                .unwrap_or(0.5);
            let permutation = hooks.permutation(seed, n)?;
            ThresholdChoice::Sweep {
                thresholds: default_thresholds(),
                validation: validation_split(&permutation, fraction)?,
            }
        }
    };
    let k = m.get_one::<usize>("k").copied().unwrap_or(5);
    let ev = evaluate_rows(&kb, &table, &values, k, &choice)?;
    let text_out = summary_json(&ev);
    hooks.out(&text_out);
    if let Some(out) = text(m, "output") {
        crate::fsio::write_atomic(Path::new(out), format!("{text_out}\n").as_bytes())?;
    }
    Ok(status(failed))
}

/// The evaluation's figures as Python's `json.dumps(summary, indent=1)` wrote them: top-1,
/// CMC@1..k, mAP@1..k, the "new" precision and recall, the threshold, the split sizes.
fn summary_json(ev: &Evaluation) -> String {
    let mut fields = vec![("top1_accuracy".to_string(), py_float(ev.top1_accuracy))];
    for (name, values) in [("cmc", &ev.cmc), ("map", &ev.map)] {
        for (j, v) in values.iter().enumerate() {
            fields.push((format!("{name}@{}", j + 1), py_float(*v)));
        }
    }
    fields.push(("new_precision".into(), py_float(ev.new_precision)));
    fields.push(("new_recall".into(), py_float(ev.new_recall)));
    fields.push(("threshold".into(), py_float(ev.threshold)));
    fields.push(("n_test".into(), ev.n_test.to_string()));
    fields.push(("n_validation".into(), ev.n_validation.to_string()));
    let lines: Vec<String> = fields
        .into_iter()
        .map(|(k, v)| format!(" \"{k}\": {v}"))
        .collect();
    format!("{{\n{}\n}}", lines.join(",\n"))
}

/// A float as Python's `repr` (and `json.dumps`) writes it: the shortest text that reads back
/// the same, `1.0` not `1`, an exponent of at least two digits with its sign (`1e-05`), and
/// `NaN` / `Infinity` as JSON's extension.
fn py_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // Rust's Debug form is the shortest round trip, with an exponent exactly where Python uses
    // one (below 1e-4, from 1e16 on); only the exponent's spelling differs.
    let s = format!("{v:?}");
    match s.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;
    use crate::cli::{admin, main, run, Io, Progress, EXIT_USAGE};

    /// A host that records what the command line writes, with the reid extra's modules
    /// installed or not, and a given permutation for `eval`'s split.
    struct Recorder {
        out: Vec<String>,
        err: Vec<String>,
        modules: bool,
        permutation: Option<Vec<usize>>,
    }

    impl Default for Recorder {
        fn default() -> Self {
            Recorder {
                out: Vec::new(),
                err: Vec::new(),
                modules: true,
                permutation: None,
            }
        }
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
            self.modules
        }
    }
    impl run::RunHooks for Recorder {}
    impl admin::AdminHooks for Recorder {}
    impl ReidHooks for Recorder {
        fn permutation(&mut self, seed: u64, n: usize) -> Result<Vec<usize>, Error> {
            match &self.permutation {
                Some(p) => Ok(p.clone()),
                None => Err(Error::InvalidArgument(format!(
                    "no permutation ({seed}, {n})"
                ))),
            }
        }
    }

    fn cli(args: &[&str], r: &mut Recorder) -> i32 {
        let argv: Vec<OsString> = args.iter().map(OsString::from).collect();
        main(&argv, r)
    }

    fn s(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    #[test]
    fn python_float_repr() {
        // Python: repr(0.5), repr(1.0), repr(1e-05), repr(0.0001), repr(1e16), repr(1.5e-07),
        // repr(123456789012345.0), repr(0.1 + 0.2), repr(-2.5e+20).
        let cases = [
            (0.5, "0.5"),
            (1.0, "1.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1.5e-7, "1.5e-07"),
            (123456789012345.0, "123456789012345.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-2.5e20, "-2.5e+20"),
            (f64::NAN, "NaN"),
        ];
        for (v, want) in cases {
            assert_eq!(py_float(v), want);
        }
    }

    #[test]
    fn summary_is_pythons_json_dumps_with_indent_1() {
        let ev = Evaluation {
            top1_accuracy: 0.5,
            cmc: vec![0.5, 1.0],
            map: vec![0.5, 0.75],
            new_precision: 1.0,
            new_recall: 0.0,
            threshold: 0.3,
            n_test: 4,
            n_validation: 0,
            sweep: None,
        };
        // json.dumps({"top1_accuracy": 0.5, "cmc@1": 0.5, "cmc@2": 1.0, "map@1": 0.5,
        //             "map@2": 0.75, "new_precision": 1.0, "new_recall": 0.0,
        //             "threshold": 0.3, "n_test": 4, "n_validation": 0}, indent=1)
        let want = "{\n \"top1_accuracy\": 0.5,\n \"cmc@1\": 0.5,\n \"cmc@2\": 1.0,\n \
                    \"map@1\": 0.5,\n \"map@2\": 0.75,\n \"new_precision\": 1.0,\n \
                    \"new_recall\": 0.0,\n \"threshold\": 0.3,\n \"n_test\": 4,\n \
                    \"n_validation\": 0\n}";
        assert_eq!(summary_json(&ev), want);
    }

    #[test]
    fn missing_extras_inputs_and_a_base_that_is_not_a_folder_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let d = s(dir.path());
        let mut r = Recorder {
            modules: false,
            ..Default::default()
        };
        assert_eq!(cli(&["reid", "update", d, d, d], &mut r), EXIT_USAGE);
        assert_eq!(
            r.err,
            [
                "deepfaune-rs: error: reid update needs pandas and safetensors: \
              pip install 'deepfaune-rs[reid]'"
            ]
        );

        let missing = dir.path().join("missing");
        let mut r = Recorder::default();
        let argv = ["reid", "query", d, s(&missing), "-o", "r.csv"];
        assert_eq!(cli(&argv, &mut r), EXIT_USAGE);
        assert_eq!(
            r.err,
            [format!(
                "deepfaune-rs: error: {}: no such file or folder",
                missing.display()
            )]
        );

        let file = dir.path().join("kb.csv");
        std::fs::write(&file, "filepath\n").unwrap();
        let mut r = Recorder::default();
        assert_eq!(
            cli(&["reid", "eval", s(&file), s(&file)], &mut r),
            EXIT_USAGE
        );
        assert_eq!(
            r.err,
            [format!(
                "deepfaune-rs: error: {}: a knowledge base is a folder \
                 (reid build -o FOLDER makes one)",
                file.display()
            )]
        );
    }

    #[test]
    fn query_takes_one_way_of_telling_new_individuals() {
        let mut r = Recorder::default();
        let base = ["reid", "query", "kb", "in", "-o", "r.csv"];
        let both = [
            &base[..],
            &["--threshold", "0.3", "--distance-threshold", "0.3"],
        ]
        .concat();
        assert_eq!(cli(&both, &mut r), EXIT_USAGE);
        assert_eq!(r.err.len(), 1, "{:?}", r.err);
        let line = &r.err[0];
        assert!(line.contains("--distance-threshold") && line.contains("--threshold"));
        assert!(
            line.ends_with("(see deepfaune-rs reid query --help)"),
            "{line}"
        );
        let mut r = Recorder::default();
        let gaussian = [&base[..], &["--gaussian", "--distance-threshold", "0.3"]].concat();
        assert_eq!(cli(&gaussian, &mut r), EXIT_USAGE);
        assert!(r.err[0].contains("--gaussian"), "{:?}", r.err);
        // eval has no Gaussian test: both names is the renamed option's own error.
        let mut r = Recorder::default();
        let eval = [
            "reid",
            "eval",
            "kb",
            "l.csv",
            "--threshold",
            "1",
            "--distance-threshold",
            "1",
        ];
        assert_eq!(cli(&eval, &mut r), EXIT_USAGE);
        assert_eq!(
            r.err,
            ["deepfaune-rs: error: give --distance-threshold or --threshold (its old name), not both"]
        );
    }

    #[test]
    fn update_merges_results_and_eval_writes_its_figures() {
        // A base of two pictures in 2-D, updated with one checked result, then evaluated on
        // precomputed embeddings: no model needed.
        let dir = tempfile::tempdir().unwrap();
        let kb_dir = dir.path().join("kb");
        let mut kb = KnowledgeBase::new(2);
        kb.add(
            vec![
                crate::reid::kb::Record::new("a.jpg", "A"),
                crate::reid::kb::Record::new("b.jpg", "B"),
            ],
            &[1.0, 0.0, 0.0, 1.0],
        )
        .unwrap();
        kb.save(&kb_dir).unwrap();
        let results = dir.path().join("r.csv");
        std::fs::write(&results, "filepath,individual_predicted\nc.jpg,A\n").unwrap();
        let emb = dir.path().join("r.safetensors");
        let bytes = crate::reid::table::embeddings_safetensors(&[0.8, 0.6], 2).unwrap();
        std::fs::write(&emb, bytes).unwrap();

        let mut r = Recorder::default();
        let argv = ["reid", "update", s(&kb_dir), s(&results), s(&emb)];
        assert_eq!(cli(&argv, &mut r), EXIT_OK, "{:?}", r.err);
        assert_eq!(
            r.err,
            ["0 updated, 1 added: KnowledgeBase(3 pictures, 2 individuals, dim=2)"]
        );

        // Queries, by hand: q1 = (0.6, 0.8), truth B, is at cosine distance 0.4 from a (A),
        // 0.2 from b (B) and 1 - 0.96 = 0.04 from c (A): top-1 wrong, B second. q2 = (1, 0),
        // truth A, is a itself: right. So top-1 = CMC@1 = 0.5 and CMC@2 = 1.0; with the fixed
        // threshold 0.5 neither is new.
        let labels = dir.path().join("l.csv");
        std::fs::write(&labels, "filepath,lynx_id\nq1.jpg,B\nq2.jpg,A\n").unwrap();
        let q = dir.path().join("q.safetensors");
        let bytes = crate::reid::table::embeddings_safetensors(&[0.6, 0.8, 1.0, 0.0], 2).unwrap();
        std::fs::write(&q, bytes).unwrap();
        let figures = dir.path().join("eval.json");
        let mut r = Recorder::default();
        let argv = [
            "reid",
            "eval",
            s(&kb_dir),
            s(&labels),
            "-k",
            "2",
            "--distance-threshold",
            "0.5",
            "--query-embeddings",
            s(&q),
            "-o",
            s(&figures),
        ];
        assert_eq!(cli(&argv, &mut r), EXIT_OK, "{:?}", r.err);
        let text = &r.out[0];
        assert_eq!(
            std::fs::read_to_string(&figures).unwrap(),
            format!("{text}\n")
        );
        assert!(
            text.starts_with("{\n \"top1_accuracy\": 0.5,\n \"cmc@1\": 0.5,\n \"cmc@2\": 1.0,"),
            "{text}"
        );
        assert!(
            text.contains("\n \"threshold\": 0.5,\n \"n_test\": 2,\n \"n_validation\": 0\n}"),
            "{text}"
        );

        // Without a threshold the split is the host's permutation; the recorder has none.
        let mut r = Recorder::default();
        let sweep = [&argv[..4], &argv[8..10]].concat();
        assert_eq!(cli(&sweep, &mut r), EXIT_USAGE);
        assert!(r.err[0].contains("no permutation (0, 2)"), "{:?}", r.err);
    }

    #[test]
    fn build_then_query_whole_jaguar_pictures() {
        if let Err(e) = crate::runtime::environment() {
            eprintln!("skipped: {e}");
            return;
        }
        let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
        let model = shared.join("models/yolox_tiny_backbone_embed.onnx");
        let mut pictures: Vec<PathBuf> = std::fs::read_dir(shared.join("testdata/jaguar"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
            .collect();
        pictures.sort();
        if !model.is_file() || pictures.len() < 3 {
            eprintln!("skipped: ../shared's embedding model or jaguar pictures missing");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let gallery = dir.path().join("gallery.csv");
        let (a, b, c) = (s(&pictures[0]), s(&pictures[1]), s(&pictures[2]));
        std::fs::write(&gallery, format!("filepath,lynx_id\n{a},A\n{b},B\n")).unwrap();
        let kb = dir.path().join("kb");
        let w = ["--weights", s(&model), "--whole-image"];
        let mut r = Recorder::default();
        let argv = [&["reid", "build", s(&gallery), "-o", s(&kb)][..], &w].concat();
        assert_eq!(cli(&argv, &mut r), EXIT_OK, "{:?}", r.err);
        assert_eq!(
            r.err,
            [format!(
                "KnowledgeBase(2 pictures, 2 individuals, dim=672) -> {}",
                kb.display()
            )]
        );

        // Picture a again is its own nearest neighbour (the same embedding: distance 0), so it
        // is A and not new under any threshold.
        let probes = dir.path().join("probes.csv");
        std::fs::write(&probes, format!("filepath\n{c}\n{a}\n")).unwrap();
        let out = dir.path().join("results.csv");
        let mut r = Recorder::default();
        let query = [
            "reid",
            "query",
            s(&kb),
            s(&probes),
            "-o",
            s(&out),
            "-k",
            "2",
        ];
        let argv = [&query[..], &["--distance-threshold", "0.05"], &w].concat();
        assert_eq!(cli(&argv, &mut r), EXIT_OK, "{:?}", r.err);
        let summary = r.err.last().unwrap();
        assert!(summary.starts_with("2 queries, "), "{summary}");
        assert!(summary.ends_with(&format!(" new individual(s) -> {}", out.display())));
        let text = std::fs::read_to_string(&out).unwrap();
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
        assert_eq!(rows[0][..3], ["filepath", "individual_predicted", "is_new"]);
        let again = rows
            .iter()
            .find(|r| r[0].ends_with(pictures[0].file_name().unwrap().to_str().unwrap()))
            .unwrap();
        assert_eq!(again[1], "A", "{text}");
        assert!(["False", "false", "0"].contains(&again[2]), "{text}");
    }
}
