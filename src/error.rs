//! Error types of the core, one enum per concern, gathered in [`Error`].
//!
//! Per-image problems (a corrupt JPEG, a 0-byte file) are not errors of a run: they are recorded
//! as [`crate::results::Failure`] rows and the run goes on. These types are for whole operations
//! that cannot proceed (no ONNX Runtime, a bad manifest, an unwritable output file).

use std::path::PathBuf;

/// Why an image could not be read or decoded.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ImageError {
    /// The file could not be opened or read (missing, permissions, a directory, vanished).
    #[error("cannot read file: {0}")]
    Io(String),
    /// The file is empty (0 bytes).
    #[error("empty file (0 bytes)")]
    Empty,
    /// The bytes are not an image of a supported format.
    #[error("not a supported image: {0}")]
    Format(String),
    /// The image is damaged (truncated or corrupt data).
    #[error("corrupt image: {0}")]
    Corrupt(String),
    /// The header claims more pixels than the configured limit (decompression-bomb guard).
    #[error("image too large: {width}x{height} pixels exceeds the limit of {limit} pixels")]
    TooLarge {
        /// Width from the header.
        width: u64,
        /// Height from the header.
        height: u64,
        /// The limit in pixels.
        limit: u64,
    },
    /// The file is bigger than any image within the pixel limit can be (8 bytes a pixel, as
    /// 16-bit RGBA without compression, plus 1 MiB): it is not read into memory.
    #[error("file too large: {bytes} bytes exceeds the limit of {limit} bytes for an image")]
    FileTooLarge {
        /// The file's size.
        bytes: u64,
        /// The limit in bytes.
        limit: u64,
    },
}

impl ImageError {
    /// A short machine key for this error kind (`io`, `empty`, `format`, `corrupt`, `too_large`).
    pub fn key(&self) -> &'static str {
        match self {
            ImageError::Io(_) => "io",
            ImageError::Empty => "empty",
            ImageError::Format(_) => "format",
            ImageError::Corrupt(_) => "corrupt",
            ImageError::TooLarge { .. } | ImageError::FileTooLarge { .. } => "too_large",
        }
    }
}

/// Problems with a model manifest or model file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The manifest could not be parsed or is inconsistent.
    #[error("invalid manifest {path}: {reason}")]
    Manifest {
        /// Where the manifest came from.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// No model with that id is known; `known` lists the ids that are.
    #[error("unknown model '{id}' (known: {known}; or give a manifest .toml or an .onnx file)")]
    Unknown {
        /// The id asked for.
        id: String,
        /// The valid ids, comma-separated.
        known: String,
    },
    /// The weights file is not where the manifest says.
    #[error("model weights not found at {path}: {hint}")]
    WeightsMissing {
        /// The expected path.
        path: PathBuf,
        /// What the user can do.
        hint: String,
    },
    /// The weights file does not have the manifest's checksum.
    #[error("checksum mismatch for {path}: expected sha256 {expected}, found {found}")]
    Checksum {
        /// The file.
        path: PathBuf,
        /// From the manifest.
        expected: String,
        /// Computed.
        found: String,
    },
    /// Targets of `models fetch` that are no built-in model, mode or `deepfaune`.
    #[error("unknown model or mode {names}: choose from {choices}")]
    UnknownTarget {
        /// The unknown targets, quoted and comma-separated.
        names: String,
        /// The valid targets, comma-separated.
        choices: String,
    },
    /// A file of a model that is not the one expected (size or hashes against the publisher's
    /// or the lock file's), or a lock file that cannot be trusted: the whole message.
    #[error("{0}")]
    Refused(String),
    /// A model file that no URL gave (`models fetch`): the whole message, naming the file and
    /// what each URL answered.
    #[error("{0}")]
    Download(String),
    /// A downloaded checkpoint that could not be converted to ONNX: the whole message.
    #[error("{0}")]
    Conversion(String),
    /// The ONNX model does not have the inputs/outputs the manifest describes.
    #[error("model does not match its manifest: {0}")]
    Mismatch(String),
}

/// Problems with ONNX Runtime itself.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The shared library could not be found or loaded.
    #[error("ONNX Runtime could not be loaded: {0}")]
    NotFound(String),
    /// An ONNX Runtime call failed.
    #[error("ONNX Runtime error: {0}")]
    Ort(String),
    /// The requested execution provider is not in this ONNX Runtime build.
    #[error("{0}")]
    Unavailable(String),
}

impl From<ort::Error> for RuntimeError {
    fn from(e: ort::Error) -> Self {
        RuntimeError::Ort(e.to_string())
    }
}

/// Any error of the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// See [`ImageError`].
    #[error("{path}: {source}")]
    Image {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ImageError,
    },
    /// See [`ModelError`].
    #[error(transparent)]
    Model(#[from] ModelError),
    /// See [`RuntimeError`].
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A bad argument from the caller.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An output file could not be written.
    #[error("cannot write {path}: {reason}")]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The run was cancelled (Ctrl-C from Python, or a progress callback that raised).
    #[error("cancelled")]
    Cancelled,
    /// See [`crate::reid::ReidError`].
    #[error(transparent)]
    Reid(#[from] crate::reid::ReidError),
    /// See [`crate::convert::ConvertError`].
    #[error(transparent)]
    Convert(#[from] crate::convert::ConvertError),
}

impl From<ort::Error> for Error {
    fn from(e: ort::Error) -> Self {
        Error::Runtime(e.into())
    }
}

/// Result alias of the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
