//! Resolving what the user names (`"md-lite"`, `"DFbsMDS"`, a manifest path, an ONNX path) into
//! loaded detectors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::detector::{model_source, OnnxDetector};
use super::mode::{DetectorMode, DetectorSet};
use crate::error::{Error, ModelError};
use crate::manifest::int8::int8_variant_manifest;
use crate::manifest::{builtin, builtin_detectors, DetectorManifest};
use crate::runtime::{ModelSource, SessionOptions};

/// Options for loading detectors.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Overrides every detector's confidence threshold.
    pub threshold: Option<f32>,
    /// Explicit weights per built-in id (`"df"` -> path).
    pub weights: HashMap<String, PathBuf>,
    /// A manifest (id or path) for a bare ONNX file.
    pub manifest: Option<String>,
    /// ONNX Runtime session options.
    pub session: SessionOptions,
}

fn has_ext(s: &str, ext: &str) -> bool {
    Path::new(s)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

fn manifest_for(spec: &str) -> Result<DetectorManifest, ModelError> {
    if has_ext(spec, "toml") {
        DetectorManifest::from_file(Path::new(spec))
    } else {
        builtin(spec)
    }
}

/// Checks a detector spec's name before anything is loaded or looked for on disk: a file
/// (`.onnx`, `.toml`) is the caller's; any other spec must be a built-in id or a DeepFaune mode,
/// else the error lists them (a typo is named before any missing weights).
pub fn check_spec(spec: &str) -> Result<(), ModelError> {
    if has_ext(spec, "onnx") || has_ext(spec, "toml") || DetectorMode::parse(spec).is_some() {
        return Ok(());
    }
    builtin(spec).map(drop)
}

/// Resolves one model spec to its manifest and weights.
pub fn resolve(
    spec: &str,
    opts: &LoadOptions,
) -> Result<(DetectorManifest, ModelSource), ModelError> {
    let mut m;
    let src;
    if has_ext(spec, "onnx") && opts.session.int8 {
        return Err(ModelError::Manifest {
            path: spec.to_string(),
            reason: "precision int8 picks the int8 variant of a named model: pass the int8 ONNX file itself with the fp32 precision instead".into(),
        });
    }
    if has_ext(spec, "onnx") {
        let path = PathBuf::from(spec);
        let fname = path
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default();
        m = match &opts.manifest {
            Some(man) => manifest_for(man)?,
            None => builtin_detectors().into_iter().find(|b| b.file == fname).ok_or_else(|| ModelError::Manifest {
                path: spec.to_string(),
                reason: "no built-in manifest has this file name; pass a manifest (id or .toml) describing its input and output".into(),
            })?,
        };
        src = model_source(&m, Some(path))?;
    } else {
        m = manifest_for(spec)?;
        if opts.session.int8 {
            m = int8_variant(m)?;
        }
        src = model_source(&m, opts.weights.get(&m.id).cloned())?;
    }
    if let Some(t) = opts.threshold {
        if !(0.0..=1.0).contains(&t) {
            return Err(ModelError::Manifest {
                path: spec.to_string(),
                reason: format!("threshold {t} outside 0..1"),
            });
        }
        m.postprocess.threshold = t;
    }
    Ok((m, src))
}

/// The int8 variant of `m` (`deepfaune-rs models quantize ID`), beside its manifest or in the
/// model directory; `m` itself when it is one already.
fn int8_variant(m: DetectorManifest) -> Result<DetectorManifest, ModelError> {
    match int8_variant_manifest(&m.id, m.source_dir.as_deref())? {
        Some(p) => DetectorManifest::from_file(&p),
        None => Ok(m),
    }
}

/// Loads a detector set: `model` is a DeepFaune mode name (`DF`, `MDS`, `MDR`, `DFbsMDS`,
/// `DFMDS`) or a model spec; `secondary` + `mode` combine two specs explicitly.
pub fn load(
    model: &str,
    secondary: Option<&str>,
    mode: Option<DetectorMode>,
    opts: &LoadOptions,
) -> Result<DetectorSet, Error> {
    let (mode, primary, secondary) = match (DetectorMode::parse(model), secondary) {
        (Some((m, p, s)), None) if !has_ext(model, "onnx") && !has_ext(model, "toml") => {
            (m, p.to_string(), s.map(str::to_string))
        }
        _ => {
            let m = match (mode, secondary) {
                (Some(m), _) => m,
                (None, Some(_)) => {
                    return Err(Error::InvalidArgument(
                        "a secondary detector needs mode='backstop' or mode='ensemble'".into(),
                    ))
                }
                (None, None) => DetectorMode::Single,
            };
            if m != DetectorMode::Single && secondary.is_none() {
                return Err(Error::InvalidArgument(
                    "mode 'backstop'/'ensemble' needs a secondary detector".into(),
                ));
            }
            (m, model.to_string(), secondary.map(str::to_string))
        }
    };
    let (pm, ps) = resolve(&primary, opts)?;
    let p = OnnxDetector::new(pm, &ps, opts.session.clone())?;
    let s = match secondary {
        Some(spec) => {
            let (sm, ss) = resolve(&spec, opts)?;
            Some(OnnxDetector::new(sm, &ss, opts.session.clone())?)
        }
        None => None,
    };
    Ok(DetectorSet {
        mode,
        primary: p,
        secondary: s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_weights_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("DEEPFAUNE_RS_MODELS", dir.path());
        let e = resolve("df", &LoadOptions::default()).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ModelError::WeightsMissing { .. }), "{msg}");
        assert!(
            msg.contains("export-detector") && msg.contains("deepfaune-yolov8s_960"),
            "{msg}"
        );
        assert!(matches!(
            resolve("nope", &LoadOptions::default()),
            Err(ModelError::Unknown { .. })
        ));
        let e = resolve("/tmp/some_model.onnx", &LoadOptions::default()).unwrap_err();
        assert!(matches!(e, ModelError::Manifest { .. }), "{e}");
    }

    #[test]
    fn a_spec_is_a_file_a_built_in_id_or_a_mode() {
        for ok in ["md-lite", "MDS", "dfbsmds", "DFbsMDS", "x/y.onnx", "m.TOML"] {
            assert!(check_spec(ok).is_ok(), "{ok}");
        }
        let e = check_spec("md-lit").unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown model 'md-lit' (known: md-lite, df, mds, mdr, DF, MDS, MDR, DFbsMDS, DFMDS; \
             or give a manifest .toml or an .onnx file)"
        );
    }

    #[test]
    fn embedded_default_resolves_without_files() {
        let (m, src) = resolve(
            "md-lite",
            &LoadOptions {
                threshold: Some(0.5),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(m.postprocess.threshold, 0.5);
        assert!(matches!(src, ModelSource::Static(_)));
    }
}
