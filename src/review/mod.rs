//! Stage 10 (review): what a person decides after a run, kept as data beside the results.
//!
//! - [`corrections`]: the append-only journal of relabelled and verified images
//!   (`<results>.corrections.jsonl`) and how it changes a run's predictions;
//! - [`thumbnail`]: the small upright pictures the review page and the notebooks show, with a
//!   disk cache (or from pixels already decoded: a video's keyframe);
//! - [`labels`]: the labels a results table read without its run speaks (classifier, language);
//! - [`presets`]: a region's species list saved under a name, as the classes to switch off;
//! - [`html`]: what the notebooks show (an image with its SVG boxes, a gallery, a summary);
//! - [`state`]: what the review server holds and its handler calls ([`ReviewState`]): a
//!   source (a run, or a table), the journal, the rows shown; the page's requests read here;
//! - [`table`]: a results table reviewed without its run ([`ResultTable`]: read, journal
//!   applied, corrected CSV written);
//! - [`page`]: the review page's state ([`ReviewRows`]): a result's rows (images, then videos,
//!   or a table read without its run), each change applied in place, filtered, paged and
//!   counted, each row and sequence as the page's JSON.
//!
//! Re-deciding a run with other settings (threshold, per-class thresholds, disabled classes,
//! `maxlag_s`) is [`crate::run::PipelineResults::sequences`]: the same function a run ends with,
//! over the stored logits.

pub mod corrections;
pub mod html;
pub mod labels;
pub mod page;
pub mod presets;
pub mod state;
pub mod table;
pub mod thumbnail;

pub use crate::results::Reviewed;
pub use corrections::{
    append_correction, apply_corrections, apply_corrections_to_videos, read_journal,
    reviewed_after, Correction,
};
pub use labels::{label_texts, table_labels, TableLabels};
pub use page::{Filter, ReviewRows, Row, RowBox, RunRows, TableColumns};
pub use state::{Redecision, ReviewSource, ReviewState};
pub use table::{ResultTable, NO_BOXES, NO_REDECIDE};
pub use thumbnail::{cache_dir as thumbnail_cache_dir, thumbnail, thumbnail_cached, thumbnail_of};
