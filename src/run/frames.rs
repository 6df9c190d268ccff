//! Frames held in memory (the sampled frames of a video) through the same detect -> decide ->
//! crop -> classify steps as image files, with one result row per frame.
//!
//! The frames arrive decoded (the Python layer extracts them), so there is no decode stage:
//! letterboxing runs in parallel, inference on the calling thread, in frame order.

use std::path::Path;

use image::RgbImage;
use rayon::prelude::*;

use super::pipeline::{ClassifyStage, PipelineResults};
use crate::classify::prepare_crop;
use crate::detect::decision::ImageKind;
use crate::detect::detector::OnnxDetector;
use crate::detect::DetectorSet;
use crate::error::Error;
use crate::image_io::{DecodedImage, ExifInfo};

/// Runs detection (and classification when `classify` is given) on `frames`, `batch_size` frames
/// per detector call. Every row's path is `source` (the video) and it has no date; the columns are
/// those of [`PipelineResults`], one row per frame in order.
pub fn run_frames(
    frames: Vec<RgbImage>,
    source: &Path,
    set: &mut DetectorSet,
    mut classify: Option<ClassifyStage<'_>>,
    batch_size: usize,
) -> Result<PipelineResults, Error> {
    let mut res = PipelineResults::for_run(set, classify.as_ref());
    let manifest = set.primary.manifest.clone();
    let prepared: Vec<_> = crate::parallel::install(|| {
        frames
            .par_iter()
            .map(|f| OnnxDetector::prepare(&manifest, f))
            .collect()
    });
    let mut crops: Vec<(usize, Vec<f32>)> = Vec::new();
    let batch = batch_size.max(1);
    let mut frames = frames.into_iter();
    for chunk in prepared.chunks(batch) {
        let images: Vec<DecodedImage> = frames
            .by_ref()
            .take(chunk.len())
            .map(|image| DecodedImage {
                image,
                exif: ExifInfo::default(),
            })
            .collect();
        let refs: Vec<&RgbImage> = images.iter().map(|d| &d.image).collect();
        let inputs: Vec<_> = chunk.iter().collect();
        let dets = set.detect(&refs, &inputs)?;
        for (img, d) in images.iter().zip(dets) {
            let row = res.detection.len();
            res.detection.push_image(source, img, d);
            push_empty_row(&mut res);
            let crop = res.detection.crop[row];
            let Some(stage) = classify.as_mut() else {
                continue;
            };
            if res.detection.category[row] == ImageKind::Animal as u8 && crop[0] >= 0 {
                let input = &stage.classifier.manifest.input;
                let mut tensor = vec![0f32; 3 * (input.size * input.size) as usize];
                prepare_crop(&img.image, crop.map(|v| v as u32), input, &mut tensor);
                crops.push((row, tensor));
                if crops.len() >= stage.batch_size.max(1) {
                    classify_crops(&mut res, stage, &mut crops)?;
                }
            }
        }
    }
    if let Some(stage) = classify.as_mut() {
        classify_crops(&mut res, stage, &mut crops)?;
    }
    Ok(res)
}

fn push_empty_row(res: &mut PipelineResults) {
    res.logits.extend(std::iter::repeat_n(0.0, res.num_classes));
    res.embeddings
        .extend(std::iter::repeat_n(0.0, res.embedding_dim));
    res.bird_logits
        .extend(std::iter::repeat_n(0.0, res.num_bird_groups));
    res.classified.push(false);
}

fn classify_crops(
    res: &mut PipelineResults,
    stage: &mut ClassifyStage<'_>,
    crops: &mut Vec<(usize, Vec<f32>)>,
) -> Result<(), Error> {
    if crops.is_empty() {
        return Ok(());
    }
    let tensors: Vec<&[f32]> = crops.iter().map(|(_, t)| t.as_slice()).collect();
    let out = stage.classifier.infer(&tensors, stage.keep_embeddings)?;
    let (c, d, g) = (res.num_classes, res.embedding_dim, res.num_bird_groups);
    for (k, (row, _)) in crops.drain(..).enumerate() {
        res.logits[row * c..(row + 1) * c].copy_from_slice(&out.logits[k * c..(k + 1) * c]);
        if d > 0 {
            res.embeddings[row * d..(row + 1) * d]
                .copy_from_slice(&out.embeddings[k * d..(k + 1) * d]);
        }
        if g > 0 {
            res.bird_logits[row * g..(row + 1) * g]
                .copy_from_slice(&out.bird_logits[k * g..(k + 1) * g]);
        }
        res.classified[row] = true;
    }
    Ok(())
}
