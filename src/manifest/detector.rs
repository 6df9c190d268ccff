//! Detector manifests (`kind = "detector"`): input size and letterbox, output layout, classes
//! (each an animal, person or vehicle category), thresholds.
//!
//! ```
//! let m = deepfaune_rs::manifest::builtin("md-lite").unwrap();
//! assert_eq!(m.input.size, 640);
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{
    builtin_text, builtins, known_ids, parse_manifest, read_manifest, weights_beside,
    ManifestHeader, ModelKind, ResizeMethod,
};
use crate::error::ModelError;

/// How the image is placed in the model's square input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LetterboxStyle {
    /// Ultralytics: centred, padding split between both sides.
    Centred,
    /// zamba / `ImageOps.pad(centering=(0, 0))`: image at the top-left, padding bottom/right.
    TopLeft,
}

/// What size the padded input has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputShape {
    /// Always `size` x `size` (fixed-shape ONNX exports).
    Square,
    /// The resized image padded up to a multiple of `stride` (dynamic-shape exports).
    Stride,
}

/// The layout of a detector's raw output tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputLayout {
    /// YOLOv8/v11: `[b, 4 + nc, N]`, no objectness.
    Yolov8,
    /// YOLOv5: `[b, N, 5 + nc]`, score = objectness x class score.
    Yolov5,
    /// YOLOX: `[b, N, 5 + nc]` like YOLOv5, boxes in input pixels.
    Yolox,
}

/// Input facts of a detector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorInput {
    /// Long side of the letterboxed input, in pixels.
    pub size: u32,
    /// Square or stride-padded input.
    #[serde(default = "default_shape")]
    pub shape: InputShape,
    /// Stride for [`InputShape::Stride`].
    #[serde(default = "default_stride")]
    pub stride: u32,
    /// Placement of the image in the input.
    pub letterbox: LetterboxStyle,
    /// Resampler.
    pub resize: ResizeMethod,
    /// Grey level of the padding (114 for ultralytics, 0 for zamba).
    pub pad_value: u8,
    /// Pixel values are multiplied by this (1/255 for ultralytics, 1 for YOLOX).
    pub scale: f32,
    /// Name of the input tensor (the first input when absent).
    #[serde(default)]
    pub name: Option<String>,
}

fn default_shape() -> InputShape {
    InputShape::Square
}
fn default_stride() -> u32 {
    32
}

/// Output facts of a detector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorOutput {
    /// Tensor layout.
    pub layout: OutputLayout,
    /// The model's classes, each mapped to a detection category: `animal`, `person` or `vehicle`.
    pub classes: Vec<String>,
    /// Name of the output tensor (the first output when absent).
    #[serde(default)]
    pub name: Option<String>,
}

/// Post-processing defaults of a detector.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorPostprocess {
    /// Confidence threshold: boxes below it are dropped, and an image without any is empty.
    pub threshold: f32,
    /// IoU above which the weaker of two same-class boxes is suppressed.
    #[serde(default = "default_nms")]
    pub nms_iou: f32,
    /// At most this many boxes per image.
    #[serde(default = "default_max_det")]
    pub max_det: usize,
}

fn default_nms() -> f32 {
    0.7
}
fn default_max_det() -> usize {
    300
}

/// A detector manifest: the [`ManifestHeader`] and the detector's tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorManifest {
    /// The fields every kind shares (`id`, `file`, `sha256`, `url`, ...; read as `m.id`).
    #[serde(skip)]
    pub header: ManifestHeader,
    /// Input facts.
    pub input: DetectorInput,
    /// Output facts.
    pub output: DetectorOutput,
    /// Post-processing defaults.
    pub postprocess: DetectorPostprocess,
    /// Where the manifest was read from (None for built-ins).
    #[serde(skip)]
    pub source_dir: Option<PathBuf>,
}

/// Detection categories, MegaDetector's convention (JSON categories "1", "2", "3").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Category {
    /// An animal.
    Animal = 0,
    /// A person.
    Person = 1,
    /// A vehicle.
    Vehicle = 2,
}

impl Category {
    /// Parses `animal`, `person` (or `human`), `vehicle`.
    pub fn parse(s: &str) -> Option<Category> {
        match s.to_ascii_lowercase().as_str() {
            "animal" => Some(Category::Animal),
            "person" | "human" => Some(Category::Person),
            "vehicle" => Some(Category::Vehicle),
            _ => None,
        }
    }
    /// The name used in outputs.
    pub fn name(self) -> &'static str {
        match self {
            Category::Animal => "animal",
            Category::Person => "person",
            Category::Vehicle => "vehicle",
        }
    }
    /// From the numeric code 0, 1, 2.
    pub fn from_code(c: u8) -> Option<Category> {
        match c {
            0 => Some(Category::Animal),
            1 => Some(Category::Person),
            2 => Some(Category::Vehicle),
            _ => None,
        }
    }
}

impl DetectorManifest {
    /// Whether one of the model's classes is a person (what `blur_humans` needs).
    ///
    /// ```
    /// let m = deepfaune_rs::manifest::builtin("md-lite").unwrap();
    /// assert!(!m.finds_people()); // one class, "animal"
    /// ```
    pub fn finds_people(&self) -> bool {
        self.output
            .classes
            .iter()
            .any(|c| Category::parse(c) == Some(Category::Person))
    }

    /// Parses and validates a manifest from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ModelError> {
        let bad = |reason: String| ModelError::Manifest {
            path: origin.to_string(),
            reason,
        };
        let (header, mut m): (_, DetectorManifest) =
            parse_manifest(text, origin, ModelKind::Detector)?;
        m.header = header;
        if m.input.size < 32 || m.input.size > 8192 {
            return Err(bad(format!(
                "input.size {} out of range 32..8192",
                m.input.size
            )));
        }
        if m.input.stride == 0 {
            return Err(bad("input.stride must be positive".into()));
        }
        if !(m.input.scale.is_finite() && m.input.scale > 0.0) {
            return Err(bad("input.scale must be positive".into()));
        }
        if m.output.classes.is_empty() {
            return Err(bad("output.classes is empty".into()));
        }
        for c in &m.output.classes {
            if Category::parse(c).is_none() {
                return Err(bad(format!("class '{c}' is not animal, person or vehicle")));
            }
        }
        let p = &m.postprocess;
        if !(0.0..=1.0).contains(&p.threshold) || !(0.0..=1.0).contains(&p.nms_iou) {
            return Err(bad("threshold and nms_iou must be within 0..1".into()));
        }
        if p.max_det == 0 {
            return Err(bad("max_det must be positive".into()));
        }
        Ok(m)
    }

    /// Reads a manifest file.
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        read_manifest(path, Self::from_toml, |m, dir| m.source_dir = dir)
    }

    /// The category of each model class, in model order.
    pub fn categories(&self) -> Vec<Category> {
        self.output
            .classes
            .iter()
            .map(|c| Category::parse(c).expect("validated"))
            .collect()
    }
}

/// The embedded default detector's ONNX bytes (YOLOX-tiny from zamba, MIT; see
/// `models/LICENSE-zamba.txt`).
pub static EMBEDDED_DETECTOR: &[u8] = include_bytes!("../../models/md_lite_yolox_tiny_640.onnx");

/// The id of the embedded default detector.
pub const EMBEDDED_DETECTOR_ID: &str = "md-lite";

/// All built-in detector manifests.
pub fn builtin_detectors() -> Vec<DetectorManifest> {
    builtins(ModelKind::Detector)
        .filter_map(|b| DetectorManifest::from_toml(b.text, b.file).ok())
        .collect()
}

/// A built-in detector manifest by id (case-insensitive); unknown, an error that lists the
/// detectors and the detector modes.
pub fn builtin(id: &str) -> Result<DetectorManifest, ModelError> {
    match builtin_text(id, &[ModelKind::Detector]) {
        Ok(b) => DetectorManifest::from_toml(b.text, b.file),
        Err(_) => Err(ModelError::Unknown {
            id: id.to_string(),
            known: known_ids(&[ModelKind::Detector])
                .into_iter()
                .chain(["DF", "MDS", "MDR", "DFbsMDS", "DFMDS"].map(String::from))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

super::header_deref!(DetectorManifest);

/// Where a manifest's weights are expected: next to the manifest file, else in
/// [`super::model_dir`].
pub fn weights_path(m: &DetectorManifest) -> PathBuf {
    weights_beside(m.source_dir.as_deref(), &m.file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_validate() {
        let ids: Vec<String> = builtin_detectors()
            .into_iter()
            .map(|m| m.header.id)
            .collect();
        assert_eq!(
            ids.len(),
            builtins(ModelKind::Detector).count(),
            "every built-in manifest must parse: {ids:?}"
        );
        for id in ["md-lite", "df", "mds", "mdr"] {
            assert!(ids.iter().any(|i| i == id), "{id} missing");
        }
        let mdr = builtin("MDR").unwrap();
        assert_eq!((mdr.input.size, mdr.input.stride), (1280, 64));
        assert_eq!(mdr.postprocess.nms_iou, 0.45);
    }

    #[test]
    fn embedded_checksum_matches_manifest() {
        use sha2::{Digest, Sha256};
        let m = builtin(EMBEDDED_DETECTOR_ID).unwrap();
        let d: String = Sha256::digest(EMBEDDED_DETECTOR)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(d, m.sha256);
    }

    #[test]
    fn download_facts_of_the_detectors() {
        let mds = builtin("mds").unwrap();
        let d = mds.download();
        assert_eq!(d.url_md5, "4339a2c8af7a381f18ded7ac2a4df03e");
        assert!(d.url.ends_with("/md_v1000.0.0-sorrel.pt") && d.mirrors.len() == 1);
        let df = builtin("df").unwrap();
        assert!(
            df.url.contains("/deepfaune/v1.4/"),
            "1.4's stays the official file"
        );
        assert_eq!(
            df.mirrors,
            ["https://pbil.univ-lyon1.fr/software/download/deepfaune/v1.5/deepfaune-yolov8s_960.pt"]
        );
        let lite = builtin("md-lite").unwrap();
        let d = lite.download();
        assert!(d.url.is_empty() && d.mirrors.is_empty() && d.url_size.is_none());
    }

    #[test]
    fn rejects_bad_download_facts() {
        let good = include_str!("../../models/mds.toml");
        assert!(DetectorManifest::from_toml(good, "x").is_ok());
        for bad in [
            good.replace("4339a2c8af7a381f18ded7ac2a4df03e", "4339a2c8"),
            good.replace("4339a2c8af7a381f18ded7ac2a4df03e", "zz39a2c8af7a381f18ded7ac2a4df03e"),
            good.replace("license =", "url_sha256 = \"abc\"\nlicense ="),
            good.replace("license =", "url_size = 0\nlicense ="),
            good.replace("mirrors = [\"https://", "mirrors = [\"pbil.univ-lyon1.fr/"),
            good.replace("url = \"https://github.com", "url = \"file:///github.com"),
            // checks and mirrors without a url
            good.replace("url = \"https://github.com/agentmorris/MegaDetector/releases/download/v1000.0/md_v1000.0.0-sorrel.pt\"", "url = \"\""),
        ] {
            assert_ne!(bad, good);
            assert!(DetectorManifest::from_toml(&bad, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_bad_manifests() {
        let good = builtins(ModelKind::Detector).next().unwrap().text;
        assert!(DetectorManifest::from_toml(good, "x").is_ok());
        let bad_class = good.replace("classes = [\"animal\"]", "classes = [\"tree\"]");
        assert!(DetectorManifest::from_toml(&bad_class, "x").is_err());
        let bad_kind = good.replace("kind = \"detector\"", "kind = \"classifier\"");
        assert!(DetectorManifest::from_toml(&bad_kind, "x").is_err());
        assert!(DetectorManifest::from_toml("kind = 3", "x").is_err());
    }
}
