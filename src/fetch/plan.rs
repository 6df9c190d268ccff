//! What fetching one file takes, decided from the files in the folder and the lock file: nothing
//! (embedded, verified, or someone's own ONNX kept), converting the source already there
//! (checked, recorded in the lock file), or downloading it with these checks.

use std::path::{Path, PathBuf};

use super::{check, read_onnx_stamp, status_of, Artifact, Expect, Lock};
use crate::error::{Error, ModelError};

/// The next step of fetching one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do: the file stands in `state` (`embedded`, `verified`, or `converted` for an
    /// ONNX this package did not make, kept).
    Done {
        /// Its state.
        state: &'static str,
        /// The ONNX file.
        path: PathBuf,
        /// The downloaded file, when it is there.
        source: Option<PathBuf>,
        /// The ONNX file's sha256, when hashed.
        sha256: Option<String>,
        /// The lock file's sha256 of the source.
        source_sha256: Option<String>,
    },
    /// The source is in the folder, checked and recorded: convert it (or, downloaded as is,
    /// it is the file).
    Source {
        /// Its path.
        path: PathBuf,
        /// Its sha256.
        sha256: String,
    },
    /// Download the source, checked against `expect`, then record it.
    Download {
        /// What the download must be.
        expect: Expect,
    },
}

/// The step, and what the user should know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The next step.
    pub step: Step,
    /// Lines for the user (a corrupt file replaced, someone's ONNX kept).
    pub notes: Vec<String>,
}

/// What fetching `a` into `folder` takes. A source already there that fails the published
/// checks is deleted (and downloaded again, with a note); one that passes them but differs
/// from the lock file's sha256 is refused unless `accept_new_hash`.
pub fn plan(
    a: &Artifact,
    folder: &Path,
    converter_version: Option<&str>,
    accept_new_hash: bool,
) -> Result<Plan, Error> {
    let path = folder.join(&a.file);
    let done = |state, source, sha256, source_sha256, notes| Plan {
        step: Step::Done {
            state,
            path: path.clone(),
            source,
            sha256,
            source_sha256,
        },
        notes,
    };
    if a.embedded {
        return Ok(done("embedded", None, None, None, vec![]));
    }
    let mut lock = Lock::read(folder)?;
    let st = status_of(a, folder, &lock, converter_version)?;
    let name = a.source_name();
    if st.state == "verified" {
        if !a.is_converted() {
            return Ok(done("verified", None, st.sha256, None, vec![]));
        }
        let source = st.source.filter(|s| s.is_file());
        let locked = lock.file(&name).map(|e| e.sha256);
        return Ok(done("verified", source, st.sha256, locked, vec![]));
    }
    let foreign = || {
        lock.conversion(&a.file).is_none()
            && read_onnx_stamp(&path).get("converter").map(String::as_str) != Some("deepfaune-rs")
    };
    if a.is_converted() && path.is_file() && foreign() {
        let note = format!(
            "kept {}: it was not made by deepfaune-rs (delete it to fetch and convert {name} \
             instead)",
            a.file
        );
        return Ok(done("converted", None, st.sha256, None, vec![note]));
    }
    // An ONNX of ours that the lock file does not vouch for (converted by hand, another source,
    // another converter version, changed since) is converted again: "verified" only ever
    // means converted here, from a checked source.
    let locked = lock.file(&name).map(|e| e.sha256);
    let published = Expect {
        size: a.url_size,
        md5: a.url_md5.clone(),
        sha256: if a.url_sha256.is_empty() && !a.is_converted() {
            a.file_sha256.clone()
        } else {
            a.url_sha256.clone()
        },
        ..Expect::default()
    };
    let src = folder.join(&name);
    let mut notes = vec![];
    if src.is_file() {
        match check(&src, &name, &published, &lock.path) {
            Err(e) => {
                notes.push(format!(
                    "{name} in the model directory was corrupt ({e}); downloaded again"
                ));
                std::fs::remove_file(&src).map_err(|e| Error::Output {
                    path: src.clone(),
                    reason: e.to_string(),
                })?;
            }
            Ok(h) => {
                match &locked {
                    Some(l) if *l != h.sha256 && !accept_new_hash => {
                        return Err(ModelError::Refused(format!(
                            "{}: sha256 {} differs from {l} recorded in {}; delete the file to \
                             download it again, or keep it with `deepfaune-rs models fetch \
                             --accept-new-hash ...`",
                            src.display(),
                            h.sha256,
                            lock.path.display()
                        ))
                        .into())
                    }
                    Some(l) if *l == h.sha256 => {}
                    _ => {
                        let size = std::fs::metadata(&src).map(|m| m.len()).unwrap_or(0);
                        lock.record_file(&name, &h.sha256, size, None)?;
                    }
                }
                let step = Step::Source {
                    path: src,
                    sha256: h.sha256,
                };
                return Ok(Plan { step, notes });
            }
        }
    }
    let expect = Expect {
        locked_sha256: locked.unwrap_or_default(),
        accept_new_hash,
        ..published
    };
    Ok(Plan {
        step: Step::Download { expect },
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha_of(bytes: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn pt() -> Artifact {
        Artifact {
            model_id: "df".into(),
            role: "model".into(),
            kind: "detector".into(),
            file: "df.onnx".into(),
            url: "https://h.example/df.pt".into(),
            url_format: "pt".into(),
            url_size: Some(7),
            ..Default::default()
        }
    }

    #[test]
    fn a_source_is_downloaded_checked_kept_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let a = pt();
        let step = |accept| plan(&a, d, Some("3"), accept).map(|p| (p.step, p.notes));
        // Nothing there: download with the published checks.
        let (s, notes) = step(false).unwrap();
        assert_eq!(
            s,
            Step::Download {
                expect: Expect {
                    size: Some(7),
                    ..Expect::default()
                }
            }
        );
        assert!(notes.is_empty());
        // There and right: taken as the source, and recorded.
        std::fs::write(d.join("df.pt"), b"weights").unwrap();
        let (s, _) = step(false).unwrap();
        assert_eq!(
            s,
            Step::Source {
                path: d.join("df.pt"),
                sha256: sha_of(b"weights")
            }
        );
        assert_eq!(
            Lock::read(d).unwrap().file("df.pt").unwrap().sha256,
            sha_of(b"weights")
        );
        // Replaced by a file of the right size but another hash: refused, or taken when told.
        std::fs::write(d.join("df.pt"), b"weighs!").unwrap();
        let e = step(false).unwrap_err().to_string();
        assert!(
            e.contains("delete the file to download it again") && e.contains(&sha_of(b"weighs!")),
            "{e}"
        );
        assert!(matches!(step(true).unwrap().0, Step::Source { .. }));
        assert_eq!(
            Lock::read(d).unwrap().file("df.pt").unwrap().sha256,
            sha_of(b"weighs!")
        );
        // Failing the published size: deleted, downloaded again, said so.
        std::fs::write(d.join("df.pt"), b"short").unwrap();
        let (s, notes) = step(false).unwrap();
        match s {
            Step::Download { expect } => assert_eq!(expect.locked_sha256, sha_of(b"weighs!")),
            other => panic!("{other:?}"),
        }
        assert!(
            notes[0].starts_with("df.pt in the model directory was corrupt (df.pt: 5 bytes"),
            "{notes:?}"
        );
        assert!(!d.join("df.pt").exists());
    }

    #[test]
    fn done_when_embedded_verified_or_someone_elses() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut a = pt();
        std::fs::write(d.join("df.onnx"), b"an export by hand").unwrap();
        let p = plan(&a, d, Some("3"), false).unwrap();
        assert!(
            matches!(
                p.step,
                Step::Done {
                    state: "converted",
                    ..
                }
            ),
            "{p:?}"
        );
        assert!(p.notes[0].starts_with("kept df.onnx: it was not made by deepfaune-rs"));
        // Downloaded as is and pinned: verified without a request.
        a.url_format = "onnx".into();
        a.url_size = None;
        a.file_sha256 = sha_of(b"an export by hand");
        let p = plan(&a, d, Some("3"), false).unwrap();
        assert_eq!(
            p.step,
            Step::Done {
                state: "verified",
                path: d.join("df.onnx"),
                source: None,
                sha256: Some(sha_of(b"an export by hand")),
                source_sha256: None
            }
        );
        a.embedded = true;
        let p = plan(&a, d, Some("3"), false).unwrap();
        assert!(matches!(
            p.step,
            Step::Done {
                state: "embedded",
                ..
            }
        ));
    }
}
