//! Model manifests: one TOML file per model under `models/`, parsed raw then validated.
//!
//! A manifest says everything the code must not hard-code: the weights file and its checksum,
//! input size, letterbox style, resampler, scaling, output layout, class names, thresholds.
//! Every kind starts with the same [`ManifestHeader`] (`kind`, `id`, `name`, `version`, the
//! weights `file` and `sha256`, licence, download URLs and their published checks), parsed and
//! checked once here; each kind's own tables are in its module:
//!
//! - [`detector`]: letterbox, output layout, classes as categories, thresholds;
//! - [`classifier`]: DeepFaune's species classifiers (class lists in up to eight languages, bird
//!   head, temperatures);
//! - [`embedding`]: re-identification embedders (crop policy, CLAHE, output width);
//! - [`int8`]: the int8 variant of a detector or classifier, written beside its model.
//!
//! The built-in manifests are compiled in and listed once, in [`BUILTINS`] (looked up by id and
//! kind with [`builtin_text`]); users may pass their own file.
//!
//! ```
//! use deepfaune_rs::manifest::{builtin_text, ModelKind};
//! let b = builtin_text("MDS", &[ModelKind::Detector]).unwrap();
//! assert_eq!((b.kind, b.file), (ModelKind::Detector, "mds.toml"));
//! let e = builtin_text("mds", &[ModelKind::Classifier]).unwrap_err().to_string();
//! assert!(e.contains("deepfaune-v15"), "{e}");
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod classifier;
pub mod detector;
pub mod embedding;
pub mod int8;

pub use detector::{
    builtin, builtin_detectors, weights_path, Category, DetectorInput, DetectorManifest,
    DetectorOutput, DetectorPostprocess, InputShape, LetterboxStyle, OutputLayout,
    EMBEDDED_DETECTOR, EMBEDDED_DETECTOR_ID,
};

use crate::error::ModelError;

/// What a manifest describes (its `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// An object detector ([`DetectorManifest`]).
    Detector,
    /// A species classifier ([`classifier::ClassifierManifest`]).
    Classifier,
    /// A re-identification embedder ([`embedding::EmbeddingManifest`]).
    Embedding,
}

impl ModelKind {
    /// The `kind` value of the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Detector => "detector",
            ModelKind::Classifier => "classifier",
            ModelKind::Embedding => "embedding",
        }
    }
}

/// The fields every manifest kind shares, at the top of its file: who the model is, and its
/// weights file ([`WeightsFile`], read as `m.file`, `m.sha256`, `m.download()`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManifestHeader {
    /// `detector`, `classifier` or `embedding` (see [`ModelKind`]).
    pub kind: String,
    /// Short id (`md-lite`, `deepfaune-v15`, `yolox-embed`, ...).
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Version of the weights (DeepFaune's release for its classifiers, where required; may be
    /// empty for the other kinds).
    pub version: String,
    /// Licence of the weights.
    pub license: String,
    /// The weights file and where it comes from.
    pub weights: WeightsFile,
}

/// A weights file, and where its original is downloaded from and how that is checked: the
/// fields a manifest's top table and a classifier's bird head share.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsFile {
    /// Weights file name (relative to the manifest's folder or the model directory).
    pub file: String,
    /// sha256 of the weights file; empty when it cannot be pinned (a file the user exports).
    #[serde(default)]
    pub sha256: String,
    /// Official download URL of the original weights, where one exists.
    #[serde(default)]
    pub url: String,
    /// Format of what `url` serves (`onnx`, or `pt` which needs an export to ONNX first).
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
}

/// The keys of [`WeightsFile`].
const WEIGHTS_KEYS: [&str; 8] = [
    "file",
    "sha256",
    "url",
    "url_format",
    "mirrors",
    "url_size",
    "url_md5",
    "url_sha256",
];

/// The keys of [`ManifestHeader`] in a manifest's top table (its own, then its weights').
const HEADER_KEYS: [&str; 5] = ["kind", "id", "name", "version", "license"];

impl WeightsFile {
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

    /// Takes the weights keys out of `table` (the rest is the caller's) and checks them:
    /// `sha256` and the download fields.
    pub(crate) fn take_from(table: &mut toml::Table) -> Result<WeightsFile, String> {
        let mut own = toml::Table::new();
        for key in WEIGHTS_KEYS {
            if let Some(v) = table.remove(key) {
                own.insert(key.to_string(), v);
            }
        }
        let w: WeightsFile = toml::Value::Table(own)
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        check_sha(&w.sha256).map_err(String::from)?;
        check_download(&w.download())?;
        Ok(w)
    }
}

/// A header reads as its weights file: `m.file`, `m.sha256`, `m.download()`.
impl std::ops::Deref for ManifestHeader {
    type Target = WeightsFile;
    fn deref(&self) -> &WeightsFile {
        &self.weights
    }
}

impl std::ops::DerefMut for ManifestHeader {
    fn deref_mut(&mut self) -> &mut WeightsFile {
        &mut self.weights
    }
}

/// Parses a manifest of kind `kind` from TOML text (`origin` names it in errors): the header is
/// taken out of the top table and checked (kind, `sha256`, download fields), and the rest is
/// the kind's own tables, `B` (which refuses unknown fields), given back with the header for
/// the kind's own checks.
pub(crate) fn parse_manifest<B: serde::de::DeserializeOwned>(
    text: &str,
    origin: &str,
    kind: ModelKind,
) -> Result<(ManifestHeader, B), ModelError> {
    let bad = |reason: String| ModelError::Manifest {
        path: origin.to_string(),
        reason,
    };
    let mut body: toml::Table = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    let weights = WeightsFile::take_from(&mut body).map_err(bad)?;
    let mut head = toml::Table::new();
    for key in HEADER_KEYS {
        if let Some(v) = body.remove(key) {
            head.insert(key.to_string(), v);
        }
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Own {
        kind: String,
        id: String,
        name: String,
        #[serde(default)]
        version: String,
        #[serde(default)]
        license: String,
    }
    let own: Own = toml::Value::Table(head)
        .try_into()
        .map_err(|e: toml::de::Error| bad(e.to_string()))?;
    let header = ManifestHeader {
        kind: own.kind,
        id: own.id,
        name: own.name,
        version: own.version,
        license: own.license,
        weights,
    };
    if header.kind != kind.as_str() {
        return Err(bad(format!(
            "kind is '{}', expected '{}'",
            header.kind,
            kind.as_str()
        )));
    }
    let body: B = toml::Value::Table(body)
        .try_into()
        .map_err(|e: toml::de::Error| bad(e.to_string()))?;
    Ok((header, body))
}

/// A manifest reads as its header: `m.id`, `m.file`, `m.download()` are the
/// [`ManifestHeader`]'s, the same fields for every kind.
macro_rules! header_deref {
    ($manifest:ty) => {
        impl std::ops::Deref for $manifest {
            type Target = $crate::manifest::ManifestHeader;
            fn deref(&self) -> &Self::Target {
                &self.header
            }
        }
        impl std::ops::DerefMut for $manifest {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.header
            }
        }
    };
}
pub(crate) use header_deref;

/// One built-in manifest: its kind, file name under `models/` and TOML text (compiled in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    /// Its kind.
    pub kind: ModelKind,
    /// Its file name under `models/`.
    pub file: &'static str,
    /// Its TOML text.
    pub text: &'static str,
}

macro_rules! builtin_manifest {
    ($kind:ident, $file:literal) => {
        Builtin {
            kind: ModelKind::$kind,
            file: $file,
            text: include_str!(concat!("../../models/", $file)),
        }
    };
}

/// Every built-in manifest, the one list of them: each kind in its listing order (classifiers
/// newest first). A new built-in model is one line here and its file under `models/`.
pub const BUILTINS: &[Builtin] = &[
    builtin_manifest!(Detector, "md-lite.toml"),
    builtin_manifest!(Detector, "df.toml"),
    builtin_manifest!(Detector, "mds.toml"),
    builtin_manifest!(Detector, "mdr.toml"),
    builtin_manifest!(Classifier, "deepfaune-v15.toml"),
    builtin_manifest!(Classifier, "deepfaune-v14.toml"),
    builtin_manifest!(Classifier, "deepfaune-v13.toml"),
    builtin_manifest!(Classifier, "deepfaune-v11.toml"),
    builtin_manifest!(Embedding, "yolox-embed.toml"),
    builtin_manifest!(Embedding, "deepfaune-cls-embed.toml"),
    builtin_manifest!(Embedding, "lynx-id-dinov2.toml"),
];

/// The built-in manifests of `kind`, in their listing order.
pub fn builtins(kind: ModelKind) -> impl Iterator<Item = &'static Builtin> {
    BUILTINS.iter().filter(move |b| b.kind == kind)
}

/// The `id` of a built-in's text (`None` when it has none: a broken built-in, which the tests
/// of each kind refuse).
fn id_of(b: &Builtin) -> Option<String> {
    let t: toml::Table = toml::from_str(b.text).ok()?;
    Some(t.get("id")?.as_str()?.to_string())
}

/// The ids of the built-ins of `kinds`, in listing order.
pub fn known_ids(kinds: &[ModelKind]) -> Vec<String> {
    BUILTINS
        .iter()
        .filter(|b| kinds.contains(&b.kind))
        .filter_map(id_of)
        .collect()
}

/// The built-in manifest `id` (case-insensitive) among those of `kinds`; unknown, an error that
/// lists their ids.
pub fn builtin_text(id: &str, kinds: &[ModelKind]) -> Result<&'static Builtin, ModelError> {
    BUILTINS
        .iter()
        .filter(|b| kinds.contains(&b.kind))
        .find(|b| id_of(b).is_some_and(|i| i.eq_ignore_ascii_case(id)))
        .ok_or_else(|| ModelError::Unknown {
            id: id.to_string(),
            known: known_ids(kinds).join(", "),
        })
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
    fn every_builtin_file_is_listed_once_with_its_kind() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        for b in BUILTINS {
            let on_disk = std::fs::read_to_string(dir.join(b.file)).unwrap();
            assert_eq!(on_disk, b.text, "{}", b.file);
            let t: toml::Table = toml::from_str(b.text).unwrap();
            assert_eq!(t["kind"].as_str(), Some(b.kind.as_str()), "{}", b.file);
        }
        let mut ids = known_ids(&[
            ModelKind::Detector,
            ModelKind::Classifier,
            ModelKind::Embedding,
        ]);
        assert_eq!(ids.len(), BUILTINS.len());
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), BUILTINS.len(), "ids are unique");
    }

    #[test]
    fn lookup_is_by_id_and_kind_and_lists_the_valid_ids() {
        let b = builtin_text("Deepfaune-V14", &[ModelKind::Classifier]).unwrap();
        assert_eq!(b.file, "deepfaune-v14.toml");
        let e = builtin_text("yolox-embed", &[ModelKind::Detector, ModelKind::Classifier])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("md-lite, df, mds, mdr, deepfaune-v15, deepfaune-v14"),
            "{e}"
        );
        assert!(!e.contains("lynx-id-dinov2"), "{e}");
    }

    #[test]
    fn the_header_is_checked_for_every_kind() {
        let good = builtin_text("yolox-embed", &[ModelKind::Embedding])
            .unwrap()
            .text;
        let parse = |text: &str| {
            parse_manifest::<toml::Table>(text, "x", ModelKind::Embedding).map(|(h, _)| h)
        };
        let h = parse(good).unwrap();
        assert_eq!(
            (h.kind.as_str(), h.id.as_str()),
            ("embedding", "yolox-embed")
        );
        let bad_sha = good.replace("file =", "sha256 = \"abc\"\nfile =");
        assert!(parse(&bad_sha).is_err());
        let bad_url = good.replace("file =", "url = \"ftp://x\"\nfile =");
        assert!(parse(&bad_url).is_err());
        let wrong_kind = good.replace("kind = \"embedding\"", "kind = \"detector\"");
        let e = parse(&wrong_kind).unwrap_err().to_string();
        assert!(e.contains("expected 'embedding'"), "{e}");
    }
}
