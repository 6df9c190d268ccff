//! Stage 3 (detect): detection.
//!
//! - [`postprocess`]: raw output tensors (YOLOv8 `[b, 4+nc, N]`, YOLOv5/YOLOX `[b, N, 5+nc]`) to
//!   candidate boxes, and class-aware NMS.
//! - [`decision`]: DeepFaune's per-image decision (empty / animal / human / vehicle, counts) and
//!   the square crop box for the classifier.
//! - [`detector`]: one ONNX detector driven by its manifest.
//! - [`mode`]: DeepFaune's detector modes (DF, MDS, DFbsMDS backstop, DFMDS ensemble, MDR).

pub mod decision;
pub mod detector;
pub mod loader;
pub mod mode;
pub mod postprocess;

pub use decision::{crop_square, ImageDecision, ImageKind};
pub use detector::OnnxDetector;
pub use mode::{DetectorMode, DetectorSet};
pub use postprocess::{nms, Detection};
