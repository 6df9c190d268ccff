//! Stage 2 (preprocess): turning decoded images into model inputs.
//!
//! - [`resize`]: Pillow's resampling (BICUBIC/BILINEAR, antialiased when shrinking) ported to the
//!   bit, and OpenCV's INTER_LINEAR, so tensors match the Python references.
//! - [`letterbox`]: the detector input geometry (ultralytics centred, or zamba top-left) and the
//!   mapping of boxes back to original pixels.

pub mod letterbox;
pub mod resize;

pub use letterbox::Letterbox;
pub use resize::{resize_cv2_linear, resize_pil, PilFilter, Rect};
