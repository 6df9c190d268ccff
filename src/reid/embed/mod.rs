//! Embedding stage: animal crops to one vector each, with any ONNX model a manifest describes.
//!
//! Per crop: cut the box from the full-resolution image, optional CLAHE ([`clahe_rgb`]), resize
//! to the model's square input (squash, or long side + centred padding), scale and normalise per
//! channel, run the model in batches, optionally L2-normalise. Boxes come from the detector
//! (DeepFaune's square crops) or from the caller, in pixels or MegaDetector's normalised
//! `[x, y, w, h]`. Per-image problems (unreadable file, empty box) are returned as failures,
//! with a NaN row in the matrix so rows stay aligned with the inputs.

mod clahe;

use std::path::PathBuf;

use image::RgbImage;
use ort::session::Session;
use ort::value::TensorRef;
use rayon::prelude::*;

pub use crate::manifest::embedding::{
    builtin_embedder, ClaheParams, EmbeddingInput, EmbeddingManifest, EmbeddingOutput, ResizePolicy,
};
pub use clahe::{clahe_gray, clahe_rgb};

use crate::detect::decision::crop_square_f64;
use crate::error::{Error, ModelError};
use crate::image_io::decode::{read_image, DecodeOptions};
use crate::manifest::{verify_sha256, ResizeMethod};
use crate::preprocess::resize::{resize_cv2_linear, resize_pil, PilFilter, Rect};
use crate::runtime::{new_session, ModelSource, SessionOptions};

/// How the caller's boxes are expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoxFormat {
    /// `[x1, y1, x2, y2]` in pixels of the (EXIF-rotated) image, as the detector's crop boxes.
    PixelsXyxy,
    /// `[x, y, w, h]` as fractions of the image size (MegaDetector batch JSON).
    NormalizedXywh,
}

/// A crop to embed: the whole image, or a box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CropBox {
    /// The whole image.
    Full,
    /// A box in the given format; `square` grows it to a square around its centre first, as
    /// DeepFaune crops for its classifier.
    Box {
        /// The coordinates (`f64`: fractions from a MegaDetector file keep their precision).
        coords: [f64; 4],
        /// Their format.
        format: BoxFormat,
        /// Square the box first.
        square: bool,
    },
}

/// The pixel rectangle of a crop in an image of `w` x `h`, or why there is none.
pub fn crop_rect(crop: &CropBox, w: u32, h: u32) -> Result<Rect, String> {
    let (fw, fh) = (w as f64, h as f64);
    let (coords, format, square) = match crop {
        CropBox::Full => return Ok(Rect { x: 0, y: 0, w, h }),
        CropBox::Box {
            coords,
            format,
            square,
        } => (coords, format, square),
    };
    if coords.iter().all(|v| v.is_nan()) {
        return Err("no box for this image (the detector found no animal)".into());
    }
    if coords.iter().any(|v| !v.is_finite()) {
        return Err(format!("box {coords:?} is not finite"));
    }
    let xyxy = match format {
        BoxFormat::PixelsXyxy => *coords,
        BoxFormat::NormalizedXywh => {
            let [x, y, bw, bh] = *coords;
            [x * fw, y * fh, (x + bw) * fw, (y + bh) * fh]
        }
    };
    let b = if *square {
        crop_square_f64(xyxy, w, h)
    } else {
        let x1 = xyxy[0].max(0.0).floor() as u32;
        let y1 = xyxy[1].max(0.0).floor() as u32;
        let x2 = (xyxy[2].min(fw).ceil().max(0.0) as u32).min(w);
        let y2 = (xyxy[3].min(fh).ceil().max(0.0) as u32).min(h);
        (x2 > x1 && y2 > y1).then_some([x1, y1, x2, y2])
    };
    let [x1, y1, x2, y2] =
        b.ok_or_else(|| format!("box {coords:?} leaves nothing of a {w}x{h} image"))?;
    Ok(Rect {
        x: x1,
        y: y1,
        w: x2 - x1,
        h: y2 - y1,
    })
}

/// The model's CHW input tensor for one crop.
pub fn prepare_crop(input: &EmbeddingInput, img: &RgbImage, rect: Rect) -> Vec<f32> {
    let owned;
    let (src, rect) = match input.clahe {
        Some(c) => {
            let cut = image::imageops::crop_imm(img, rect.x, rect.y, rect.w, rect.h).to_image();
            owned = clahe_rgb(&cut, c.clip_limit, c.tile_grid);
            (&owned, Rect::full(&owned))
        }
        None => (img, rect),
    };
    let s = input.size;
    let (nw, nh) = match input.resize {
        ResizePolicy::Squash => (s, s),
        ResizePolicy::PadSquare => {
            let scale = s as f64 / rect.w.max(rect.h) as f64;
            let f = |v: u32| ((v as f64 * scale).round() as u32).clamp(1, s);
            (f(rect.w), f(rect.h))
        }
    };
    let resized = match input.resampler {
        ResizeMethod::PilBicubic => resize_pil(src, rect, nw, nh, PilFilter::Bicubic),
        ResizeMethod::PilBilinear => resize_pil(src, rect, nw, nh, PilFilter::Bilinear),
        ResizeMethod::Cv2Linear => {
            let cut = image::imageops::crop_imm(src, rect.x, rect.y, rect.w, rect.h).to_image();
            resize_cv2_linear(&cut, nw, nh)
        }
    };
    // albumentations PadIfNeeded: the odd pixel of padding goes bottom/right.
    let (left, top) = ((s - nw) / 2, (s - nh) / 2);
    let plane = (s * s) as usize;
    let mut t = vec![0f32; 3 * plane];
    for c in 0..3 {
        let pad = (input.pad_value as f32 * input.scale - input.mean[c]) / input.std[c];
        t[c * plane..(c + 1) * plane].fill(pad);
    }
    for (x, y, p) in resized.enumerate_pixels() {
        let i = ((y + top) * s + x + left) as usize;
        for c in 0..3 {
            t[c * plane + i] = (p.0[c] as f32 * input.scale - input.mean[c]) / input.std[c];
        }
    }
    t
}

/// Where a manifest's weights are: an explicit file, else the manifest's expected path
/// (checksum verified when the manifest pins one).
pub fn embedder_source(
    m: &EmbeddingManifest,
    weights: Option<PathBuf>,
) -> Result<ModelSource, ModelError> {
    let p = weights.unwrap_or_else(|| m.weights_path());
    if !p.is_file() {
        return Err(ModelError::WeightsMissing {
            path: p,
            hint: format!("put {} there, or pass its path", m.file),
        });
    }
    verify_sha256(&p, &m.sha256)?;
    Ok(ModelSource::File(p))
}

/// An embedding model and its manifest.
pub struct Embedder {
    /// The manifest.
    pub manifest: EmbeddingManifest,
    session: Session,
    input_name: String,
    output_name: String,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("id", &self.manifest.id)
            .finish()
    }
}

/// Embeddings of a batch of files, aligned with the inputs.
#[derive(Debug, Clone, Default)]
pub struct EmbedResults {
    /// Row-major `[n, dim]`; NaN rows for failed inputs.
    pub embeddings: Vec<f32>,
    /// The dimension.
    pub dim: usize,
    /// `(input index, reason)` for each input that could not be embedded.
    pub failures: Vec<(usize, String)>,
}

impl Embedder {
    /// Loads the model and checks its input and output names against the manifest.
    pub fn new(
        manifest: EmbeddingManifest,
        source: &ModelSource,
        opts: SessionOptions,
    ) -> Result<Self, Error> {
        let session = new_session(source, opts)?;
        let pick =
            |want: &Option<String>, have: Vec<String>, what: &str| -> Result<String, ModelError> {
                let name = match want {
                    Some(n) => n.clone(),
                    None => have
                        .first()
                        .cloned()
                        .ok_or_else(|| ModelError::Mismatch(format!("model has no {what}")))?,
                };
                if !have.contains(&name) {
                    return Err(ModelError::Mismatch(format!(
                        "no {what} named '{name}' (model has {have:?})"
                    )));
                }
                Ok(name)
            };
        let ins = session
            .inputs()
            .iter()
            .map(|i| i.name().to_string())
            .collect();
        let outs = session
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        let input_name = pick(&manifest.input.name, ins, "input")?;
        let output_name = pick(&manifest.output.name, outs, "output")?;
        Ok(Embedder {
            manifest,
            session,
            input_name,
            output_name,
        })
    }

    /// Runs prepared tensors (from [`prepare_crop`]) in one batch; returns `[n, dim]`.
    pub fn embed_tensors(&mut self, tensors: &[Vec<f32>]) -> Result<Vec<f32>, Error> {
        if tensors.is_empty() {
            return Ok(Vec::new());
        }
        let s = self.manifest.input.size as usize;
        let per = 3 * s * s;
        if let Some(t) = tensors.iter().find(|t| t.len() != per) {
            return Err(Error::InvalidArgument(format!(
                "tensor of {} values, expected {per}",
                t.len()
            )));
        }
        let data: Vec<f32> = tensors.concat();
        let n = tensors.len();
        let input = TensorRef::from_array_view(([n, 3, s, s], data.as_slice()))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => input])?;
        let (shape, values) = outputs[self.output_name.as_str()].try_extract_tensor::<f32>()?;
        let dim = self.manifest.output.dim;
        if shape.len() != 2 || shape[0] as usize != n || shape[1] as usize != dim {
            return Err(ModelError::Mismatch(format!(
                "output shape {shape:?}, manifest says [{n}, {dim}]"
            ))
            .into());
        }
        let mut out = values.to_vec();
        if self.manifest.output.l2_normalize {
            for row in out.chunks_mut(dim) {
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                if norm > 0.0 {
                    row.iter_mut().for_each(|v| *v /= norm);
                }
            }
        }
        Ok(out)
    }

    /// Embeds one crop per file: decoding and preprocessing in parallel, inference in batches of
    /// `batch_size`. `crops` is empty (whole images) or one entry per file.
    pub fn embed_files(
        &mut self,
        paths: &[PathBuf],
        crops: &[CropBox],
        batch_size: usize,
    ) -> Result<EmbedResults, Error> {
        if !crops.is_empty() && crops.len() != paths.len() {
            return Err(Error::InvalidArgument(format!(
                "{} boxes for {} files",
                crops.len(),
                paths.len()
            )));
        }
        let dim = self.manifest.output.dim;
        let mut res = EmbedResults {
            embeddings: vec![f32::NAN; paths.len() * dim],
            dim,
            failures: Vec::new(),
        };
        let input = self.manifest.input.clone();
        for start in (0..paths.len()).step_by(batch_size.max(1)) {
            let end = (start + batch_size.max(1)).min(paths.len());
            let prepared: Vec<Result<Vec<f32>, String>> = crate::parallel::install(|| {
                (start..end)
                    .into_par_iter()
                    .map(|i| {
                        let img = read_image(&paths[i], &DecodeOptions::default())
                            .map_err(|e| e.to_string())?
                            .image;
                        let crop = crops.get(i).copied().unwrap_or(CropBox::Full);
                        let rect = crop_rect(&crop, img.width(), img.height())?;
                        Ok(prepare_crop(&input, &img, rect))
                    })
                    .collect()
            });
            let mut ok_idx = Vec::new();
            let mut tensors = Vec::new();
            for (j, p) in prepared.into_iter().enumerate() {
                match p {
                    Ok(t) => {
                        ok_idx.push(start + j);
                        tensors.push(t);
                    }
                    Err(reason) => res.failures.push((start + j, reason)),
                }
            }
            let out = self.embed_tensors(&tensors)?;
            for (row, &i) in out.chunks(dim).zip(&ok_idx) {
                res.embeddings[i * dim..(i + 1) * dim].copy_from_slice(row);
            }
        }
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(resize: ResizePolicy) -> EmbeddingInput {
        EmbeddingInput {
            name: None,
            size: 8,
            resize,
            resampler: ResizeMethod::PilBicubic,
            pad_value: 0,
            scale: 1.0,
            mean: [0.0; 3],
            std: [1.0, 2.0, 1.0],
            clahe: None,
        }
    }

    #[test]
    fn pad_square_centres_and_pads() {
        // A 16x8 white crop: resized to 8x4, padded with 2 rows above and below.
        let img = RgbImage::from_pixel(16, 8, image::Rgb([255, 255, 255]));
        let t = prepare_crop(&input(ResizePolicy::PadSquare), &img, Rect::full(&img));
        assert_eq!(t.len(), 3 * 64);
        let row = |c: usize, y: usize| &t[c * 64 + y * 8..c * 64 + y * 8 + 8];
        assert!(row(0, 1).iter().all(|&v| v == 0.0));
        assert!(row(0, 2).iter().all(|&v| v == 255.0));
        assert!(
            row(1, 5).iter().all(|&v| v == 127.5),
            "std applies per channel"
        );
        assert!(row(0, 6).iter().all(|&v| v == 0.0));
        let sq = prepare_crop(&input(ResizePolicy::Squash), &img, Rect::full(&img));
        assert!(sq[..64].iter().all(|&v| v == 255.0));
    }

    /// Issue 18: a MegaDetector box's fractions become pixels in float64, as Python computes
    /// them: 0.4775 of 800 px is 382 (0.4775 as f32 is 0.47749999: 381.99999 px, floored to 381).
    #[test]
    fn normalised_boxes_are_converted_in_float64() {
        let r = crop_rect(
            &CropBox::Box {
                coords: [0.4775, 0.4775, 0.1, 0.1],
                format: BoxFormat::NormalizedXywh,
                square: false,
            },
            800,
            800,
        )
        .unwrap();
        assert_eq!((r.x, r.y), (382, 382));
    }

    #[test]
    fn crop_rects() {
        let r = crop_rect(
            &CropBox::Box {
                coords: [0.25, 0.5, 0.5, 0.25],
                format: BoxFormat::NormalizedXywh,
                square: false,
            },
            100,
            40,
        )
        .unwrap();
        assert_eq!(
            r,
            Rect {
                x: 25,
                y: 20,
                w: 50,
                h: 10
            }
        );
        let s = crop_rect(
            &CropBox::Box {
                coords: [10.0, 50.0, 110.0, 90.0],
                format: BoxFormat::PixelsXyxy,
                square: true,
            },
            1000,
            1000,
        )
        .unwrap();
        assert_eq!(
            s,
            Rect {
                x: 10,
                y: 20,
                w: 100,
                h: 100
            }
        );
        assert!(crop_rect(
            &CropBox::Box {
                coords: [5.0, 5.0, 5.0, 9.0],
                format: BoxFormat::PixelsXyxy,
                square: false
            },
            10,
            10
        )
        .is_err());
        assert!(crop_rect(
            &CropBox::Box {
                coords: [f64::NAN, 0.0, 1.0, 1.0],
                format: BoxFormat::PixelsXyxy,
                square: false
            },
            10,
            10
        )
        .is_err());
    }

    #[test]
    fn embeds_with_the_shared_model_when_available() {
        let Some(model) = shared_model() else { return };
        if crate::runtime::environment().is_err() {
            return;
        }
        let m = builtin_embedder("yolox-embed").unwrap();
        let mut e = Embedder::new(m, &ModelSource::File(model), SessionOptions::default()).unwrap();
        let a = RgbImage::from_fn(300, 200, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let t = prepare_crop(&e.manifest.input, &a, Rect::full(&a));
        let out = e.embed_tensors(&[t.clone(), t]).unwrap();
        assert_eq!(out.len(), 2 * 672);
        let norm: f32 = out[..672].iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "the model L2-normalises: {norm}");
        assert_eq!(out[..672], out[672..]);
    }

    fn shared_model() -> Option<PathBuf> {
        let root = std::env::var_os("DEEPFAUNE_SHARED")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
        let p = root.join("models/yolox_tiny_backbone_embed.onnx");
        p.is_file().then_some(p)
    }
}
