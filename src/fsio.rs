//! Atomic file writes: a crash or a full disk mid-write leaves any previous file intact. Every
//! file the core writes (exports, checkpoints, knowledge bases, thumbnails) goes through here; it
//! depends on nothing but [`crate::error`].
//!
//! The temporary file sits in the destination's folder (so the final rename stays on one file
//! system) under a random name, and is created exclusively (`O_CREAT | O_EXCL`: an existing
//! file or a planted symbolic link makes the creation fail, never followed; another random name
//! is then tried). It gets the mode any new file gets (0666 minus the umask), is removed on every
//! error path, and is renamed over the destination only once fully written and synced. A
//! destination that is a symbolic link is replaced by the file, never written through.

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Attempts at a fresh random name before giving up (each one fails only if the name exists).
const NAME_ATTEMPTS: usize = 64;

/// A random 64-bit token: std's hasher keys are drawn from the OS's random source per process
/// and advanced per `RandomState`; a counter and the clock make successive tokens differ.
pub fn random_token() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

/// Creates `.{name}.{token}.tmp` in `dir` exclusively (never through a link), trying new tokens
/// from `token` while a name exists. Returns the open file and its path.
pub fn create_temp(
    dir: &Path,
    name: &str,
    mut token: impl FnMut() -> u64,
) -> std::io::Result<(File, PathBuf)> {
    let mut last = None;
    for _ in 0..NAME_ATTEMPTS {
        let tmp = dir.join(format!(".{name}.{:016x}.tmp", token()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o666)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
        }
        match opts.open(&tmp) {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temporary name available")))
}

/// Removes the temporary file when dropped, unless it was renamed into place.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder, flushed to disk, then
/// renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// [`write_atomic`] with the contents written by `write` into the open temporary file. If
/// `write` (or the sync, or the rename) fails, the temporary file is removed and `path` is
/// left as it was.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), Error> {
    let err = |reason: String| Error::Output {
        path: path.to_path_buf(),
        reason,
    };
    let dir = folder_of(path);
    let name = path
        .file_name()
        .ok_or_else(|| err("not a file path".into()))?
        .to_string_lossy()
        .into_owned();
    let (mut f, tmp) = create_temp(&dir, &name, random_token).map_err(|e| err(e.to_string()))?;
    let mut guard = TempGuard(Some(tmp.clone()));
    let result = (|| -> std::io::Result<()> {
        write(&mut f)?;
        f.flush()?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    match result {
        Ok(()) => {
            guard.0 = None;
            sync_dir(&dir);
            Ok(())
        }
        Err(e) => Err(err(e.to_string())),
    }
}

/// Makes a rename in `dir` durable (best effort: not every file system can sync a folder).
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_and_leaves_no_temp() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("out.json");
        std::fs::write(&p, b"old").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    }

    #[test]
    fn failure_keeps_the_old_file() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("missing-dir").join("out.json");
        assert!(matches!(write_atomic(&p, b"x"), Err(Error::Output { .. })));
    }

    #[cfg(unix)]
    #[test]
    fn a_link_planted_at_the_old_predictable_name_is_not_followed() {
        // Before: the temporary file was `.NAME.tmp-PID`, opened following links.
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim.txt");
        std::fs::write(&victim, b"precious").unwrap();
        let p = t.path().join("out.json");
        let planted = t
            .path()
            .join(format!(".out.json.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        write_atomic(&p, b"output").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::read(&p).unwrap(), b"output");
    }

    #[cfg(unix)]
    #[test]
    fn temp_creation_never_follows_a_link_and_takes_another_name() {
        let t = tempfile::tempdir().unwrap();
        let victim = t.path().join("victim.txt");
        std::fs::write(&victim, b"precious").unwrap();
        // The first two names are taken: a link to the victim and a dangling link.
        std::os::unix::fs::symlink(&victim, t.path().join(format!(".o.{:016x}.tmp", 1))).unwrap();
        std::os::unix::fs::symlink(
            t.path().join("nowhere"),
            t.path().join(format!(".o.{:016x}.tmp", 2)),
        )
        .unwrap();
        let mut next = 0u64;
        let (mut f, tmp) = create_temp(t.path(), "o", || {
            next += 1;
            next
        })
        .unwrap();
        assert_eq!(tmp, t.path().join(format!(".o.{:016x}.tmp", 3)));
        f.write_all(b"x").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(!t.path().join("nowhere").exists());
        // Every name taken: an error, not a write through a link.
        assert!(create_temp(t.path(), "o", || 1).is_err());
    }

    #[test]
    fn write_errors_remove_the_temporary_file() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("out.csv");
        std::fs::write(&p, b"old").unwrap();
        let e = write_atomic_with(&p, |f| {
            f.write_all(b"half")?;
            Err(std::io::Error::other("injected: no space left on device"))
        })
        .unwrap_err();
        assert!(e.to_string().contains("injected"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(names(t.path()), ["out.csv"]);
        // A rename that fails (the destination is a non-empty folder): no temporary file left.
        let d = t.path().join("dir");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("x"), b"").unwrap();
        assert!(write_atomic(&d, b"new").is_err());
        assert_eq!(names(t.path()), ["dir", "out.csv"]);
    }

    #[cfg(unix)]
    #[test]
    fn output_mode_is_the_usual_one() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let usual = t.path().join("usual");
        File::create(&usual).unwrap();
        let p = t.path().join("out");
        write_atomic(&p, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&p), mode(&usual));
    }

    #[test]
    fn random_tokens_differ() {
        let a: std::collections::HashSet<u64> = (0..1000).map(|_| random_token()).collect();
        assert_eq!(a.len(), 1000);
    }
}
