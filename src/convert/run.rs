//! A checkpoint file to a stamped ONNX file: what it holds ([`checkpoint_kind`]), the builder
//! for that kind, the metadata stamp, the check in ONNX Runtime and the atomic write
//! ([`convert`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use ort::session::Session;
use ort::value::Tensor as OrtTensor;
use sha2::{Digest, Sha256};

use super::pickle::{load_checkpoint, Value};
use super::{vit, yolo, ConvertError};
use crate::error::Error;

/// Bumped whenever a builder's output changes: conversions stamped with another version are
/// redone.
pub const CONVERTER_VERSION: &str = "1";

/// The kinds of checkpoint [`convert`] knows.
pub const KINDS: [&str; 3] = ["classifier", "bird_head", "detector"];

/// What [`convert`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The ONNX file.
    pub output: PathBuf,
    /// One of [`KINDS`].
    pub kind: &'static str,
    /// The sha256 of the ONNX file.
    pub sha256: String,
    /// The sha256 of the checkpoint it was converted from.
    pub source_sha256: String,
    /// The converter version stamped ([`CONVERTER_VERSION`] unless told otherwise).
    pub converter_version: String,
    /// How long the conversion took.
    pub seconds: f64,
}

/// `classifier` (DeepFaune: `{"args", "state_dict"}`), `bird_head` (a state dict of
/// `bird_model.*`) or `detector` (ultralytics / YOLOv5: a pickled model under `model` or
/// `ema`, or the model itself).
pub fn checkpoint_kind(obj: &Value) -> Result<&'static str, ConvertError> {
    if let Some(items) = obj.dict_items() {
        let has = |k: &str| items.iter().any(|(key, _)| key.as_str() == Some(k));
        if has("args") && has("state_dict") {
            return Ok("classifier");
        }
        let bird = |k: &Value| k.as_str().is_some_and(|s| s.starts_with("bird_model."));
        if !items.is_empty() && items.iter().all(|(k, _)| bird(k)) {
            return Ok("bird_head");
        }
        if ["ema", "model"]
            .iter()
            .any(|k| obj.get(k).and_then(Value::as_object).is_some())
        {
            return Ok("detector");
        }
    }
    if obj.as_object().is_some() {
        return Ok("detector");
    }
    Err(ConvertError::Checkpoint(
        "not a DeepFaune classifier, DeepFaune bird head or ultralytics/YOLOv5 detector \
         checkpoint"
            .into(),
    ))
}

/// The absolute form of `p` with the links of its folder resolved (the file itself need not
/// exist), for telling whether two paths name one file.
fn resolved(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(name)) => dir
            .canonicalize()
            .map(|d| d.join(name))
            .unwrap_or_else(|_| abs.clone()),
        _ => abs,
    }
}

/// The ONNX bytes of checkpoint `obj` of `kind`, with the stamp `stamp` after the builder's
/// own metadata.
fn build(
    obj: &Value,
    kind: &str,
    size: Option<u32>,
    stamp: &[(String, String)],
) -> Result<Vec<u8>, ConvertError> {
    let (graph, opset, mut meta) = match kind {
        "classifier" => (vit::build_classifier(obj, size)?, vit::VIT_OPSET, vec![]),
        "bird_head" => (vit::build_bird_head(obj)?, vit::VIT_OPSET, vec![]),
        _ => {
            let (g, meta) = yolo::build_detector(obj)?;
            (g, yolo::OPSET, meta)
        }
    };
    meta.extend(stamp.iter().cloned());
    let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Ok(graph.to_model_bytes(opset, &meta))
}

/// Loads `model` in ONNX Runtime and runs one input of random values in [0, 1) (dynamic axes:
/// batch 1, other sizes 64, a multiple of every detector stride): a graph that does not load
/// or gives non-finite values is refused.
pub fn check_runs(model: &[u8], kind: &str) -> crate::error::Result<()> {
    let env = crate::runtime::environment()?;
    let mut session = Session::builder(env)?.commit_from_memory(model)?;
    let Some(input) = session.inputs().first() else {
        return Err(ConvertError::Build(format!("the converted {kind} has no input")).into());
    };
    let name = input.name().to_string();
    let dims: Vec<i64> = input
        .dtype()
        .tensor_shape()
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default();
    let shape: Vec<usize> = dims
        .iter()
        .enumerate()
        .map(|(i, &d)| match d {
            d if d > 0 => d as usize,
            _ if i == 0 => 1,
            _ => 64,
        })
        .collect();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let values: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| {
            // xorshift64*: 24 random bits per value, uniform in [0, 1)
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    let x = OrtTensor::from_array((shape, values))?;
    let outputs = session.run(ort::inputs![name.as_str() => x])?;
    for (_, out) in outputs.iter() {
        let (_, data) = out.try_extract_tensor::<f32>()?;
        if !data.iter().all(|v| v.is_finite()) {
            return Err(ConvertError::Build(format!(
                "the converted {kind} gives non-finite values; not written"
            ))
            .into());
        }
    }
    Ok(())
}

/// Converts the PyTorch checkpoint `src` to ONNX at `dest` (default: `src` with the `.onnx`
/// suffix), atomically (a temporary file in the same folder, then a rename); never over `src`.
///
/// `kind` is found from the file when not given (a different one is refused); `size` is a
/// classifier's input size (default: the backbone's DeepFaune size). With `check` the model is
/// loaded and run once in ONNX Runtime before it is written. The ONNX's metadata records the
/// builder's facts (a detector's `layout`, `stride`, `nc`, `names`), then `converter`,
/// `converter_version` ([`CONVERTER_VERSION`], or `version` when given: how a test plays a
/// converter upgrade), `source_file`, `source_sha256` and `kind`.
pub fn convert(
    src: &Path,
    dest: Option<&Path>,
    kind: Option<&str>,
    size: Option<u32>,
    check: bool,
    version: Option<&str>,
) -> crate::error::Result<Report> {
    let version = version.unwrap_or(CONVERTER_VERSION).to_string();
    let t0 = Instant::now();
    let dest = dest.map_or_else(|| src.with_extension("onnx"), Path::to_path_buf);
    if resolved(src) == resolved(&dest) {
        return Err(Error::InvalidArgument(format!(
            "{}: the output would overwrite the checkpoint",
            dest.display()
        )));
    }
    if let Some(k) = kind {
        if !KINDS.contains(&k) {
            return Err(Error::InvalidArgument(format!(
                "unknown kind '{k}' (one of {})",
                KINDS.join(", ")
            )));
        }
    }
    let source_sha256 = crate::manifest::sha256_file(src)
        .map_err(|e| ConvertError::Checkpoint(format!("{}: cannot read it: {e}", src.display())))?;
    let obj = load_checkpoint(src)?;
    let found = checkpoint_kind(&obj)?;
    if let Some(k) = kind.filter(|k| *k != found) {
        return Err(ConvertError::Checkpoint(format!(
            "{}: holds a {found}, not a {k}",
            src.display()
        ))
        .into());
    }
    let source_file = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stamp = [
        ("converter", "deepfaune-rs".to_string()),
        ("converter_version", version.clone()),
        ("source_file", source_file),
        ("source_sha256", source_sha256.clone()),
        ("kind", found.to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    let data = build(&obj, found, size, &stamp)?;
    drop(obj); // the checkpoint's tensors: the bytes hold their own copy now
    if check {
        check_runs(&data, found)?;
    }
    let sha256 = format!("{:x}", Sha256::digest(&data));
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::Output {
            path: dest.clone(),
            reason: e.to_string(),
        })?;
    }
    crate::fsio::write_atomic(&dest, &data)?;
    Ok(Report {
        output: dest,
        kind: found,
        sha256,
        source_sha256,
        converter_version: version,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/convert")
            .join(name)
    }

    #[test]
    fn the_kind_is_read_from_what_the_file_holds() {
        for (name, kind) in [
            ("vit_dinov2.pt", "classifier"),
            ("bird_head.pt", "bird_head"),
            ("yolov8_tiny.pt", "detector"),
            ("yolov5_p6_tiny.pt", "detector"),
        ] {
            let obj = load_checkpoint(&fixture(name)).unwrap();
            assert_eq!(checkpoint_kind(&obj).unwrap(), kind, "{name}");
        }
        let other = Value::Dict(vec![(Value::Str("something".into()), Value::Int(1))]);
        let e = checkpoint_kind(&other).unwrap_err().to_string();
        assert!(e.starts_with("not a DeepFaune classifier"), "{e}");
        assert!(checkpoint_kind(&Value::Dict(vec![])).is_err());
    }

    #[test]
    fn the_source_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("y.pt");
        std::fs::copy(fixture("yolov8_tiny.pt"), &src).unwrap();
        let before = std::fs::read(&src).unwrap();
        for dest in [src.clone(), dir.path().join(".").join("y.pt")] {
            let e = convert(&src, Some(&dest), None, None, false, None).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
            assert!(
                e.to_string().contains("would overwrite the checkpoint"),
                "{e}"
            );
        }
        assert_eq!(std::fs::read(&src).unwrap(), before);
        let e = convert(&src, None, Some("classifier"), None, false, None).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("y.pt: holds a detector, not a classifier"),
            "{e}"
        );
        assert!(!dir.path().join("y.onnx").exists());
    }

    #[test]
    fn the_stamp_written_is_the_stamp_read() {
        if let Err(e) = crate::runtime::environment() {
            eprintln!("skipped: {e}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let src = fixture("yolov8_tiny.pt");
        let dest = dir.path().join("sub/y.onnx");
        let report = convert(&src, Some(&dest), Some("detector"), None, true, Some("7")).unwrap();
        let bytes = std::fs::read(&dest).unwrap();
        assert_eq!(report.output, dest);
        assert_eq!(report.sha256, format!("{:x}", Sha256::digest(&bytes)));
        let source = format!("{:x}", Sha256::digest(std::fs::read(&src).unwrap()));
        assert_eq!(report.source_sha256, source);
        let stamp = crate::fetch::read_onnx_stamp(&dest);
        let keys: Vec<&str> = stamp.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "converter",
                "converter_version",
                "kind",
                "layout",
                "names",
                "nc",
                "source_file",
                "source_sha256",
                "stride"
            ]
        );
        assert_eq!(stamp["converter"], "deepfaune-rs");
        assert_eq!(stamp["converter_version"], "7");
        assert_eq!(report.converter_version, "7");
        assert_eq!(stamp["kind"], "detector");
        assert_eq!(stamp["source_file"], "yolov8_tiny.pt");
        assert_eq!(stamp["source_sha256"], source);
        assert_eq!(stamp["layout"], "yolov8");
        // no temporary file left beside it
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub")).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
