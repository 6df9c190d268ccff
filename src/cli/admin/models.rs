//! `models` (the built-in models and the state of their files), `models fetch` (download, check
//! and convert them with `crate::fetch` and `crate::convert`) and `models quantize` (the host's).

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use clap::{value_parser, Arg, ArgMatches, Command};

use super::super::{check_inputs, flag, CliResult, Hooks, Progress, EXIT_OK};
use super::{many, opt, Quantize};
use crate::convert::run::{convert, CONVERTER_VERSION};
use crate::error::{Error, ModelError};
use crate::fetch::{self, Artifact, Convert, Converted, FetchOptions, Fetched, Lock, Retry};

/// The states of a model file, as `models --help` explains them.
pub const STATES_HELP: &str = "states of a model file:
  embedded    inside the package (md-lite): nothing to fetch
  missing     neither the ONNX file nor the downloaded source (.pt) is in the model directory
  downloaded  the source .pt is there but no usable ONNX (none yet, or one converted from another
              source or by another converter version): `models fetch` converts it
  converted   an ONNX file is there (the core can load it) but is not verified: not recorded in
              deepfaune-rs.lock.json (exported by hand) or its sha256 differs from the record
  verified    the ONNX's sha256 is the one the lock file recorded when it was converted, from a
              source whose sha256 is the lock file's (checked against the published size and
              checksums when it was downloaded; re-checked if the .pt is still there), by the
              current converter version
Every file present is hashed, so listing takes a few seconds with the big classifiers.
";

const FOLDER_HELP: &str = "model directory (default $DEEPFAUNE_RS_MODELS)";

/// `models`, `models fetch`, `models quantize`.
pub(super) fn command() -> Command {
    let fetch = Command::new("fetch")
        .about("download, check and convert official weights (default: deepfaune)")
        .long_about(
            "Downloads the official weights of TARGETs into the model directory, checks them \
             (published size and checksums; the lock file deepfaune-rs.lock.json where none is \
             published), and converts PyTorch checkpoints to ONNX (no torch needed). An \
             interrupted download resumes. $DEEPFAUNE_RS_BASE_URL replaces every URL: file NAME \
             is then fetched from $DEEPFAUNE_RS_BASE_URL/NAME.",
        )
        .after_help(STATES_HELP)
        .arg(Arg::new("targets").num_args(0..).value_name("TARGET").help(
            "a model id (df, mds, mdr, deepfaune-v14, ...; a classifier comes with its \
                     bird head), a mode (DF, MDS, DFbsMDS, DFMDS, MDR), or deepfaune = \
                     DeepFaune's default setup (the default)",
        ))
        .arg(Arg::new("folder").long("folder").help(FOLDER_HELP))
        .arg(flag("no-progress", "no progress bars"))
        .arg(flag("no-convert", "download only (no ONNX conversion)"))
        .arg(flag(
            "accept-new-hash",
            "take a download whose sha256 differs from the one recorded in the lock file (when \
             the publisher really changed the file)",
        ));
    let quantize = Command::new("quantize")
        .about("write a model's int8 variant (its own file and manifest) for --int8")
        .long_about(
            "Writes MODEL's int8 variant into the model directory with ONNX Runtime's \
             quantisation tools: <file>.int8.onnx and its manifest <id>-int8.toml. Detectors: \
             static QDQ calibrated on your own images (--images); classifiers: dynamic int8 \
             MatMuls. Check the result with `deepfaune-rs agreement FOLDER`.",
        )
        .arg(
            Arg::new("model")
                .required(true)
                .help("a built-in id: md-lite, df, mds, mdr, deepfaune-v15, ..."),
        )
        .arg(
            Arg::new("images")
                .long("images")
                .num_args(1..)
                .value_name("PATH")
                .help("calibration images (files or folders) for static quantisation"),
        )
        .arg(
            Arg::new("method")
                .long("method")
                .value_parser(["static", "dynamic"]),
        )
        .arg(
            Arg::new("sample")
                .long("sample")
                .value_parser(value_parser!(i64))
                .default_value("64")
                .help("calibration images used (default 64)"),
        );
    Command::new("models")
        .about("list the models, the state of their weights; `models fetch` downloads them")
        .long_about("The built-in models and the state of their weights in the model directory.")
        .after_help(STATES_HELP)
        .arg(Arg::new("folder").long("folder").help(FOLDER_HELP))
        .subcommand(fetch)
        .subcommand(quantize)
}

/// Runs `models` or one of its subcommands.
pub(super) fn run(m: &ArgMatches, hooks: &mut dyn Hooks) -> CliResult {
    match m.subcommand() {
        Some(("fetch", f)) => cmd_fetch(f, hooks),
        Some(("quantize", q)) => cmd_quantize(q, hooks),
        _ => cmd_list(m, hooks),
    }
}

/// The folder of `--folder`, else the model directory.
fn folder_of(m: &ArgMatches) -> PathBuf {
    opt(m, "folder").map_or_else(crate::manifest::model_dir, PathBuf::from)
}

/// The built-in models, the state of each file, and what to do next.
fn cmd_list(m: &ArgMatches, hooks: &mut dyn Hooks) -> CliResult {
    use crate::manifest::{builtin_detectors, classifier::builtin_classifiers};
    let folder = folder_of(m);
    hooks.out(&format!(
        "model directory: {} (set DEEPFAUNE_RS_MODELS to change it)",
        folder.display()
    ));
    let mut facts: Vec<(String, String, String)> = builtin_detectors()
        .into_iter()
        .map(|d| (d.id.to_lowercase(), d.kind.clone(), d.name.clone()))
        .collect();
    facts.extend(
        builtin_classifiers()
            .into_iter()
            .map(|c| (c.id.to_lowercase(), c.kind.clone(), c.name.clone())),
    );
    let lock = Lock::read(&folder).map_err(Error::from)?;
    let mut todo = false;
    for a in fetch::artifacts_for(None, true).map_err(Error::from)? {
        let st =
            fetch::status_of(&a, &folder, &lock, Some(CONVERTER_VERSION)).map_err(Error::from)?;
        if st.role == "model" {
            let (kind, name) = facts
                .iter()
                .find(|(id, _, _)| *id == st.model_id)
                .map(|(_, k, n)| (k.as_str(), n.as_str()))
                .unwrap_or(("", ""));
            hooks.out(&format!(
                "{:<15} {kind:<10} {:<10} {name}",
                st.model_id, st.state
            ));
        } else {
            hooks.out(&format!(
                "{:<15} {:<10} {:<10}",
                "  + bird head", "", st.state
            ));
        }
        if st.state != "embedded" {
            hooks.out(&format!("{:<16}{}", "", st.path.display()));
            if !st.detail.is_empty() {
                hooks.out(&format!("{:<16}({})", "", st.detail));
            }
        }
        todo |= matches!(st.state, "missing" | "downloaded");
    }
    hooks
        .out("states: embedded, missing, downloaded, converted, verified (deepfaune-rs models -h)");
    if todo {
        hooks.out("fetch DeepFaune's default setup: deepfaune-rs models fetch deepfaune");
    }
    Ok(EXIT_OK)
}

/// Downloads, checks and (with `convert`) converts the files of the built-in models `ids` into
/// `folder`, with lines and byte bars through `hooks` when `progress`; what was done, file by
/// file. (`models fetch`, and a run's `--fetch`.)
pub fn fetch_models(
    ids: &[String],
    folder: &Path,
    progress: bool,
    convert: bool,
    accept_new_hash: bool,
    hooks: &mut dyn Hooks,
) -> Result<Vec<Fetched>, Error> {
    let artifacts = fetch::artifacts_for(Some(ids), true)?;
    let how = How {
        progress,
        convert,
        accept_new_hash,
    };
    fetch_artifacts(&artifacts, folder, how, hooks)
}

/// What [`fetch_artifacts`] is told by the command line.
#[derive(Debug, Clone, Copy)]
pub(super) struct How {
    pub progress: bool,
    pub convert: bool,
    pub accept_new_hash: bool,
}

/// [`fetch_models`] for the files `artifacts`.
pub(super) fn fetch_artifacts(
    artifacts: &[Artifact],
    folder: &Path,
    how: How,
    hooks: &mut dyn Hooks,
) -> Result<Vec<Fetched>, Error> {
    let opts = FetchOptions {
        accept_new_hash: how.accept_new_hash,
        converter_version: Some(CONVERTER_VERSION.to_string()),
        retry: Retry::default(),
        base_url: fetch::base_url(),
    };
    let host = Host {
        hooks: RefCell::new(hooks),
        progress: how.progress,
        bar: RefCell::new(None),
    };
    let mut lines = Lines(&host);
    let mut converter = Converter(&host);
    artifacts
        .iter()
        .map(|a| {
            let c = how.convert.then_some(&mut converter as &mut dyn Convert);
            fetch::fetch_file(a, folder, &opts, &mut lines, c)
        })
        .collect()
}

fn cmd_fetch(m: &ArgMatches, hooks: &mut dyn Hooks) -> CliResult {
    let mut targets = many(m, "targets");
    if targets.is_empty() {
        targets.push(fetch::DEFAULT_TARGET.into());
    }
    let ids = fetch::resolve_targets(&targets).map_err(Error::from)?;
    let folder = folder_of(m);
    let done = fetch_models(
        &ids,
        &folder,
        !m.get_flag("no-progress"),
        !m.get_flag("no-convert"),
        m.get_flag("accept-new-hash"),
        hooks,
    )?;
    for d in &done {
        hooks.out(&fetched_line(d));
        for note in &d.notes {
            hooks.out(&format!("  note: {note}"));
        }
    }
    Ok(EXIT_OK)
}

/// `df                       verified   PATH (downloaded from URL, converted)`.
pub(super) fn fetched_line(d: &Fetched) -> String {
    let label = if d.role == "model" {
        d.model_id.clone()
    } else {
        format!("{} bird head", d.model_id)
    };
    let mut how = Vec::new();
    if let Some(url) = d.url.as_deref().filter(|u| !u.is_empty()) {
        how.push(format!("downloaded from {url}"));
    }
    if d.converted {
        how.push("converted".to_string());
    }
    let how = if how.is_empty() {
        String::new()
    } else {
        format!(" ({})", how.join(", "))
    };
    format!("{label:<24} {:<10} {}{how}", d.state, d.path.display())
}

fn cmd_quantize(m: &ArgMatches, hooks: &mut dyn Hooks) -> CliResult {
    let q = Quantize {
        model: opt(m, "model").unwrap_or_default(),
        images: many(m, "images"),
        method: opt(m, "method"),
        sample: *m.get_one::<i64>("sample").unwrap_or(&64),
    };
    check_inputs(&q.images, false)?;
    for (key, value) in hooks.quantize(&q)? {
        hooks.out(&format!("{key}: {value}"));
    }
    Ok(EXIT_OK)
}

/// The command line's host seen by a download and a conversion (which both talk to it).
struct Host<'a> {
    hooks: RefCell<&'a mut dyn Hooks>,
    progress: bool,
    /// The byte bar of the file being downloaded.
    bar: RefCell<Option<Progress>>,
}

impl Host<'_> {
    fn say(&self, text: &str) {
        if self.progress {
            self.hooks.borrow_mut().err(text);
        }
    }
}

/// The download's lines, byte bars and pauses.
struct Lines<'h, 'a>(&'h Host<'a>);

impl fetch::Hooks for Lines<'_, '_> {
    fn say(&mut self, text: &str) -> Result<(), Error> {
        self.0.say(text);
        Ok(())
    }

    fn bytes(&mut self, name: &str, done: u64, total: Option<u64>, end: bool) -> Result<(), Error> {
        let host = self.0;
        if host.hooks.borrow_mut().interrupted() {
            return Err(Error::Cancelled);
        }
        if !host.progress {
            return Ok(());
        }
        let mut bar = host.bar.borrow_mut();
        let clip = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        if end {
            // A cut line ends; a file of unknown size is drawn once, complete.
            let total = total.unwrap_or(0);
            if bar.is_some() && done < total {
                host.hooks.borrow_mut().err("");
            } else if total == 0 {
                if let Some(mut once) = host.hooks.borrow_mut().progress(name, "B") {
                    once(clip(done), clip(done))?;
                }
            }
            *bar = None;
        } else if let Some(total) = total.filter(|&t| t > 0) {
            if bar.is_none() {
                *bar = host.hooks.borrow_mut().progress(name, "B");
            }
            if let Some(b) = bar.as_mut() {
                b(clip(done), clip(total))?;
            }
        }
        Ok(())
    }

    fn sleep(&mut self, seconds: f64) -> Result<(), Error> {
        self.0.hooks.borrow_mut().sleep(seconds)
    }
}

/// The conversion of a downloaded checkpoint, by the core's converter.
struct Converter<'h, 'a>(&'h Host<'a>);

impl Convert for Converter<'_, '_> {
    fn convert(&mut self, a: &Artifact, src: &Path, dest: &Path) -> Result<Converted, Error> {
        convert_download(a, src, dest, None, &mut |line| {
            self.0.say(line);
            Ok(())
        })
    }
}

/// Converts the downloaded checkpoint `src` of `a` into `dest` with the core's converter
/// (`version`: the converter version to stamp, None for the installed one), saying what it does
/// through `say`. A failure that is not a write's is a [`ModelError::Conversion`] naming `src`.
/// (`models fetch`, and the Python API's `fetch`.)
pub fn convert_download(
    a: &Artifact,
    src: &Path,
    dest: &Path,
    version: Option<&str>,
    say: &mut dyn FnMut(&str) -> Result<(), Error>,
) -> Result<Converted, Error> {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    say(&format!("converting {} -> {}", name(src), name(dest)))?;
    let size = if a.kind == "classifier" {
        a.input_size
    } else {
        None
    };
    let r = convert(src, Some(dest), Some(&a.kind), size, true, version).map_err(|e| match e {
        e @ (Error::Output { .. } | Error::Cancelled) => e,
        e => ModelError::Conversion(format!("could not convert {}: {e}", src.display())).into(),
    })?;
    say(&format!("  {}: done in {:.1} s", name(dest), r.seconds))?;
    Ok(Converted {
        sha256: r.sha256,
        source_sha256: Some(r.source_sha256),
        converter_version: r.converter_version,
    })
}
