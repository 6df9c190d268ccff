//! # deepfaune-rs
//!
//! The Rust core of a camera-trap image sorter that reproduces DeepFaune's answers without PyTorch.
//! The stages, in the order data flows through them (one module each; the numbers are
//! ARCHITECTURE.md's):
//!
//! 1. [`image_io`]: walk a folder tree, decode images (EXIF orientation applied), read EXIF dates.
//! 2. [`preprocess`]: Pillow-compatible resampling and letterboxing into model tensors.
//! 3. [`detect`]: ONNX detectors (YOLOv8 / YOLOv5 / YOLOX layouts), NMS, the per-image decision
//!    (empty / animal / human / vehicle), the square crop box, and the detector modes
//!    (DF, MDS, DFbsMDS, DFMDS, MDR).
//! 4. [`run`]: the streaming driver: parallel decoding feeding inference through a bounded queue,
//!    per-file failures recorded as data; frames held in memory (videos) through the same steps.
//!    [`pipeline::Pipeline`] owns the models and the checked settings and runs them to labelled results.
//! 5. [`classify`]: the crop squashed to the classifier's input, batched ONNX inference, raw logits
//!    and the embedding per crop.
//! 6. [`sequence`]: DeepFaune's sequences and logit averaging, and one answer per video.
//! 7. [`reid`]: individual re-identification (lynx-id): crop embeddings, a knowledge base in
//!    lynx-id's files, exact cosine k-NN, open-set "new individual" rules and retrieval metrics.
//! 8. [`import`]: someone else's detections (a MegaDetector batch file) as the detection step.
//! 9. [`export`]: MegaDetector batch JSON (with species), Camtrap DP packages, DeepFaune's table,
//!    sorting into folders.
//! 10. [`review`]: after a run: the corrections journal, thumbnails, a table's labels.
//!
//! Beside the stages, [`fetch`]: the built-in models' official files (targets, checks, the
//! lock file, each file's state); Python downloads them. [`convert`]: official PyTorch
//! checkpoints read without torch (nothing in the pickle runs) and written as ONNX graphs.
//!
//! Below the stages, depending on none of them above: the results every later stage shares
//! ([`results`]: a run's columns, failures, a person's review), atomic file writing ([`fsio`]),
//! model facts in TOML manifests ([`manifest`]: input size, letterbox style, output layout,
//! classes, thresholds), ONNX Runtime loaded at run time from a shared library ([`runtime`]),
//! errors ([`error`]) and the thread pool ([`parallel`]). `tests/module_layers.rs` holds the
//! allowed dependencies. The Python bindings (feature `python`) live in `python/` and only
//! convert types.
#![deny(missing_docs)]

pub mod classify;
pub mod cli;
pub mod convert;
pub mod detect;
pub mod error;
pub mod export;
pub mod fetch;
pub mod fsio;
pub mod image_io;
pub mod import;
pub mod manifest;
pub mod parallel;
pub mod pipeline;
pub mod preprocess;
pub mod progress;
pub mod reid;
pub mod results;
pub mod review;
pub mod run;
pub mod runtime;
pub mod sequence;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, Result};
