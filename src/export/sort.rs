//! Sorting the files into one folder per prediction (SPEC 2.6), like DeepFaune's "copy to
//! subfolders": `<dest>/deepfaune_<dd-mm-YYYY_HH-MM-SS>/<prediction>/<file name>`.
//!
//! Safer than DeepFaune on every point where it can lose or overwrite data:
//! - a destination name is reserved atomically (created with `create_new`) before anything is
//!   written, so two files called `IMG_0001.JPG` from two cameras become `IMG_0001.JPG` and
//!   `IMG_0001_2.JPG` and nothing is ever overwritten (DeepFaune inserts `_2` four characters from
//!   the end, which misplaces it for `.jpeg` / `.tiff`; here it goes before the real extension);
//! - copies are written to a temporary name, flushed to disk, then renamed over the reservation;
//! - a move is a rename on the same file system, else copy + fsync + size check, and the source is
//!   deleted only after that; a source that is a symbolic link is placed as a link to the same
//!   file (a relative link would otherwise dangle in its new folder), then removed;
//! - temporary files have random names and are created exclusively (never through a planted
//!   link: [`crate::fsio::create_temp`]);
//! - [`sort_into_folders_with`] checks between files whether to stop (Ctrl-C);
//! - the created root holds the [`OUTPUT_MARKER`] file so later walks skip it;
//! - a file that fails is reported with its reason and the others go on.
//!
//! With `blur_humans`, copies of images that have person boxes are decoded, the boxes blurred
//! (DeepFaune: `cv2.blur` with a 151x151 box kernel inside each box) and re-encoded (JPEG quality
//! 95, or the format of the file's extension). Images without person boxes are copied byte for
//! byte (DeepFaune re-encodes them too).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::error::Error;
use crate::image_io::walk::OUTPUT_MARKER;
use crate::image_io::{read_image, DecodeOptions};

/// How files reach their class folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortMode {
    /// Copy (DeepFaune's only mode in 1.4).
    Copy,
    /// Move: the source disappears once the destination is safely written.
    Move,
    /// A symbolic link to the absolute source path.
    Symlink,
}

/// Sorting settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortOptions {
    /// Copy, move or link.
    pub mode: SortMode,
    /// Blur person boxes in copies (copy mode only).
    pub blur_humans: bool,
    /// The `<timestamp>` of `deepfaune_<timestamp>`. `None`: the current UTC time as
    /// `dd-mm-YYYY_HH-MM-SS`. DeepFaune uses local time: the Python layer should pass
    /// `datetime.now().strftime("%d-%m-%Y_%H-%M-%S")`.
    pub timestamp: Option<String>,
}

impl Default for SortOptions {
    fn default() -> Self {
        SortOptions {
            mode: SortMode::Copy,
            blur_humans: false,
            timestamp: None,
        }
    }
}

/// One file to sort.
#[derive(Debug, Clone, PartialEq)]
pub struct SortItem<'a> {
    /// The file.
    pub source: &'a Path,
    /// Its class folder name: the prediction as printed (`chevreuil`, `indéfini`). DeepFaune sorts
    /// by the sequence-level `prediction`, not the per-image one.
    pub class: &'a str,
    /// Person boxes `[x1, y1, x2, y2]` in the upright image's pixels (for `blur_humans`).
    pub person_boxes: &'a [[f32; 4]],
}

/// A file that could not be sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortFailure {
    /// The source file.
    pub source: PathBuf,
    /// Why.
    pub reason: String,
}

/// What a sort did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortReport {
    /// The created `deepfaune_<timestamp>` folder.
    pub root: PathBuf,
    /// `(source, destination)` of every file placed, in input order.
    pub placed: Vec<(PathBuf, PathBuf)>,
    /// Files that were not placed (their sources are untouched).
    pub failures: Vec<SortFailure>,
}

/// Sorts `items` into `<dest>/deepfaune_<timestamp>/<class>/`. Fails as a whole only when the
/// root folder cannot be created; per-file problems go to [`SortReport::failures`].
///
/// ```
/// use deepfaune_rs::export::sort::{sort_into_folders, SortItem, SortOptions};
/// let src = tempfile::tempdir().unwrap();
/// let dest = tempfile::tempdir().unwrap();
/// for cam in ["cam1", "cam2"] {
///     std::fs::create_dir(src.path().join(cam)).unwrap();
///     std::fs::write(src.path().join(cam).join("IMG_1.JPG"), cam).unwrap();
/// }
/// let (a, b) = (src.path().join("cam1/IMG_1.JPG"), src.path().join("cam2/IMG_1.JPG"));
/// let items = [
///     SortItem { source: &a, class: "renard", person_boxes: &[] },
///     SortItem { source: &b, class: "renard", person_boxes: &[] },
/// ];
/// let opts = SortOptions { timestamp: Some("01-02-2025_10-00-00".into()), ..Default::default() };
/// let report = sort_into_folders(dest.path(), &items, &opts).unwrap();
/// assert_eq!(report.root, dest.path().join("deepfaune_01-02-2025_10-00-00"));
/// assert_eq!(report.placed[1].1, report.root.join("renard").join("IMG_1_2.JPG"));
/// assert!(report.failures.is_empty());
/// ```
pub fn sort_into_folders(
    dest: &Path,
    items: &[SortItem<'_>],
    opts: &SortOptions,
) -> Result<SortReport, Error> {
    sort_into_folders_with(dest, items, opts, &mut || Ok(()))
}

/// [`sort_into_folders`], calling `check` before each file: an error from it (Ctrl-C) stops the
/// sort there and is returned (the files already placed stay placed, each one whole).
pub fn sort_into_folders_with(
    dest: &Path,
    items: &[SortItem<'_>],
    opts: &SortOptions,
    check: &mut dyn FnMut() -> Result<(), Error>,
) -> Result<SortReport, Error> {
    let stamp = opts.timestamp.clone().unwrap_or_else(utc_stamp);
    let root = create_root(dest, &format!("deepfaune_{stamp}"))?;
    let mut report = SortReport {
        root: root.clone(),
        ..Default::default()
    };
    for item in items {
        check()?;
        match place(&root, item, opts) {
            Ok(to) => report.placed.push((item.source.to_path_buf(), to)),
            Err(e) => report.failures.push(SortFailure {
                source: item.source.to_path_buf(),
                reason: e.to_string(),
            }),
        }
    }
    Ok(report)
}

/// Creates `dest/name` (or `name_2`, `name_3`, ... if it exists) with the output marker inside.
fn create_root(dest: &Path, name: &str) -> Result<PathBuf, Error> {
    let err = |p: &Path, e: io::Error| Error::Output {
        path: p.to_path_buf(),
        reason: e.to_string(),
    };
    fs::create_dir_all(dest).map_err(|e| err(dest, e))?;
    for i in 1u32.. {
        let root = if i == 1 {
            dest.join(name)
        } else {
            dest.join(format!("{name}_{i}"))
        };
        match fs::create_dir(&root) {
            Ok(()) => {
                File::create(root.join(OUTPUT_MARKER)).map_err(|e| err(&root, e))?;
                return Ok(root);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && i < 10_000 => continue,
            Err(e) => return Err(err(&root, e)),
        }
    }
    unreachable!("the loop returns")
}

fn place(root: &Path, item: &SortItem<'_>, opts: &SortOptions) -> io::Result<PathBuf> {
    let meta = fs::metadata(item.source)?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let file_name = item
        .source
        .file_name()
        .ok_or_else(|| io::Error::other("no file name"))?;
    let folder = root.join(folder_name(item.class));
    fs::create_dir_all(&folder)?;
    if opts.mode == SortMode::Move && fs::symlink_metadata(item.source)?.is_symlink() {
        // Renaming a relative link would leave it pointing from the wrong folder: link to the
        // file itself, then remove the source link.
        let target = fs::canonicalize(item.source)?;
        let dest = claim_name(&folder, Path::new(file_name), |candidate| {
            symlink(&target, candidate)
        })?;
        if let Err(e) = fs::remove_file(item.source) {
            let _ = fs::remove_file(&dest);
            return Err(e);
        }
        return Ok(dest);
    }
    if opts.mode == SortMode::Symlink {
        let target = fs::canonicalize(item.source)?;
        return claim_name(&folder, Path::new(file_name), |candidate| {
            symlink(&target, candidate)
        });
    }
    let dest = claim_name(&folder, Path::new(file_name), |candidate| {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(candidate)
            .map(drop)
    })?;
    let result = match opts.mode {
        SortMode::Copy if opts.blur_humans && !item.person_boxes.is_empty() => {
            write_blurred(item.source, &dest, item.person_boxes)
        }
        SortMode::Copy => copy_durably(item.source, &dest, meta.len()),
        SortMode::Move => fs::rename(item.source, &dest).or_else(|_| {
            // Another file system (or any rename failure): copy, check, and only then delete.
            copy_durably(item.source, &dest, meta.len())?;
            fs::remove_file(item.source)
        }),
        SortMode::Symlink => unreachable!("handled above"),
    };
    if let Err(e) = result {
        // Give the reserved name back, unless the source itself ended up there.
        if item.source.exists() {
            let _ = fs::remove_file(&dest);
        }
        return Err(e);
    }
    Ok(dest)
}

/// A class name as a single safe folder name.
fn folder_name(class: &str) -> String {
    let cleaned: String = class
        .chars()
        .map(|c| {
            if matches!(c, '/' | '\\' | '\0') {
                '_'
            } else {
                c
            }
        })
        .collect();
    match cleaned.trim() {
        "" | "." | ".." => "_".to_string(),
        s => s.to_string(),
    }
}

/// Tries `name`, then `stem_2.ext`, `stem_3.ext`, ... in `folder` with `create` (which must fail
/// with `AlreadyExists` when the name is taken); returns the name it got.
fn claim_name(
    folder: &Path,
    name: &Path,
    create: impl Fn(&Path) -> io::Result<()>,
) -> io::Result<PathBuf> {
    let stem = name
        .file_stem()
        .unwrap_or(name.as_os_str())
        .to_string_lossy()
        .into_owned();
    let ext = name
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()));
    for i in 1u32..=100_000 {
        let candidate = if i == 1 {
            folder.join(name)
        } else {
            folder.join(format!("{stem}_{i}{}", ext.as_deref().unwrap_or("")))
        };
        match create(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("no free name"))
}

/// Copies `from` over the reserved `to` through a temporary file, flushed, size-checked, renamed.
fn copy_durably(from: &Path, to: &Path, expected_len: u64) -> io::Result<()> {
    let (mut out, tmp) = temp_beside(to)?;
    let result = (|| {
        let written = io::copy(&mut File::open(from)?, &mut out)?;
        let f = File::open(&tmp)?;
        f.sync_all()?;
        if written != expected_len || f.metadata()?.len() != expected_len {
            return Err(io::Error::other(format!(
                "copy has {written} bytes, source has {expected_len}"
            )));
        }
        fs::rename(&tmp, to)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A new temporary file beside `path`: random name, created exclusively.
fn temp_beside(path: &Path) -> io::Result<(File, PathBuf)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::fsio::create_temp(dir, &name, crate::fsio::random_token)
}

/// Decodes `from` (upright), blurs the boxes, encodes to `to` (format from its extension; JPEG at
/// quality 95).
fn write_blurred(from: &Path, to: &Path, boxes: &[[f32; 4]]) -> io::Result<()> {
    let decoded =
        read_image(from, &DecodeOptions::default()).map_err(|e| io::Error::other(e.to_string()))?;
    let mut img = decoded.image;
    for b in boxes {
        blur_box(&mut img, *b, BLUR_KERNEL);
    }
    let format = image::ImageFormat::from_path(to).unwrap_or(image::ImageFormat::Jpeg);
    let (file, tmp) = temp_beside(to)?;
    let result = (|| {
        let mut out = io::BufWriter::new(file);
        let encoded = if format == image::ImageFormat::Jpeg {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
                .encode_image(&img)
        } else {
            img.write_to(&mut out, format)
        };
        encoded.map_err(|e| io::Error::other(format!("cannot encode the blurred copy: {e}")))?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, to)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// DeepFaune's blur kernel side (`cv2.blur(ROI, (151, 151))`).
pub const BLUR_KERNEL: usize = 151;
/// Quality of re-encoded JPEG copies (OpenCV's `imwrite` default, which DeepFaune uses).
pub const JPEG_QUALITY: u8 = 95;

/// Box-blurs the pixels inside `[x1, y1, x2, y2]` (truncated to integers and clipped to the
/// image) with a `kernel` x `kernel` mean filter that only sees the box itself (mirrored at its
/// edges, OpenCV's default `BORDER_REFLECT_101`), as DeepFaune's `cv2.blur` on the box's ROI.
pub fn blur_box(img: &mut RgbImage, bbox: [f32; 4], kernel: usize) {
    let clip = |v: f32, max: u32| {
        if v.is_nan() {
            0
        } else {
            (v.max(0.0) as u32).min(max)
        }
    };
    let (w, h) = img.dimensions();
    let (x1, y1, x2, y2) = (
        clip(bbox[0], w),
        clip(bbox[1], h),
        clip(bbox[2], w),
        clip(bbox[3], h),
    );
    if x2 <= x1 || y2 <= y1 || kernel <= 1 {
        return;
    }
    let (bw, bh) = ((x2 - x1) as usize, (y2 - y1) as usize);
    let mut roi: Vec<[u32; 3]> = Vec::with_capacity(bw * bh);
    for y in y1..y2 {
        for x in x1..x2 {
            let p = img.get_pixel(x, y).0;
            roi.push([p[0] as u32, p[1] as u32, p[2] as u32]);
        }
    }
    let rows = box_sums(&roi, bw, bh, kernel, true);
    let sums = box_sums(&rows, bw, bh, kernel, false);
    let area = (kernel * kernel) as f64;
    for (k, s) in sums.iter().enumerate() {
        let (x, y) = ((k % bw) as u32 + x1, (k / bw) as u32 + y1);
        let px = s.map(|v| (v as f64 / area).round_ties_even().min(255.0) as u8);
        img.put_pixel(x, y, image::Rgb(px));
    }
}

/// Sums over a window of `kernel` along rows (`horizontal`) or columns, mirrored at the edges;
/// a sliding window, so the cost does not grow with the kernel.
fn box_sums(
    data: &[[u32; 3]],
    w: usize,
    h: usize,
    kernel: usize,
    horizontal: bool,
) -> Vec<[u32; 3]> {
    let (len, lines) = if horizontal { (w, h) } else { (h, w) };
    let at = |line: usize, i: usize| {
        if horizontal {
            line * w + i
        } else {
            i * w + line
        }
    };
    let half = (kernel / 2) as i64;
    let mut out = vec![[0u32; 3]; data.len()];
    for line in 0..lines {
        let value = |i: i64| data[at(line, reflect_101(i, len))];
        let mut acc = [0u32; 3];
        for d in -half..=half {
            let v = value(d);
            (0..3).for_each(|c| acc[c] += v[c]);
        }
        for i in 0..len as i64 {
            out[at(line, i as usize)] = acc;
            let (add, sub) = (value(i + half + 1), value(i - half));
            (0..3).for_each(|c| acc[c] = acc[c] + add[c] - sub[c]);
        }
    }
    out
}

/// OpenCV's BORDER_REFLECT_101 index (`gfedcb|abcdefgh|gfedcba`), for any offset.
fn reflect_101(i: i64, len: usize) -> usize {
    if len == 1 {
        return 0;
    }
    let period = 2 * (len as i64 - 1);
    let m = i.rem_euclid(period);
    (if m < len as i64 { m } else { period - m }) as usize
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::windows::fs::symlink_file(target, link)
}

/// The current UTC time as `dd-mm-YYYY_HH-MM-SS`.
fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    stamp_from_unix(secs as i64)
}

/// `dd-mm-YYYY_HH-MM-SS` of a Unix time (UTC).
fn stamp_from_unix(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = crate::image_io::exif::civil_from_days(days);
    format!(
        "{d:02}-{m:02}-{y:04}_{:02}-{:02}-{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
