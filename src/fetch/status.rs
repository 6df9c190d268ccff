//! Where a model file stands, and the stamp the converter writes in an ONNX file.
//!
//! States (`python/deepfaune_rs/fetch.py`'s docstring says what each means to a user):
//! `embedded` (inside the package), `missing` (neither the ONNX nor the downloaded source),
//! `downloaded` (the source is there, no usable ONNX: `fetch` converts), `converted` (an ONNX
//! the core can load but the lock file does not vouch for) and `verified` (the ONNX's sha256
//! is the lock file's, converted from the source the lock file records, still the same, by
//! the current converter version; or, downloaded as is, its sha256 is pinned).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use super::{Artifact, Lock};
use crate::error::ModelError;
use crate::manifest::sha256_file;

/// The states of a model file, in the order a fetch moves it along.
pub const STATES: [&str; 5] = ["embedded", "missing", "downloaded", "converted", "verified"];

/// Where one model file stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStatus {
    /// The model's id.
    pub model_id: String,
    /// `model` or `bird_head`.
    pub role: String,
    /// One of [`STATES`].
    pub state: &'static str,
    /// The ONNX the core loads.
    pub path: PathBuf,
    /// The downloaded file, for a file converted after its download.
    pub source: Option<PathBuf>,
    /// Why it is not verified (or empty).
    pub detail: String,
    /// The sha256 of `path`, when it was hashed.
    pub sha256: Option<String>,
}

fn varint(r: &mut impl Read) -> std::io::Result<Option<u64>> {
    let (mut shift, mut out) = (0u32, 0u64);
    loop {
        let mut b = [0u8];
        if r.read(&mut b)? == 0 {
            return Ok(None);
        }
        out |= u64::from(b[0] & 0x7F) << shift;
        if b[0] & 0x80 == 0 {
            return Ok(Some(out));
        }
        shift += 7;
        if shift > 63 {
            return Err(std::io::Error::other("bad varint"));
        }
    }
}

/// The length-delimited fields of one `StringStringEntryProto` (1: key, 2: value).
fn entry_fields(buf: &[u8]) -> std::io::Result<(String, String)> {
    let mut r = buf;
    let (mut key, mut value) = (Vec::new(), Vec::new());
    while let Some(tag) = varint(&mut r)? {
        if tag & 7 != 2 {
            return Err(std::io::Error::other(
                "unexpected wire type in a metadata entry",
            ));
        }
        let n = varint(&mut r)?.ok_or_else(|| std::io::Error::other("truncated"))? as usize;
        let n = n.min(r.len());
        let (field, rest) = r.split_at(n);
        match tag >> 3 {
            1 => key = field.to_vec(),
            2 => value = field.to_vec(),
            _ => {}
        }
        r = rest;
    }
    Ok((
        String::from_utf8_lossy(&key).into_owned(),
        String::from_utf8_lossy(&value).into_owned(),
    ))
}

fn stamp(path: &Path) -> std::io::Result<Option<BTreeMap<String, String>>> {
    let size = std::fs::metadata(path)?.len();
    let mut f = BufReader::new(File::open(path)?);
    let mut out = BTreeMap::new();
    while f.stream_position()? < size {
        let Some(tag) = varint(&mut f)? else { break };
        match tag & 7 {
            0 => {
                varint(&mut f)?;
            }
            1 => f.seek_relative(8)?,
            5 => f.seek_relative(4)?,
            2 => {
                let Some(n) = varint(&mut f)? else {
                    return Ok(None);
                };
                if f.stream_position()?.saturating_add(n) > size {
                    return Ok(None);
                }
                if tag >> 3 == 14 {
                    // ModelProto.metadata_props
                    let mut buf = vec![0u8; n as usize];
                    f.read_exact(&mut buf)?;
                    let (k, v) = entry_fields(&buf)?;
                    out.insert(k, v);
                } else {
                    f.seek_relative(n as i64)?;
                }
            }
            _ => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// The `metadata_props` of an ONNX file (what the converter stamps: `converter`,
/// `converter_version`, `source_sha256`...), read by walking the protobuf's top-level fields
/// and skipping the graph, so a 1 GB model costs a few reads, not a parse. Empty for a file
/// that is not ONNX, is unreadable or has no metadata.
pub fn read_onnx_stamp(path: &Path) -> BTreeMap<String, String> {
    stamp(path).ok().flatten().unwrap_or_default()
}

/// The sha256 of a model file; an unreadable one is a `ChecksumError` naming it.
pub fn sha256_of(path: &Path) -> Result<String, ModelError> {
    sha256_file(path)
        .map_err(|e| ModelError::Refused(format!("{}: cannot read it: {e}", path.display())))
}

/// The state of `a`'s file in `folder`, from the files there and the lock file.
/// `converter_version` is the current converter's (None: no converter installed, any version
/// passes). Hashes every file present.
pub fn status_of(
    a: &Artifact,
    folder: &Path,
    lock: &Lock,
    converter_version: Option<&str>,
) -> Result<FileStatus, ModelError> {
    let path = folder.join(&a.file);
    let st = |state: &'static str, source: Option<&PathBuf>, detail: &str, sha: Option<&str>| {
        FileStatus {
            model_id: a.model_id.clone(),
            role: a.role.clone(),
            state,
            path: path.clone(),
            source: source.cloned(),
            detail: detail.into(),
            sha256: sha.map(String::from),
        }
    };
    if a.embedded {
        return Ok(st("embedded", None, "inside the package", None));
    }
    if !a.is_converted() {
        if !path.is_file() {
            return Ok(st("missing", None, "", None));
        }
        let sha = sha256_of(&path)?;
        let locked = lock.file(&a.file).map(|e| e.sha256);
        let pinned = [a.file_sha256.clone(), a.url_sha256.clone()]
            .into_iter()
            .find(|s| !s.is_empty())
            .or(locked);
        return Ok(match pinned {
            Some(p) if p == sha => st("verified", None, "", Some(&sha)),
            Some(_) => st(
                "converted",
                None,
                "differs from the recorded sha256",
                Some(&sha),
            ),
            None => st("converted", None, "no sha256 recorded", Some(&sha)),
        });
    }
    let src = folder.join(a.source_name());
    let has_src = src.is_file();
    if !path.is_file() {
        let state = if has_src { "downloaded" } else { "missing" };
        return Ok(st(state, Some(&src), "", None));
    }
    let sha = sha256_of(&path)?;
    let src_path = src;
    let src = Some(&src_path);
    let conv = match lock.conversion(&a.file) {
        Some(c) if c.sha256 == sha => c,
        other => {
            let why = if other.is_some() {
                "sha256 differs from the lock file"
            } else if read_onnx_stamp(&path).get("converter").map(String::as_str)
                == Some("deepfaune-rs")
            {
                "converted by deepfaune-rs, not recorded in the lock file"
            } else {
                "not made by `models fetch` (not in the lock file)"
            };
            return Ok(st("converted", src, why, Some(&sha)));
        }
    };
    let redo = if has_src { "downloaded" } else { "converted" };
    let recorded = conv.converter_version.as_deref();
    if let Some(current) = converter_version.filter(|&c| recorded != Some(c)) {
        let why = format!(
            "converter {} -> {current}: `models fetch` redoes it",
            recorded.unwrap_or("None")
        );
        return Ok(st(redo, src, &why, Some(&sha)));
    }
    let locked_src = lock.file(&a.source_name());
    let Some(locked_src) = locked_src.filter(|l| Some(&l.sha256) == conv.source_sha256.as_ref())
    else {
        let why = "converted from another source than the one the lock file records";
        return Ok(st(redo, src, why, Some(&sha)));
    };
    if has_src && sha256_of(&src_path)? != locked_src.sha256 {
        let why = format!(
            "{} changed since the conversion: `models fetch` redoes it",
            a.source_name()
        );
        return Ok(st("downloaded", src, &why, Some(&sha)));
    }
    Ok(st("verified", src, "", Some(&sha)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A protobuf length-delimited field.
    fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |mut v: u64| loop {
            let b = (v & 0x7F) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        };
        put(number << 3 | 2);
        put(bytes.len() as u64);
        out.extend_from_slice(bytes);
        out
    }

    /// A small ModelProto written by hand from onnx.proto: ir_version (1, varint), a graph
    /// (7) of 300 bytes, opset_import (8), producer_name (2) and two metadata_props (14).
    fn small_onnx(props: &[(&str, &str)]) -> Vec<u8> {
        let mut m = vec![0x08, 0x09]; // ir_version = 9
        m.extend(field(2, b"deepfaune-rs"));
        m.extend(field(7, &[0x5a; 300]));
        m.extend(field(8, &[0x10, 0x11]));
        for (k, v) in props {
            let mut e = field(1, k.as_bytes());
            e.extend(field(2, v.as_bytes()));
            m.extend(field(14, &e));
        }
        m
    }

    #[test]
    fn the_stamp_is_read_from_the_metadata_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.onnx");
        let props = [
            ("converter", "deepfaune-rs"),
            ("converter_version", "3"),
            ("é", "ü"),
        ];
        std::fs::write(&p, small_onnx(&props)).unwrap();
        let got = read_onnx_stamp(&p);
        let want: BTreeMap<String, String> = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        std::fs::write(&p, small_onnx(&[])).unwrap();
        assert!(read_onnx_stamp(&p).is_empty());
        // Not ONNX, truncated, absent: empty.
        std::fs::write(&p, b"PK\x03\x04 a zip").unwrap();
        assert!(read_onnx_stamp(&p).is_empty());
        let mut cut = small_onnx(&props);
        cut.truncate(cut.len() - 3);
        std::fs::write(&p, cut).unwrap();
        assert!(read_onnx_stamp(&p).is_empty());
        assert!(read_onnx_stamp(&dir.path().join("gone.onnx")).is_empty());
    }

    fn pt_artifact() -> Artifact {
        Artifact {
            model_id: "df".into(),
            role: "model".into(),
            kind: "detector".into(),
            file: "df.onnx".into(),
            url: "https://h.example/files/df.pt".into(),
            url_format: "pt".into(),
            ..Default::default()
        }
    }

    fn sha_of(bytes: &[u8]) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn every_state_of_a_converted_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let a = pt_artifact();
        let state = |conv: Option<&str>| {
            let lock = Lock::read(d).unwrap();
            let s = status_of(&a, d, &lock, conv).unwrap();
            (s.state, s.detail)
        };
        assert_eq!(state(Some("3")).0, "missing");
        std::fs::write(d.join("df.pt"), b"weights").unwrap();
        assert_eq!(state(Some("3")).0, "downloaded");
        let onnx = small_onnx(&[("converter", "deepfaune-rs")]);
        std::fs::write(d.join("df.onnx"), &onnx).unwrap();
        assert_eq!(
            state(Some("3")),
            (
                "converted",
                "converted by deepfaune-rs, not recorded in the lock file".into()
            )
        );
        std::fs::write(d.join("df.onnx"), small_onnx(&[])).unwrap();
        assert_eq!(
            state(Some("3")),
            (
                "converted",
                "not made by `models fetch` (not in the lock file)".into()
            )
        );
        std::fs::write(d.join("df.onnx"), &onnx).unwrap();
        let mut lock = Lock::read(d).unwrap();
        lock.record_file("df.pt", &sha_of(b"weights"), 7, None)
            .unwrap();
        lock.record_conversion("df.onnx", &sha_of(&onnx), "df.pt", &sha_of(b"weights"), "3")
            .unwrap();
        assert_eq!(state(Some("3")), ("verified", String::new()));
        assert_eq!(state(None).0, "verified", "no converter installed");
        let (s, why) = state(Some("4"));
        assert_eq!(
            (s, why.as_str()),
            ("downloaded", "converter 3 -> 4: `models fetch` redoes it")
        );
        // The source changed since: converted again.
        std::fs::write(d.join("df.pt"), b"weights 2").unwrap();
        let (s, why) = state(Some("3"));
        assert_eq!(
            (s, why.as_str()),
            (
                "downloaded",
                "df.pt changed since the conversion: `models fetch` redoes it"
            )
        );
        // Without its source, the ONNX stands as converted when the lock file's source differs.
        std::fs::remove_file(d.join("df.pt")).unwrap();
        assert_eq!(state(Some("3")).0, "verified");
        lock.record_file("df.pt", &sha_of(b"other"), 5, None)
            .unwrap();
        let (s, why) = state(Some("3"));
        assert_eq!(
            (s, why.as_str()),
            (
                "converted",
                "converted from another source than the one the lock file records"
            )
        );
        // The ONNX itself changed.
        std::fs::write(d.join("df.onnx"), small_onnx(&[("converter", "x")])).unwrap();
        assert_eq!(
            state(Some("3")),
            ("converted", "sha256 differs from the lock file".into())
        );
    }

    #[test]
    fn files_used_as_downloaded_and_the_embedded_detector() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut a = pt_artifact();
        a.url_format = "onnx".into();
        let lock = || Lock::read(d).unwrap();
        let st = |a: &Artifact| status_of(a, d, &lock(), Some("3")).unwrap();
        assert_eq!(st(&a).state, "missing");
        std::fs::write(d.join("df.onnx"), b"model").unwrap();
        assert_eq!(
            (st(&a).state, st(&a).detail.as_str()),
            ("converted", "no sha256 recorded")
        );
        Lock::read(d)
            .unwrap()
            .record_file("df.onnx", &sha_of(b"model"), 5, None)
            .unwrap();
        let s = st(&a);
        assert_eq!((s.state, s.sha256), ("verified", Some(sha_of(b"model"))));
        a.file_sha256 = sha_of(b"pinned");
        let s = st(&a);
        assert_eq!(
            (s.state, s.detail.as_str()),
            ("converted", "differs from the recorded sha256")
        );
        a.embedded = true;
        assert_eq!(st(&a).state, "embedded");
    }
}
