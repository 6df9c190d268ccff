//! The detection run: files in, a columnar [`DetectionResults`] out.

use std::path::{Path, PathBuf};

use crate::detect::DetectorSet;
use crate::error::Error;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::image_io::{DecodeOptions, Found, MediaKind, Walker};
pub use crate::results::{DetectionResults, Failure, CATEGORY_FAILED};

/// Options of a run.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Decoding limits.
    pub decode: DecodeOptions,
    /// Decode/preprocess worker threads.
    pub threads: usize,
    /// Images per inference call.
    pub batch_size: usize,
    /// Prepared images allowed to wait for inference (bounds memory).
    pub window: usize,
    /// Decoded pixels allowed in flight, whatever the thread count (`None`: the pixel limit,
    /// `decode.max_pixels`); see [`super::budget`].
    pub pixel_budget: Option<u64>,
}

impl RunOptions {
    /// The pixel budget in force.
    pub fn pixel_budget(&self) -> u64 {
        self.pixel_budget.unwrap_or(self.decode.max_pixels)
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        RunOptions {
            decode: DecodeOptions::default(),
            threads: cores.clamp(1, 4),
            batch_size: 1,
            window: 2 * cores.clamp(1, 4),
            pixel_budget: None,
        }
    }
}

/// The inputs as one lazy stream: folders are walked ([`Walker`], sorted), files are kept as
/// given (as images, whatever their extension: the caller named them).
pub fn walk_inputs(inputs: &[PathBuf]) -> impl Iterator<Item = Found> + Send + '_ {
    inputs
        .iter()
        .flat_map(|input| -> Box<dyn Iterator<Item = Found> + Send> {
            if input.is_dir() {
                Box::new(Walker::new(input))
            } else {
                Box::new(std::iter::once(Found::File(
                    input.clone(),
                    MediaKind::Image,
                )))
            }
        })
}

/// What a walk met besides images: videos (for the video path), unsupported videos, files of
/// no media type and walk problems (for the failures: nothing the walk meets goes unreported).
#[derive(Debug, Default, Clone)]
pub struct Discovered {
    /// Videos in DeepFaune's formats, in walk order.
    pub videos: Vec<PathBuf>,
    /// Video files DeepFaune does not read, in walk order.
    pub unsupported_videos: Vec<PathBuf>,
    /// Folders and entries that could not be walked, and files of no media type (stage
    /// `walk`, kind `unsupported`).
    pub walk_failures: Vec<Failure>,
    /// NAS / operating-system metadata entries the walk skipped (`@eaDir`, `._*`, ...).
    pub skipped_metadata: usize,
    /// The run's own files ([`own_files`]): passed over when the walk meets them.
    pub own_files: Vec<PathBuf>,
}

/// The files a run writes, as absolute paths: its checkpoint and outputs, each with the
/// sidecars deepfaune-rs puts beside a table (`NAME.checkpoint`, `NAME.corrections.jsonl`). A
/// run whose outputs are inside the folder it reads passes over them instead of listing them as
/// files it could not process.
pub fn own_files(checkpoint: Option<&Path>, outputs: &[PathBuf]) -> Vec<PathBuf> {
    let mut own = Vec::new();
    for file in checkpoint
        .into_iter()
        .chain(outputs.iter().map(PathBuf::as_path))
    {
        let Ok(file) = std::path::absolute(file) else {
            continue;
        };
        for suffix in [".checkpoint", ".corrections.jsonl"] {
            let mut sidecar = file.clone().into_os_string();
            sidecar.push(suffix);
            own.push(PathBuf::from(sidecar));
        }
        own.push(file);
    }
    own
}

impl Discovered {
    /// Nothing found yet; the walk will pass over `own_files` ([`own_files`]).
    pub fn passing_over(own_files: Vec<PathBuf>) -> Discovered {
        Discovered {
            own_files,
            ..Discovered::default()
        }
    }

    fn is_own(&self, path: &Path) -> bool {
        !self.own_files.is_empty()
            && std::path::absolute(path).is_ok_and(|p| self.own_files.contains(&p))
    }

    /// Keeps a non-image find; gives back the path of an image.
    pub fn sort_out(&mut self, found: Found) -> Option<PathBuf> {
        match found {
            Found::File(p, MediaKind::Image) => return Some(p),
            Found::File(p, MediaKind::Video) => self.videos.push(p),
            Found::File(p, MediaKind::UnsupportedVideo) => self.unsupported_videos.push(p),
            Found::Unsupported(path, _) if self.is_own(&path) => {}
            Found::Unsupported(path, reason) => self.walk_failures.push(Failure {
                index: None,
                path,
                stage: "walk",
                kind: "unsupported",
                reason,
            }),
            Found::Metadata(_) => self.skipped_metadata += 1,
            Found::Error(path, reason) => self.walk_failures.push(Failure {
                index: None,
                path,
                stage: "walk",
                kind: "walk",
                reason,
            }),
        }
        None
    }
}

/// Counts the images of `inputs` (a second, cheap walk: listings only) for the progress total,
/// storing the running count in `counted`; gives up when `stop` is set. Returns the count.
pub fn count_images(inputs: &[PathBuf], counted: &AtomicUsize, stop: &AtomicBool) -> usize {
    let mut n = 0;
    for f in walk_inputs(inputs) {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if matches!(f, Found::File(_, MediaKind::Image)) {
            n += 1;
            counted.store(n, Ordering::Relaxed);
        }
    }
    n
}

/// Detects on every file (folders are walked). Per-file problems are recorded in
/// [`DetectionResults::failures`] and the run goes on; `progress(done, total)` may return an
/// error (e.g. [`Error::Cancelled`]) to stop. The walk passes over `outputs`, the files the
/// caller will write the results to ([`own_files`]).
pub fn detect_files(
    inputs: &[PathBuf],
    set: &mut DetectorSet,
    opts: &RunOptions,
    progress: &mut dyn FnMut(usize, usize) -> Result<(), Error>,
    outputs: &[PathBuf],
) -> Result<DetectionResults, Error> {
    let res =
        super::pipeline::run_pipeline_resumable(inputs, set, None, opts, progress, None, outputs)?;
    Ok(res.detection)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The run's own files, named relatively or absolutely, are passed over; any other file of
    /// no media type is still a failure.
    #[test]
    fn the_walk_passes_over_the_runs_own_files_only() {
        let cwd = std::env::current_dir().unwrap();
        let own = own_files(
            Some(Path::new("cam/run.ckpt")),
            &[cwd.join("cam/results.csv")],
        );
        let mut found = Discovered::passing_over(own);
        for name in [
            "run.ckpt",
            "run.ckpt.corrections.jsonl",
            "results.csv",
            "results.csv.checkpoint",
            "results.csv.corrections.jsonl",
            "notes.txt",
            "results.csv.bak",
        ] {
            let walked = cwd.join("cam").join(name);
            assert_eq!(
                found.sort_out(Found::Unsupported(walked, "why".into())),
                None
            );
        }
        let reported: Vec<_> = found
            .walk_failures
            .iter()
            .map(|f| f.path.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(reported, ["notes.txt", "results.csv.bak"]);
    }
}
