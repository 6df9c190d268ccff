//! CLAHE on the lightness of an RGB image, as lynx-id applies it (albumentations `CLAHE`: RGB to
//! CIE Lab, OpenCV's CLAHE on the 8-bit L channel, back to RGB).
//!
//! The equalisation is OpenCV's algorithm step for step (tile grid, reflect-101 padding when the
//! size is not a multiple of the grid, clip limit `max(clip * tile_area / 256, 1)`, clipped counts
//! spread evenly then one by one, bilinear blending of the four nearest tile maps). The colour
//! conversion is the same formulas in floating point, where OpenCV uses fixed-point tables: a
//! few pixels can differ by a level or two.
//!
//! ```
//! use deepfaune_rs::reid::embed::clahe_rgb;
//! let img = image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * 4) as u8, (y * 4) as u8, 60]));
//! let out = clahe_rgb(&img, 4.0, 4);
//! assert_eq!(out.dimensions(), (32, 32));
//! ```

use image::RgbImage;

const HIST: usize = 256;

/// CLAHE of the lightness; `tile_grid` tiles per side.
pub fn clahe_rgb(img: &RgbImage, clip_limit: f32, tile_grid: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 || tile_grid == 0 {
        return img.clone();
    }
    let lab: Vec<[u8; 3]> = img.pixels().map(|p| rgb_to_lab8(p.0)).collect();
    let l: Vec<u8> = lab.iter().map(|p| p[0]).collect();
    let l2 = clahe_gray(&l, w as usize, h as usize, clip_limit, tile_grid as usize);
    let mut out = RgbImage::new(w, h);
    for ((px, lab), l) in out.pixels_mut().zip(&lab).zip(l2) {
        px.0 = lab8_to_rgb([l, lab[1], lab[2]]);
    }
    out
}

/// OpenCV's `createCLAHE(clip_limit, (tiles, tiles)).apply` on an 8-bit image.
pub fn clahe_gray(src: &[u8], w: usize, h: usize, clip_limit: f32, tiles: usize) -> Vec<u8> {
    // OpenCV pads by `tiles - size % tiles` on both axes whenever either is not a multiple
    // (a whole extra tile on an axis that already was one), reflect-101.
    let (ew, eh) = if w.is_multiple_of(tiles) && h.is_multiple_of(tiles) {
        (w, h)
    } else {
        (w + tiles - w % tiles, h + tiles - h % tiles)
    };
    let reflect = |i: usize, n: usize| -> usize {
        if i < n {
            i
        } else if n == 1 {
            0
        } else {
            2 * (n - 1) - i
        }
    };
    let (tw, th) = (ew / tiles, eh / tiles);
    let area = (tw * th) as f32;
    let lut_scale = (HIST - 1) as f32 / area;
    let clip = if clip_limit > 0.0 {
        ((clip_limit * area / HIST as f32) as i64).max(1)
    } else {
        0
    };
    let mut luts = vec![0u8; tiles * tiles * HIST];
    for ty in 0..tiles {
        for tx in 0..tiles {
            let mut hist = [0i64; HIST];
            for y in ty * th..(ty + 1) * th {
                let sy = reflect(y, h);
                for x in tx * tw..(tx + 1) * tw {
                    hist[src[sy * w + reflect(x, w)] as usize] += 1;
                }
            }
            if clip > 0 {
                let mut clipped = 0;
                for v in hist.iter_mut() {
                    if *v > clip {
                        clipped += *v - clip;
                        *v = clip;
                    }
                }
                let batch = clipped / HIST as i64;
                let mut residual = clipped - batch * HIST as i64;
                hist.iter_mut().for_each(|v| *v += batch);
                if residual != 0 {
                    let step = (HIST as i64 / residual).max(1) as usize;
                    let mut i = 0;
                    while i < HIST && residual > 0 {
                        hist[i] += 1;
                        i += step;
                        residual -= 1;
                    }
                }
            }
            let lut = &mut luts[(ty * tiles + tx) * HIST..(ty * tiles + tx + 1) * HIST];
            let mut sum = 0i64;
            for (l, &v) in lut.iter_mut().zip(&hist) {
                sum += v;
                *l = round_sat(sum as f32 * lut_scale);
            }
        }
    }
    let (inv_tw, inv_th) = (1.0 / tw as f32, 1.0 / th as f32);
    let axis = |i: usize, inv: f32| {
        let f = i as f32 * inv - 0.5;
        let t1 = f.floor() as i64;
        let a = f - t1 as f32;
        (t1.max(0) as usize, ((t1 + 1) as usize).min(tiles - 1), a)
    };
    let xs: Vec<(usize, usize, f32)> = (0..w).map(|x| axis(x, inv_tw)).collect();
    let mut out = vec![0u8; w * h];
    for y in 0..h {
        let (ty1, ty2, ya) = axis(y, inv_th);
        for x in 0..w {
            let (tx1, tx2, xa) = xs[x];
            let v = src[y * w + x] as usize;
            let lut = |ty: usize, tx: usize| luts[(ty * tiles + tx) * HIST + v] as f32;
            let r = (lut(ty1, tx1) * (1.0 - xa) + lut(ty1, tx2) * xa) * (1.0 - ya)
                + (lut(ty2, tx1) * (1.0 - xa) + lut(ty2, tx2) * xa) * ya;
            out[y * w + x] = round_sat(r);
        }
    }
    out
}

/// OpenCV's `saturate_cast<uchar>(float)`: round half to even, clamp.
fn round_sat(v: f32) -> u8 {
    v.round_ties_even().clamp(0.0, 255.0) as u8
}

fn srgb_to_linear(v: u8) -> f32 {
    let v = v as f32 / 255.0;
    if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

fn linear_to_srgb(v: f32) -> f32 {
    if v <= 0.0031308 {
        12.92 * v
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    }
}

const T: f32 = 0.008856;

/// 8-bit Lab as OpenCV stores it: L * 255 / 100, a + 128, b + 128.
fn rgb_to_lab8(p: [u8; 3]) -> [u8; 3] {
    let (r, g, b) = (
        srgb_to_linear(p[0]),
        srgb_to_linear(p[1]),
        srgb_to_linear(p[2]),
    );
    let x = (0.412453 * r + 0.357580 * g + 0.180423 * b) / 0.950456;
    let y = 0.212671 * r + 0.715160 * g + 0.072169 * b;
    let z = (0.019334 * r + 0.119193 * g + 0.950227 * b) / 1.088754;
    let f = |t: f32| {
        if t > T {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        }
    };
    let l = if y > T {
        116.0 * y.cbrt() - 16.0
    } else {
        903.3 * y
    };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    [
        round_sat(l * 255.0 / 100.0),
        round_sat(500.0 * (fx - fy) + 128.0),
        round_sat(200.0 * (fy - fz) + 128.0),
    ]
}

fn lab8_to_rgb(p: [u8; 3]) -> [u8; 3] {
    let l = p[0] as f32 * 100.0 / 255.0;
    let (a, b) = (p[1] as f32 - 128.0, p[2] as f32 - 128.0);
    let (y, fy) = if l <= 903.3 * T {
        let y = l / 903.3;
        (y, 7.787 * y + 16.0 / 116.0)
    } else {
        let fy = (l + 16.0) / 116.0;
        (fy * fy * fy, fy)
    };
    let inv = |f: f32| {
        let c = f * f * f;
        if c > T {
            c
        } else {
            (f - 16.0 / 116.0) / 7.787
        }
    };
    let x = inv(fy + a / 500.0) * 0.950456;
    let z = inv(fy - b / 200.0) * 1.088754;
    let r = 3.240479 * x - 1.53715 * y - 0.498535 * z;
    let g = -0.969256 * x + 1.875991 * y + 0.041556 * z;
    let bl = 0.055648 * x - 0.204043 * y + 1.057311 * z;
    [r, g, bl].map(|v| round_sat(linear_to_srgb(v.clamp(0.0, 1.0)) * 255.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_matches_opencv() {
        // cv2.cvtColor(RGB2LAB) then LAB2RGB, OpenCV 4/5, 8-bit.
        let cases = [
            ([12, 240, 130], [214, 57, 168], [20, 240, 130]),
            ([200, 30, 90], [113, 194, 139], [201, 30, 90]),
            ([0, 0, 0], [0, 128, 128], [0, 0, 0]),
            ([255, 255, 255], [255, 128, 128], [255, 255, 255]),
        ];
        for (rgb, lab, back) in cases {
            assert_eq!(rgb_to_lab8(rgb), lab, "{rgb:?}");
            assert_eq!(lab8_to_rgb(lab), back, "{lab:?}");
        }
    }

    #[test]
    fn stretches_a_low_contrast_ramp() {
        // A ramp over 100..=131: CLAHE spreads it over a much wider range.
        let (w, h) = (64, 64);
        let src: Vec<u8> = (0..w * h).map(|i| 100 + ((i % w) / 2) as u8).collect();
        let out = clahe_gray(&src, w, h, 40.0, 1);
        let (lo, hi) = (out.iter().min().unwrap(), out.iter().max().unwrap());
        assert!(hi - lo > 200, "{lo}..{hi}");
        // Same input value, same output, with one tile.
        assert_eq!(out[0], out[w]);
    }
}
