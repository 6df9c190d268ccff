//! The detection run: files in, a columnar [`DetectionResults`] out.

use std::path::{Path, PathBuf};

use crate::detect::decision::{decide, ImageDecision};
use crate::detect::DetectorSet;
use crate::error::Error;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::image_io::{DecodeOptions, DecodedImage, Found, MediaKind, Timestamp, Walker};

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

/// A file that could not be processed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// Row of the image in the results, `None` for folder-walk problems.
    pub index: Option<usize>,
    /// The path.
    pub path: PathBuf,
    /// `walk`, `read` or `decode`.
    pub stage: &'static str,
    /// Machine key (`empty`, `corrupt`, `too_large`, `io`, `format`, `walk`).
    pub kind: &'static str,
    /// Human-readable reason.
    pub reason: String,
}

/// Category codes of [`DetectionResults::category`].
pub const CATEGORY_FAILED: u8 = 255;

/// Results of a detection run, as columns.
#[derive(Debug, Default, Clone)]
pub struct DetectionResults {
    /// One row per image (input order, sorted as walked).
    pub paths: Vec<PathBuf>,
    /// Image width after EXIF orientation (0 for failures).
    pub width: Vec<u32>,
    /// Image height after EXIF orientation (0 for failures).
    pub height: Vec<u32>,
    /// EXIF DateTimeOriginal.
    pub date: Vec<Option<Timestamp>>,
    /// `ImageKind` code (0 empty, 1 animal, 2 human, 3 vehicle) or [`CATEGORY_FAILED`].
    pub category: Vec<u8>,
    /// Animal boxes.
    pub count: Vec<u32>,
    /// Person boxes.
    pub humancount: Vec<u32>,
    /// Square crop `[x1, y1, x2, y2)` of the best animal box, `-1` when none.
    pub crop: Vec<[i32; 4]>,
    /// Row in the detection columns of the deciding box, `-1` when none.
    pub best_detection: Vec<i64>,
    /// Detection columns: image row of each box.
    pub det_image: Vec<u32>,
    /// `[x1, y1, x2, y2]` in original pixels.
    pub det_xyxy: Vec<[f32; 4]>,
    /// Confidence.
    pub det_conf: Vec<f32>,
    /// Category code (0 animal, 1 person, 2 vehicle).
    pub det_category: Vec<u8>,
    /// Everything that failed, with reasons.
    pub failures: Vec<Failure>,
    /// Ids of the detectors that ran (for output metadata).
    pub detector: String,
    /// None of the detectors that ran has a person class (md-lite): "no person box" then says
    /// nothing about people, and blurring them is refused.
    pub no_person_class: bool,
}

impl DetectionResults {
    /// Appends a failed image row and its [`Failure`].
    pub(crate) fn push_failure(
        &mut self,
        index: usize,
        path: &Path,
        stage: &'static str,
        kind: &'static str,
        reason: String,
    ) {
        self.paths.push(path.to_path_buf());
        self.width.push(0);
        self.height.push(0);
        self.date.push(None);
        self.category.push(CATEGORY_FAILED);
        self.count.push(0);
        self.humancount.push(0);
        self.crop.push([-1; 4]);
        self.best_detection.push(-1);
        self.failures.push(Failure {
            index: Some(index),
            path: path.to_path_buf(),
            stage,
            kind,
            reason,
        });
    }

    /// Appends a decoded image's row (see [`Self::push_row`]).
    pub(crate) fn push_image(
        &mut self,
        path: &Path,
        img: &DecodedImage,
        dets: Vec<crate::detect::Detection>,
    ) {
        let (w, h) = img.image.dimensions();
        self.push_row(path, w, h, img.exif.date.clone(), dets);
    }

    /// Appends an image row of size `w` x `h` (after orientation) with its boxes (all above the
    /// threshold, original pixels) and DeepFaune's decision on them.
    pub(crate) fn push_row(
        &mut self,
        path: &Path,
        w: u32,
        h: u32,
        date: Option<Timestamp>,
        dets: Vec<crate::detect::Detection>,
    ) {
        let d = decide(&dets, w, h);
        self.push_decided(path, w, h, date, dets, d);
    }

    /// Appends an image row with its boxes and a decision made elsewhere (boxes read from a
    /// file with other rules).
    pub(crate) fn push_decided(
        &mut self,
        path: &Path,
        w: u32,
        h: u32,
        date: Option<Timestamp>,
        dets: Vec<crate::detect::Detection>,
        d: ImageDecision,
    ) {
        let row = self.paths.len() as u32;
        let first = self.det_conf.len() as i64;
        self.paths.push(path.to_path_buf());
        self.width.push(w);
        self.height.push(h);
        self.date.push(date);
        self.category.push(d.kind as u8);
        self.count.push(d.count);
        self.humancount.push(d.humancount);
        self.crop
            .push(d.crop.map(|c| c.map(|v| v as i32)).unwrap_or([-1; 4]));
        self.best_detection
            .push(d.best.map(|b| first + b as i64).unwrap_or(-1));
        for det in dets {
            self.det_image.push(row);
            self.det_xyxy.push(det.bbox);
            self.det_conf.push(det.conf);
            self.det_category.push(det.category as u8);
        }
    }

    /// Number of images (rows).
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
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
}

impl Discovered {
    /// Keeps a non-image find; gives back the path of an image.
    pub fn sort_out(&mut self, found: Found) -> Option<PathBuf> {
        match found {
            Found::File(p, MediaKind::Image) => return Some(p),
            Found::File(p, MediaKind::Video) => self.videos.push(p),
            Found::File(p, MediaKind::UnsupportedVideo) => self.unsupported_videos.push(p),
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
/// error (e.g. [`Error::Cancelled`]) to stop.
pub fn detect_files(
    inputs: &[PathBuf],
    set: &mut DetectorSet,
    opts: &RunOptions,
    progress: &mut dyn FnMut(usize, usize) -> Result<(), Error>,
) -> Result<DetectionResults, Error> {
    Ok(super::pipeline::run_pipeline(inputs, set, None, opts, progress)?.detection)
}
