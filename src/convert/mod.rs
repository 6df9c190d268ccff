//! Official PyTorch checkpoints to ONNX without torch: a restricted reader of `torch.save` files
//! ([`pickle`], over the zip archive of [`archive`]) that runs nothing from the pickle, and an
//! ONNX writer ([`graph`]) the network builders write their graphs with: [`yolo`] for
//! ultralytics / YOLOv5 detectors.

pub mod archive;
pub mod graph;
pub mod onnx_nodes;
pub mod pickle;
pub mod run;
#[cfg(test)]
mod testdata;
pub mod vit;
pub mod yolo;

pub use graph::{Attr, Dim, Elem, Graph};
pub use pickle::{load_checkpoint, Object, Tensor, Value};

/// Why a checkpoint could not be converted. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The file is not a readable PyTorch checkpoint, or its pickle asks for something unsafe.
    #[error("{0}")]
    Checkpoint(String),
    /// The checkpoint is readable but holds something the builders do not support.
    #[error("{0}")]
    Build(String),
}

/// `Result` with a [`ConvertError`].
pub type Result<T> = std::result::Result<T, ConvertError>;
