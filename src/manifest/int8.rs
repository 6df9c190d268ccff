//! int8 variants of models: what `deepfaune-rs models quantize ID` writes and what
//! `precision = "int8"` loads.
//!
//! A variant is a separate model with its own manifest in the model directory:
//! `<id>-int8.toml` (the fp32 manifest with `id`, `name`, `file` and `sha256` replaced and the
//! download fields removed, since the file is made on the user's machine) next to
//! `<file stem>.int8.onnx`. Everything else (input, classes, thresholds, temperatures) is the
//! fp32 model's, so the two runs differ only by the weights' arithmetic.

use std::path::{Path, PathBuf};

use super::{builtin_text, ModelKind};
use crate::error::ModelError;

/// The kinds of model that have int8 variants.
pub const QUANTIZABLE: [ModelKind; 2] = [ModelKind::Detector, ModelKind::Classifier];

/// Suffix of a variant's id.
pub const INT8_SUFFIX: &str = "-int8";

/// The manifest of `id`'s int8 variant in `dir`.
pub fn int8_manifest_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}{INT8_SUFFIX}.toml"))
}

/// The manifest file of the int8 variant of model `id` (read from `source_dir`, else a built-in):
/// beside its manifest or in the model directory; a missing one is an error that says how to
/// make it. `None` when `id` is a variant already.
pub fn int8_variant_manifest(
    id: &str,
    source_dir: Option<&Path>,
) -> Result<Option<PathBuf>, ModelError> {
    if id.ends_with(INT8_SUFFIX) {
        return Ok(None);
    }
    let dir = source_dir.map_or_else(super::model_dir, Path::to_path_buf);
    let p = int8_manifest_path(&dir, id);
    if !p.is_file() {
        return Err(ModelError::WeightsMissing {
            path: p,
            hint: format!(
                "no int8 variant of '{id}': make it with `deepfaune-rs models quantize {id}`"
            ),
        });
    }
    Ok(Some(p))
}

/// The weights file name of the int8 variant of `file` (`x.onnx` -> `x.int8.onnx`).
pub fn int8_file_name(file: &str) -> String {
    let stem = file.strip_suffix(".onnx").unwrap_or(file);
    format!("{stem}.int8.onnx")
}

/// The kind, TOML text and folder (`None` for a built-in) of the manifest `spec`: a built-in id
/// or a `.toml` path.
pub fn manifest_text(spec: &str) -> Result<(String, String, Option<PathBuf>), ModelError> {
    let p = Path::new(spec);
    if p.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
    {
        let text = std::fs::read_to_string(p).map_err(|e| ModelError::Manifest {
            path: spec.to_string(),
            reason: e.to_string(),
        })?;
        let kind = toml::from_str::<toml::Table>(&text)
            .ok()
            .and_then(|t| t.get("kind").and_then(|k| k.as_str()).map(str::to_string))
            .ok_or_else(|| ModelError::Manifest {
                path: spec.to_string(),
                reason: "not a manifest with a kind".into(),
            })?;
        let dir = p.parent().map(Path::to_path_buf);
        return Ok((kind, text, dir));
    }
    let b = builtin_text(spec, &QUANTIZABLE)?;
    Ok((b.kind.as_str().to_string(), b.text.to_string(), None))
}

/// The manifest text of the int8 variant of the manifest `base` (TOML text): `id` + `-int8`,
/// the name marked with `method`, `file` and `sha256` of the int8 weights, no download fields.
pub fn int8_manifest_text(
    base: &str,
    int8_file: &str,
    sha256: &str,
    method: &str,
) -> Result<String, ModelError> {
    let bad = |reason: String| ModelError::Manifest {
        path: "int8 variant".into(),
        reason,
    };
    let mut t: toml::Table = toml::from_str(base).map_err(|e| bad(e.to_string()))?;
    let id = t
        .get("id")
        .and_then(|v| v.as_str())
        .ok_or_else(|| bad("no id".into()))?
        .to_string();
    if id.ends_with(INT8_SUFFIX) {
        return Err(bad(format!("'{id}' is already an int8 variant")));
    }
    let name = t
        .get("name")
        .and_then(|v| v.as_str())
        .unwrap_or(&id)
        .to_string();
    t.insert("id".into(), format!("{id}{INT8_SUFFIX}").into());
    t.insert("name".into(), format!("{name} [int8, {method}]").into());
    t.insert("file".into(), int8_file.into());
    t.insert("sha256".into(), sha256.into());
    for k in [
        "url",
        "url_format",
        "url_md5",
        "url_sha256",
        "url_size",
        "mirrors",
    ] {
        t.remove(k);
    }
    let body = toml::to_string(&t).map_err(|e| bad(e.to_string()))?;
    Ok(format!(
        "# int8 variant of '{id}' written by `deepfaune-rs models quantize {id}` ({method}).\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::classifier::ClassifierManifest;
    use crate::manifest::DetectorManifest;

    #[test]
    fn variant_keeps_everything_but_identity_and_download() {
        let b = builtin_text("DF", &QUANTIZABLE).unwrap();
        let (kind, text) = (b.kind, b.text);
        assert_eq!(kind, ModelKind::Detector);
        let v = int8_manifest_text(
            text,
            "deepfaune-yolov8s_960.int8.onnx",
            &"ab".repeat(32),
            "static",
        )
        .unwrap();
        let m = DetectorManifest::from_toml(&v, "v").unwrap();
        let base = DetectorManifest::from_toml(text, "b").unwrap();
        assert_eq!(m.id, "df-int8");
        assert_eq!(m.file, "deepfaune-yolov8s_960.int8.onnx");
        assert_eq!(
            (m.sha256.as_str(), m.url.as_str()),
            ("ab".repeat(32).as_str(), "")
        );
        assert_eq!(m.input.size, base.input.size);
        assert_eq!(m.input.shape, base.input.shape);
        assert_eq!(m.postprocess.threshold, base.postprocess.threshold);
        assert!(int8_manifest_text(&v, "x", "", "static").is_err());

        let b = builtin_text("deepfaune-v15", &QUANTIZABLE).unwrap();
        let (kind, text) = (b.kind, b.text);
        assert_eq!(kind, ModelKind::Classifier);
        let v = int8_manifest_text(text, "c.int8.onnx", "", "dynamic").unwrap();
        let c = ClassifierManifest::from_toml(&v, "v").unwrap();
        let base = ClassifierManifest::from_toml(text, "b").unwrap();
        assert_eq!(c.id, "deepfaune-v15-int8");
        assert_eq!(c.num_classes(), base.num_classes());
        assert_eq!(c.version, base.version);
        assert_eq!(c.temperatures(), base.temperatures());
        assert!(matches!(
            builtin_text("nope", &QUANTIZABLE),
            Err(ModelError::Unknown { .. })
        ));
        assert_eq!(int8_file_name("a.b.onnx"), "a.b.int8.onnx");
    }
}
