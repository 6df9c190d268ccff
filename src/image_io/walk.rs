//! The folder walk: every image (and video) file under a root, recursively, in sorted order
//! (SPEC 2.1), produced lazily.
//!
//! [`Walker`] reads one folder listing at a time, sorts it by name and goes depth-first, so
//! files come out in the same order as sorting every path (paths compare component by
//! component) without holding the whole tree: a run over 100k files starts at once and the walk
//! holds only the listings of the folders on the current path. Symlinked folders are followed
//! once (a loop is reported, not followed forever); folders that deepfaune-rs itself wrote
//! (they hold an [`OUTPUT_MARKER`] file) are skipped; folders that cannot be read are reported
//! with the reason. Metadata that NAS boxes and operating systems leave beside photos
//! ([`is_metadata_name`]: Synology's `@eaDir` thumbnails, macOS `._*` and `.DS_Store`, Windows
//! `Thumbs.db`, zip's `__MACOSX`) is skipped and reported as [`Found::Metadata`] (counted, never
//! processed nor failed).

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::FileType;
use std::path::{Path, PathBuf};

/// Extensions DeepFaune accepts for images, compared case-insensitively.
pub const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "bmp", "tif", "tiff", "gif"];

/// Extensions DeepFaune accepts for videos, compared case-insensitively.
pub const VIDEO_EXTENSIONS: [&str; 5] = ["avi", "mp4", "mpeg", "mov", "m4v"];

/// Video formats DeepFaune does not read: reported as failures instead of passed over.
pub const UNSUPPORTED_VIDEO_EXTENSIONS: [&str; 8] =
    ["mkv", "webm", "wmv", "flv", "mpg", "3gp", "mts", "m2ts"];

/// A file deepfaune-rs writes into the folders it creates (sorting output), so later walks skip them.
pub const OUTPUT_MARKER: &str = ".deepfaune-rs-output";

/// What kind of media a file name says a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// One of [`IMAGE_EXTENSIONS`].
    Image,
    /// One of [`VIDEO_EXTENSIONS`].
    Video,
    /// One of [`UNSUPPORTED_VIDEO_EXTENSIONS`].
    UnsupportedVideo,
}

/// The media kind of a file name, `None` for other files.
///
/// ```
/// use deepfaune_rs::image_io::walk::{media_kind, MediaKind};
/// use std::path::Path;
/// assert_eq!(media_kind(Path::new("a/IMG_1.JPG")), Some(MediaKind::Image));
/// assert_eq!(media_kind(Path::new("clip.Mp4")), Some(MediaKind::Video));
/// assert_eq!(media_kind(Path::new("clip.mkv")), Some(MediaKind::UnsupportedVideo));
/// assert_eq!(media_kind(Path::new("notes.txt")), None);
/// ```
pub fn media_kind(path: &Path) -> Option<MediaKind> {
    let ext = path.extension()?.to_str()?;
    let is = |list: &[&str]| list.iter().any(|x| x.eq_ignore_ascii_case(ext));
    if is(&IMAGE_EXTENSIONS) {
        Some(MediaKind::Image)
    } else if is(&VIDEO_EXTENSIONS) {
        Some(MediaKind::Video)
    } else if is(&UNSUPPORTED_VIDEO_EXTENSIONS) {
        Some(MediaKind::UnsupportedVideo)
    } else {
        None
    }
}

/// Folders that NAS boxes and archivers fill with copies and thumbnails of the photos.
pub const METADATA_FOLDERS: [&str; 2] = ["@eaDir", "__MACOSX"];
/// Files operating systems leave beside photos.
pub const METADATA_FILES: [&str; 2] = [".DS_Store", "Thumbs.db"];

/// True for a NAS / operating-system metadata entry: a [`METADATA_FOLDERS`] folder, a
/// [`METADATA_FILES`] file or an AppleDouble `._*` file (case-insensitive).
///
/// ```
/// use deepfaune_rs::image_io::walk::is_metadata_name;
/// assert!(is_metadata_name("._IMG_0001.JPG".as_ref()));
/// assert!(is_metadata_name("@eaDir".as_ref()) && is_metadata_name("thumbs.db".as_ref()));
/// assert!(!is_metadata_name("IMG_0001.JPG".as_ref()) && !is_metadata_name(".hidden.jpg".as_ref()));
/// ```
pub fn is_metadata_name(name: &std::ffi::OsStr) -> bool {
    #[cfg(unix)]
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(name);
    #[cfg(not(unix))]
    let lossy = name.to_string_lossy();
    #[cfg(not(unix))]
    let bytes = lossy.as_bytes();
    bytes.starts_with(b"._")
        || METADATA_FOLDERS
            .iter()
            .chain(&METADATA_FILES)
            .any(|m| bytes.eq_ignore_ascii_case(m.as_bytes()))
}

/// True when the file name has an image extension.
pub fn has_image_extension(path: &Path) -> bool {
    media_kind(path) == Some(MediaKind::Image)
}

/// One thing a [`Walker`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// A media file.
    File(PathBuf, MediaKind),
    /// A file that is not one of DeepFaune's media types (`.webp`, `.txt`, no extension...),
    /// with the reason it is skipped: every file the walk meets is reported.
    Unsupported(PathBuf, String),
    /// A path that could not be walked, with the reason.
    Error(PathBuf, String),
    /// NAS or operating-system metadata, skipped ([`is_metadata_name`]; a folder's contents are
    /// not walked).
    Metadata(PathBuf),
}

/// Why a file of no media type is skipped.
///
/// ```
/// use deepfaune_rs::image_io::walk::unsupported_reason;
/// use std::path::Path;
/// assert!(unsupported_reason(Path::new("a/b.webp")).starts_with("unsupported file type .webp"));
/// ```
pub fn unsupported_reason(path: &Path) -> String {
    let what = match path.extension() {
        Some(e) => format!("unsupported file type .{}", e.to_string_lossy()),
        None => "unsupported file type (no extension)".to_string(),
    };
    format!(
        "{what}: DeepFaune reads images ({}) and videos ({}); name the file itself to read it as an image",
        IMAGE_EXTENSIONS.join(", "),
        VIDEO_EXTENSIONS.join(", ")
    )
}

/// A lazy, sorted, depth-first walk of one root (see the module documentation).
///
/// ```
/// # let t = tempfile::tempdir().unwrap();
/// # std::fs::create_dir(t.path().join("b")).unwrap();
/// # for f in ["b/2.jpg", "a.JPG", "b.mp4", "notes.txt"] { std::fs::write(t.path().join(f), b"").unwrap(); }
/// use deepfaune_rs::image_io::walk::{Found, Walker};
/// let names: Vec<String> = Walker::new(t.path())
///     .filter_map(|f| match f {
///         Found::File(p, _) => Some(p.strip_prefix(t.path()).unwrap().display().to_string()),
///         Found::Unsupported(p, _) => Some(format!("skipped {}", p.strip_prefix(t.path()).unwrap().display())),
///         Found::Error(..) | Found::Metadata(_) => None,
///     })
///     .collect();
/// assert_eq!(names, ["a.JPG", "b/2.jpg", "b.mp4", "skipped notes.txt"]);
/// ```
#[derive(Debug)]
pub struct Walker {
    root: PathBuf,
    /// Entries still to visit, per open folder (reversed: the next one is last), with their
    /// type as the listing gave it.
    stack: Vec<Vec<(OsString, Option<FileType>)>>,
    /// The folders of `stack`, outermost first.
    dirs: Vec<PathBuf>,
    seen: HashSet<DirId>,
    /// The root is a file, returned once; or errors/files waiting to be returned.
    queued: Vec<Found>,
    started: bool,
}

impl Walker {
    /// A walk of `root`; a `root` that is a file is returned as the only entry (whatever its
    /// extension: the caller named it).
    pub fn new(root: &Path) -> Walker {
        Walker {
            root: root.to_path_buf(),
            stack: Vec::new(),
            dirs: Vec::new(),
            seen: HashSet::new(),
            queued: Vec::new(),
            started: false,
        }
    }

    fn start(&mut self) {
        self.started = true;
        match std::fs::metadata(&self.root) {
            Ok(m) if m.is_file() => {
                let kind = media_kind(&self.root).unwrap_or(MediaKind::Image);
                self.queued.push(Found::File(self.root.clone(), kind));
            }
            Ok(_) => {
                let root = self.root.clone();
                self.enter(root);
            }
            Err(e) => self
                .queued
                .push(Found::Error(self.root.clone(), e.to_string())),
        }
    }

    /// Opens a folder: reads its whole listing (one handle at a time), sorted by name.
    fn enter(&mut self, dir: PathBuf) {
        if let Some(id) = dir_identity(&dir) {
            if !self.seen.insert(id) {
                self.queued.push(Found::Error(
                    dir,
                    "folder already visited (symbolic link loop)".into(),
                ));
                return;
            }
        }
        if dir != self.root && dir.join(OUTPUT_MARKER).exists() {
            return;
        }
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                self.queued.push(Found::Error(dir, e.to_string()));
                return;
            }
        };
        let mut names = Vec::new();
        let mut errors = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) => names.push((e.file_name(), e.file_type().ok())),
                Err(e) => errors.push(Found::Error(dir.clone(), e.to_string())),
            }
        }
        // Reverse order: `pop` gives the smallest name next.
        names.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        self.queued.extend(errors);
        self.stack.push(names);
        self.dirs.push(dir);
    }
}

impl Iterator for Walker {
    type Item = Found;

    fn next(&mut self) -> Option<Found> {
        if !self.started {
            self.start();
        }
        loop {
            if let Some(f) = self.queued.pop() {
                return Some(f);
            }
            let names = self.stack.last_mut()?;
            let Some((name, file_type)) = names.pop() else {
                self.stack.pop();
                self.dirs.pop();
                continue;
            };
            if is_metadata_name(&name) {
                let path = self.dirs.last().expect("one folder per listing").join(name);
                return Some(Found::Metadata(path));
            }
            let path = self.dirs.last().expect("one folder per listing").join(name);
            let kind = media_kind(&path);
            // The listing's type saves a stat per file; symbolic links are followed (a dangling
            // one is reported if it looks like media).
            let file_type = match file_type {
                Some(t) if !t.is_symlink() => Ok(t),
                _ => std::fs::metadata(&path).map(|m| m.file_type()),
            };
            match file_type {
                Ok(t) if t.is_dir() => {
                    if kind.is_some() {
                        let report = Found::Error(
                            path.clone(),
                            "is a directory (named like an image or video); its contents are walked"
                                .into(),
                        );
                        self.enter(path);
                        return Some(report);
                    }
                    self.enter(path);
                }
                Ok(t) if t.is_file() => {
                    if let Some(kind) = kind {
                        return Some(Found::File(path, kind));
                    }
                    if path.file_name() != Some(std::ffi::OsStr::new(OUTPUT_MARKER)) {
                        let reason = unsupported_reason(&path);
                        return Some(Found::Unsupported(path, reason));
                    }
                }
                Ok(_) => {
                    // A named pipe or a device would block or never end when read.
                    if kind.is_some() {
                        return Some(Found::Error(
                            path,
                            "not a regular file (pipe, socket or device)".into(),
                        ));
                    }
                }
                Err(e) => {
                    if kind.is_some() {
                        return Some(Found::Error(path, e.to_string()));
                    }
                }
            }
        }
    }
}

#[cfg(unix)]
type DirId = (u64, u64);

#[cfg(unix)]
fn dir_identity(p: &Path) -> Option<DirId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
type DirId = PathBuf;

#[cfg(not(unix))]
fn dir_identity(p: &Path) -> Option<DirId> {
    std::fs::canonicalize(p).ok()
}

/// The image files of `inputs` for a sample of someone's photos (`models quantize`'s
/// calibration): a file given is kept whatever its extension, a folder is walked ([`Walker`]:
/// recursive, sorted) for its images; a path that cannot be read gives nothing. With `sample`
/// (`0 < sample < found`), that many spread evenly over that order: `found[int(i * found /
/// sample)]`.
pub fn image_files(inputs: &[PathBuf], sample: Option<usize>) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for input in inputs {
        if input.is_file() {
            found.push(input.clone());
            continue;
        }
        found.extend(Walker::new(input).filter_map(|f| match f {
            Found::File(p, MediaKind::Image) => Some(p),
            _ => None,
        }));
    }
    match sample {
        Some(n) if n > 0 && n < found.len() => {
            let step = found.len() as f64 / n as f64;
            (0..n)
                .map(|i| found[(i as f64 * step) as usize].clone())
                .collect()
        }
        _ => found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a whole walk found (see [`walk`]): the tests' view of a [`Walker`].
    #[derive(Debug, Default, Clone)]
    struct WalkOutput {
        /// Image files, sorted.
        files: Vec<PathBuf>,
        /// Video files (DeepFaune's extensions), sorted.
        videos: Vec<PathBuf>,
        /// Video files in formats DeepFaune does not read, sorted.
        unsupported_videos: Vec<PathBuf>,
        /// Files of no media type, with the reason they are skipped.
        unsupported: Vec<(PathBuf, String)>,
        /// Paths that could not be walked, with the reason.
        errors: Vec<(PathBuf, String)>,
        /// NAS / OS metadata skipped.
        metadata: Vec<PathBuf>,
    }

    /// Walks `root` to the end and collects what [`Walker`] finds. A `root` that is itself a file
    /// is returned as the only entry.
    fn walk(root: &Path) -> WalkOutput {
        let mut out = WalkOutput::default();
        for f in Walker::new(root) {
            match f {
                Found::File(p, MediaKind::Image) => out.files.push(p),
                Found::File(p, MediaKind::Video) => out.videos.push(p),
                Found::File(p, MediaKind::UnsupportedVideo) => out.unsupported_videos.push(p),
                Found::Unsupported(p, why) => out.unsupported.push((p, why)),
                Found::Error(p, e) => out.errors.push((p, e)),
                Found::Metadata(p) => out.metadata.push(p),
            }
        }
        out.errors.sort();
        out
    }

    #[test]
    fn nas_and_os_metadata_is_skipped_and_reported() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for d in ["@eaDir/IMG_1.JPG", "cam/__MACOSX/cam", "cam/@EADIR"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        for f in [
            "IMG_1.JPG",
            "@eaDir/IMG_1.JPG/SYNOFILE_THUMB_XL.jpg",
            "cam/._IMG_2.JPG",
            "cam/IMG_2.JPG",
            "cam/.DS_Store",
            "cam/Thumbs.db",
            "cam/__MACOSX/cam/._IMG_2.JPG",
            "cam/__MACOSX/cam/IMG_2.JPG",
            "cam/.hidden.jpg",
        ] {
            std::fs::write(r.join(f), b"x").unwrap();
        }
        let out = walk(r);
        assert_eq!(
            out.files,
            [
                r.join("IMG_1.JPG"),
                r.join("cam/.hidden.jpg"),
                r.join("cam/IMG_2.JPG")
            ]
        );
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let mut meta = out.metadata;
        meta.sort();
        let want: Vec<PathBuf> = [
            "@eaDir",
            "cam/.DS_Store",
            "cam/@EADIR",
            "cam/Thumbs.db",
            "cam/._IMG_2.JPG",
            "cam/__MACOSX",
        ]
        .iter()
        .map(|p| r.join(p))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
        assert_eq!(meta, want);
    }

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

    /// The lazy walk gives exactly the order of sorting every path (component-wise), also for
    /// names that sort differently as whole strings ("a/z" vs "a.b", "a-b", upper case).
    #[test]
    fn lazy_order_equals_a_full_sort() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let names = ["a", "a.b", "a-b", "A", "a0", "b", "ab", "a_b", "a b"];
        let mut expected = Vec::new();
        let mut state = 12345u64;
        let mut rnd = |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize % n
        };
        for _ in 0..120 {
            let depth = 1 + rnd(3);
            let mut p = r.to_path_buf();
            for _ in 0..depth {
                p.push(names[rnd(names.len())]);
            }
            let dir = p.clone();
            if std::fs::metadata(&dir)
                .map(|m| m.is_file())
                .unwrap_or(false)
            {
                continue;
            }
            std::fs::create_dir_all(&dir).unwrap();
            let file = dir.join(format!("{}.jpg", names[rnd(names.len())]));
            if !file.exists() {
                std::fs::write(&file, b"").unwrap();
                expected.push(file);
            }
        }
        expected.sort();
        let got: Vec<PathBuf> = Walker::new(r)
            .map(|f| match f {
                Found::File(p, MediaKind::Image) => p,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(got, expected);
        assert_eq!(walk(r).files, expected);
    }

    #[test]
    fn videos_and_unsupported_videos_are_found_apart() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir(r.join("cam")).unwrap();
        for f in [
            "cam/1.MP4",
            "cam/2.jpg",
            "cam/3.mkv",
            "cam/4.avi",
            "cam/x.txt",
        ] {
            std::fs::write(r.join(f), b"").unwrap();
        }
        let w = walk(r);
        assert_eq!(w.files, [r.join("cam/2.jpg")]);
        assert_eq!(w.videos, [r.join("cam/1.MP4"), r.join("cam/4.avi")]);
        assert_eq!(w.unsupported_videos, [r.join("cam/3.mkv")]);
    }

    /// Issue 18: every file the walk meets is either media or reported with the reason it is
    /// skipped (a `.webp` included); the walk's own output marker is not.
    #[test]
    fn other_files_are_reported_with_a_reason() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir(r.join("cam")).unwrap();
        for f in [
            "cam/a.webp",
            "cam/b.JPG",
            "cam/notes.txt",
            "cam/README",
            OUTPUT_MARKER,
        ] {
            std::fs::write(r.join(f), b"").unwrap();
        }
        let w = walk(r);
        assert_eq!(w.files, [r.join("cam/b.JPG")]);
        let skipped: Vec<&PathBuf> = w.unsupported.iter().map(|(p, _)| p).collect();
        assert_eq!(
            skipped,
            [
                &r.join("cam/README"),
                &r.join("cam/a.webp"),
                &r.join("cam/notes.txt")
            ]
        );
        assert!(w.unsupported[0].1.contains("no extension"));
        assert!(w.unsupported[1]
            .1
            .starts_with("unsupported file type .webp"));
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
    /// times the first file of a lazy walk and the whole walk. The walk holds one directory
    /// handle at a time (each listing is read to the end before the next folder is opened).
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
        let first = Walker::new(t.path()).next();
        println!("first file after {:.2?}: {first:?}", start.elapsed());
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

    #[cfg(unix)]
    #[test]
    fn named_pipes_are_reported_not_read() {
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("pipe.jpg");
        let status = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !status.map(|s| s.success()).unwrap_or(false) {
            return; // no mkfifo on this system
        }
        let w = walk(t.path());
        assert!(w.files.is_empty());
        assert_eq!(w.errors.len(), 1);
        assert!(
            w.errors[0].1.contains("not a regular file"),
            "{:?}",
            w.errors
        );
    }

    #[test]
    fn missing_root_is_reported() {
        let w = walk(Path::new("/definitely/not/here"));
        assert!(w.files.is_empty());
        assert_eq!(w.errors.len(), 1);
    }
}

#[cfg(test)]
mod image_files_tests {
    use super::*;

    #[test]
    fn a_sample_is_spread_evenly_over_the_walk() {
        let t = tempfile::tempdir().unwrap();
        for f in [
            "a/1.jpg", "a/2.JPG", "b.png", "c.mp4", "d.txt", "e/3.jpeg", "e/4.jpg",
        ] {
            let p = t.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
        let names = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter()
                .map(|p| p.strip_prefix(t.path()).unwrap().display().to_string())
                .collect()
        };
        let root = vec![t.path().to_path_buf()];
        let all = ["a/1.jpg", "a/2.JPG", "b.png", "e/3.jpeg", "e/4.jpg"];
        assert_eq!(names(image_files(&root, None)), all);
        assert_eq!(names(image_files(&root, Some(0))), all);
        assert_eq!(names(image_files(&root, Some(9))), all);
        // 5 files, 2 wanted: step 2.5, rows int(0) = 0 and int(2.5) = 2.
        assert_eq!(names(image_files(&root, Some(2))), ["a/1.jpg", "b.png"]);
        // 3 wanted: step 5 / 3, rows 0, int(1.67) = 1, int(3.33) = 3.
        assert_eq!(
            names(image_files(&root, Some(3))),
            ["a/1.jpg", "a/2.JPG", "e/3.jpeg"]
        );
        // A file given is kept whatever it is; a missing path gives nothing.
        let given = vec![t.path().join("d.txt"), t.path().join("missing")];
        assert_eq!(names(image_files(&given, None)), ["d.txt"]);
    }
}
