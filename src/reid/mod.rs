//! Stage 7 (reid): individual re-identification, as lynx-id does it.
//!
//! The stage, in the order data flows:
//!
//! 1. [`embed`]: an embedding ONNX described by a manifest turns animal crops (the detector's, or
//!    given boxes) into one vector per crop.
//! 2. [`kb`]: the [`KnowledgeBase`](kb::KnowledgeBase): rows (filepath, individual, date, location)
//!    aligned with an embeddings matrix, read and written in lynx-id's format
//!    (`informations.csv` + `embeddings.safetensors`), saved atomically.
//! 3. [`search`]: exact k nearest neighbours by cosine distance (blocked matrix product, rayon).
//! 4. [`openset`]: is the nearest individual the right one, or a new animal? (distance threshold,
//!    or lynx-id's per-dimension Gaussian test).
//! 5. [`query`]: the lynx-id answer per query (predicted individual, new or not, latest picture,
//!    location, neighbours).
//! 6. [`metrics`]: top-1 accuracy, CMC@k, mAP@k, precision and recall of "new", threshold sweep;
//!    [`evaluate`]: those figures for labelled queries, the threshold given or swept on a
//!    validation part.
//!
//! [`boxes`] reads the crop of each image from a MegaDetector batch file; [`table`] runs the
//! workflow of the `reid` commands on tables of pictures (build, query, update, evaluate).

pub mod boxes;
pub mod embed;
pub mod evaluate;
pub mod kb;
pub mod metrics;
pub mod openset;
pub mod query;
pub mod search;
pub mod table;

/// Why a re-identification operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ReidError {
    /// Arrays whose sizes do not fit together (row counts, dimensions).
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A vector unfit for cosine distance: a NaN or infinite value, zero, or a norm too small
    /// or too large for float32.
    #[error("unusable vector: {0}")]
    NonFinite(String),
    /// A bad argument (k = 0, an unknown individual, a duplicate filepath...).
    #[error("invalid argument: {0}")]
    Argument(String),
    /// A knowledge-base file that cannot be read or does not make sense.
    #[error("knowledge base {path}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A knowledge-base or model file that does not exist.
    #[error("{0}: no such file")]
    NotFound(String),
    /// A file that could not be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl ReidError {
    /// An I/O error on `path`, keeping "not found" apart.
    pub fn io(path: &std::path::Path, e: std::io::Error) -> ReidError {
        if e.kind() == std::io::ErrorKind::NotFound {
            ReidError::NotFound(path.display().to_string())
        } else {
            ReidError::Io {
                path: path.display().to_string(),
                reason: e.to_string(),
            }
        }
    }
}
