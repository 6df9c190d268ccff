//! Resamplers that reproduce Python's reference libraries exactly.
//!
//! [`resize_pil`] ports Pillow's `ImagingResample` for 8-bit RGB: per-axis coefficient tables
//! (support scaled by the downscale factor, so shrinking antialiases), normalised, converted to
//! 22-bit fixed point, horizontal pass then vertical pass, each rounding and clipping to 8 bits.
//! [`resize_cv2_linear`] ports OpenCV's `resize(INTER_LINEAR)` for 8-bit images (11-bit
//! coefficients, the vectorised vertical pass's rounding, and its 2x2 area special case).

use image::RgbImage;

/// A rectangle of the source image, in whole pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

impl Rect {
    /// The whole of an image.
    pub fn full(img: &RgbImage) -> Rect {
        Rect {
            x: 0,
            y: 0,
            w: img.width(),
            h: img.height(),
        }
    }
}

/// Pillow's resampling filters that the pipeline uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PilFilter {
    /// `Image.BICUBIC` (a = -0.5, support 2).
    Bicubic,
    /// `Image.BILINEAR` (triangle, support 1).
    Bilinear,
}

impl PilFilter {
    fn support(self) -> f64 {
        match self {
            PilFilter::Bicubic => 2.0,
            PilFilter::Bilinear => 1.0,
        }
    }
    fn eval(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            PilFilter::Bicubic => {
                const A: f64 = -0.5;
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            PilFilter::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
        }
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Fixed-point coefficients of one axis: for output index i, taps start at `bounds[i].0` and
/// number `bounds[i].1`, with weights `kk[i * ksize ..]`.
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    kk: Vec<i32>,
}

/// Pillow's `precompute_coeffs` followed by `normalize_coeffs_8bpc`.
fn precompute(in_size: usize, out_size: usize, filter: PilFilter) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // Pillow truncates with a C cast after adding 0.5.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = filter.eval((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for (x, kx) in k.iter().enumerate().take(n) {
            let v = if ww != 0.0 { kx / ww } else { *kx };
            let f = v * (1u32 << PRECISION_BITS) as f64;
            kk[xx * ksize + x] = if v < 0.0 {
                (-0.5 + f) as i32
            } else {
                (0.5 + f) as i32
            };
        }
        bounds.push((xmin, n));
    }
    Coeffs { ksize, bounds, kk }
}

#[inline]
fn clip8(v: i32) -> u8 {
    if v >= (1 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// A plain interleaved RGB buffer used between the two passes.
struct Buf {
    w: usize,
    h: usize,
    data: Vec<u8>,
}

/// Pillow's `ImagingResampleHorizontal_8bpc` on rows `0..src.h` of `src`.
fn horizontal_pass(src: &Buf, c: &Coeffs) -> Buf {
    let ow = c.bounds.len();
    let mut data = vec![0u8; src.h * ow * 3];
    for (y, out_row) in data.chunks_exact_mut(ow * 3).enumerate() {
        let r = &src.data[y * src.w * 3..(y + 1) * src.w * 3];
        for (xx, px) in out_row.chunks_exact_mut(3).enumerate() {
            let (xmin, n) = c.bounds[xx];
            let k = &c.kk[xx * c.ksize..xx * c.ksize + n];
            let taps = &r[xmin * 3..(xmin + n) * 3];
            let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
            for (p, &kx) in taps.chunks_exact(3).zip(k) {
                acc[0] = acc[0].wrapping_add(p[0] as i32 * kx);
                acc[1] = acc[1].wrapping_add(p[1] as i32 * kx);
                acc[2] = acc[2].wrapping_add(p[2] as i32 * kx);
            }
            px[0] = clip8(acc[0]);
            px[1] = clip8(acc[1]);
            px[2] = clip8(acc[2]);
        }
    }
    Buf {
        w: ow,
        h: src.h,
        data,
    }
}

/// Pillow's `ImagingResampleVertical_8bpc`; `row0` is the source row that `src`'s row 0 holds.
fn vertical_pass(src: &Buf, c: &Coeffs, row0: usize) -> Buf {
    let oh = c.bounds.len();
    let stride = src.w * 3;
    let mut data = vec![0u8; oh * stride];
    let mut acc = vec![0i32; stride];
    for (yy, out_row) in data.chunks_exact_mut(stride).enumerate() {
        let (ymin, n) = c.bounds[yy];
        let ymin = ymin - row0;
        let k = &c.kk[yy * c.ksize..yy * c.ksize + n];
        acc.fill(1i32 << (PRECISION_BITS - 1));
        // Row by row over the taps: the same integer sums as Pillow's loop, in cache order.
        for (y, &ky) in k.iter().enumerate() {
            let row = &src.data[(ymin + y) * stride..(ymin + y + 1) * stride];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a = a.wrapping_add(v as i32 * ky);
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    }
    Buf {
        w: src.w,
        h: oh,
        data,
    }
}

/// Resizes `rect` of `src` to `out_w` x `out_h` exactly as Pillow's `Image.resize` does on the
/// cropped image (`src.crop(rect).resize((out_w, out_h), filter)`).
///
/// The horizontal pass runs first, then the vertical one, as in Pillow up to 11.x (the Pillow of
/// DeepFaune 1.4.1's time). Each pass rounds to 8 bits, so the order matters: later Pillow
/// releases sometimes run the vertical pass first and differ from this by one level at places.
///
/// ```
/// use deepfaune_rs::preprocess::{resize_pil, PilFilter, Rect};
/// let img = image::RgbImage::from_pixel(40, 30, image::Rgb([10, 20, 30]));
/// let out = resize_pil(&img, Rect::full(&img), 7, 5, PilFilter::Bicubic);
/// assert_eq!(out.get_pixel(3, 2).0, [10, 20, 30]); // a flat image stays flat
/// ```
pub fn resize_pil(
    src: &RgbImage,
    rect: Rect,
    out_w: u32,
    out_h: u32,
    filter: PilFilter,
) -> RgbImage {
    assert!(
        rect.x + rect.w <= src.width() && rect.y + rect.h <= src.height(),
        "rect outside the image"
    );
    assert!(
        rect.w > 0 && rect.h > 0 && out_w > 0 && out_h > 0,
        "empty resize"
    );
    let (in_w, in_h) = (rect.w as usize, rect.h as usize);
    let (ow, oh) = (out_w as usize, out_h as usize);
    let stride = src.width() as usize * 3;
    let data = src.as_raw();
    // Copies source rows y0..y1 of the rect into a buffer.
    let rows = |y0: usize, y1: usize| -> Buf {
        let mut out = Vec::with_capacity((y1 - y0) * in_w * 3);
        for y in y0..y1 {
            let start = (rect.y as usize + y) * stride + rect.x as usize * 3;
            out.extend_from_slice(&data[start..start + in_w * 3]);
        }
        Buf {
            w: in_w,
            h: y1 - y0,
            data: out,
        }
    };
    let need_h = ow != in_w;
    let need_v = oh != in_h;
    let vert = precompute(in_h, oh, filter);
    let out = if need_h {
        // Only the source rows the vertical pass will read.
        let y_first = vert.bounds[0].0;
        let y_last = vert.bounds[oh - 1].0 + vert.bounds[oh - 1].1;
        let tmp = horizontal_pass(&rows(y_first, y_last), &precompute(in_w, ow, filter));
        if need_v {
            vertical_pass(&tmp, &vert, y_first)
        } else {
            tmp
        }
    } else if need_v {
        vertical_pass(&rows(0, in_h), &vert, 0)
    } else {
        rows(0, in_h)
    };
    RgbImage::from_raw(out.w as u32, out.h as u32, out.data).expect("sizes agree")
}

const CV_COEF_BITS: i32 = 11;
const CV_COEF_SCALE: f32 = (1 << CV_COEF_BITS) as f32;

/// OpenCV's per-axis linear tables: source index and 11-bit weights of the two taps.
fn cv2_linear_table(in_size: usize, out_size: usize) -> Vec<(usize, i16, i16)> {
    let scale = in_size as f64 / out_size as f64;
    (0..out_size)
        .map(|d| {
            let mut f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            f -= s as f32;
            if s < 0 {
                f = 0.0;
                s = 0;
            }
            if s >= in_size as i64 - 1 {
                f = 0.0;
                s = in_size as i64 - 1;
            }
            // saturate_cast<short>(float) rounds half to even (cvRound).
            let w0 = ((1.0 - f) * CV_COEF_SCALE).round_ties_even() as i16;
            let w1 = (f * CV_COEF_SCALE).round_ties_even() as i16;
            (s as usize, w0, w1)
        })
        .collect()
}

/// Resizes `src` to `out_w` x `out_h` as OpenCV's `cv2.resize(..., interpolation=INTER_LINEAR)`
/// does for 8-bit three-channel images (no antialiasing when shrinking).
pub fn resize_cv2_linear(src: &RgbImage, out_w: u32, out_h: u32) -> RgbImage {
    let (in_w, in_h) = (src.width() as usize, src.height() as usize);
    let (ow, oh) = (out_w as usize, out_h as usize);
    assert!(in_w > 0 && in_h > 0 && ow > 0 && oh > 0, "empty resize");
    if (in_w, in_h) == (ow, oh) {
        return src.clone();
    }
    let data = src.as_raw();
    let stride = in_w * 3;
    // OpenCV switches INTER_LINEAR to its fast area path for an exact 2x shrink on both axes.
    if in_w == 2 * ow && in_h == 2 * oh {
        let mut out = vec![0u8; ow * oh * 3];
        for y in 0..oh {
            let (r0, r1) = (&data[2 * y * stride..], &data[(2 * y + 1) * stride..]);
            for x in 0..ow {
                for c in 0..3 {
                    let i = 6 * x + c;
                    let s = r0[i] as u32 + r0[i + 3] as u32 + r1[i] as u32 + r1[i + 3] as u32;
                    out[(y * ow + x) * 3 + c] = ((s + 2) >> 2) as u8;
                }
            }
        }
        return RgbImage::from_raw(out_w, out_h, out).expect("sizes agree");
    }
    let xt = cv2_linear_table(in_w, ow);
    let yt = cv2_linear_table(in_h, oh);
    let hrow = |y: usize, buf: &mut Vec<i32>| {
        buf.clear();
        let r = &data[y * stride..(y + 1) * stride];
        for &(sx, a0, a1) in &xt {
            let sx1 = (sx + 1).min(in_w - 1);
            for c in 0..3 {
                buf.push(r[sx * 3 + c] as i32 * a0 as i32 + r[sx1 * 3 + c] as i32 * a1 as i32);
            }
        }
    };
    let mut out = vec![0u8; ow * oh * 3];
    let (mut b0, mut b1) = (Vec::with_capacity(ow * 3), Vec::with_capacity(ow * 3));
    let mut cached: (usize, usize) = (usize::MAX, usize::MAX);
    for (dy, &(sy, w0, w1)) in yt.iter().enumerate() {
        let sy1 = (sy + 1).min(in_h - 1);
        if cached != (sy, sy1) {
            if cached.1 == sy {
                std::mem::swap(&mut b0, &mut b1);
            } else {
                hrow(sy, &mut b0);
            }
            hrow(sy1, &mut b1);
            cached = (sy, sy1);
        }
        let orow = &mut out[dy * ow * 3..(dy + 1) * ow * 3];
        for i in 0..ow * 3 {
            // OpenCV's vectorised vertical pass (it also covers a row's tail with an overlapping
            // vector): (((w0 * (s0 >> 4)) >> 16) + ((w1 * (s1 >> 4)) >> 16) + 2) >> 2.
            let t0 = (w0 as i32 * (b0[i] >> 4)) >> 16;
            let t1 = (w1 as i32 * (b1[i] >> 4)) >> 16;
            orow[i] = ((t0 + t1 + 2) >> 2).clamp(0, 255) as u8;
        }
    }
    RgbImage::from_raw(out_w, out_h, out).expect("sizes agree")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7 + y) as u8, (y * 5) as u8, ((x * y) % 251) as u8])
        })
    }

    #[test]
    fn identity_is_a_copy() {
        let img = ramp(13, 9);
        assert_eq!(
            resize_pil(&img, Rect::full(&img), 13, 9, PilFilter::Bicubic),
            img
        );
        assert_eq!(resize_cv2_linear(&img, 13, 9), img);
    }

    #[test]
    fn coefficients_sum_to_one_in_fixed_point() {
        for (i, o) in [(100, 37), (37, 100), (4208, 640), (5, 182)] {
            let c = precompute(i, o, PilFilter::Bicubic);
            for xx in 0..o {
                let (_, n) = c.bounds[xx];
                let s: i64 = c.kk[xx * c.ksize..xx * c.ksize + n]
                    .iter()
                    .map(|&v| v as i64)
                    .sum();
                assert!(
                    (s - (1 << PRECISION_BITS)).abs() <= n as i64,
                    "{i}->{o} at {xx}: {s}"
                );
            }
        }
    }

    #[test]
    fn halving_with_bilinear_averages_pairs() {
        // Shrinking 2:1 with Pillow's bilinear: support 2 source pixels, weights 1/4, 3/4, 3/4, 1/4
        // centred on each output pixel (hand computation for a 1-row image).
        let img = RgbImage::from_fn(8, 1, |x, _| {
            image::Rgb([[0, 40, 80, 120, 160, 200, 240, 255][x as usize]; 3])
        });
        let out = resize_pil(&img, Rect::full(&img), 4, 1, PilFilter::Bilinear);
        let v: Vec<u8> = out.pixels().map(|p| p[0]).collect();
        // out[1]: (40*1 + 80*3 + 120*3 + 160*1) / 8 = 100 ; out[0] at the border: (0*3 + 40*3 + 80*1) / 7.
        assert_eq!(v[1], 100);
        assert_eq!(v[0], ((40.0 * 3.0 + 80.0) / 7.0_f64).round() as u8);
    }

    #[test]
    fn cropped_rect_equals_resizing_the_crop() {
        let img = ramp(50, 40);
        let r = Rect {
            x: 7,
            y: 5,
            w: 20,
            h: 30,
        };
        let crop = image::imageops::crop_imm(&img, r.x, r.y, r.w, r.h).to_image();
        assert_eq!(
            resize_pil(&img, r, 11, 17, PilFilter::Bicubic),
            resize_pil(&crop, Rect::full(&crop), 11, 17, PilFilter::Bicubic)
        );
    }

    #[test]
    fn cv2_exact_half_is_a_box_average() {
        let img = ramp(8, 6);
        let out = resize_cv2_linear(&img, 4, 3);
        let p = |x, y, c| img.get_pixel(x, y)[c] as u32;
        let want = (p(2, 2, 0) + p(3, 2, 0) + p(2, 3, 0) + p(3, 3, 0) + 2) / 4;
        assert_eq!(out.get_pixel(1, 1)[0] as u32, want);
    }
}
