//! Classification of boxes the caller brings (their own detector, a labelling tool): images plus
//! boxes to logits and embeddings, the same crop and classifier as a pipeline run.

use image::RgbImage;

use super::{prepare_crop, ClassifierOutputs, OnnxClassifier};
use crate::detect::decision::crop_square_f64;
use crate::error::Error;
use crate::reid::embed::BoxFormat;

/// How a given box becomes the classifier's crop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CropRule {
    /// DeepFaune's square crop around the box (`cropSquareCVtoPIL`), as after detection.
    Square,
    /// The box itself, squashed to the input size (a crop already cut as wanted).
    Exact,
}

/// The crop `[x1, y1, x2, y2)` of `bbox` (`[x1, y1, x2, y2]` pixels; `None`: the whole image) in
/// an image of `width` x `height` under `rule`, or why it cannot be cut. Bounds are truncated
/// as Python's `int()` does (DeepFaune's crops), in `f64`.
///
/// ```
/// use deepfaune_rs::classify::given::{crop_of, CropRule};
/// assert_eq!(crop_of(Some([10.0, 50.0, 110.0, 90.0]), 1000, 1000, CropRule::Square), Ok([10, 20, 110, 120]));
/// assert_eq!(crop_of(Some([10.5, 50.0, 110.0, 90.0]), 1000, 1000, CropRule::Exact), Ok([10, 50, 110, 90]));
/// assert_eq!(crop_of(None, 64, 48, CropRule::Square), Ok([0, 0, 64, 48]));
/// assert!(crop_of(Some([5.0, 5.0, 5.0, 9.0]), 64, 48, CropRule::Exact).is_err());
/// ```
pub fn crop_of(
    bbox: Option<[f64; 4]>,
    width: u32,
    height: u32,
    rule: CropRule,
) -> Result<[u32; 4], String> {
    let Some(b) = bbox else {
        return if width > 0 && height > 0 {
            Ok([0, 0, width, height])
        } else {
            Err("empty image".into())
        };
    };
    if b.iter().any(|v| !v.is_finite()) {
        return Err(format!("box {b:?} is not finite"));
    }
    let crop = match rule {
        CropRule::Square => crop_square_f64(b, width, height),
        CropRule::Exact => {
            // int() of each bound, clipped to the image, as DeepFaune cuts.
            let x1 = (b[0].max(0.0) as u32).min(width);
            let y1 = (b[1].max(0.0) as u32).min(height);
            let x2 = (b[2].max(0.0) as u32).min(width);
            let y2 = (b[3].max(0.0) as u32).min(height);
            (x2 > x1 && y2 > y1).then_some([x1, y1, x2, y2])
        }
    };
    crop.ok_or_else(|| format!("box {b:?} holds no pixel of the {width}x{height} image"))
}

/// What [`classify_boxes`] gives: one row per item, in order (NaN rows for the items listed in
/// `failures` with their reason: an image that could not be read, a box without pixels).
#[derive(Debug, Default)]
pub struct Classified {
    /// Logits `[n, classes]`, embeddings `[n, embedding_dim]` (`[n, 0]` when not kept), bird
    /// logits `[n, groups]` (`[n, 0]` without a bird head), row-major.
    pub outputs: ClassifierOutputs,
    /// `(item, reason)` of the items that could not be classified.
    pub failures: Vec<(usize, String)>,
}

/// `bbox` in `format` as `[x1, y1, x2, y2]` pixels of a `width` x `height` image (in `f64`, as
/// DeepFaune's `int(x * W)` on Python floats).
///
/// ```
/// use deepfaune_rs::classify::given::in_pixels;
/// use deepfaune_rs::reid::embed::BoxFormat;
/// assert_eq!(in_pixels([0.25, 0.5, 0.5, 0.25], BoxFormat::NormalizedXywh, 200, 100), [50.0, 50.0, 150.0, 75.0]);
/// ```
pub fn in_pixels(bbox: [f64; 4], format: BoxFormat, width: u32, height: u32) -> [f64; 4] {
    match format {
        BoxFormat::PixelsXyxy => bbox,
        BoxFormat::NormalizedXywh => {
            let (w, h) = (f64::from(width), f64::from(height));
            let [x, y, bw, bh] = bbox;
            [x * w, y * h, (x + bw) * w, (y + bh) * h]
        }
    }
}

/// Classifies `n` items: item `i` is the image `image_of(i)` (decoded on demand, one batch at
/// a time) and the box `boxes[i]` in `format` (see [`crop_of`]), in batches of `batch_size`.
/// A problem with one item is a failure row, never an error of the call.
#[allow(clippy::too_many_arguments)]
pub fn classify_boxes(
    clf: &mut OnnxClassifier,
    n: usize,
    mut image_of: impl FnMut(usize) -> Result<RgbImage, String>,
    boxes: &[Option<[f64; 4]>],
    format: BoxFormat,
    rule: CropRule,
    batch_size: usize,
    keep_embeddings: bool,
) -> Result<Classified, Error> {
    if boxes.len() != n {
        return Err(Error::InvalidArgument(format!(
            "{} boxes for {n} images",
            boxes.len()
        )));
    }
    let size = clf.manifest.input.size as usize;
    let per = 3 * size * size;
    let c = clf.num_classes();
    let d = if keep_embeddings {
        clf.manifest.embedding_dim
    } else {
        0
    };
    let g = match (&clf.manifest.bird_head, clf.has_bird_head()) {
        (Some(b), true) => b.num_groups(),
        _ => 0,
    };
    let mut res = Classified {
        outputs: ClassifierOutputs {
            logits: vec![f32::NAN; n * c],
            embeddings: vec![f32::NAN; n * d],
            bird_logits: vec![f32::NAN; n * g],
        },
        failures: Vec::new(),
    };
    let batch_size = batch_size.max(1);
    let mut start = 0;
    while start < n {
        let end = (start + batch_size).min(n);
        let mut tensors: Vec<f32> = Vec::with_capacity(per * (end - start));
        let mut rows = Vec::new();
        for (i, bbox) in boxes.iter().enumerate().take(end).skip(start) {
            let cut = image_of(i).and_then(|img| {
                let (w, h) = (img.width(), img.height());
                let bbox = bbox.map(|b| in_pixels(b, format, w, h));
                let crop = crop_of(bbox, w, h, rule)?;
                Ok((img, crop))
            });
            match cut {
                Ok((img, crop)) => {
                    let at = tensors.len();
                    tensors.resize(at + per, 0.0);
                    prepare_crop(&img, crop, &clf.manifest.input, &mut tensors[at..]);
                    rows.push(i);
                }
                Err(why) => res.failures.push((i, why)),
            }
        }
        let views: Vec<&[f32]> = tensors.chunks_exact(per).collect();
        let o = clf.infer(&views, keep_embeddings)?;
        for (k, &i) in rows.iter().enumerate() {
            let put = |dst: &mut [f32], src: &[f32], w: usize| {
                if src.len() >= (k + 1) * w {
                    dst[i * w..(i + 1) * w].copy_from_slice(&src[k * w..(k + 1) * w]);
                }
            };
            put(&mut res.outputs.logits, &o.logits, c);
            put(&mut res.outputs.embeddings, &o.embeddings, d);
            put(&mut res.outputs.bird_logits, &o.bird_logits, g);
        }
        start = end;
    }
    Ok(res)
}
