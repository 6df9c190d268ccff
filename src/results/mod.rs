//! The results every stage after detection shares: the columns of a run ([`DetectionResults`]),
//! its [`Failure`] records and category codes, and what a person said about an image
//! ([`Reviewed`]). [`crate::run`] fills them, [`crate::import`] builds them from a MegaDetector
//! file, [`crate::export`] writes them and [`crate::review`] corrects them; this module depends
//! on none of those (only on the stages below: image dates, detection decisions, labels).

pub mod agreement;
pub mod detection;
pub mod video;

use std::path::PathBuf;

pub use detection::DetectionResults;
pub use video::{VideoDetection, VideoFailure, VideoRecord};

use crate::sequence::Label;

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

/// What the journal says about one image: its label as a [`Label`] (a run's rows), or as text
/// (`Reviewed<String>`: the review page's rows, a table read without its run).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Reviewed<L = Label> {
    /// The label a person gave (`None`: the machine's label stands, verified).
    pub label: Option<L>,
    /// Checked by a person.
    pub verified: bool,
    /// Who made the last change.
    pub by: Option<String>,
    /// When the last change was made.
    pub time: String,
}
