//! Model manifests: one TOML file per model under `models/`, parsed raw then validated.
//!
//! A manifest says everything the code must not hard-code: the weights file and its checksum,
//! input size, letterbox style, resampler, scaling, output layout, class names, thresholds.
//! The built-in manifests are compiled in ([`builtin`]); users may pass their own file.
//! Classifier manifests (class lists in up to eight languages, bird head, temperatures) are in
//! [`classifier`].
//!
//! ```
//! let m = deepfaune_rs::manifest::builtin("md-lite").unwrap();
//! assert_eq!(m.input.size, 640);
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod classifier;
pub mod int8;

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

/// Which resampler scales the image into the letterbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeMethod {
    /// Pillow's BICUBIC (antialiased when shrinking).
    PilBicubic,
    /// Pillow's BILINEAR (antialiased when shrinking).
    PilBilinear,
    /// OpenCV's INTER_LINEAR (no antialiasing), as ultralytics uses.
    Cv2Linear,
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

/// A detector manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorManifest {
    /// Always `"detector"`.
    pub kind: String,
    /// Short id (`df`, `mds`, `mdr`, `md-lite`).
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Weights file name (relative to the manifest's folder or the model directory).
    pub file: String,
    /// sha256 of the weights file; empty when it cannot be pinned (a file the user exports).
    #[serde(default)]
    pub sha256: String,
    /// Official download URL of the original weights, where one exists.
    #[serde(default)]
    pub url: String,
    /// Format of what `url` serves (`onnx`, or `pt` which needs `deepfaune-rs export-detector`).
    #[serde(default)]
    pub url_format: String,
    /// Other URLs serving the same file, tried in order after `url`.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// Size in bytes of the file `url` serves, where known.
    #[serde(default)]
    pub url_size: Option<u64>,
    /// Published MD5 (hex) of the file `url` serves, where one exists.
    #[serde(default)]
    pub url_md5: String,
    /// Published or pinned sha256 (hex) of the file `url` serves, where one exists.
    #[serde(default)]
    pub url_sha256: String,
    /// Licence of the weights.
    #[serde(default)]
    pub license: String,
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
        let m: DetectorManifest = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        if m.kind != "detector" {
            return Err(bad(format!("kind is '{}', expected 'detector'", m.kind)));
        }
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
        check_sha(&m.sha256).map_err(|r| bad(r.into()))?;
        check_download(&m.download()).map_err(bad)?;
        Ok(m)
    }

    /// Where the original weights are downloaded from, and their published checks.
    pub fn download(&self) -> Download<'_> {
        Download {
            url: &self.url,
            url_format: &self.url_format,
            mirrors: &self.mirrors,
            url_size: self.url_size,
            url_md5: &self.url_md5,
            url_sha256: &self.url_sha256,
        }
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

/// The built-in manifests' TOML text, by file name.
pub const BUILTIN_MANIFESTS: &[(&str, &str)] = &[
    ("md-lite.toml", include_str!("../models/md-lite.toml")),
    ("df.toml", include_str!("../models/df.toml")),
    ("mds.toml", include_str!("../models/mds.toml")),
    ("mdr.toml", include_str!("../models/mdr.toml")),
];

/// The embedded default detector's ONNX bytes (YOLOX-tiny from zamba, MIT; see
/// `models/LICENSE-zamba.txt`).
pub static EMBEDDED_DETECTOR: &[u8] = include_bytes!("../models/md_lite_yolox_tiny_640.onnx");

/// The id of the embedded default detector.
pub const EMBEDDED_DETECTOR_ID: &str = "md-lite";

/// All built-in detector manifests.
pub fn builtin_detectors() -> Vec<DetectorManifest> {
    BUILTIN_MANIFESTS
        .iter()
        .filter_map(|(name, text)| DetectorManifest::from_toml(text, name).ok())
        .collect()
}

/// A built-in detector manifest by id (case-insensitive).
pub fn builtin(id: &str) -> Result<DetectorManifest, ModelError> {
    builtin_detectors()
        .into_iter()
        .find(|m| m.id.eq_ignore_ascii_case(id))
        .ok_or_else(|| ModelError::Unknown {
            id: id.to_string(),
            known: builtin_detectors()
                .iter()
                .map(|m| m.id.as_str())
                .chain(["DF", "MDS", "MDR", "DFbsMDS", "DFMDS"])
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The folder where user-supplied weights are looked for: `$DEEPFAUNE_RS_MODELS`, else
/// `$XDG_CACHE_HOME/deepfaune-rs/models`, else `~/.cache/deepfaune-rs/models`.
pub fn model_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DEEPFAUNE_RS_MODELS") {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .or_else(|| std::env::var_os("LOCALAPPDATA").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("."));
    cache.join("deepfaune-rs").join("models")
}

/// Where a manifest's weights are expected: next to the manifest file, else in [`model_dir`].
pub fn weights_path(m: &DetectorManifest) -> PathBuf {
    weights_beside(m.source_dir.as_deref(), &m.file)
}

/// The weights `file` of a manifest read from `source_dir`: there if it exists, else in
/// [`model_dir`] (every manifest kind looks for its weights this way).
pub fn weights_beside(source_dir: Option<&Path>, file: &str) -> PathBuf {
    if let Some(dir) = source_dir {
        let p = dir.join(file);
        if p.exists() {
            return p;
        }
    }
    model_dir().join(file)
}

/// Reads a manifest file of any kind: `parse` validates the text, `set_dir` records the
/// manifest's folder (where its weights are looked for first).
pub(crate) fn read_manifest<M>(
    path: &Path,
    parse: impl FnOnce(&str, &str) -> Result<M, ModelError>,
    set_dir: impl FnOnce(&mut M, Option<PathBuf>),
) -> Result<M, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::Manifest {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut m = parse(&text, &path.display().to_string())?;
    set_dir(&mut m, path.parent().map(Path::to_path_buf));
    Ok(m)
}

/// Where a model's original weights can be downloaded and how a download is checked: the
/// `url*` and `mirrors` fields that detector and classifier manifests (and bird heads) share.
/// Every check is optional: DeepFaune publishes no checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Download<'a> {
    /// The official URL (empty when there is none).
    pub url: &'a str,
    /// What it serves (`pt`, `onnx`).
    pub url_format: &'a str,
    /// Other URLs serving the same file, to try in order after `url`.
    pub mirrors: &'a [String],
    /// The file's size in bytes.
    pub url_size: Option<u64>,
    /// A published MD5 of the file (hex), or empty.
    pub url_md5: &'a str,
    /// A published or pinned sha256 of the file (hex), or empty.
    pub url_sha256: &'a str,
}

/// Checks a manifest's download fields: http(s) URLs, mirrors only beside a `url`, a positive
/// size, hex digests of the right length.
pub(crate) fn check_download(d: &Download<'_>) -> Result<(), String> {
    let is_url = |u: &str| u.starts_with("https://") || u.starts_with("http://");
    if !d.url.is_empty() && !is_url(d.url) {
        return Err(format!("url '{}' is not an http(s) URL", d.url));
    }
    if let Some(m) = d.mirrors.iter().find(|m| !is_url(m)) {
        return Err(format!("mirror '{m}' is not an http(s) URL"));
    }
    let has_checks = !d.mirrors.is_empty()
        || d.url_size.is_some()
        || !d.url_md5.is_empty()
        || !d.url_sha256.is_empty();
    if d.url.is_empty() && has_checks {
        return Err("mirrors, url_size, url_md5 and url_sha256 need a url".into());
    }
    if d.url_size == Some(0) {
        return Err("url_size must be positive".into());
    }
    let hex = |s: &str, n: usize| {
        s.is_empty() || (s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    if !hex(d.url_md5, 32) {
        return Err("url_md5 must be 32 hex digits".into());
    }
    if !hex(d.url_sha256, 64) {
        return Err("url_sha256 must be 64 hex digits".into());
    }
    Ok(())
}

/// A manifest's `sha256`: empty (not pinned) or 64 hex digits.
pub(crate) fn check_sha(s: &str) -> Result<(), &'static str> {
    if !s.is_empty() && (s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err("sha256 must be 64 hex digits");
    }
    Ok(())
}

/// Checks `path` against a manifest's pinned `sha256` (nothing to check when it is empty).
pub fn verify_sha256(path: &Path, expected: &str) -> Result<(), ModelError> {
    if expected.is_empty() {
        return Ok(());
    }
    let found = sha256_file(path).map_err(|e| ModelError::WeightsMissing {
        path: path.to_path_buf(),
        hint: e.to_string(),
    })?;
    if found != expected {
        return Err(ModelError::Checksum {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            found,
        });
    }
    Ok(())
}

/// Lowercase hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_validate() {
        let ids: Vec<String> = builtin_detectors().into_iter().map(|m| m.id).collect();
        assert_eq!(
            ids.len(),
            BUILTIN_MANIFESTS.len(),
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
        let good = include_str!("../models/mds.toml");
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
        let good = BUILTIN_MANIFESTS[0].1;
        assert!(DetectorManifest::from_toml(good, "x").is_ok());
        let bad_class = good.replace("classes = [\"animal\"]", "classes = [\"tree\"]");
        assert!(DetectorManifest::from_toml(&bad_class, "x").is_err());
        let bad_kind = good.replace("kind = \"detector\"", "kind = \"classifier\"");
        assert!(DetectorManifest::from_toml(&bad_kind, "x").is_err());
        assert!(DetectorManifest::from_toml("kind = 3", "x").is_err());
    }
}
