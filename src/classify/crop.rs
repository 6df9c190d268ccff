//! Classifier inputs from crops.

use image::RgbImage;

use crate::manifest::classifier::ClassifierInput;
use crate::manifest::ResizeMethod;
use crate::preprocess::{resize_cv2_linear, resize_pil, PilFilter, Rect};

/// Cuts `crop` (`[x1, y1, x2, y2)` pixel bounds) from `img`, squashes it to the input size and
/// writes the normalised CHW tensor into `out` (`3 * size * size` values):
/// `(v / 255 - mean) / std` in f32, as torchvision does.
pub fn prepare_crop(img: &RgbImage, crop: [u32; 4], input: &ClassifierInput, out: &mut [f32]) {
    let size = input.size;
    let plane = (size * size) as usize;
    assert_eq!(out.len(), 3 * plane, "tensor buffer size");
    let [x1, y1, x2, y2] = crop;
    let rect = Rect {
        x: x1,
        y: y1,
        w: x2 - x1,
        h: y2 - y1,
    };
    let resized = match input.resize {
        ResizeMethod::PilBicubic => resize_pil(img, rect, size, size, PilFilter::Bicubic),
        ResizeMethod::PilBilinear => resize_pil(img, rect, size, size, PilFilter::Bilinear),
        ResizeMethod::Cv2Linear => {
            let c = image::imageops::crop_imm(img, rect.x, rect.y, rect.w, rect.h).to_image();
            resize_cv2_linear(&c, size, size)
        }
    };
    for (c, chan) in out.chunks_exact_mut(plane).enumerate() {
        let (m, s) = (input.mean[c], input.std[c]);
        for (o, px) in chan.iter_mut().zip(resized.pixels()) {
            *o = (px[c] as f32 / 255.0 - m) / s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::classifier::builtin_classifier;

    #[test]
    fn normalises_like_torchvision() {
        let input = builtin_classifier("deepfaune-v14").unwrap().input;
        let img = RgbImage::from_pixel(50, 40, image::Rgb([255, 0, 128]));
        let mut t = vec![0.0; 3 * 182 * 182];
        prepare_crop(&img, [10, 5, 30, 35], &input, &mut t);
        // Hand computation: (1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128/255 - 0.406) / 0.225.
        let plane = 182 * 182;
        assert!((t[0] - (1.0 - 0.485) / 0.229).abs() < 1e-6);
        assert!((t[plane + 100] - (0.0 - 0.456) / 0.224).abs() < 1e-6);
        assert!((t[2 * plane + 7] - (128.0 / 255.0 - 0.406) / 0.225).abs() < 1e-6);
    }
}
