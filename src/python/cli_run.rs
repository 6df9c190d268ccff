//! The host's side of the command line's `run` hooks (`crate::cli::run`): calls into
//! `deepfaune_rs.cli._Hooks`.

use super::cli::PyHooks;

impl crate::cli::run::RunHooks for PyHooks {}
