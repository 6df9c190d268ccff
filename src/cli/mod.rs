//! The `deepfaune-rs` command line: its arguments (clap), the checks made before any image is
//! processed, the commands and their messages, and the exit statuses. The host (the Python
//! package's `deepfaune_rs.cli`) gives it, through [`Hooks`], only what the core cannot do itself
//! (PyAV, Ray, openpyxl, the review page's HTTP server, ONNX Runtime's quantisation tools) and
//! where text goes (Python's `sys.stdout` / `sys.stderr`, so a notebook or a test captures it).
//!
//! Exit status: 0 = every file processed; 3 = the run finished but some files failed (listed on
//! stderr and in the output); 1 = the run could not be done (bad or missing model weights,
//! download or checksum failure, a write that failed); 2 = usage, found before any image is
//! processed (bad option or value, unknown model or class with the valid names, missing input,
//! an output that cannot be written or would clobber an input, a checkpoint of other settings);
//! 130 = interrupted (Ctrl-C).
//!
//! Commands: [`run`] (`run`, `detect`), [`admin`] (`models`, `convert`, `export-*`, `devices`,
//! `agreement`, `review`), [`reid`] (`reid build|query|update|eval`).

pub mod admin;
pub mod reid;
pub mod run;

use std::ffi::OsString;
use std::path::Path;

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::error::{Error, ModelError};
use crate::reid::ReidError;

/// Every file processed.
pub const EXIT_OK: i32 = 0;
/// The run could not be done.
pub const EXIT_ERROR: i32 = 1;
/// A usage error, found before any work.
pub const EXIT_USAGE: i32 = 2;
/// The run finished but some files failed.
pub const EXIT_FAILURES: i32 = 3;
/// Interrupted (Ctrl-C).
pub const EXIT_INTERRUPTED: i32 = 130;

/// A progress callback: `(done, total)`; an error (Ctrl-C in the host) stops the work.
pub type Progress = Box<dyn FnMut(usize, usize) -> Result<(), Error> + Send>;

/// What the host does for every command: where text goes, progress bars, optional modules.
pub trait Io {
    /// Writes `text` and a newline on standard output.
    fn out(&mut self, text: &str);
    /// Writes `text` and a newline on standard error.
    fn err(&mut self, text: &str);
    /// A progress bar titled `desc` counting `unit`s, or `None` (`--no-progress`, not a
    /// terminal).
    fn progress(&mut self, desc: &str, unit: &str) -> Option<Progress>;
    /// Whether the optional Python module `name` (openpyxl, ray, safetensors, ...) is installed.
    fn has_module(&mut self, name: &str) -> bool;
}

/// Everything the command line needs from its host.
pub trait Hooks: Io + run::RunHooks + admin::AdminHooks + reid::ReidHooks {}

impl<T: Io + run::RunHooks + admin::AdminHooks + reid::ReidHooks> Hooks for T {}

/// Why a command stopped.
#[derive(Debug)]
pub enum CliError {
    /// The user's to correct, found before any work: one line, exit status 2.
    Usage(String),
    /// The work could not be done: one line, exit status 1.
    Failed(String),
    /// Ctrl-C: exit status 130.
    Interrupted,
}

impl From<Error> for CliError {
    /// Bad arguments and unknown names are the user's to correct (2), as the Python package's
    /// `InvalidArgumentError` / `UnknownModelError` were (re-ID's argument, shape and vector
    /// errors among them); a cancelled run is an interruption (130); everything else is a
    /// failure (1).
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidArgument(_)
            | Error::Model(ModelError::Unknown { .. } | ModelError::UnknownTarget { .. })
            | Error::Reid(ReidError::Argument(_) | ReidError::Shape(_) | ReidError::NonFinite(_)) => {
                CliError::Usage(e.to_string())
            }
            Error::Cancelled => CliError::Interrupted,
            e => CliError::Failed(e.to_string()),
        }
    }
}

/// A command's outcome: its exit status, or why it stopped.
pub type CliResult = Result<i32, CliError>;

/// The whole command tree.
pub fn command() -> Command {
    let mut cmd = Command::new("deepfaune-rs")
        .about("Sort camera-trap images like DeepFaune, without torch.")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(true)
        .arg_required_else_help(true);
    for sub in run::commands()
        .into_iter()
        .chain(admin::commands())
        .chain(reid::commands())
    {
        cmd = cmd.subcommand(sub);
    }
    metavars(cmd)
}

/// argparse's metavars: an option's value is named by the option in capitals (`--maxlag
/// MAXLAG`) unless it has a name of its own, in every subcommand.
fn metavars(cmd: Command) -> Command {
    cmd.mut_args(|a| {
        let named = a.get_value_names().is_some();
        if a.get_long().is_some() && a.get_action().takes_values() && !named {
            let name = a.get_id().as_str().to_uppercase().replace('-', "_");
            a.value_name(name)
        } else {
            a
        }
    })
    .mut_subcommands(metavars)
}

/// Runs the command line `argv` (without the program name) and returns its exit status. Never
/// panics on any input; every error is one line on the host's stderr.
pub fn main(argv: &[OsString], hooks: &mut dyn Hooks) -> i32 {
    let args = std::iter::once(OsString::from("deepfaune-rs")).chain(argv.iter().cloned());
    let m = match command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => return parse_error(&e, argv, hooks),
    };
    let result = match m.subcommand() {
        Some((name, sub)) => run::dispatch(name, sub, hooks)
            .or_else(|| admin::dispatch(name, sub, hooks))
            .or_else(|| reid::dispatch(name, sub, hooks))
            .unwrap_or_else(|| Err(CliError::Usage(format!("unknown command {name}")))),
        None => Err(CliError::Usage(
            "give a command (see deepfaune-rs --help)".into(),
        )),
    };
    match result {
        Ok(code) => code,
        Err(CliError::Usage(msg)) => {
            hooks.err(&format!("deepfaune-rs: error: {msg}"));
            EXIT_USAGE
        }
        Err(CliError::Failed(msg)) => {
            hooks.err(&format!("deepfaune-rs: error: {msg}"));
            EXIT_ERROR
        }
        Err(CliError::Interrupted) => {
            hooks.err("interrupted");
            EXIT_INTERRUPTED
        }
    }
}

/// `--help` and `--version` go to stdout (status 0); a parse error is one line on stderr naming
/// what is wrong (the missing options, the valid commands) and the `--help` of the (sub)command
/// given in `argv` (status 2).
fn parse_error(e: &clap::Error, argv: &[OsString], io: &mut dyn Io) -> i32 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            io.out(e.render().to_string().trim_end());
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                EXIT_USAGE
            } else {
                EXIT_OK
            }
        }
        kind => {
            let text = e.render().to_string();
            // clap's first line is "error: <message>"; the usage and tips that follow are
            // replaced by what they name and one pointer to --help.
            let first = text.lines().next().unwrap_or("");
            let mut line = first.trim_start_matches("error: ").trim_end().to_string();
            if kind == ErrorKind::MissingRequiredArgument {
                if let Some(ContextValue::Strings(missing)) = e.get(ContextKind::InvalidArg) {
                    line = format!("{line} {}", missing.join(", "));
                }
            }
            if let Some(ContextValue::String(s)) = e.get(ContextKind::SuggestedArg) {
                line.push_str(&format!(" (did you mean {s}?)"));
            }
            let path = subcommand_path(argv);
            if kind == ErrorKind::InvalidSubcommand {
                let mut cmd = command();
                for name in &path[1..] {
                    cmd = cmd.find_subcommand(name).cloned().unwrap_or(cmd);
                }
                let names: Vec<&str> = cmd.get_subcommands().map(Command::get_name).collect();
                line.push_str(&format!("; choose from {}", names.join(", ")));
            }
            io.err(&format!(
                "deepfaune-rs: error: {line} (see {} --help)",
                path.join(" ")
            ));
            EXIT_USAGE
        }
    }
}

/// The program and the subcommands named in `argv` (`["deepfaune-rs", "models", "fetch"]`): the
/// command whose `--help` explains a parse error.
fn subcommand_path(argv: &[OsString]) -> Vec<String> {
    let mut path = vec!["deepfaune-rs".to_string()];
    let mut cmd = command();
    for arg in argv.iter().filter_map(|a| a.to_str()) {
        if arg.starts_with('-') {
            continue;
        }
        match cmd.find_subcommand(arg).cloned() {
            Some(sub) => {
                path.push(arg.to_string());
                cmd = sub;
            }
            None => break,
        }
    }
    path
}

// ----- shared argument types and checks -----

/// A threshold: a number within 0..1 (NaN refused).
pub fn fraction(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{text} is outside 0..1"))
    }
}

/// A duration in seconds: a finite number >= 0.
pub fn seconds(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if v >= 0.0 && v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{text} must be a number of seconds >= 0"))
    }
}

/// A plain number (any float).
pub fn number(text: &str) -> Result<f64, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))
}

/// One or more comma-separated names (`--disable a,b`, or the option repeated): the values of a
/// `names` argument, in order.
pub fn names(m: &ArgMatches, id: &str) -> Vec<String> {
    m.get_many::<String>(id)
        .into_iter()
        .flatten()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Option `new` (`--score-threshold`) and its old name `old` (`--threshold`), accepted for one
/// release (see [`take_renamed`]); both parse their value with `parse`.
pub fn renamed<P>(
    cmd: Command,
    new: &'static str,
    old: &'static str,
    help: &'static str,
    parse: P,
) -> Command
where
    P: clap::builder::TypedValueParser<Value = f64> + Clone + Send + Sync + 'static,
{
    let id = new.trim_start_matches("--");
    let old_id = old.trim_start_matches("--");
    // argparse's metavar: the new name in capitals, for both spellings.
    let metavar = id.to_uppercase().replace('-', "_");
    cmd.arg(
        Arg::new(id)
            .long(id)
            .value_name(metavar.clone())
            .value_parser(parse.clone())
            .help(help),
    )
    .arg(
        Arg::new(format!("deprecated-{old_id}"))
            .long(old_id)
            .value_name(metavar)
            .value_parser(parse)
            .help(format!("deprecated: {new}")),
    )
}

/// The value of a [`renamed`] option: under its new name, or under its old one with a one-line
/// notice on stderr; both names is a usage error.
pub fn take_renamed(
    m: &ArgMatches,
    new: &str,
    old: &str,
    io: &mut dyn Io,
) -> Result<Option<f64>, CliError> {
    let id = new.trim_start_matches("--");
    let old_id = format!("deprecated-{}", old.trim_start_matches("--"));
    let value = m.get_one::<f64>(id).copied();
    let before = m.get_one::<f64>(&old_id).copied();
    match (value, before) {
        (Some(_), Some(_)) => Err(CliError::Usage(format!(
            "give {new} or {old} (its old name), not both"
        ))),
        (None, Some(v)) => {
            io.err(&format!(
                "deepfaune-rs: warning: {old} is deprecated, use {new}"
            ));
            Ok(Some(v))
        }
        (v, None) => Ok(v),
    }
}

/// A flag (`--no-progress`, `--int8`, ...).
pub fn flag(id: &'static str, help: &'static str) -> Arg {
    Arg::new(id).long(id).action(ArgAction::SetTrue).help(help)
}

/// Every input exists; a missing one is a usage error (with a hint when classes were given to
/// `--disable`, which may have swallowed a folder name).
pub fn check_inputs<S: AsRef<str>>(inputs: &[S], disabled: bool) -> Result<(), CliError> {
    for path in inputs {
        let path = path.as_ref();
        if !Path::new(path).exists() {
            let hint = if disabled {
                " (several classes to --disable: --disable a,b)"
            } else {
                ""
            };
            return Err(CliError::Usage(format!(
                "{path}: no such file or folder{hint}"
            )));
        }
    }
    Ok(())
}

/// Refuses, before any image is processed, an output that could not be written or would
/// clobber something: a wrong extension, an existing folder, a missing or unwritable parent
/// folder, one of the inputs, another output of the run (`others`: the outputs checked so far,
/// as (option, path); this one is added).
pub fn check_output<S: AsRef<str>>(
    path: &str,
    option: &str,
    suffixes: &[&str],
    inputs: &[S],
    others: &mut Vec<(String, String)>,
) -> Result<(), CliError> {
    let usage = |what: String| Err(CliError::Usage(format!("{option} {path}: {what}")));
    let p = Path::new(path);
    if p.is_dir() {
        return usage("is a folder; give a file name in it".into());
    }
    let lower = path.to_lowercase();
    if !suffixes.is_empty() && !suffixes.iter().any(|s| lower.ends_with(s)) {
        return usage(format!(
            "give a file name ending in {}",
            suffixes.join(" or ")
        ));
    }
    let abs = absolute(p);
    let parent = abs.parent().map(Path::to_path_buf).unwrap_or_default();
    if !parent.is_dir() {
        return usage(format!(
            "folder {} does not exist; create it first",
            parent.display()
        ));
    }
    if !writable(&parent) {
        return usage(format!("folder {} is not writable", parent.display()));
    }
    if p.exists() {
        for i in inputs {
            if same_file(p, Path::new(i.as_ref())) {
                return usage("is one of the inputs; write the results elsewhere".into());
            }
        }
    }
    for (other_option, other) in others.iter() {
        if absolute(Path::new(other)) == abs {
            return usage(format!(
                "also given to {other_option}; give each output its own file"
            ));
        }
    }
    others.push((option.to_string(), path.to_string()));
    Ok(())
}

/// `path` made absolute against the current folder, `.` and `..` resolved as text (Python's
/// `os.path.abspath`).
pub fn absolute(path: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = std::path::PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// Whether two existing paths are the same file (device and inode).
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (a.metadata(), b.metadata()) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        match (a.canonicalize(), b.canonicalize()) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
    }
}

/// Whether files can be created in `folder`.
fn writable(folder: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let Ok(c) = std::ffi::CString::new(folder.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
    }
    #[cfg(not(unix))]
    {
        folder
            .metadata()
            .map(|m| !m.permissions().readonly())
            .unwrap_or(false)
    }
}

/// The failures of a run on stderr (path and reason each); [`EXIT_FAILURES`] when there are any.
pub fn report_failures(failures: &[(String, String)], io: &mut dyn Io) -> i32 {
    if failures.is_empty() {
        return EXIT_OK;
    }
    io.err(&format!(
        "{} file(s) could not be processed:",
        failures.len()
    ));
    for (path, reason) in failures {
        io.err(&format!("  {path}: {reason}"));
    }
    EXIT_FAILURES
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host that records what the command line writes.
    #[derive(Default)]
    pub(crate) struct Recorder {
        pub out: Vec<String>,
        pub err: Vec<String>,
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
    impl admin::AdminHooks for Recorder {}
    impl reid::ReidHooks for Recorder {}

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn fractions_and_seconds_refuse_what_argparse_refused() {
        assert_eq!(fraction("0.5"), Ok(0.5));
        assert_eq!(fraction("1"), Ok(1.0));
        assert_eq!(fraction("1.5"), Err("1.5 is outside 0..1".into()));
        assert_eq!(fraction("nan"), Err("nan is outside 0..1".into()));
        assert_eq!(fraction("x"), Err("\"x\" is not a number".into()));
        assert_eq!(
            seconds("-5"),
            Err("-5 must be a number of seconds >= 0".into())
        );
        assert_eq!(
            seconds("inf"),
            Err("inf must be a number of seconds >= 0".into())
        );
        assert_eq!(seconds("10"), Ok(10.0));
    }

    #[test]
    fn version_goes_to_stdout_and_a_bad_option_is_one_line_with_status_2() {
        let mut r = Recorder::default();
        assert_eq!(main(&os(&["--version"]), &mut r), EXIT_OK);
        assert_eq!(r.out, [concat!("deepfaune-rs ", env!("CARGO_PKG_VERSION"))]);
        let mut r = Recorder::default();
        assert_eq!(main(&os(&["--no-such-option"]), &mut r), EXIT_USAGE);
        assert_eq!(r.err.len(), 1, "{:?}", r.err);
        assert!(r.err[0].starts_with("deepfaune-rs: error: "), "{:?}", r.err);
        assert!(r.err[0].ends_with("--help)"), "{:?}", r.err);
    }

    #[test]
    fn a_parse_error_names_what_is_missing_and_the_subcommand_s_help() {
        let mut r = Recorder::default();
        assert_eq!(main(&os(&["convert"]), &mut r), EXIT_USAGE);
        assert_eq!(
            r.err,
            [
                "deepfaune-rs: error: the following required arguments were not provided: \
              <FILE.pt> (see deepfaune-rs convert --help)"
            ]
        );
        let mut r = Recorder::default();
        assert_eq!(
            main(&os(&["models", "fetch", "--nope"]), &mut r),
            EXIT_USAGE
        );
        assert!(
            r.err[0].ends_with("(see deepfaune-rs models fetch --help)"),
            "{:?}",
            r.err
        );
        let mut r = Recorder::default();
        assert_eq!(main(&os(&["frobnicate"]), &mut r), EXIT_USAGE);
        assert!(
            r.err[0].contains("; choose from detect, run, "),
            "{:?}",
            r.err
        );
        assert!(
            r.err[0].ends_with("(see deepfaune-rs --help)"),
            "{:?}",
            r.err
        );
    }

    #[test]
    fn an_output_that_is_an_input_or_another_output_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let photo = dir.path().join("a.csv");
        std::fs::write(&photo, b"x").unwrap();
        let photo = photo.to_str().unwrap().to_string();
        let mut seen = Vec::new();
        let e = check_output(&photo, "-o", &[".csv"], &[photo.as_str()], &mut seen).unwrap_err();
        assert!(
            matches!(e, CliError::Usage(m) if m.ends_with("is one of the inputs; write the results elsewhere"))
        );
        let out = dir.path().join("r.csv").to_str().unwrap().to_string();
        check_output(&out, "-o", &[".csv"], &[photo.as_str()], &mut seen).unwrap();
        let e = check_output(&out, "--json", &[], &[photo.as_str()], &mut seen).unwrap_err();
        assert!(
            matches!(e, CliError::Usage(m) if m.ends_with("also given to -o; give each output its own file"))
        );
        let e = check_output(
            "r.txt",
            "-o",
            &[".csv", ".xlsx"],
            &[photo.as_str()],
            &mut seen,
        )
        .unwrap_err();
        assert!(
            matches!(e, CliError::Usage(m) if m == "-o r.txt: give a file name ending in .csv or .xlsx")
        );
        let missing = dir.path().join("nope").join("r.csv");
        let e = check_output(
            missing.to_str().unwrap(),
            "-o",
            &[".csv"],
            &[photo.as_str()],
            &mut seen,
        )
        .unwrap_err();
        assert!(matches!(e, CliError::Usage(m) if m.contains("does not exist; create it first")));
    }

    #[test]
    fn a_renamed_option_warns_under_its_old_name_and_refuses_both() {
        let cmd = renamed(
            Command::new("t"),
            "--score-threshold",
            "--threshold",
            "h",
            fraction,
        );
        let mut r = Recorder::default();
        let m = cmd
            .clone()
            .try_get_matches_from(["t", "--threshold", "0.5"])
            .unwrap();
        assert_eq!(
            take_renamed(&m, "--score-threshold", "--threshold", &mut r).unwrap(),
            Some(0.5)
        );
        assert_eq!(
            r.err,
            ["deepfaune-rs: warning: --threshold is deprecated, use --score-threshold"]
        );
        let m = cmd
            .try_get_matches_from(["t", "--threshold", "0.5", "--score-threshold", "0.6"])
            .unwrap();
        assert!(take_renamed(&m, "--score-threshold", "--threshold", &mut r).is_err());
    }
}
