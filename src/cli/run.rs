//! The command line's `run` (the whole DeepFaune pipeline to a table) and `detect`
//! (MegaDetector JSON): their options ([`options`]), the checks made before any image is
//! processed, the run on this machine or on Ray (the host's), and the outputs and summary lines
//! ([`finish`]).

mod detect;
mod finish;
mod models;
mod options;
mod pipeline;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use clap::{ArgMatches, Command};

use super::{CliResult, Hooks};
use crate::error::Error;
use crate::export::table::ResultRow;
use crate::pipeline::Sampled;

pub use finish::Outcome;

/// A run on a Ray cluster, as `deepfaune_rs.distributed.run` takes it (`--ray`).
#[derive(Debug, Clone, PartialEq)]
pub struct RayRequest {
    /// The inputs, as given.
    pub inputs: Vec<String>,
    /// The detector (id, mode or file).
    pub detector: Option<String>,
    /// `--detection-threshold`.
    pub detection_threshold: Option<f64>,
    /// The classifier (id, manifest or file) and its manifest.
    pub classifier: String,
    /// `--classifier-manifest`.
    pub classifier_manifest: Option<String>,
    /// `--score-threshold`.
    pub score_threshold: Option<f64>,
    /// `--maxlag` (seconds).
    pub maxlag_s: f64,
    /// `--language`.
    pub language: String,
    /// `--disable`.
    pub disabled_classes: Vec<String>,
    /// `--bird-head`.
    pub bird_head: bool,
    /// `--device`.
    pub device: String,
    /// `fp32` or `int8`.
    pub precision: String,
    /// The cluster's address.
    pub address: String,
    /// Pipelines run at once.
    pub actors: i64,
    /// One checkpoint per folder here.
    pub checkpoint_dir: Option<String>,
    /// Whether the crop embeddings are kept (`--embeddings`).
    pub keep_embeddings: bool,
    /// Whether a progress bar is shown.
    pub progress: bool,
}

/// What a run on Ray gave: the merged results and how many folders were run or restored.
pub struct RayRun {
    /// The results of the one run over the inputs.
    pub outcome: Outcome,
    /// Work units (folders).
    pub units: usize,
    /// Units run.
    pub ran: usize,
    /// Units taken whole from their checkpoint.
    pub restored: usize,
}

/// The error of a hook the host does not implement.
fn cannot(what: &str) -> Error {
    Error::InvalidArgument(format!("this host cannot {what}"))
}

/// What these commands need from the host (PyAV's video frames, Ray, openpyxl, numpy's .npz,
/// the download and conversion of weights). Every method has a default: a host that cannot do
/// it (the tests' recorder) says so as an error.
pub trait RunHooks {
    /// Whether the user interrupted the command (Ctrl-C): [`Error::Cancelled`] then. Asked
    /// between images, with or without a progress bar.
    fn check_interrupt(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Reads a video's sampled frames (PyAV). By default every video is a failed record saying
    /// what reads frames.
    fn sample_video(&mut self, path: &Path) -> Result<Sampled, Error> {
        let _ = path;
        Ok(Err(crate::pipeline::no_sampler_failure()))
    }

    /// Writes DeepFaune's table (`rows`) as XLSX at `path`, atomically (openpyxl).
    /// `videos`: the table has the videos' columns (`media_type`, `keyframe`).
    fn write_excel(
        &mut self,
        rows: &[ResultRow],
        videos: bool,
        path: &Path,
        csv_safe: bool,
    ) -> Result<(), Error> {
        let _ = (rows, videos, path, csv_safe);
        Err(cannot("write .xlsx (openpyxl)"))
    }

    /// Writes `filename` (`paths`) and `embedding` (`[paths.len(), dim]`, row-major) arrays to
    /// an `.npz` file, atomically (numpy).
    fn save_embeddings(
        &mut self,
        path: &Path,
        paths: &[PathBuf],
        embeddings: &[f32],
        dim: usize,
    ) -> Result<(), Error> {
        let _ = (path, paths, embeddings, dim);
        Err(cannot("write .npz (numpy)"))
    }

    /// Runs `request` on a Ray cluster (`deepfaune_rs.distributed.run`).
    fn run_on_ray(&mut self, request: &RayRequest) -> Result<RayRun, Error> {
        let _ = request;
        Err(cannot("run on Ray"))
    }

    /// Downloads, checks and converts the official weights of the built-in models `ids`
    /// (`deepfaune_rs.fetch.fetch`: its `.pt` converter is Python's).
    fn fetch_models(&mut self, ids: &[String], progress: bool) -> Result<(), Error> {
        let _ = (ids, progress);
        Err(cannot("fetch model weights"))
    }
}

/// The subcommands of this module.
pub fn commands() -> Vec<Command> {
    vec![options::detect(), options::run()]
}

/// Runs subcommand `name` if it is one of this module's, else `None`.
pub fn dispatch(name: &str, m: &ArgMatches, hooks: &mut dyn Hooks) -> Option<CliResult> {
    match name {
        "detect" => Some(detect::detect(m, hooks)),
        "run" => Some(pipeline::run(m, hooks)),
        _ => None,
    }
}
