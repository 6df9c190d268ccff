//! Embedding manifests (`kind = "embedding"`): one TOML file per model under `models/`.
//!
//! ```
//! let m = deepfaune_rs::reid::embed::builtin_embedder("yolox-embed").unwrap();
//! assert_eq!((m.input.size, m.output.dim), (256, 672));
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::ModelError;
use crate::manifest::{check_sha, read_manifest, weights_beside, ResizeMethod};

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

/// An embedding manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingManifest {
    /// Always `"embedding"`.
    pub kind: String,
    /// Short id.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Weights file name (next to the manifest, or in the model directory).
    pub file: String,
    /// sha256 of the weights; empty when it cannot be pinned.
    #[serde(default)]
    pub sha256: String,
    /// Licence of the weights.
    #[serde(default)]
    pub license: String,
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
        let m: EmbeddingManifest = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if m.kind != "embedding" {
            return Err(bad(format!("kind is '{}', expected 'embedding'", m.kind)));
        }
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
        check_sha(&m.sha256).map_err(|r| bad(r.into()))?;
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

/// The built-in embedding manifests' TOML text, by file name.
pub const BUILTIN_EMBEDDERS: &[(&str, &str)] = &[
    (
        "yolox-embed.toml",
        include_str!("../../../models/yolox-embed.toml"),
    ),
    (
        "deepfaune-cls-embed.toml",
        include_str!("../../../models/deepfaune-cls-embed.toml"),
    ),
    (
        "lynx-id-dinov2.toml",
        include_str!("../../../models/lynx-id-dinov2.toml"),
    ),
];

/// A built-in embedding manifest by id (case-insensitive).
pub fn builtin_embedder(id: &str) -> Result<EmbeddingManifest, ModelError> {
    let all: Vec<EmbeddingManifest> = BUILTIN_EMBEDDERS
        .iter()
        .filter_map(|(name, text)| EmbeddingManifest::from_toml(text, name).ok())
        .collect();
    let known = all
        .iter()
        .map(|m| m.id.clone())
        .collect::<Vec<_>>()
        .join(", ");
    all.into_iter()
        .find(|m| m.id.eq_ignore_ascii_case(id))
        .ok_or(ModelError::Unknown {
            id: id.to_string(),
            known,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse() {
        for (name, text) in BUILTIN_EMBEDDERS {
            EmbeddingManifest::from_toml(text, name).unwrap();
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
        let good = BUILTIN_EMBEDDERS[0].1;
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
