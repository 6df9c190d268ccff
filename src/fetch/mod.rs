//! The official weights of the built-in models, as files on disk: which files a model needs
//! (`Artifact`, from the manifests), which models a target names (`resolve_targets`: ids, modes,
//! `deepfaune`), which of a run's files are missing, how a download is checked (`verify.rs`:
//! size, MD5, sha256, the lock file's hash), the lock file (`lock.rs`), the ONNX stamp the
//! converter writes and the state of each file (`status.rs`), the download itself
//! (`transfer.rs`: HTTP(S) or `file://`, resumed, retried, locked, checked, placed atomically)
//! and fetching a file step by step (`get.rs`).
//!
//! The caller brings the converter of `.pt` checkpoints ([`Convert`]) and shows the progress
//! ([`Hooks`]); Python's `deepfaune_rs.fetch` does both.

mod get;
mod lock;
mod plan;
mod status;
mod transfer;
mod verify;

use std::path::{Path, PathBuf};

pub use get::{fetch_file, Convert, Converted, FetchOptions, Fetched};
pub use lock::{Lock, LockEntry, LOCK_NAME};
pub use plan::{plan, Plan, Step};
pub use status::{read_onnx_stamp, sha256_of, status_of, FileStatus, STATES};
pub use transfer::{
    download, fmt_bytes, Downloaded, Hooks, Retry, BACKOFF_MAX_S, BACKOFF_S, RETRIES, TIMEOUT_S,
};
pub use verify::{check, hash_file, Expect, Hashes};

use crate::classify::check_classifier_spec;
use crate::detect::loader::check_spec;
use crate::detect::DetectorMode;
use crate::error::ModelError;
use crate::manifest::classifier::{builtin_classifiers, DEFAULT_CLASSIFIER};
use crate::manifest::detector::{builtin_detectors, EMBEDDED_DETECTOR_ID};
use crate::manifest::WeightsFile;

/// The target that fetches DeepFaune's default setup: DF, MegaDetector sorrel (its `DFbsMDS`
/// mode) and the default classifier with its bird head.
pub const DEFAULT_TARGET: &str = "deepfaune";

/// Replaces the base URL of every file: `NAME` is fetched from `$DEEPFAUNE_RS_BASE_URL/NAME`.
pub const ENV_BASE_URL: &str = "DEEPFAUNE_RS_BASE_URL";

/// `$DEEPFAUNE_RS_BASE_URL`, when set.
pub fn base_url() -> Option<String> {
    std::env::var(ENV_BASE_URL).ok()
}

/// DeepFaune's detector modes as users write them (the choices listed on a typo).
pub const MODE_NAMES: [&str; 5] = ["DF", "MDS", "MDR", "DFbsMDS", "DFMDS"];

/// One file a built-in model needs: the model's own weights or its bird head.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Artifact {
    /// The model's id (lowercase).
    pub model_id: String,
    /// `model` or `bird_head`.
    pub role: String,
    /// `detector`, `classifier` or `bird_head`.
    pub kind: String,
    /// The ONNX file the core loads.
    pub file: String,
    /// The official URL (empty: none).
    pub url: String,
    /// What `url` serves: `pt` (converted after the download), `onnx` (used as is) or empty.
    pub url_format: String,
    /// Re-hosted copies, tried after `url`.
    pub mirrors: Vec<String>,
    /// The published size of what `url` serves.
    pub url_size: Option<u64>,
    /// The published MD5 (lowercase hex) of what `url` serves, or empty.
    pub url_md5: String,
    /// The published sha256 (lowercase hex) of what `url` serves, or empty.
    pub url_sha256: String,
    /// The manifest's pinned sha256 of `file` (empty: not pinned).
    pub file_sha256: String,
    /// A model's input size (None for a bird head).
    pub input_size: Option<u32>,
    /// Inside the package (md-lite): nothing to fetch.
    pub embedded: bool,
}

impl Artifact {
    fn of(
        w: &WeightsFile,
        model_id: &str,
        role: &str,
        kind: &str,
        input_size: Option<u32>,
    ) -> Self {
        Artifact {
            model_id: model_id.to_lowercase(),
            role: role.into(),
            kind: kind.into(),
            file: w.file.clone(),
            url: w.url.clone(),
            url_format: w.url_format.to_lowercase(),
            mirrors: w
                .mirrors
                .iter()
                .filter(|u| !u.is_empty())
                .cloned()
                .collect(),
            url_size: w.url_size.filter(|&n| n > 0),
            url_md5: w.url_md5.to_lowercase(),
            url_sha256: w.url_sha256.to_lowercase(),
            file_sha256: w.sha256.to_lowercase(),
            input_size,
            embedded: false,
        }
    }

    /// `df`, `deepfaune-v15`, `deepfaune-v15 bird head`.
    pub fn label(&self) -> String {
        if self.role == "model" {
            self.model_id.clone()
        } else {
            format!("{} bird head", self.model_id)
        }
    }

    /// Whether the downloaded file is a PyTorch file to convert (else it is used as is).
    pub fn is_converted(&self) -> bool {
        self.url_format == "pt"
    }

    /// The name of the downloaded file: the last part of the official URL's path (decoded) for
    /// a file to convert, else `file`.
    pub fn source_name(&self) -> String {
        if !self.is_converted() {
            return self.file.clone();
        }
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        let path = rest.find('/').map_or("", |i| &rest[i..]);
        let path = path.split(['?', '#']).next().unwrap_or("");
        percent_decode(path.rsplit('/').next().unwrap_or(""))
    }

    /// Where the file is downloaded from, in order: `BASE/NAME` alone when a base URL is given
    /// (`$DEEPFAUNE_RS_BASE_URL`), else the official URL then the mirrors.
    pub fn urls(&self, base: Option<&str>) -> Vec<String> {
        if let Some(base) = base.map(str::trim).filter(|b| !b.is_empty()) {
            let base = base.trim_end_matches('/');
            return vec![format!("{base}/{}", percent_encode(&self.source_name()))];
        }
        let mut out: Vec<String> = Vec::new();
        for u in std::iter::once(&self.url).chain(&self.mirrors) {
            if !u.is_empty() && !out.contains(u) {
                out.push(u.clone());
            }
        }
        out
    }
}

/// `%XX` sequences decoded (UTF-8, invalid bytes replaced), as `urllib.parse.unquote`.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every byte but letters, digits, `_.-~` and `/` as `%XX`, as `urllib.parse.quote`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"_.-~/".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// The files of every built-in detector and classifier, by model id (lowercase), detectors
/// first, classifiers newest first: the model's file, then its bird head.
pub fn builtin_artifacts() -> Vec<(String, Vec<Artifact>)> {
    let mut out = Vec::new();
    for m in builtin_detectors() {
        let mut a = Artifact::of(&m.weights, &m.id, "model", "detector", Some(m.input.size));
        a.embedded = m.id == EMBEDDED_DETECTOR_ID;
        out.push((a.model_id.clone(), vec![a]));
    }
    for m in builtin_classifiers() {
        let mut arts = vec![Artifact::of(
            &m.weights,
            &m.id,
            "model",
            "classifier",
            Some(m.input.size),
        )];
        if let Some(b) = m.bird_head.as_ref().filter(|b| !b.weights.file.is_empty()) {
            arts.push(Artifact::of(
                &b.weights,
                &m.id,
                "bird_head",
                "bird_head",
                None,
            ));
        }
        out.push((m.id.to_lowercase(), arts));
    }
    out
}

fn builtin_kind(id: &str) -> Option<&'static str> {
    if builtin_detectors()
        .iter()
        .any(|m| m.id.eq_ignore_ascii_case(id))
    {
        Some("detector")
    } else if builtin_classifiers()
        .iter()
        .any(|m| m.id.eq_ignore_ascii_case(id))
    {
        Some("classifier")
    } else {
        None
    }
}

/// The files of the models `ids` (built-in ids, any case; None: every built-in detector and
/// classifier), in order; without `bird_head`, only each model's own file. An unknown id is an
/// error listing the built-ins.
pub fn artifacts_for(ids: Option<&[String]>, bird_head: bool) -> Result<Vec<Artifact>, ModelError> {
    let all = builtin_artifacts();
    let every: Vec<String> = all.iter().map(|(i, _)| i.clone()).collect();
    let mut out = Vec::new();
    for id in ids.unwrap_or(&every) {
        let key = id.trim().to_lowercase();
        let (_, arts) = all
            .iter()
            .find(|(i, _)| *i == key)
            .ok_or_else(|| ModelError::Unknown {
                id: id.clone(),
                known: all
                    .iter()
                    .map(|(i, _)| i.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        out.extend(
            arts.iter()
                .take(if bird_head { arts.len() } else { 1 })
                .cloned(),
        );
    }
    Ok(out)
}

fn mode_ids(key: &str) -> Option<Vec<String>> {
    DetectorMode::parse(key).map(|(_, a, b)| {
        std::iter::once(a)
            .chain(b)
            .map(String::from)
            .collect::<Vec<_>>()
    })
}

fn dedup(ids: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in ids {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// Model ids for `targets`: a built-in id, a detector mode (`DFbsMDS`, ...) or `deepfaune`
/// (DeepFaune's default setup: DF, MegaDetector sorrel and the default classifier). Duplicates
/// are dropped; every unknown target is named in one error with the valid choices.
pub fn resolve_targets<S: AsRef<str>>(targets: &[S]) -> Result<Vec<String>, ModelError> {
    let ids: Vec<String> = builtin_artifacts().into_iter().map(|(i, _)| i).collect();
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    for t in targets {
        let key = t.as_ref().trim().to_lowercase();
        if key == DEFAULT_TARGET {
            if !ids.iter().any(|i| i == DEFAULT_CLASSIFIER) {
                return Err(ModelError::Manifest {
                    path: DEFAULT_CLASSIFIER.into(),
                    reason: "the default classifier is not built in".into(),
                });
            }
            out.extend(["df".to_string(), "mds".to_string()]);
            out.push(DEFAULT_CLASSIFIER.to_string());
        } else if ids.contains(&key) {
            out.push(key);
        } else if let Some(m) = mode_ids(&key) {
            out.extend(m);
        } else {
            unknown.push(format!("'{}'", t.as_ref()));
        }
    }
    if !unknown.is_empty() {
        let mut sorted = ids.clone();
        sorted.sort();
        let mut choices = vec![DEFAULT_TARGET.to_string()];
        choices.extend(sorted);
        choices.extend(MODE_NAMES.iter().map(|m| m.to_string()));
        return Err(ModelError::UnknownTarget {
            names: unknown.join(", "),
            choices: choices.join(", "),
        });
    }
    Ok(dedup(out))
}

/// The built-in detector ids that a detector spec and its secondary load (files and manifests
/// are the caller's: none). An unknown name is an error listing the valid ones.
pub fn detector_ids(specs: &[&str]) -> Result<Vec<String>, ModelError> {
    let mut out = Vec::new();
    for spec in specs {
        let spec = spec.trim();
        check_spec(spec)?;
        let key = spec.to_lowercase();
        if let Some(m) = mode_ids(&key) {
            out.extend(m);
        } else if builtin_kind(&key) == Some("detector") {
            out.push(key);
        }
    }
    Ok(dedup(out))
}

/// The built-in classifier id of a classifier spec, None for a file or manifest. An unknown
/// name is an error listing the valid ones.
pub fn classifier_id(spec: &str) -> Result<Option<String>, ModelError> {
    let spec = spec.trim();
    check_classifier_spec(spec)?;
    let key = spec.to_lowercase();
    Ok((builtin_kind(&key) == Some("classifier")).then_some(key))
}

/// The files of the built-in models a run needs that are not in `folder`: the `detectors`'
/// files, the `classifier`'s (and its bird head's with `bird_head`), except the ids in `given`
/// (the caller brings their files) and the embedded detector.
pub fn missing(
    detectors: &[String],
    classifier: Option<&str>,
    bird_head: bool,
    given: &[String],
    folder: &Path,
) -> Result<Vec<(Artifact, PathBuf)>, ModelError> {
    let given: Vec<String> = given.iter().map(|g| g.to_lowercase()).collect();
    let ids: Vec<String> = detectors
        .iter()
        .filter(|d| !given.contains(&d.to_lowercase()))
        .cloned()
        .collect();
    let mut need = artifacts_for(Some(&ids), false)?;
    if let Some(c) = classifier {
        need.extend(artifacts_for(Some(&[c.to_string()]), bird_head)?);
    }
    Ok(need
        .into_iter()
        .filter(|a| !a.embedded)
        .map(|a| {
            let p = folder.join(&a.file);
            (a, p)
        })
        .filter(|(_, p)| !p.is_file())
        .collect())
}

/// The one command that fetches the models of these files.
pub fn fetch_command(arts: &[Artifact]) -> String {
    let ids = dedup(arts.iter().map(|a| a.model_id.clone()).collect());
    format!("deepfaune-rs models fetch {}", ids.join(" "))
}

/// The one-line error of a run whose built-in model files are missing: each file, and the
/// command that fetches them.
pub fn missing_message(gone: &[(Artifact, PathBuf)], command: &str) -> String {
    let listing: Vec<String> = gone
        .iter()
        .map(|(a, p)| format!("{} ({})", a.label(), p.display()))
        .collect();
    let (s, them) = if gone.len() > 1 {
        ("s", "them")
    } else {
        ("", "it")
    };
    format!(
        "weights not found for {} model file{s}: {}; get {them} with `{command}` (or fetch=True \
         / --fetch)",
        gone.len(),
        listing.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_ids_modes_or_the_default_setup() {
        assert_eq!(
            resolve_targets(&["deepfaune"]).unwrap(),
            ["df", "mds", DEFAULT_CLASSIFIER]
        );
        assert_eq!(
            resolve_targets(&["DFbsMDS", "dfmds", "MDR"]).unwrap(),
            ["df", "mds", "mdr"]
        );
        assert_eq!(
            resolve_targets(&["Deepfaune-V14", "mds"]).unwrap(),
            ["deepfaune-v14", "mds"]
        );
        let e = resolve_targets(&["df", "nope", "DFbsMDS", "x"])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("unknown model or mode 'nope', 'x': choose from deepfaune, "),
            "{e}"
        );
        for name in ["deepfaune-v11", "md-lite", "mdr", "DFbsMDS", "DFMDS"] {
            assert!(e.contains(name), "{e}");
        }
    }

    #[test]
    fn detector_and_classifier_specs_name_their_builtins() {
        assert_eq!(detector_ids(&["DFMDS"]).unwrap(), ["df", "mds"]);
        assert_eq!(
            detector_ids(&["md-lite", "mds"]).unwrap(),
            ["md-lite", "mds"]
        );
        assert!(detector_ids(&["x/y.onnx"]).unwrap().is_empty());
        let e = detector_ids(&["md-lit"]).unwrap_err().to_string();
        assert!(e.contains("'md-lit'") && e.contains("md-lite"), "{e}");
        assert_eq!(
            classifier_id("Deepfaune-V13").unwrap().as_deref(),
            Some("deepfaune-v13")
        );
        assert_eq!(classifier_id("model.onnx").unwrap(), None);
        let e = classifier_id("df").unwrap_err().to_string();
        assert!(e.contains("'df'") && e.contains("deepfaune-v15"), "{e}");
    }

    #[test]
    fn artifacts_carry_the_manifests_download_facts() {
        let a = artifacts_for(Some(&["mds".into(), "deepfaune-v15".into()]), true).unwrap();
        assert_eq!(
            artifacts_for(None, false).unwrap().len(),
            builtin_artifacts().len()
        );
        let labels: Vec<String> = a.iter().map(Artifact::label).collect();
        assert_eq!(labels, ["mds", "deepfaune-v15", "deepfaune-v15 bird head"]);
        assert_eq!(a[0].url_md5, "4339a2c8af7a381f18ded7ac2a4df03e");
        assert_eq!(a[1].url_size, Some(1_212_611_300));
        assert!(a[2].source_name().ends_with("-bird_head.pt"));
        let urls = a[1].urls(None);
        assert!(
            urls[0].starts_with("https://pbil.univ-lyon1.fr/"),
            "{urls:?}"
        );
        assert_eq!(urls.len(), 1 + a[1].mirrors.len());
        let base = a[0].urls(Some(" http://127.0.0.1:9/inst/ "));
        assert_eq!(
            base,
            [format!("http://127.0.0.1:9/inst/{}", a[0].source_name())]
        );
        let embedded = &artifacts_for(Some(&["md-lite".into()]), true).unwrap()[0];
        assert!(embedded.embedded);
        let e = artifacts_for(Some(&["nope".into()]), true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'nope'") && e.contains("deepfaune-v15"), "{e}");
    }

    #[test]
    fn urls_are_quoted_and_names_unquoted_as_urllib_does() {
        let a = Artifact {
            url: "https://h.example/a%20b/w%C3%A9ights%2Bx.pt?dl=1#top".into(),
            url_format: "pt".into(),
            file: "w.onnx".into(),
            ..Default::default()
        };
        assert_eq!(a.source_name(), "wéights+x.pt");
        assert_eq!(
            a.urls(Some("http://127.0.0.1/m")),
            ["http://127.0.0.1/m/w%C3%A9ights%2Bx.pt"]
        );
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    #[test]
    fn missing_lists_what_a_run_needs_and_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ["md-lite".to_string(), "df".into(), "mds".into()];
        let gone = missing(
            &ids,
            Some("deepfaune-v15"),
            true,
            &["MDS".into()],
            dir.path(),
        )
        .unwrap();
        let labels: Vec<String> = gone.iter().map(|(a, _)| a.label()).collect();
        assert_eq!(labels, ["df", "deepfaune-v15", "deepfaune-v15 bird head"]);
        assert_eq!(gone[0].1, dir.path().join(&gone[0].0.file));
        let arts: Vec<Artifact> = gone.into_iter().map(|(a, _)| a).collect();
        assert_eq!(
            fetch_command(&arts),
            "deepfaune-rs models fetch df deepfaune-v15"
        );
        std::fs::write(dir.path().join(&arts[0].file), b"").unwrap();
        let gone = missing(&ids, None, false, &[], dir.path()).unwrap();
        let labels: Vec<String> = gone.iter().map(|(a, _)| a.label()).collect();
        assert_eq!(labels, ["mds"]);
    }
}
