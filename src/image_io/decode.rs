//! Decoding: file bytes to an RGB image with EXIF orientation applied.
//!
//! JPEG goes through libjpeg (the `mozjpeg` crate, default settings: ISLOW DCT, fancy upsampling),
//! which decodes bit-identically to Pillow and OpenCV (both libjpeg-turbo); other formats go
//! through the `image` crate. Every failure is an [`ImageError`] value, never a panic: libjpeg's
//! fatal errors unwind and are caught here.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, RgbImage};

use super::exif::{read_exif, ExifInfo};
use crate::error::ImageError;

/// Limits applied while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Images whose header claims more pixels are refused before any pixel is decoded
    /// (decompression bombs). Default: 178,956,970, Pillow's own error limit
    /// (`2 * Image.MAX_IMAGE_PIXELS`).
    pub max_pixels: u64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            max_pixels: 2 * 89_478_485,
        }
    }
}

/// A decoded image and its EXIF facts.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    /// RGB pixels, upright (EXIF orientation applied; as stored for [`read_image_as_stored`]).
    pub image: RgbImage,
    /// Date and orientation from EXIF.
    pub exif: ExifInfo,
}

/// Reads and decodes one file.
pub fn read_image(path: &Path, opts: &DecodeOptions) -> Result<DecodedImage, ImageError> {
    decode_oriented(&read_file(path, opts)?, opts, true)
}

/// Reads and decodes one file **without** applying its EXIF orientation: the pixels as stored,
/// as OpenCV's `cv2.imdecode(..., IMREAD_UNCHANGED)` gives them (DeepFaune's JSON path crops
/// from such an image). `exif.orientation` still tells the orientation the file asks for.
pub fn read_image_as_stored(path: &Path, opts: &DecodeOptions) -> Result<DecodedImage, ImageError> {
    decode_oriented(&read_file(path, opts)?, opts, false)
}

fn read_file(path: &Path, opts: &DecodeOptions) -> Result<Vec<u8>, ImageError> {
    let meta = std::fs::metadata(path).map_err(|e| ImageError::Io(e.to_string()))?;
    if meta.is_dir() {
        return Err(ImageError::Io("is a directory".into()));
    }
    if !meta.is_file() {
        // A named pipe or a device would block or never end.
        return Err(ImageError::Io(
            "not a regular file (pipe, socket or device)".into(),
        ));
    }
    let limit = opts.max_pixels.saturating_mul(8).saturating_add(1 << 20);
    if meta.len() > limit {
        return Err(ImageError::FileTooLarge {
            bytes: meta.len(),
            limit,
        });
    }
    std::fs::read(path).map_err(|e| ImageError::Io(e.to_string()))
}

/// Decodes an image held in memory.
pub fn decode_bytes(bytes: &[u8], opts: &DecodeOptions) -> Result<DecodedImage, ImageError> {
    decode_oriented(bytes, opts, true)
}

fn decode_oriented(
    bytes: &[u8],
    opts: &DecodeOptions,
    orient: bool,
) -> Result<DecodedImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let format = image::guess_format(bytes)
        .map_err(|_| ImageError::Format("unrecognised file signature".into()))?;
    let exif = read_exif(bytes);
    let rgb = match format {
        ImageFormat::Jpeg => match decode_jpeg(bytes, opts)? {
            Some(img) => img,
            None => decode_generic(bytes, format, opts)?,
        },
        _ => decode_generic(bytes, format, opts)?,
    };
    let image = if orient {
        apply_orientation(rgb, exif.orientation)
    } else {
        rgb
    };
    Ok(DecodedImage { image, exif })
}

fn check_size(width: u64, height: u64, opts: &DecodeOptions) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::Corrupt(format!(
            "header gives a {width}x{height} image"
        )));
    }
    if width.saturating_mul(height) > opts.max_pixels {
        return Err(ImageError::TooLarge {
            width,
            height,
            limit: opts.max_pixels,
        });
    }
    Ok(())
}

/// libjpeg decode. CMYK and YCCK JPEGs are read as CMYK by libjpeg and converted as Pillow does
/// (see [`cmyk_to_rgb_like_pillow`]); `Ok(None)` is kept for colour spaces neither handles.
fn decode_jpeg(bytes: &[u8], opts: &DecodeOptions) -> Result<Option<RgbImage>, ImageError> {
    if jpeg_is_truncated(bytes) {
        return Err(ImageError::Corrupt(
            "truncated JPEG (no end-of-image marker after the scan data)".into(),
        ));
    }
    let result = std::panic::catch_unwind(|| -> Result<Option<RgbImage>, ImageError> {
        let d =
            mozjpeg::Decompress::new_mem(bytes).map_err(|e| ImageError::Corrupt(e.to_string()))?;
        check_size(d.width() as u64, d.height() as u64, opts)?;
        let cmyk = matches!(
            d.color_space(),
            mozjpeg::ColorSpace::JCS_CMYK | mozjpeg::ColorSpace::JCS_YCCK
        );
        if cmyk {
            let mut started = d
                .to_colorspace(mozjpeg::ColorSpace::JCS_CMYK)
                .map_err(|e| ImageError::Corrupt(e.to_string()))?;
            let (w, h) = (started.width() as u32, started.height() as u32);
            let px: Vec<[u8; 4]> = started
                .read_scanlines()
                .map_err(|e| ImageError::Corrupt(e.to_string()))?;
            if px.len() != w as usize * h as usize {
                return Err(ImageError::Corrupt("incomplete scan data".into()));
            }
            let _ = started.finish();
            let rgb: Vec<u8> = px
                .iter()
                .flat_map(|p| cmyk_to_rgb_like_pillow(*p))
                .collect();
            return Ok(RgbImage::from_raw(w, h, rgb));
        }
        let mut started = d.rgb().map_err(|e| ImageError::Corrupt(e.to_string()))?;
        let (w, h) = (started.width() as u32, started.height() as u32);
        let pixels: Vec<u8> = started
            .read_scanlines()
            .map_err(|e| ImageError::Corrupt(e.to_string()))?;
        if pixels.len() != w as usize * h as usize * 3 {
            return Err(ImageError::Corrupt("incomplete scan data".into()));
        }
        // Trailing-marker problems after a complete image are not worth losing the image for.
        let _ = started.finish();
        Ok(RgbImage::from_raw(w, h, pixels))
    });
    match result {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "libjpeg error".into());
            Err(ImageError::Corrupt(
                msg.trim_start_matches("libjpeg fatal error: ").to_string(),
            ))
        }
    }
}

/// One pixel of libjpeg's CMYK output to RGB, as Pillow does it: Pillow reads every CMYK JPEG
/// as Adobe-inverted (`CMYK;I`), then `convert("RGB")` computes
/// `(255 - k) - (c * (255 - k)) / 255` with its rounding `MULDIV255`.
///
/// ```
/// // Inverted storage: 255 means "no ink". No ink at all is white; full black ink is black.
/// # use deepfaune_rs::image_io::decode::cmyk_to_rgb_like_pillow;
/// assert_eq!(cmyk_to_rgb_like_pillow([255, 255, 255, 255]), [255, 255, 255]);
/// assert_eq!(cmyk_to_rgb_like_pillow([255, 255, 255, 0]), [0, 0, 0]);
/// ```
pub fn cmyk_to_rgb_like_pillow(stored: [u8; 4]) -> [u8; 3] {
    let [c, m, y, k] = stored.map(|v| 255 - v as i32);
    let nk = 255 - k;
    let muldiv255 = |a: i32, b: i32| {
        let t = a * b + 128;
        ((t >> 8) + t) >> 8
    };
    [c, m, y].map(|v| (nk - muldiv255(v, nk)).clamp(0, 255) as u8)
}

/// True when no end-of-image marker follows the first start-of-scan: libjpeg would pad the
/// missing data with grey silently, where Pillow refuses the file ("image file is truncated").
fn jpeg_is_truncated(bytes: &[u8]) -> bool {
    let mut i = 2; // after SOI
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return false; // not a marker sequence we understand: let libjpeg judge
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if marker == 0xD8 || (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            i += 2;
            continue;
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        if marker == 0xDA {
            let scan = i + 2 + len;
            return scan >= bytes.len() || !bytes[scan..].windows(2).any(|w| w == [0xFF, 0xD9]);
        }
        i += 2 + len;
    }
    true
}

fn decode_generic(
    bytes: &[u8],
    format: ImageFormat,
    opts: &DecodeOptions,
) -> Result<RgbImage, ImageError> {
    if let Some((w, h)) = bmp_dimensions(bytes).filter(|_| format == ImageFormat::Bmp) {
        // The BMP decoder refuses sides above 65,535 as a format error: judge the size first.
        check_size(w, h, opts)?;
    }
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    let max_side = u32::try_from(opts.max_pixels).unwrap_or(u32::MAX);
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    limits.max_alloc = Some(opts.max_pixels.saturating_mul(8));
    reader.limits(limits);
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| classify_image_error(e, opts))?;
    check_size(w as u64, h as u64, opts)?;
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(opts.max_pixels.saturating_mul(8));
    reader.limits(limits);
    let img: DynamicImage = reader.decode().map_err(|e| classify_image_error(e, opts))?;
    Ok(to_rgb8_like_pillow(img))
}

/// 8-bit RGB as Pillow and OpenCV give it: 16-bit samples keep their high byte (`v >> 8`), where
/// the `image` crate would round `v * 255 / 65535` (one level off for some values). Alpha is
/// dropped. Pillow itself clips 16-bit grayscale (`I;16` to `RGB`) to 255: OpenCV's high byte is
/// the only sensible reading there, and the one kept.
fn to_rgb8_like_pillow(img: DynamicImage) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let high = |v: u16| (v >> 8) as u8;
    let from = |data: Vec<u8>| RgbImage::from_raw(w, h, data).expect("sizes agree");
    match img {
        DynamicImage::ImageRgb16(b) => from(b.into_raw().into_iter().map(high).collect()),
        DynamicImage::ImageRgba16(b) => from(
            b.into_raw()
                .chunks_exact(4)
                .flat_map(|p| [high(p[0]), high(p[1]), high(p[2])])
                .collect(),
        ),
        DynamicImage::ImageLuma16(b) => from(
            b.into_raw()
                .into_iter()
                .flat_map(|v| [high(v); 3])
                .collect(),
        ),
        DynamicImage::ImageLumaA16(b) => from(
            b.into_raw()
                .chunks_exact(2)
                .flat_map(|p| [high(p[0]); 3])
                .collect(),
        ),
        other => other.to_rgb8(),
    }
}

/// Width and height from a BMP header (BITMAPCOREHEADER or any later info header); a negative
/// height means top-down rows.
fn bmp_dimensions(bytes: &[u8]) -> Option<(u64, u64)> {
    let u32_at = |i: usize| Some(u32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?));
    let u16_at = |i: usize| Some(u16::from_le_bytes(bytes.get(i..i + 2)?.try_into().ok()?));
    if u32_at(14)? == 12 {
        Some((u16_at(18)? as u64, u16_at(20)? as u64))
    } else {
        let w = u32_at(18)? as i32;
        let h = u32_at(22)? as i32;
        Some((w.unsigned_abs() as u64, h.unsigned_abs() as u64))
    }
}

fn classify_image_error(e: image::ImageError, opts: &DecodeOptions) -> ImageError {
    match e {
        image::ImageError::Limits(l) => ImageError::TooLarge {
            width: 0,
            height: 0,
            limit: opts.max_pixels,
        }
        .with_reason(l.to_string()),
        image::ImageError::Unsupported(u) => ImageError::Format(u.to_string()),
        image::ImageError::IoError(io) => ImageError::Corrupt(io.to_string()),
        other => ImageError::Corrupt(other.to_string()),
    }
}

impl ImageError {
    fn with_reason(self, reason: String) -> ImageError {
        match self {
            ImageError::TooLarge { .. } => {
                ImageError::Corrupt(format!("refused by decoder limits: {reason}"))
            }
            other => other,
        }
    }
}

/// Applies an EXIF orientation (1..=8) so the image is upright, as `ImageOps.exif_transpose` does.
pub fn apply_orientation(img: RgbImage, orientation: u16) -> RgbImage {
    use image::imageops;
    match orientation {
        2 => imageops::flip_horizontal(&img),
        3 => imageops::rotate180(&img),
        4 => imageops::flip_vertical(&img),
        5 => imageops::flip_horizontal(&imageops::rotate90(&img)),
        6 => imageops::rotate90(&img),
        7 => imageops::flip_horizontal(&imageops::rotate270(&img)),
        8 => imageops::rotate270(&img),
        _ => img,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_jpeg() -> Vec<u8> {
        let img = RgbImage::from_fn(16, 8, |x, y| {
            image::Rgb([(x * 16) as u8, (y * 30) as u8, 128])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn decodes_a_jpeg() {
        let d = decode_bytes(&tiny_jpeg(), &DecodeOptions::default()).unwrap();
        assert_eq!(d.image.dimensions(), (16, 8));
    }

    /// A file bigger than any image within the pixel limit is refused before it is read (a
    /// sparse file: no disk space is used).
    #[test]
    fn oversized_files_are_not_read() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("huge.jpg");
        let f = std::fs::File::create(&p).unwrap();
        let opts = DecodeOptions { max_pixels: 1000 };
        f.set_len(1000 * 8 + (1 << 20) + 1).unwrap();
        let e = read_image(&p, &opts).unwrap_err();
        assert!(matches!(e, ImageError::FileTooLarge { .. }), "{e}");
        assert_eq!(e.key(), "too_large");
        // At the limit the file is read (and found corrupt: it is all zeros).
        f.set_len(1000 * 8 + (1 << 20)).unwrap();
        assert!(!matches!(
            read_image(&p, &opts).unwrap_err(),
            ImageError::FileTooLarge { .. }
        ));
    }

    #[test]
    fn empty_truncated_and_garbage_are_errors() {
        let o = DecodeOptions::default();
        assert_eq!(decode_bytes(&[], &o).unwrap_err(), ImageError::Empty);
        let j = tiny_jpeg();
        for cut in [3, 20, j.len() / 2, j.len() - 2] {
            let e = decode_bytes(&j[..cut], &o).unwrap_err();
            assert!(
                matches!(e, ImageError::Corrupt(_) | ImageError::Format(_)),
                "cut {cut}: {e:?}"
            );
        }
        assert!(matches!(
            decode_bytes(b"hello world", &o).unwrap_err(),
            ImageError::Format(_)
        ));
        let mut garbage = j.clone();
        for b in garbage.iter_mut().skip(30).take(200) {
            *b = 0xFF;
        }
        // Must not panic; either decodes (libjpeg tolerates some damage) or reports corruption.
        let _ = decode_bytes(&garbage, &o);
    }

    #[test]
    fn refuses_huge_headers() {
        let o = DecodeOptions { max_pixels: 100 };
        let e = decode_bytes(&tiny_jpeg(), &o).unwrap_err();
        assert!(
            matches!(
                e,
                ImageError::TooLarge {
                    width: 16,
                    height: 8,
                    ..
                }
            ),
            "{e:?}"
        );
        let mut png = Vec::new();
        RgbImage::new(20, 20)
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        assert!(matches!(
            decode_bytes(&png, &o).unwrap_err(),
            ImageError::TooLarge { .. }
        ));
    }

    #[test]
    fn cmyk_converts_like_pillow() {
        // Stored (inverted) 155,255,255,205 = ink c=100, m=0, y=0, k=50; 255-k = 205;
        // Pillow: 205 - MULDIV255(100, 205) = 205 - 80 = 125 (205 * (1 - 100/255) = 124.6).
        assert_eq!(
            cmyk_to_rgb_like_pillow([155, 255, 255, 205]),
            [125, 205, 205]
        );
        assert_eq!(cmyk_to_rgb_like_pillow([0, 0, 0, 255]), [0, 0, 0]);
    }

    #[test]
    fn sixteen_bit_keeps_the_high_byte() {
        // 0x80FF: the high byte is 128; rounding 0x80FF * 255 / 65535 = 128.5 would give 129.
        let img = image::ImageBuffer::<image::Rgb<u16>, _>::from_pixel(
            3,
            2,
            image::Rgb([0x80FF, 0xFFFF, 0x00FF]),
        );
        let mut png = Vec::new();
        DynamicImage::ImageRgb16(img)
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let d = decode_bytes(&png, &DecodeOptions::default()).unwrap();
        assert_eq!(d.image.get_pixel(2, 1).0, [128, 255, 0]);
    }

    #[test]
    fn bmp_sides_above_65535_are_too_large_not_corrupt() {
        let mut bmp = Vec::new();
        RgbImage::new(4, 4)
            .write_to(&mut Cursor::new(&mut bmp), ImageFormat::Bmp)
            .unwrap();
        bmp[18..22].copy_from_slice(&100_000i32.to_le_bytes());
        bmp[22..26].copy_from_slice(&(-100_000i32).to_le_bytes()); // top-down rows
        let e = decode_bytes(&bmp, &DecodeOptions::default()).unwrap_err();
        assert!(
            matches!(
                e,
                ImageError::TooLarge {
                    width: 100_000,
                    height: 100_000,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn orientation_6_rotates_clockwise() {
        let img = RgbImage::from_fn(3, 2, |x, y| image::Rgb([(x + 10 * y) as u8, 0, 0]));
        let r = apply_orientation(img, 6);
        assert_eq!(r.dimensions(), (2, 3));
        // Rotating clockwise puts the bottom-left pixel (0, 1) at the top-left.
        assert_eq!(r.get_pixel(0, 0)[0], 10);
    }
}
