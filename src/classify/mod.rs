//! Stage 5 (classify): species classification of the best animal crop (SPEC 2.3).
//!
//! - [`crop`]: the square crop cut from the full-resolution image, squashed to the input size with
//!   Pillow's bicubic, then ImageNet-normalised (torchvision's `ToTensor` + `Normalize`).
//! - [`classifier`]: the ONNX classifier (raw logits and the embedding per crop, in batches) and
//!   its optional bird head.
//! - [`given`]: boxes the caller brings (their own detections) to logits and embeddings.

pub mod classifier;
pub mod crop;
pub mod given;

pub use classifier::{check_classifier_spec, load_classifier, ClassifierOutputs, OnnxClassifier};
pub use crop::prepare_crop;
