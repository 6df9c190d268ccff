//! Thumbnails for the review page and the notebooks: the image decoded as the run reads it
//! (EXIF orientation applied), shrunk with Pillow's bilinear filter to fit a square of
//! `max_side`, JPEG-encoded. Boxes are not burnt in: the page and the notebooks draw them over
//! the picture (SVG), so labels stay sharp at any size and a relabel needs no new picture.

use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::RgbImage;

use crate::error::Error;
use crate::fsio::write_atomic;
use crate::image_io::{read_image, DecodeOptions};
use crate::preprocess::{resize_pil, PilFilter, Rect};

/// JPEG quality of the thumbnails.
pub const QUALITY: u8 = 85;

/// Where thumbnails are cached: `$DEEPFAUNE_RS_CACHE` (else `~/.cache/deepfaune-rs`), then
/// `thumbnails/`; never beside the images or the results.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("DEEPFAUNE_RS_CACHE")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"))?;
            Some(PathBuf::from(home).join(".cache").join("deepfaune-rs"))
        })
        .unwrap_or_else(|| PathBuf::from(".cache").join("deepfaune-rs"));
    base.join("thumbnails")
}

/// The thumbnail of `path` fitting `max_side` (never enlarged), as JPEG bytes, with the
/// upright image's width and height.
pub fn thumbnail(path: &Path, max_side: u32) -> Result<(Vec<u8>, u32, u32), Error> {
    let img = read_image(path, &DecodeOptions::default())
        .map_err(|source| Error::Image {
            path: path.to_path_buf(),
            source,
        })?
        .image;
    let (w, h) = img.dimensions();
    let out = thumbnail_of(img, max_side).map_err(|reason| Error::Output {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok((out, w, h))
}

/// The thumbnail of pixels already decoded (a video's keyframe, read by PyAV), as
/// [`thumbnail`] makes it: fits `max_side` (never enlarged), Pillow's bilinear, JPEG.
pub fn thumbnail_of(img: RgbImage, max_side: u32) -> Result<Vec<u8>, String> {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return Err("thumbnail: empty image".into());
    }
    let side = max_side.max(1);
    let scale = (f64::from(side) / f64::from(w.max(h))).min(1.0);
    let (tw, th) = (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    );
    let small = if (tw, th) == (w, h) {
        img
    } else {
        resize_pil(&img, Rect::full(&img), tw, th, PilFilter::Bilinear)
    };
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode_image(&small)
        .map_err(|e| format!("thumbnail: {e}"))?;
    Ok(out)
}

/// [`thumbnail`] through a disk cache in `cache_dir`: one file per image, size, modification
/// time and `max_side` (a changed image gets a new thumbnail). A cache that cannot be written
/// is skipped, never an error.
pub fn thumbnail_cached(path: &Path, max_side: u32, cache_dir: &Path) -> Result<Vec<u8>, Error> {
    let Some(file) = cache_file(path, max_side, cache_dir) else {
        return thumbnail(path, max_side).map(|t| t.0);
    };
    if let Ok(bytes) = std::fs::read(&file) {
        if !bytes.is_empty() {
            return Ok(bytes);
        }
    }
    let (bytes, _, _) = thumbnail(path, max_side)?;
    if let Some(parent) = file.parent() {
        if std::fs::create_dir_all(parent).is_ok() {
            let _ = write_atomic(&file, &bytes);
        }
    }
    Ok(bytes)
}

fn cache_file(path: &Path, max_side: u32, cache_dir: &Path) -> Option<PathBuf> {
    use sha2::{Digest, Sha256};
    let meta = std::fs::metadata(path).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    let abs = std::fs::canonicalize(path).ok()?;
    let mut h = Sha256::new();
    h.update(abs.as_os_str().as_encoded_bytes());
    h.update(format!("|{}|{mtime}|{max_side}|q{QUALITY}", meta.len()).as_bytes());
    let key: String = h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(cache_dir.join(&key[..2]).join(format!("{key}.jpg")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_the_square_keeps_the_aspect_and_caches() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("a.png");
        let img = image::RgbImage::from_fn(400, 100, |x, _| image::Rgb([(x / 2) as u8, 0, 200]));
        img.save(&src).unwrap();
        let (jpeg, w, h) = thumbnail(&src, 200).unwrap();
        assert_eq!((w, h), (400, 100));
        let t = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((t.width(), t.height()), (200, 50));
        let cache = dir.path().join("cache");
        let first = thumbnail_cached(&src, 200, &cache).unwrap();
        assert_eq!(first, jpeg);
        let files: Vec<_> = walk(&cache);
        assert_eq!(files.len(), 1);
        // Served from the cache: the cached bytes come back even if they differ from a fresh one.
        std::fs::write(&files[0], b"cached").unwrap();
        assert_eq!(thumbnail_cached(&src, 200, &cache).unwrap(), b"cached");
        // Never enlarged; a broken file is an error, not a panic.
        assert_eq!(thumbnail(&src, 1000).unwrap().1, 400);
        std::fs::write(dir.path().join("bad.jpg"), b"not a jpeg").unwrap();
        assert!(thumbnail(&dir.path().join("bad.jpg"), 100).is_err());
        // Decoded pixels (a video frame) give the same thumbnail as their file.
        let from_pixels = thumbnail_of(img.clone(), 200).unwrap();
        assert_eq!(from_pixels, jpeg);
        assert!(thumbnail_of(RgbImage::new(0, 0), 10).is_err());
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
