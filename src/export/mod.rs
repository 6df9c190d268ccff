//! Stage 5: exports, each written atomically ([`atomic`]).
//!
//! - [`megadetector`]: MegaDetector batch output 1.6 (read by Timelapse, AddaxAI, megadetector-utils).

pub mod atomic;
pub mod megadetector;

pub use atomic::write_atomic;
