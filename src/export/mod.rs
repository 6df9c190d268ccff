//! Stage 9 (export): exports, each written atomically ([`crate::fsio`]).
//!
//! - [`camtrap_dp`]: Camtrap DP 1.0.2 packages (deployments, media, observations), for GBIF.
//! - [`megadetector`]: MegaDetector batch output 1.6 (read by Timelapse, AddaxAI, megadetector-utils).
//! - [`table`]: DeepFaune's results table (filename, date, seqnum, predictions, counts) and its CSV.
//! - [`sort`]: the files sorted into one folder per prediction (copy, move or symlink).

pub mod camtrap_dp;
pub mod megadetector;
pub mod sort;
pub mod table;
