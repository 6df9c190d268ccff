//! The whole per-image pipeline: decode -> detect -> crop -> classify, streamed.
//!
//! Decoding and letterboxing run on worker threads ([`super::ordered_stream`]); inference, the
//! per-image decision and the crop run on the calling thread in input order. Crops wait in a
//! small batch for the classifier; each decoded image is dropped as soon as its crop is cut.

use std::path::PathBuf;

use super::detection::{collect_files, DetectionResults, RunOptions, CATEGORY_FAILED};
use super::ordered_stream;
use crate::classify::{prepare_crop, OnnxClassifier};
use crate::detect::decision::ImageKind;
use crate::detect::detector::{OnnxDetector, PreparedInput};
use crate::detect::DetectorSet;
use crate::error::{Error, ImageError};
use crate::image_io::{read_image, DecodedImage};

/// Results of a pipeline run: the detection columns plus, per image, the classifier's outputs
/// (rows of images without an animal stay zero).
#[derive(Debug, Default, Clone)]
pub struct PipelineResults {
    /// Detection columns and failures.
    pub detection: DetectionResults,
    /// Logits per image (0 when no classifier ran).
    pub num_classes: usize,
    /// Row-major `[images, num_classes]` raw logits.
    pub logits: Vec<f32>,
    /// Embedding width (0 when embeddings were not kept).
    pub embedding_dim: usize,
    /// Row-major `[images, embedding_dim]`.
    pub embeddings: Vec<f32>,
    /// Bird groups (0 without a bird head).
    pub num_bird_groups: usize,
    /// Row-major `[images, num_bird_groups]`.
    pub bird_logits: Vec<f32>,
    /// Whether each image's logits row was filled by the classifier.
    pub classified: Vec<bool>,
}

/// Classification settings of a run.
pub struct ClassifyStage<'a> {
    /// The classifier.
    pub classifier: &'a mut OnnxClassifier,
    /// Crops per inference call.
    pub batch_size: usize,
    /// Keep the embedding of every crop (for re-identification).
    pub keep_embeddings: bool,
}

struct Pending {
    row: usize,
    tensor: Vec<f32>,
}

impl PipelineResults {
    fn push_row(&mut self) {
        self.logits
            .extend(std::iter::repeat_n(0.0, self.num_classes));
        self.embeddings
            .extend(std::iter::repeat_n(0.0, self.embedding_dim));
        self.bird_logits
            .extend(std::iter::repeat_n(0.0, self.num_bird_groups));
        self.classified.push(false);
    }

    fn classify(
        &mut self,
        stage: &mut ClassifyStage<'_>,
        pending: &mut Vec<Pending>,
    ) -> Result<(), Error> {
        if pending.is_empty() {
            return Ok(());
        }
        let tensors: Vec<&[f32]> = pending.iter().map(|p| p.tensor.as_slice()).collect();
        let out = stage.classifier.infer(&tensors, stage.keep_embeddings)?;
        let (c, d, g) = (self.num_classes, self.embedding_dim, self.num_bird_groups);
        for (k, p) in pending.drain(..).enumerate() {
            self.logits[p.row * c..(p.row + 1) * c]
                .copy_from_slice(&out.logits[k * c..(k + 1) * c]);
            if d > 0 {
                self.embeddings[p.row * d..(p.row + 1) * d]
                    .copy_from_slice(&out.embeddings[k * d..(k + 1) * d]);
            }
            if g > 0 {
                self.bird_logits[p.row * g..(p.row + 1) * g]
                    .copy_from_slice(&out.bird_logits[k * g..(k + 1) * g]);
            }
            self.classified[p.row] = true;
        }
        Ok(())
    }
}

type Prepared = Result<(DecodedImage, PreparedInput), ImageError>;

/// Runs detection (and classification when `classify` is given) over files and folders.
/// Per-file problems are rows with [`CATEGORY_FAILED`] and entries in `failures`; the run goes
/// on. `progress(done, total)` may return an error to stop.
pub fn run_pipeline(
    inputs: &[PathBuf],
    set: &mut DetectorSet,
    mut classify: Option<ClassifyStage<'_>>,
    opts: &RunOptions,
    progress: &mut dyn FnMut(usize, usize) -> Result<(), Error>,
) -> Result<PipelineResults, Error> {
    let (files, walk_failures) = collect_files(inputs);
    let mut res = PipelineResults::default();
    res.detection.detector = match &set.secondary {
        Some(s) => format!("{}+{}", set.primary.manifest.id, s.manifest.id),
        None => set.primary.manifest.id.clone(),
    };
    if let Some(stage) = &classify {
        let m = &stage.classifier.manifest;
        res.num_classes = m.num_classes();
        res.embedding_dim = if stage.keep_embeddings {
            m.embedding_dim
        } else {
            0
        };
        res.num_bird_groups = if stage.classifier.has_bird_head() {
            m.bird_head.as_ref().map_or(0, |b| b.num_groups())
        } else {
            0
        };
    }
    let manifest = set.primary.manifest.clone();
    let decode = opts.decode;
    let total = files.len();
    let batch = opts.batch_size.max(1);
    let mut waiting: Vec<(usize, DecodedImage, PreparedInput)> = Vec::with_capacity(batch);
    let mut crops: Vec<Pending> = Vec::new();
    let mut done = 0usize;

    // Detects the waiting images, records them, and cuts the crops of animal images.
    let detect_waiting = |waiting: &mut Vec<(usize, DecodedImage, PreparedInput)>,
                          res: &mut PipelineResults,
                          crops: &mut Vec<Pending>,
                          classify: &mut Option<ClassifyStage<'_>>,
                          set: &mut DetectorSet|
     -> Result<(), Error> {
        if waiting.is_empty() {
            return Ok(());
        }
        let imgs: Vec<&image::RgbImage> = waiting.iter().map(|p| &p.1.image).collect();
        let prepared: Vec<&PreparedInput> = waiting.iter().map(|p| &p.2).collect();
        let dets = set.detect(&imgs, &prepared)?;
        for ((i, img, _), d) in waiting.drain(..).zip(dets) {
            let row = res.detection.len();
            res.detection.push_image(&files[i], &img, d);
            res.push_row();
            if let Some(stage) = classify.as_mut() {
                let crop = res.detection.crop[row];
                if res.detection.category[row] == ImageKind::Animal as u8 && crop[0] >= 0 {
                    let input = &stage.classifier.manifest.input;
                    let mut tensor = vec![0f32; 3 * (input.size * input.size) as usize];
                    prepare_crop(&img.image, crop.map(|v| v as u32), input, &mut tensor);
                    crops.push(Pending { row, tensor });
                    if crops.len() >= stage.batch_size.max(1) {
                        res.classify(stage, crops)?;
                    }
                }
            }
        }
        Ok(())
    };

    ordered_stream(
        total,
        opts.threads,
        opts.window.max(batch),
        |i| -> Prepared {
            let img = read_image(&files[i], &decode)?;
            let input = OnnxDetector::prepare(&manifest, &img.image);
            Ok((img, input))
        },
        |i, item| {
            match item {
                Ok((img, input)) => {
                    waiting.push((i, img, input));
                    if waiting.len() >= batch {
                        detect_waiting(&mut waiting, &mut res, &mut crops, &mut classify, set)?;
                    }
                }
                Err(e) => {
                    // Keep row order: earlier waiting images go first.
                    detect_waiting(&mut waiting, &mut res, &mut crops, &mut classify, set)?;
                    let stage = if e.key() == "io" || e.key() == "empty" {
                        "read"
                    } else {
                        "decode"
                    };
                    res.detection
                        .push_failure(i, &files[i], stage, e.key(), e.to_string());
                    res.push_row();
                }
            }
            done += 1;
            progress(done, total)
        },
    )?;
    detect_waiting(&mut waiting, &mut res, &mut crops, &mut classify, set)?;
    if let Some(stage) = classify.as_mut() {
        res.classify(stage, &mut crops)?;
    }
    res.detection.failures.extend(walk_failures);
    debug_assert!(
        res.detection
            .category
            .iter()
            .filter(|&&c| c == CATEGORY_FAILED)
            .count()
            <= res.detection.len()
    );
    Ok(res)
}
