//! The ONNX classifier, driven by its manifest.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::value::TensorRef;

use crate::error::{Error, ModelError};
use crate::manifest::classifier::{
    builtin_classifier, classifier_weights_path, ClassifierManifest, DEFAULT_CLASSIFIER,
};
use crate::manifest::int8::int8_variant_manifest;
use crate::manifest::verify_sha256;
use crate::runtime::{new_session, ModelSource, SessionOptions};

/// Outputs for a batch of crops.
#[derive(Debug, Clone, Default)]
pub struct ClassifierOutputs {
    /// Raw logits, row-major `[batch, classes]`.
    pub logits: Vec<f32>,
    /// Embeddings, row-major `[batch, embedding_dim]` (empty when not requested).
    pub embeddings: Vec<f32>,
    /// Bird-head logits `[batch, groups]` (empty without a bird head).
    pub bird_logits: Vec<f32>,
}

/// An ONNX classifier (and its optional bird head).
pub struct OnnxClassifier {
    /// The manifest.
    pub manifest: ClassifierManifest,
    /// Identity of the weights ([`ModelSource::identity`]).
    pub source: String,
    session: Session,
    bird_head: Option<Session>,
}

impl std::fmt::Debug for OnnxClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxClassifier")
            .field("id", &self.manifest.id)
            .finish()
    }
}

fn has_ext(s: &str, ext: &str) -> bool {
    Path::new(s)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

fn weights(
    m: &ClassifierManifest,
    file: &str,
    sha256: &str,
    url: &str,
    explicit: Option<PathBuf>,
) -> Result<PathBuf, ModelError> {
    let p = match explicit {
        Some(p) => p,
        None => {
            let mut mm = m.clone();
            mm.file = file.to_string();
            classifier_weights_path(&mm)
        }
    };
    if !p.is_file() {
        let hint = if url.is_empty() {
            "put the ONNX file there, or pass its path".to_string()
        } else {
            format!("download the official weights ({url}) and convert them: `deepfaune-rs export-classifier WEIGHTS.pt -o {}`", p.display())
        };
        return Err(ModelError::WeightsMissing { path: p, hint });
    }
    verify_sha256(&p, sha256)?;
    Ok(p)
}

/// The fixed sizes of an ONNX tensor as the model declares them (`None` for a dynamic axis).
fn declared_shape(outlet: &ort::value::Outlet) -> Vec<Option<i64>> {
    outlet
        .dtype()
        .tensor_shape()
        .map(|s| s.iter().map(|&d| (d >= 0).then_some(d)).collect())
        .unwrap_or_default()
}

/// Refuses a model whose declared tensor `name` has another fixed size than `want` at `axis`
/// (dynamic or undeclared axes pass; inference checks them again).
fn check_axis(
    outlets: &[ort::value::Outlet],
    name: &str,
    axis: usize,
    want: usize,
    what: &str,
    manifest: &ClassifierManifest,
) -> Result<(), ModelError> {
    let Some(o) = outlets.iter().find(|o| o.name() == name) else {
        return Ok(());
    };
    match declared_shape(o).get(axis).copied().flatten() {
        Some(found) if found != want as i64 => Err(ModelError::Mismatch(format!(
            "the model's {what} is {found} but manifest '{}' (DeepFaune {}) says {want}: \
             give the manifest of the version these weights belong to",
            manifest.id, manifest.version
        ))),
        _ => Ok(()),
    }
}

/// Checks a classifier spec's name before anything is loaded or looked for on disk: a file
/// (`.onnx`, `.toml`) is the caller's; any other spec must be a built-in id, else the error
/// lists them.
pub fn check_classifier_spec(spec: &str) -> Result<(), ModelError> {
    if has_ext(spec, "onnx") || has_ext(spec, "toml") {
        return Ok(());
    }
    builtin_classifier(spec).map(drop)
}

/// Loads a classifier: `spec` is a built-in id (`deepfaune-v15`), a manifest (`.toml`) or an ONNX
/// file (with `manifest` naming its manifest, default [`DEFAULT_CLASSIFIER`]). `bird_head` loads
/// the manifest's bird head too (its weights must exist). A model whose declared input size,
/// class count or embedding width differs from the manifest's is refused.
pub fn load_classifier(
    spec: &str,
    manifest: Option<&str>,
    bird_head: bool,
    session: SessionOptions,
) -> Result<OnnxClassifier, Error> {
    let read = |s: &str| -> Result<ClassifierManifest, ModelError> {
        if has_ext(s, "toml") {
            ClassifierManifest::from_file(Path::new(s))
        } else {
            builtin_classifier(s)
        }
    };
    if has_ext(spec, "onnx") && session.int8 {
        return Err(Error::InvalidArgument(
            "precision int8 picks the int8 variant of a named classifier: pass the int8 ONNX file itself with the fp32 precision instead".into(),
        ));
    }
    let (m, path) = if has_ext(spec, "onnx") {
        let m = read(manifest.unwrap_or(DEFAULT_CLASSIFIER))?;
        let p = weights(&m, &m.file, "", "", Some(PathBuf::from(spec)))?;
        (m, p)
    } else {
        let mut m = read(spec)?;
        if session.int8 {
            if let Some(p) = int8_variant_manifest(&m.id, m.source_dir.as_deref())? {
                m = ClassifierManifest::from_file(&p)?;
            }
        }
        let p = weights(&m, &m.file, &m.sha256, &m.url, None)?;
        (m, p)
    };
    let source = ModelSource::File(path.clone()).identity();
    let session_main = new_session(&ModelSource::File(path), session.clone())?;
    let names: Vec<String> = session_main
        .outputs()
        .iter()
        .map(|o| o.name().to_string())
        .collect();
    for needed in [&m.output.logits, &m.output.embedding] {
        if !names.contains(needed) {
            return Err(ModelError::Mismatch(format!(
                "classifier has no output '{needed}' (outputs: {names:?})"
            ))
            .into());
        }
    }
    if !session_main
        .inputs()
        .iter()
        .any(|i| i.name() == m.input.name)
    {
        return Err(
            ModelError::Mismatch(format!("classifier has no input '{}'", m.input.name)).into(),
        );
    }
    let (size, classes, dim) = (m.input.size as usize, m.num_classes(), m.embedding_dim);
    let inputs = session_main.inputs();
    check_axis(inputs, &m.input.name, 2, size, "input height", &m)?;
    check_axis(inputs, &m.input.name, 3, size, "input width", &m)?;
    let outputs = session_main.outputs();
    check_axis(
        outputs,
        &m.output.logits,
        1,
        classes,
        "number of classes",
        &m,
    )?;
    check_axis(outputs, &m.output.embedding, 1, dim, "embedding width", &m)?;
    let head = match (&m.bird_head, bird_head) {
        (Some(h), true) => {
            let p = weights(&m, &h.file, &h.sha256, &h.url, None)?;
            let s = new_session(&ModelSource::File(p), session)?;
            check_axis(s.inputs(), &h.input, 1, dim, "bird head's input width", &m)?;
            check_axis(
                s.outputs(),
                &h.output,
                1,
                h.num_groups(),
                "number of bird groups",
                &m,
            )?;
            Some(s)
        }
        (None, true) => {
            return Err(Error::InvalidArgument(format!(
                "classifier '{}' has no bird head",
                m.id
            )))
        }
        _ => None,
    };
    Ok(OnnxClassifier {
        manifest: m,
        source,
        session: session_main,
        bird_head: head,
    })
}

impl OnnxClassifier {
    /// Number of classes (logits per crop).
    pub fn num_classes(&self) -> usize {
        self.manifest.num_classes()
    }

    /// Whether the bird head is loaded.
    pub fn has_bird_head(&self) -> bool {
        self.bird_head.is_some()
    }

    /// Runs prepared crops (`tensors`, each `3 * size * size`) in one batch.
    pub fn infer(
        &mut self,
        tensors: &[&[f32]],
        keep_embeddings: bool,
    ) -> Result<ClassifierOutputs, Error> {
        if tensors.is_empty() {
            return Ok(ClassifierOutputs::default());
        }
        let size = self.manifest.input.size as usize;
        let per = 3 * size * size;
        let mut data = Vec::with_capacity(per * tensors.len());
        for t in tensors {
            data.extend_from_slice(t);
        }
        let n = tensors.len();
        let c = self.num_classes();
        let input = TensorRef::from_array_view(([n, 3, size, size], data.as_slice()))?;
        let outputs = self
            .session
            .run(ort::inputs![self.manifest.input.name.as_str() => input])?;
        let (lshape, logits) =
            outputs[self.manifest.output.logits.as_str()].try_extract_tensor::<f32>()?;
        if lshape.len() != 2 || lshape[0] as usize != n || lshape[1] as usize != c {
            return Err(ModelError::Mismatch(format!(
                "logits shape {:?}, expected [{n}, {c}]",
                lshape.iter().collect::<Vec<_>>()
            ))
            .into());
        }
        let (eshape, emb) =
            outputs[self.manifest.output.embedding.as_str()].try_extract_tensor::<f32>()?;
        let d = self.manifest.embedding_dim;
        if eshape.len() != 2 || eshape[0] as usize != n || eshape[1] as usize != d {
            return Err(ModelError::Mismatch(format!(
                "embedding shape {:?}, expected [{n}, {d}]",
                eshape.iter().collect::<Vec<_>>()
            ))
            .into());
        }
        let mut out = ClassifierOutputs {
            logits: logits.to_vec(),
            ..Default::default()
        };
        if let (Some(head), Some(spec)) =
            (self.bird_head.as_mut(), self.manifest.bird_head.as_ref())
        {
            let x = TensorRef::from_array_view(([n, d], emb))?;
            let o = head.run(ort::inputs![spec.input.as_str() => x])?;
            let (_, b) = o[spec.output.as_str()].try_extract_tensor::<f32>()?;
            out.bird_logits = b.to_vec();
        }
        if keep_embeddings {
            out.embeddings = emb.to_vec();
        }
        Ok(out)
    }
}
