//! Fetching one file of a built-in model, step by step: the plan (`plan.rs`), the download
//! (`transfer.rs`) recorded in the lock file, then the conversion of a `.pt` (through
//! [`Convert`]: the converter is the caller's) recorded with its source and converter version.

use std::path::{Path, PathBuf};

use super::transfer::{download, Hooks, Retry};
use super::{plan, Artifact, Lock, Step};
use crate::error::{Error, ModelError};

/// What the converter made of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// The ONNX file's sha256.
    pub sha256: String,
    /// The sha256 of the source it read (stamped in the ONNX), when it says.
    pub source_sha256: Option<String>,
    /// The converter's version.
    pub converter_version: String,
}

/// Converts a downloaded checkpoint `src` of `a` into the ONNX file `dest`.
pub trait Convert {
    /// Writes `dest` (atomically) from `src`.
    fn convert(&mut self, a: &Artifact, src: &Path, dest: &Path) -> Result<Converted, Error>;
}

/// How to fetch.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// Take a download whose sha256 differs from the lock file's.
    pub accept_new_hash: bool,
    /// The installed converter's version (None: there is none).
    pub converter_version: Option<String>,
    /// Retries and timeout.
    pub retry: Retry,
    /// `$DEEPFAUNE_RS_BASE_URL`: fetch `NAME` from `BASE/NAME` only.
    pub base_url: Option<String>,
}

/// What fetching one file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The model's id.
    pub model_id: String,
    /// `model` or `bird_head`.
    pub role: String,
    /// `embedded`, `downloaded`, `converted` or `verified`.
    pub state: &'static str,
    /// The ONNX file (or the file used as downloaded).
    pub path: PathBuf,
    /// The downloaded file, when it differs from `path`.
    pub source: Option<PathBuf>,
    /// `path`'s sha256, when known.
    pub sha256: Option<String>,
    /// `source`'s sha256, when known.
    pub source_sha256: Option<String>,
    /// Where it was downloaded from (None: nothing downloaded).
    pub url: Option<String>,
    /// Whether it was converted by this call.
    pub converted: bool,
    /// Lines for the user.
    pub notes: Vec<String>,
}

/// Fetches `a` into `folder`: nothing when it is there and verified, else downloads (and with
/// `convert`, converts) what is missing, recording each step in the lock file.
pub fn fetch_file(
    a: &Artifact,
    folder: &Path,
    opts: &FetchOptions,
    hooks: &mut dyn Hooks,
    convert: Option<&mut dyn Convert>,
) -> Result<Fetched, Error> {
    let p = plan(
        a,
        folder,
        opts.converter_version.as_deref(),
        opts.accept_new_hash,
    )?;
    let mut out = Fetched {
        model_id: a.model_id.clone(),
        role: a.role.clone(),
        state: "verified",
        path: folder.join(&a.file),
        source: None,
        sha256: None,
        source_sha256: None,
        url: None,
        converted: false,
        notes: p.notes,
    };
    let (src, src_sha) = match p.step {
        Step::Done {
            state,
            path,
            source,
            sha256,
            source_sha256,
        } => {
            return Ok(Fetched {
                state,
                path,
                source,
                sha256,
                source_sha256,
                ..out
            })
        }
        Step::Source { path, sha256 } => (path, sha256),
        Step::Download { expect } => {
            let name = a.source_name();
            let urls = a.urls(opts.base_url.as_deref());
            let d = download(&name, &urls, folder, &expect, opts.retry, hooks)?;
            if !expect.locked_sha256.is_empty() && expect.locked_sha256 != d.sha256 {
                out.notes.push(format!(
                    "{name}: new sha256 {} accepted (was {})",
                    d.sha256, expect.locked_sha256
                ));
            }
            let size = std::fs::metadata(&d.path).map_or(0, |m| m.len());
            let url = Some(d.url).filter(|u| !u.is_empty());
            Lock::read(folder)?.record_file(&name, &d.sha256, size, url.as_deref())?;
            out.url = url;
            (d.path, d.sha256)
        }
    };
    if !a.is_converted() {
        // Used as downloaded.
        return Ok(Fetched {
            path: src,
            sha256: Some(src_sha),
            ..out
        });
    }
    out.source_sha256 = Some(src_sha.clone());
    out.source = Some(src.clone());
    let Some(convert) = convert else {
        return Ok(Fetched {
            state: "downloaded",
            ..out
        });
    };
    let info = convert.convert(a, &src, &out.path)?;
    let src_name = src
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    if let Some(read) = info.source_sha256.filter(|s| *s != src_sha) {
        return Err(ModelError::Conversion(format!(
            "{src_name} changed while it was converted (sha256 {read}, expected {src_sha}); run \
             the fetch again"
        ))
        .into());
    }
    Lock::read(folder)?.record_conversion(
        &a.file,
        &info.sha256,
        &src_name,
        &src_sha,
        &info.converter_version,
    )?;
    Ok(Fetched {
        sha256: Some(info.sha256),
        converted: true,
        ..out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::transfer::tests::{serve, Recorder, Reply};

    // FIPS 180-2's sha256 of b"abc", and the sha256 of no bytes.
    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// Writes an empty ONNX file and says it read `source_sha256`.
    struct Fake(Option<String>);

    impl Convert for Fake {
        fn convert(&mut self, _: &Artifact, _: &Path, dest: &Path) -> Result<Converted, Error> {
            std::fs::write(dest, b"").unwrap();
            Ok(Converted {
                sha256: EMPTY_SHA256.into(),
                source_sha256: self.0.clone(),
                converter_version: "7".into(),
            })
        }
    }

    fn artifact(url: &str) -> Artifact {
        Artifact {
            model_id: "m".into(),
            role: "model".into(),
            kind: "detector".into(),
            file: "w.onnx".into(),
            url: url.into(),
            url_format: "pt".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_file_is_downloaded_recorded_converted_and_recorded() {
        let srv = serve(b"abc".to_vec(), |_, _| Reply::Full(None));
        let dir = tempfile::tempdir().unwrap();
        let a = artifact(&srv.url);
        let opts = FetchOptions::default();
        let mut rec = Recorder::default();
        let mut conv = Fake(Some(ABC_SHA256.into()));
        let f = fetch_file(&a, dir.path(), &opts, &mut rec, Some(&mut conv)).unwrap();
        assert_eq!((f.state, f.converted), ("verified", true));
        assert_eq!(f.path, dir.path().join("w.onnx"));
        assert_eq!(f.source, Some(dir.path().join("f.bin")));
        assert_eq!(f.sha256.as_deref(), Some(EMPTY_SHA256));
        assert_eq!(f.source_sha256.as_deref(), Some(ABC_SHA256));
        assert_eq!(f.url.as_deref(), Some(srv.url.as_str()));
        let lock = Lock::read(dir.path()).unwrap();
        let file = lock.file("f.bin").unwrap();
        assert_eq!((file.sha256.as_str(), file.size), (ABC_SHA256, Some(3)));
        assert_eq!(file.url.as_deref(), Some(srv.url.as_str()));
        let c = lock.conversion("w.onnx").unwrap();
        assert_eq!(c.sha256, EMPTY_SHA256);
        assert_eq!(c.source.as_deref(), Some("f.bin"));
        assert_eq!(c.source_sha256.as_deref(), Some(ABC_SHA256));
        assert_eq!(c.converter_version.as_deref(), Some("7"));
    }

    #[test]
    fn without_a_converter_it_stops_at_downloaded() {
        let srv = serve(b"abc".to_vec(), |_, _| Reply::Full(None));
        let dir = tempfile::tempdir().unwrap();
        let a = artifact(&srv.url);
        let mut rec = Recorder::default();
        let f = fetch_file(&a, dir.path(), &FetchOptions::default(), &mut rec, None).unwrap();
        assert_eq!((f.state, f.converted), ("downloaded", false));
        assert!(!dir.path().join("w.onnx").exists());
        // The source is there and recorded: the next fetch converts it without a request.
        let mut conv = Fake(None);
        let f = fetch_file(
            &a,
            dir.path(),
            &FetchOptions::default(),
            &mut rec,
            Some(&mut conv),
        );
        assert!(f.unwrap().converted);
        assert_eq!(srv.log.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_source_that_changed_during_the_conversion_is_refused() {
        let srv = serve(b"abc".to_vec(), |_, _| Reply::Full(None));
        let dir = tempfile::tempdir().unwrap();
        let mut conv = Fake(Some(EMPTY_SHA256.into()));
        let e = fetch_file(
            &artifact(&srv.url),
            dir.path(),
            &FetchOptions::default(),
            &mut Recorder::default(),
            Some(&mut conv),
        )
        .unwrap_err();
        assert!(matches!(e, Error::Model(ModelError::Conversion(_))), "{e}");
        assert!(
            e.to_string()
                .starts_with("f.bin changed while it was converted"),
            "{e}"
        );
        assert!(Lock::read(dir.path())
            .unwrap()
            .conversion("w.onnx")
            .is_none());
    }
}
