//! Image facts without decoding pixels: size (after EXIF orientation) and EXIF.
//!
//! Used where boxes come from elsewhere (a MegaDetector file) and only the image size is needed to
//! turn normalised boxes into pixels; reading a header costs a few kilobytes of I/O instead of a
//! full decode.

use std::io::{BufReader, Cursor, Read};
use std::path::Path;

use super::exif::{read_exif, ExifInfo};
use crate::error::ImageError;

/// EXIF lives in the first 64 KiB segment of a JPEG, PNG keeps eXIf before the pixel data in
/// practice; a prefix this long holds it even after large ICC or XMP segments.
const EXIF_PREFIX: u64 = 512 * 1024;

/// The largest TIFF read whole for its EXIF (a TIFF may keep it anywhere). Bigger ones (or a
/// sparse file claiming terabytes) give the EXIF found in the first [`EXIF_PREFIX`] bytes: a
/// header read never holds more than this in memory.
pub const TIFF_WHOLE_READ_CAP: u64 = 64 * 1024 * 1024;

/// What a header tells without decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageHeader {
    /// Width after EXIF orientation (what [`super::read_image`] would return).
    pub width: u32,
    /// Height after EXIF orientation.
    pub height: u32,
    /// Date and orientation from EXIF.
    pub exif: ExifInfo,
}

/// Reads the size and EXIF of an image file without decoding its pixels.
///
/// TIFF files may keep their EXIF anywhere: those larger than 512 KiB are read whole, up to
/// [`TIFF_WHOLE_READ_CAP`]. Memory stays bounded whatever size the file claims; pipes and
/// devices are refused unread (they could block).
pub fn read_header(path: &Path) -> Result<ImageHeader, ImageError> {
    let io = |e: std::io::Error| ImageError::Io(e.to_string());
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(ImageError::Io("is a directory".into()));
    }
    if !meta.is_file() {
        return Err(ImageError::Io(
            "not a regular file (pipe, socket or device)".into(),
        ));
    }
    if meta.len() == 0 {
        return Err(ImageError::Empty);
    }
    let mut prefix = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(EXIF_PREFIX)
        .read_to_end(&mut prefix)
        .map_err(io)?;
    let format = image::guess_format(&prefix)
        .map_err(|_| ImageError::Format("unrecognised file signature".into()))?;
    let whole_needed = format == image::ImageFormat::Tiff
        && meta.len() > EXIF_PREFIX
        && meta.len() <= TIFF_WHOLE_READ_CAP;
    let (dims, exif) = if whole_needed {
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .map_err(io)?
            .take(TIFF_WHOLE_READ_CAP)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        (
            dimensions(Cursor::new(&bytes[..]), format),
            read_exif(&bytes),
        )
    } else if (prefix.len() as u64) < EXIF_PREFIX {
        (
            dimensions(Cursor::new(&prefix[..]), format),
            read_exif(&prefix),
        )
    } else {
        let file = BufReader::new(std::fs::File::open(path).map_err(io)?);
        (dimensions(file, format), read_exif(&prefix))
    };
    let (w, h) = dims?;
    if w == 0 || h == 0 {
        return Err(ImageError::Corrupt(format!("header gives a {w}x{h} image")));
    }
    let (width, height) = if exif.orientation >= 5 {
        (h, w)
    } else {
        (w, h)
    };
    Ok(ImageHeader {
        width,
        height,
        exif,
    })
}

fn dimensions<R: std::io::BufRead + std::io::Seek>(
    reader: R,
    format: image::ImageFormat,
) -> Result<(u32, u32), ImageError> {
    image::ImageReader::with_format(reader, format)
        .into_dimensions()
        .map_err(|e| match e {
            image::ImageError::Unsupported(u) => ImageError::Format(u.to_string()),
            other => ImageError::Corrupt(other.to_string()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    fn jpeg_with_orientation(w: u32, h: u32, orientation: u16) -> Vec<u8> {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
            .encode_image(&RgbImage::new(w, h))
            .unwrap();
        // A minimal big-endian TIFF IFD with one Orientation entry, in an APP1 "Exif" segment
        // right after SOI (the byte layout of the EXIF standard, written by hand).
        let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
        tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
        tiff.extend_from_slice(&274u16.to_be_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_be_bytes()); // count
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0, 0]);
        tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn size_follows_orientation_like_decoding() {
        let t = tempfile::tempdir().unwrap();
        for o in [1u16, 3, 6, 8] {
            let p = t.path().join(format!("o{o}.jpg"));
            let bytes = jpeg_with_orientation(40, 24, o);
            std::fs::write(&p, &bytes).unwrap();
            let h = read_header(&p).unwrap();
            assert_eq!(h.exif.orientation, o);
            let expected = if o >= 5 { (24, 40) } else { (40, 24) };
            assert_eq!((h.width, h.height), expected, "orientation {o}");
            let full = super::super::read_image(&p, &Default::default()).unwrap();
            assert_eq!(full.image.dimensions(), expected);
        }
    }

    #[test]
    fn broken_files_are_errors() {
        let t = tempfile::tempdir().unwrap();
        let empty = t.path().join("e.jpg");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(read_header(&empty).unwrap_err(), ImageError::Empty);
        let text = t.path().join("t.jpg");
        std::fs::write(&text, b"no image here").unwrap();
        assert!(matches!(
            read_header(&text).unwrap_err(),
            ImageError::Format(_)
        ));
        assert!(matches!(
            read_header(&t.path().join("missing.jpg")).unwrap_err(),
            ImageError::Io(_)
        ));
        assert!(matches!(
            read_header(t.path()).unwrap_err(),
            ImageError::Io(_)
        ));
    }
}
