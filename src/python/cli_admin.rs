//! The host's side of the command line's `admin` hooks (`crate::cli::admin`): calls into
//! `deepfaune_rs.cli._Hooks`.

use super::cli::PyHooks;

impl crate::cli::admin::AdminHooks for PyHooks {}
