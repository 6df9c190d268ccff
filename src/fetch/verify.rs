//! What a downloaded file must be, and the check that refuses it otherwise.

use std::io::Read;
use std::path::Path;

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::ModelError;

/// What a downloaded file must be: the published size and hashes, and the lock file's sha256.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expect {
    /// The published size in bytes.
    pub size: Option<u64>,
    /// The published MD5 (lowercase hex), or empty.
    pub md5: String,
    /// The published (or pinned) sha256, or empty.
    pub sha256: String,
    /// The sha256 the lock file recorded at the first download, or empty.
    pub locked_sha256: String,
    /// Take a file whose sha256 differs from `locked_sha256` (`--accept-new-hash`).
    pub accept_new_hash: bool,
}

/// A file's sha256 and, when asked for, MD5 (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashes {
    /// sha256.
    pub sha256: String,
    /// MD5 (None when not asked for).
    pub md5: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 (and with `md5` the MD5) of a file, streamed in one read. MD5 only when asked:
/// it costs twice the sha256 (which uses the CPU's SHA instructions where it has them).
pub fn hash_file(path: &Path, md5: bool) -> std::io::Result<Hashes> {
    let mut f = std::fs::File::open(path)?;
    let (mut s, mut m) = (Sha256::new(), md5.then(Md5::new));
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        s.update(&buf[..n]);
        if let Some(m) = m.as_mut() {
            m.update(&buf[..n]);
        }
    }
    Ok(Hashes {
        sha256: hex(&s.finalize()),
        md5: m.map(|m| hex(&m.finalize())),
    })
}

/// Checks the file at `path` (downloaded as `name`) against `expect`; returns its hashes. A
/// refusal is one line naming the file and both values (`ChecksumError`); `lock_path` is named
/// when the lock file's hash is the one that differs.
pub fn check(
    path: &Path,
    name: &str,
    expect: &Expect,
    lock_path: &Path,
) -> Result<Hashes, ModelError> {
    let unreadable = |e: std::io::Error| {
        ModelError::Refused(format!("{name}: cannot read {}: {e}", path.display()))
    };
    let size = std::fs::metadata(path).map_err(unreadable)?.len();
    if let Some(want) = expect.size.filter(|&w| w != size) {
        return Err(ModelError::Refused(format!(
            "{name}: {size} bytes, the publisher's size is {want}: corrupt or another file"
        )));
    }
    let h = hash_file(path, !expect.md5.is_empty()).map_err(unreadable)?;
    if let Some(md5) = h.md5.as_ref().filter(|m| **m != expect.md5) {
        return Err(ModelError::Refused(format!(
            "{name}: MD5 {md5}, the publisher's MD5 is {}",
            expect.md5
        )));
    }
    if !expect.sha256.is_empty() && h.sha256 != expect.sha256 {
        return Err(ModelError::Refused(format!(
            "{name}: sha256 {}, the publisher's sha256 is {}",
            h.sha256, expect.sha256
        )));
    }
    if !expect.locked_sha256.is_empty()
        && h.sha256 != expect.locked_sha256
        && !expect.accept_new_hash
    {
        return Err(ModelError::Refused(format!(
            "{name}: sha256 {} differs from {} recorded in {} at the first download; if the \
             publisher really changed the file, accept it with `deepfaune-rs models fetch \
             --accept-new-hash ...` (or delete its entry in the lock file)",
            h.sha256,
            expect.locked_sha256,
            lock_path.display()
        )));
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Digests of b"abc" from RFC 1321 and FIPS 180-2 (independent of both crates).
    const ABC_MD5: &str = "900150983cd24fb0d6963f7d28e17f72";
    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn hashes_are_the_published_digests() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        let h = hash_file(&p, true).unwrap();
        assert_eq!(
            (h.md5.as_deref(), h.sha256.as_str()),
            (Some(ABC_MD5), ABC_SHA256)
        );
        assert_eq!(hash_file(&p, false).unwrap().md5, None);
    }

    #[test]
    fn each_check_refuses_with_both_values_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.pt");
        std::fs::write(&p, b"abc").unwrap();
        let lock = dir.path().join("deepfaune-rs.lock.json");
        let run = |e: Expect| check(&p, "w.pt", &e, &lock);
        let other = "0".repeat(64);
        assert_eq!(run(Expect::default()).unwrap().sha256, ABC_SHA256);
        let all = Expect {
            size: Some(3),
            md5: ABC_MD5.into(),
            sha256: ABC_SHA256.into(),
            locked_sha256: ABC_SHA256.into(),
            accept_new_hash: false,
        };
        assert_eq!(run(all.clone()).unwrap().md5.as_deref(), Some(ABC_MD5));
        let e = run(Expect {
            size: Some(4),
            ..all.clone()
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "w.pt: 3 bytes, the publisher's size is 4: corrupt or another file"
        );
        let e = run(Expect {
            md5: "1".repeat(32),
            ..all.clone()
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            format!(
                "w.pt: MD5 {ABC_MD5}, the publisher's MD5 is {}",
                "1".repeat(32)
            )
        );
        let e = run(Expect {
            sha256: other.clone(),
            ..all.clone()
        })
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            format!("w.pt: sha256 {ABC_SHA256}, the publisher's sha256 is {other}")
        );
        let locked = Expect {
            locked_sha256: other.clone(),
            ..all.clone()
        };
        let e = run(locked.clone()).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("w.pt: sha256 {ABC_SHA256} differs from {other}")),
            "{e}"
        );
        assert!(e.contains(&lock.display().to_string()) && e.contains("--accept-new-hash"));
        assert!(!e.contains('\n'));
        assert!(run(Expect {
            accept_new_hash: true,
            ..locked
        })
        .is_ok());
        let e = check(&dir.path().join("gone"), "gone", &all, &lock).unwrap_err();
        assert!(e.to_string().starts_with("gone: cannot read"), "{e}");
    }
}
