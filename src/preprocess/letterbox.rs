//! Letterbox geometry for detectors, and filling the input tensor.
//!
//! Two styles exist in the reference code:
//! - ultralytics (`LetterBox`): gain `r = min(size/h, size/w)`, new size `round(w*r) x round(h*r)`
//!   (Python's half-to-even `round`), padding split around the image (`round(d/2 -+ 0.1)`), grey 114;
//! - zamba (`ImageOps.pad(..., centering=(0, 0))`): the long side to `size`, the short side
//!   `round(short/long * size)`, image at the top-left, padding bottom/right.

use image::RgbImage;

use super::resize::{resize_cv2_linear, resize_pil, PilFilter, Rect};
use crate::manifest::{DetectorInput, InputShape, LetterboxStyle, ResizeMethod};

/// Where the image sits in the model input, and how to map boxes back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Original image width.
    pub src_w: u32,
    /// Original image height.
    pub src_h: u32,
    /// Resized image width inside the input.
    pub new_w: u32,
    /// Resized image height inside the input.
    pub new_h: u32,
    /// Input tensor width.
    pub in_w: u32,
    /// Input tensor height.
    pub in_h: u32,
    /// Left padding.
    pub pad_left: u32,
    /// Top padding.
    pub pad_top: u32,
    /// Scale from original to input pixels (`min(size/w, size/h)`).
    pub gain: f64,
    /// Placement style (decides how boxes are mapped back).
    pub style: LetterboxStyle,
}

fn round_half_even(x: f64) -> f64 {
    x.round_ties_even()
}

impl Letterbox {
    /// Computes the geometry for an image of `w` x `h` under the manifest's input facts.
    pub fn new(w: u32, h: u32, input: &DetectorInput) -> Letterbox {
        let size = input.size;
        let (wf, hf, sf) = (w as f64, h as f64, size as f64);
        let gain = (sf / hf).min(sf / wf);
        match input.letterbox {
            LetterboxStyle::Centred => {
                let new_w = (round_half_even(wf * gain) as u32).max(1);
                let new_h = (round_half_even(hf * gain) as u32).max(1);
                let (mut dw, mut dh) = (
                    (size - new_w.min(size)) as f64,
                    (size - new_h.min(size)) as f64,
                );
                if input.shape == InputShape::Stride {
                    dw %= input.stride as f64;
                    dh %= input.stride as f64;
                }
                dw /= 2.0;
                dh /= 2.0;
                let top = round_half_even(dh - 0.1) as u32;
                let bottom = round_half_even(dh + 0.1) as u32;
                let left = round_half_even(dw - 0.1) as u32;
                let right = round_half_even(dw + 0.1) as u32;
                Letterbox {
                    src_w: w,
                    src_h: h,
                    new_w,
                    new_h,
                    in_w: new_w + left + right,
                    in_h: new_h + top + bottom,
                    pad_left: left,
                    pad_top: top,
                    gain,
                    style: LetterboxStyle::Centred,
                }
            }
            LetterboxStyle::TopLeft => {
                // ImageOps.pad: compares aspect ratios, scales the other side with round().
                let (new_w, new_h) = if w == h {
                    (size, size)
                } else if wf / hf > 1.0 {
                    (size, (round_half_even(hf / wf * sf) as u32).max(1))
                } else {
                    ((round_half_even(wf / hf * sf) as u32).max(1), size)
                };
                let (in_w, in_h) = match input.shape {
                    InputShape::Square => (size, size),
                    InputShape::Stride => {
                        let s = input.stride;
                        (new_w.div_ceil(s) * s, new_h.div_ceil(s) * s)
                    }
                };
                Letterbox {
                    src_w: w,
                    src_h: h,
                    new_w,
                    new_h,
                    in_w,
                    in_h,
                    pad_left: 0,
                    pad_top: 0,
                    gain,
                    style: LetterboxStyle::TopLeft,
                }
            }
        }
    }

    /// Maps a box `[x1, y1, x2, y2]` in input pixels back to original pixels, clipped to the image.
    ///
    /// Centred (ultralytics): `ops.scale_boxes` of ultralytics 8.4 exactly: the gain is recomputed
    /// from the input and original shapes, `min(in_h/h, in_w/w)`, each side rounded as `LetterBox`
    /// rounds it, and each axis divided by its own gain (`new_w/w`, `new_h/h`), after removing
    /// `round((in - new)/2 - 0.1)` of padding. Top-left (zamba): divided by the letterbox gain.
    pub fn to_original(&self, b: [f32; 4]) -> [f32; 4] {
        let (w, h) = (self.src_w as f32, self.src_h as f32);
        let (px, py, gx, gy) = match self.style {
            LetterboxStyle::Centred => {
                let (sw, sh) = (self.src_w as f64, self.src_h as f64);
                let (iw, ih) = (self.in_w as f64, self.in_h as f64);
                let gain = (ih / sh).min(iw / sw);
                let nh = round_half_even(sh * gain).max(1.0);
                let nw = round_half_even(sw * gain).max(1.0);
                (
                    round_half_even((iw - nw) / 2.0 - 0.1) as f32,
                    round_half_even((ih - nh) / 2.0 - 0.1) as f32,
                    (nw / sw) as f32,
                    (nh / sh) as f32,
                )
            }
            LetterboxStyle::TopLeft => (
                self.pad_left as f32,
                self.pad_top as f32,
                self.gain as f32,
                self.gain as f32,
            ),
        };
        [
            ((b[0] - px) / gx).clamp(0.0, w),
            ((b[1] - py) / gy).clamp(0.0, h),
            ((b[2] - px) / gx).clamp(0.0, w),
            ((b[3] - py) / gy).clamp(0.0, h),
        ]
    }
}

/// Resizes `img` per the manifest and writes the letterboxed CHW tensor into `out`
/// (`3 * in_h * in_w` values): RGB, padding `pad_value`, values times `scale`.
pub fn fill_tensor(img: &RgbImage, lb: &Letterbox, input: &DetectorInput, out: &mut [f32]) {
    let plane = (lb.in_w * lb.in_h) as usize;
    assert_eq!(out.len(), 3 * plane, "tensor buffer size");
    let resized;
    let src = if (lb.new_w, lb.new_h) == img.dimensions() {
        img
    } else {
        resized = match input.resize {
            ResizeMethod::PilBicubic => {
                resize_pil(img, Rect::full(img), lb.new_w, lb.new_h, PilFilter::Bicubic)
            }
            ResizeMethod::PilBilinear => resize_pil(
                img,
                Rect::full(img),
                lb.new_w,
                lb.new_h,
                PilFilter::Bilinear,
            ),
            ResizeMethod::Cv2Linear => resize_cv2_linear(img, lb.new_w, lb.new_h),
        };
        &resized
    };
    let pad = input.pad_value as f32 * input.scale;
    out.fill(pad);
    let raw = src.as_raw();
    let (iw, nw) = (lb.in_w as usize, lb.new_w as usize);
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for y in 0..lb.new_h as usize {
        let row = &raw[y * nw * 3..(y + 1) * nw * 3];
        let base = (y + lb.pad_top as usize) * iw + lb.pad_left as usize;
        for (x, px) in row.chunks_exact(3).enumerate() {
            r[base + x] = px[0] as f32 * input.scale;
            g[base + x] = px[1] as f32 * input.scale;
            b[base + x] = px[2] as f32 * input.scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::builtin;

    #[test]
    fn ultralytics_geometry_matches_hand_computation() {
        // 4208x2368 into 960 square: r = 960/4208, new = 960 x round(540.228) = 540,
        // dh = 420 / 2 = 210 -> top = round(209.9) = 210, bottom = round(210.1) = 210.
        let mut input = builtin("df").unwrap().input;
        input.shape = InputShape::Square;
        let lb = Letterbox::new(4208, 2368, &input);
        assert_eq!(
            (
                lb.new_w,
                lb.new_h,
                lb.in_w,
                lb.in_h,
                lb.pad_left,
                lb.pad_top
            ),
            (960, 540, 960, 960, 0, 210)
        );
        // Odd padding: 100x51 -> 960x490 (round(489.6)), dh = 235 -> top 235, bottom 235.
        let lb = Letterbox::new(100, 51, &input);
        assert_eq!((lb.new_h, lb.pad_top, lb.in_h), (490, 235, 960));
        // A stride-padded (dynamic) export: 4208x2368 -> 960 x 540 padded to 544 (dh = 4 % 32 / 2).
        let mut dynamic = input.clone();
        dynamic.shape = InputShape::Stride;
        let lb = Letterbox::new(4208, 2368, &dynamic);
        assert_eq!((lb.in_w, lb.in_h, lb.pad_top), (960, 544, 2));
    }

    #[test]
    fn stride_rectangle_is_ultralytics_auto_letterbox() {
        // LetterBox(960, auto=True) by hand. 4000x3000: r = 0.24, 960x720, dh = 240 % 32 = 16
        // -> top round(7.9) = 8, bottom round(8.1) = 8: 960x736. Portrait 3000x4000: 736x960.
        let input = builtin("df").unwrap().input;
        assert_eq!(input.shape, InputShape::Stride);
        let lb = Letterbox::new(4000, 3000, &input);
        assert_eq!(
            (lb.in_w, lb.in_h, lb.pad_left, lb.pad_top, lb.new_h),
            (960, 736, 0, 8, 720)
        );
        assert_eq!(
            lb.to_original([0.0, 8.0, 960.0, 728.0]),
            [0.0, 0.0, 4000.0, 3000.0]
        );
        let lb = Letterbox::new(3000, 4000, &input);
        assert_eq!(
            (lb.in_w, lb.in_h, lb.pad_left, lb.pad_top),
            (736, 960, 8, 0)
        );
        // 1000x333: r = 0.96, 960x round(319.68) = 320, dh = 640 % 32 = 0: 960x320, no padding.
        // scale_boxes recomputes gain = min(320/333, 960/1000) = 0.96; new_h = round(319.68) = 320,
        // so y is divided by 320/333 (not by 0.96): y = 160 -> 166.5.
        let lb = Letterbox::new(1000, 333, &input);
        assert_eq!((lb.in_w, lb.in_h, lb.pad_top), (960, 320, 0));
        let b = lb.to_original([96.0, 160.0, 960.0, 320.0]);
        let want = [100.0, 166.5, 1000.0, 333.0];
        assert!(
            b.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-3),
            "{b:?}"
        );
    }

    #[test]
    fn zamba_geometry_and_mapping_back() {
        let input = builtin("md-lite").unwrap().input;
        let lb = Letterbox::new(2048, 1536, &input);
        assert_eq!(
            (lb.new_w, lb.new_h, lb.pad_left, lb.pad_top),
            (640, 480, 0, 0)
        );
        let b = lb.to_original([64.0, 48.0, 640.0, 700.0]);
        assert_eq!(b, [204.8, 153.6, 2048.0, 1536.0]);
        let portrait = Letterbox::new(1000, 2000, &input);
        assert_eq!((portrait.new_w, portrait.new_h), (320, 640));
    }

    #[test]
    fn centred_mapping_removes_padding() {
        let mut input = builtin("df").unwrap().input;
        input.shape = InputShape::Square;
        let lb = Letterbox::new(1920, 1080, &input); // gain 0.5, new 960x540, top 210
        let b = lb.to_original([96.0, 210.0 + 54.0, 192.0, 210.0 + 108.0]);
        assert_eq!(b, [192.0, 108.0, 384.0, 216.0]);
    }

    #[test]
    fn tensor_has_padding_and_scaled_pixels() {
        let mut input = builtin("df").unwrap().input;
        input.shape = InputShape::Square;
        let img = RgbImage::from_pixel(1920, 1080, image::Rgb([255, 0, 51]));
        let lb = Letterbox::new(1920, 1080, &input);
        let mut t = vec![0.0; 3 * 960 * 960];
        fill_tensor(&img, &lb, &input, &mut t);
        let at = |c: usize, y: usize, x: usize| t[c * 960 * 960 + y * 960 + x];
        assert!((at(0, 0, 0) - 114.0 / 255.0).abs() < 1e-6);
        assert!((at(0, 500, 500) - 1.0).abs() < 1e-6);
        assert!((at(2, 500, 500) - 0.2).abs() < 1e-6);
    }
}
