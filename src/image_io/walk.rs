//! The folder walk: every image file under a root, recursively, sorted (SPEC 2.1).
//!
//! Symlinked folders are followed once (a loop is reported, not followed forever); folders that
//! deepfaune-rs itself wrote (they hold an [`OUTPUT_MARKER`] file) are skipped; folders that cannot
//! be read are reported with the reason.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Extensions DeepFaune accepts for images, compared case-insensitively.
pub const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "bmp", "tif", "tiff", "gif"];

/// A file deepfaune-rs writes into the folders it creates (sorting output), so later walks skip them.
pub const OUTPUT_MARKER: &str = ".deepfaune-rs-output";

/// What a walk found.
#[derive(Debug, Default, Clone)]
pub struct WalkOutput {
    /// Image files, sorted.
    pub files: Vec<PathBuf>,
    /// Paths that could not be walked, with the reason.
    pub errors: Vec<(PathBuf, String)>,
}

/// True when the file name has an image extension.
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
        .unwrap_or(false)
}

/// Walks `root` recursively. A `root` that is itself a file is returned as the only entry.
pub fn walk(root: &Path) -> WalkOutput {
    let mut out = WalkOutput::default();
    match std::fs::metadata(root) {
        Ok(m) if m.is_file() => {
            out.files.push(root.to_path_buf());
            return out;
        }
        Ok(_) => {}
        Err(e) => {
            out.errors.push((root.to_path_buf(), e.to_string()));
            return out;
        }
    }
    let mut seen = HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Some(id) = dir_identity(&dir) {
            if !seen.insert(id) {
                out.errors
                    .push((dir, "folder already visited (symbolic link loop)".into()));
                continue;
            }
        }
        if dir != root && dir.join(OUTPUT_MARKER).exists() {
            continue;
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                out.errors.push((dir, e.to_string()));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    out.errors.push((dir.clone(), e.to_string()));
                    continue;
                }
            };
            let path = entry.path();
            // Follows symbolic links; a dangling one is reported if it looks like an image.
            match std::fs::metadata(&path) {
                Ok(m) if m.is_dir() => {
                    if has_image_extension(&path) {
                        out.errors.push((
                            path.clone(),
                            "is a directory (named like an image); its contents are walked".into(),
                        ));
                    }
                    stack.push(path)
                }
                Ok(_) => {
                    if has_image_extension(&path) {
                        out.files.push(path);
                    }
                }
                Err(e) => {
                    if has_image_extension(&path) {
                        out.errors.push((path, e.to_string()));
                    }
                }
            }
        }
    }
    out.files.sort();
    out.errors.sort();
    out
}

#[cfg(unix)]
fn dir_identity(p: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn dir_identity(p: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(p).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_sorted_case_insensitive_and_skips_outputs() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("b/sub")).unwrap();
        std::fs::create_dir_all(r.join("a")).unwrap();
        std::fs::create_dir_all(r.join("out/deer")).unwrap();
        for f in [
            "b/sub/x.JPG",
            "a/y.jpeg",
            "a/z.TiF",
            "a/notes.txt",
            "b/w.png",
            "out/deer/q.jpg",
        ] {
            std::fs::write(r.join(f), b"").unwrap();
        }
        std::fs::write(r.join("out").join(OUTPUT_MARKER), b"").unwrap();
        let w = walk(r);
        let rel: Vec<String> = w
            .files
            .iter()
            .map(|p| {
                p.strip_prefix(r)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/")
            })
            .collect();
        assert_eq!(rel, ["a/y.jpeg", "a/z.TiF", "b/sub/x.JPG", "b/w.png"]);
        assert!(w.errors.is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_terminate() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("a")).unwrap();
        std::fs::write(r.join("a/x.jpg"), b"").unwrap();
        std::os::unix::fs::symlink(r, r.join("a/loop")).unwrap();
        let w = walk(r);
        assert_eq!(w.files.len(), 1);
        assert_eq!(w.errors.len(), 1);
    }

    /// Scale check, run by hand (not in CI): `DEEPFAUNE_WALK_N=1000000 cargo test --release
    /// --lib walk_scale -- --ignored --nocapture`. Creates N empty files in folders of 1,000 and
    /// times the walk. The walk holds one directory handle at a time (each listing is read to
    /// the end before the next folder is opened), so only the path list grows with N.
    #[test]
    #[ignore]
    fn walk_scale() {
        let n: usize = std::env::var("DEEPFAUNE_WALK_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        let t = tempfile::tempdir().unwrap();
        let start = std::time::Instant::now();
        for i in 0..n {
            let dir = t.path().join(format!("cam{:04}", i / 1000));
            if i % 1000 == 0 {
                std::fs::create_dir(&dir).unwrap();
            }
            std::fs::File::create(dir.join(format!("img{i:07}.jpg"))).unwrap();
        }
        println!("created {n} files in {:.1?}", start.elapsed());
        let start = std::time::Instant::now();
        let w = walk(t.path());
        let took = start.elapsed();
        assert_eq!(w.files.len(), n);
        assert!(w.errors.is_empty());
        let bytes: usize = w.files.iter().map(|p| p.as_os_str().len() + 24).sum();
        println!(
            "walked {n} files in {took:.2?} ({:.2} us/file), path list ~{} MB",
            took.as_secs_f64() * 1e6 / n as f64,
            bytes / 1_000_000
        );
    }

    #[test]
    fn missing_root_is_reported() {
        let w = walk(Path::new("/definitely/not/here"));
        assert!(w.files.is_empty());
        assert_eq!(w.errors.len(), 1);
    }
}
