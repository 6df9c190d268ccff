//! The host's side of the command line's `reid` hooks (`crate::cli::reid`): calls into
//! `deepfaune_rs.cli._Hooks`.

use super::cli::PyHooks;

impl crate::cli::reid::ReidHooks for PyHooks {}
