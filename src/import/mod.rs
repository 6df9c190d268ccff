//! Stage 8 (import): Someone else's detections read as the detection step, so that their boxes
//! go through classification, sequences and exports like those of a detection run.
//!
//! - [`megadetector`]: a MegaDetector batch file (formats 1.0 to 1.6, from MegaDetector,
//!   AddaxAI or any tool writing the format) to [`crate::results::DetectionResults`] rows,
//!   decided by one of two rule sets; classifying them is [`crate::run::run_imported`].
//!
//! Readers only: every file the core writes is in [`crate::export`].

pub mod megadetector;
