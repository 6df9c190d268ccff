//! Embedding manifests (`kind = "embedding"`): the crop embedders of re-identification
//! ([`crate::reid::embed`]): crop policy, optional CLAHE, output width.
//!
//! ```
//! let m = deepfaune_rs::manifest::embedding::builtin_embedder("yolox-embed").unwrap();
//! assert_eq!((m.input.size, m.output.dim), (256, 672));
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{
    builtin_text, parse_manifest, read_manifest, weights_beside, ManifestHeader, ModelKind,
    ResizeMethod,
};
use crate::error::ModelError;

/// How a crop becomes the model's square input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizePolicy {
    /// Stretched to `size` x `size`, aspect ratio not kept (DeepFaune's classifier).
    Squash,
    /// Long side to `size` keeping the aspect ratio, then padded centred to a square (lynx-id:
    /// albumentations `LongestMaxSize` + `PadIfNeeded`).
    PadSquare,
}

/// Contrast-limited adaptive histogram equalisation of the lightness, before resizing.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaheParams {
    /// OpenCV's `clipLimit` (lynx-id: 4.0).
    pub clip_limit: f32,
    /// Tiles per side (lynx-id: 4, i.e. a 4x4 grid).
    pub tile_grid: u32,
}

/// Input facts of an embedding model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingInput {
    /// Input tensor name (the first input when absent).
    #[serde(default)]
    pub name: Option<String>,
    /// Side of the square input, in pixels.
    pub size: u32,
    /// Squash or pad to a square.
    pub resize: ResizePolicy,
    /// Resampler.
    pub resampler: ResizeMethod,
    /// Grey level of the padding.
    #[serde(default)]
    pub pad_value: u8,
    /// Pixel values are multiplied by this, then `(v - mean) / std` per channel (RGB order).
    pub scale: f32,
    /// Per-channel mean, after scaling.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, after scaling.
    pub std: [f32; 3],
    /// Optional CLAHE on the crop before resizing.
    #[serde(default)]
    pub clahe: Option<ClaheParams>,
}

/// Output facts of an embedding model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingOutput {
    /// Output tensor name (the first output when absent).
    #[serde(default)]
    pub name: Option<String>,
    /// Embedding dimension.
    pub dim: usize,
    /// Whether to L2-normalise each vector after the model.
    pub l2_normalize: bool,
}

/// An embedding manifest: the [`ManifestHeader`] and the embedder's tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingManifest {
    /// The fields every kind shares (`id`, `file`, `sha256`, ...; read as `m.id`).
    #[serde(skip)]
    pub header: ManifestHeader,
    /// Input facts.
    pub input: EmbeddingInput,
    /// Output facts.
    pub output: EmbeddingOutput,
    /// Where the manifest was read from (None for built-ins).
    #[serde(skip)]
    pub source_dir: Option<PathBuf>,
}

impl EmbeddingManifest {
    /// Parses and validates a manifest; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ModelError> {
        let bad = |reason: String| ModelError::Manifest {
            path: origin.to_string(),
            reason,
        };
        let (header, mut m): (_, EmbeddingManifest) =
            parse_manifest(text, origin, ModelKind::Embedding)?;
        m.header = header;
        if !(8..=4096).contains(&m.input.size) {
            return Err(bad(format!(
                "input.size {} out of range 8..4096",
                m.input.size
            )));
        }
        if !(m.input.scale.is_finite() && m.input.scale > 0.0) {
            return Err(bad("input.scale must be positive".into()));
        }
        if m.input.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
            || m.input.mean.iter().any(|v| !v.is_finite())
        {
            return Err(bad(
                "input.mean must be finite and input.std positive".into()
            ));
        }
        if let Some(c) = m.input.clahe {
            if !(c.clip_limit.is_finite() && c.clip_limit > 0.0)
                || c.tile_grid == 0
                || c.tile_grid > 64
            {
                return Err(bad(
                    "clahe needs clip_limit > 0 and tile_grid within 1..64".into()
                ));
            }
        }
        if m.output.dim == 0 {
            return Err(bad("output.dim must be positive".into()));
        }
        Ok(m)
    }

    /// Reads a manifest file.
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        read_manifest(path, Self::from_toml, |m, dir| m.source_dir = dir)
    }

    /// Where the weights are expected: next to the manifest file, else in the model directory.
    pub fn weights_path(&self) -> PathBuf {
        weights_beside(self.source_dir.as_deref(), &self.file)
    }
}

/// A built-in embedding manifest by id (case-insensitive); unknown, an error that lists the
/// embedders.
pub fn builtin_embedder(id: &str) -> Result<EmbeddingManifest, ModelError> {
    let b = builtin_text(id, &[ModelKind::Embedding])?;
    EmbeddingManifest::from_toml(b.text, b.file)
}

super::header_deref!(EmbeddingManifest);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::builtins;

    #[test]
    fn builtins_parse() {
        for b in builtins(ModelKind::Embedding) {
            EmbeddingManifest::from_toml(b.text, b.file).unwrap();
        }
        let l = builtin_embedder("lynx-id-dinov2").unwrap();
        assert_eq!(
            l.input.clahe,
            Some(ClaheParams {
                clip_limit: 4.0,
                tile_grid: 4
            })
        );
        assert_eq!(l.input.resize, ResizePolicy::PadSquare);
        assert!(builtin_embedder("nope").is_err());
    }

    #[test]
    fn rejects_bad_manifests() {
        let good = builtin_text("yolox-embed", &[ModelKind::Embedding])
            .unwrap()
            .text;
        assert!(EmbeddingManifest::from_toml(&good.replace("dim = 672", "dim = 0"), "x").is_err());
        assert!(EmbeddingManifest::from_toml(
            &good.replace("kind = \"embedding\"", "kind = \"detector\""),
            "x"
        )
        .is_err());
        assert!(EmbeddingManifest::from_toml(
            &good.replace("std = [1.0, 1.0, 1.0]", "std = [1.0, 0.0, 1.0]"),
            "x"
        )
        .is_err());
        assert!(EmbeddingManifest::from_toml(
            &good.replace("resize = \"pad-square\"", "resize = \"crop\""),
            "x"
        )
        .is_err());
    }
}
