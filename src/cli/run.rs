//! The command line's `run` (the whole DeepFaune pipeline to a table) and `detect` (MegaDetector JSON).

use clap::{ArgMatches, Command};

use super::{CliResult, Hooks};

/// What these commands need from the host (PyAV's video frames, Ray, openpyxl, numpy's .npz). Every method has a default: a host that
/// cannot do it (the tests' recorder) says so as an error.
pub trait RunHooks {}

/// The subcommands of this module.
pub fn commands() -> Vec<Command> {
    Vec::new()
}

/// Runs subcommand `name` if it is one of this module's, else `None`.
pub fn dispatch(name: &str, m: &ArgMatches, hooks: &mut dyn Hooks) -> Option<CliResult> {
    let _ = (name, m, hooks);
    None
}
