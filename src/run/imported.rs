//! Someone else's boxes as the detection step: classify, and hand over for sequences, the
//! images of a MegaDetector file (MegaDetector v5/v1000, SpeciesNet's MegaDetector-format
//! output, our own) without detecting again.
//!
//! The rows and decisions come from [`ImportedDetections`] (read with its [`JsonRules`]); this
//! run only cuts and classifies the crops of animal images, streamed like a detection run:
//! worker threads decode the images that need a crop (with or without their EXIF orientation,
//! as the rules say) and prepare the classifier input, the calling thread runs the classifier
//! in batches, in row order, with at most `window` images in flight. Progress is reported per
//! row, rows are appended to a checkpoint as soon as they are complete, and on resume the rows
//! it holds are taken back instead of being decoded. An image that cannot be decoded becomes a
//! failure row, and the run goes on.

use std::collections::HashMap;
use std::path::PathBuf;

use super::checkpoint::{self, resume_key, FileIdentity, Record};
use super::detection::{DetectionResults, RunOptions};
use super::ordered_stream;
use super::pipeline::{append_rows, ClassifyStage, Pending, PipelineResults, Resume};
use crate::classify::prepare_crop;
use crate::detect::decision::ImageKind;
use crate::error::{Error, ImageError};
use crate::image_io::{read_image, read_image_as_stored};
use crate::import::megadetector::{ImportedDetections, JsonRules};

/// What a worker made of one row.
enum Prepared {
    /// The classifier input of the row's crop.
    Crop(Vec<f32>),
    /// The image that needed a crop could not be read or decoded.
    Failed(ImageError),
    /// Nothing to decode (empty, human, vehicle, failed rows).
    Pass,
    /// The checkpoint holds the row.
    Restored,
}

impl DetectionResults {
    /// Appends a copy of row `i` of `src` (its boxes and its failure, if any).
    pub(crate) fn push_copy(&mut self, src: &DetectionResults, i: usize) {
        let row = self.paths.len();
        let first_src = src.det_image.partition_point(|&r| (r as usize) < i);
        let end_src = src.det_image.partition_point(|&r| (r as usize) <= i);
        let first = self.det_conf.len() as i64;
        self.paths.push(src.paths[i].clone());
        self.width.push(src.width[i]);
        self.height.push(src.height[i]);
        self.date.push(src.date[i].clone());
        self.category.push(src.category[i]);
        self.count.push(src.count[i]);
        self.humancount.push(src.humancount[i]);
        self.crop.push(src.crop[i]);
        self.best_detection.push(if src.best_detection[i] >= 0 {
            first + (src.best_detection[i] - first_src as i64)
        } else {
            -1
        });
        for k in first_src..end_src {
            self.det_image.push(row as u32);
            self.det_xyxy.push(src.det_xyxy[k]);
            self.det_conf.push(src.det_conf[k]);
            self.det_category.push(src.det_category[k]);
        }
        for f in src.failures.iter().filter(|f| f.index == Some(i)) {
            let mut f = f.clone();
            f.index = Some(row);
            self.failures.push(f);
        }
    }
}

/// A short digest of imported detections (rows, decisions, boxes, rules), for the checkpoint
/// fingerprint: a checkpoint made from other boxes is refused.
pub fn digest(imported: &ImportedDetections) -> String {
    use sha2::{Digest, Sha256};
    let r = &imported.results;
    let mut h = Sha256::new();
    h.update(imported.rules.name().as_bytes());
    h.update(imported.threshold.to_le_bytes());
    for i in 0..r.len() {
        h.update(checkpoint::path_key(&r.paths[i]).0.as_bytes());
        h.update([0u8, r.category[i]]);
        for v in [r.width[i], r.height[i], r.count[i], r.humancount[i]] {
            h.update(v.to_le_bytes());
        }
        for v in r.crop[i] {
            h.update(v.to_le_bytes());
        }
        h.update(r.best_detection[i].to_le_bytes());
    }
    for k in 0..r.det_conf.len() {
        h.update(r.det_image[k].to_le_bytes());
        for v in r.det_xyxy[k] {
            h.update(v.to_bits().to_le_bytes());
        }
        h.update(r.det_conf[k].to_bits().to_le_bytes());
        h.update([r.det_category[k]]);
    }
    h.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Classifies the animal crops of `imported` and returns the rows as a pipeline run gives them
/// (sequences are made from them by the caller, as for a detection run). `progress(done,
/// total)` is called after each row and may return an error to stop. With `resume`, rows
/// already in the checkpoint are taken back from it, and every new row is appended to it.
pub fn run_imported(
    imported: &ImportedDetections,
    mut classify: ClassifyStage<'_>,
    opts: &RunOptions,
    progress: &mut dyn FnMut(usize, usize) -> Result<(), Error>,
    resume: Option<Resume<'_>>,
) -> Result<PipelineResults, Error> {
    let src = &imported.results;
    let n = src.len();
    let (mut checkpoint, mut done_before, finish) = match resume {
        Some(r) => (Some(r.checkpoint), r.done, r.finish),
        None => (None, HashMap::<String, Record>::new(), false),
    };
    let mut res = PipelineResults::for_classifier(
        format!(
            "imported ({}, {} rules)",
            src.detector,
            imported.rules.name()
        ),
        &classify,
    );
    done_before.retain(|_, rec| res.check_record(rec).is_ok());
    let input = classify.classifier.manifest.input.clone();
    let decode = opts.decode;
    let as_stored = imported.rules == JsonRules::DeepFaune;
    let batch = classify.batch_size.max(1);
    let mut crops: Vec<Pending> = Vec::new();
    // Per row: `None` for a row taken from the checkpoint, else its file's identity (see
    // `append_rows`); files the checkpoint held under another identity are processed again.
    let mut identities: Vec<Option<Option<FileIdentity>>> = Vec::new();
    let mut changed: Vec<PathBuf> = Vec::new();
    let checkpointing = checkpoint.is_some();
    let mut recorded = 0usize;

    let prepare_row = |i: usize| -> Prepared {
        let crop = src.crop[i];
        if src.category[i] != ImageKind::Animal as u8 || crop[0] < 0 {
            return Prepared::Pass;
        }
        let read = if as_stored {
            read_image_as_stored(&src.paths[i], &decode)
        } else {
            read_image(&src.paths[i], &decode)
        };
        let img = match read {
            Ok(img) => img,
            Err(e) => return Prepared::Failed(e),
        };
        let (w, h) = img.image.dimensions();
        if (w, h) != (src.width[i], src.height[i]) {
            return Prepared::Failed(ImageError::Corrupt(format!(
                "the image is {w}x{h} but was {}x{} when its boxes were read (changed since?)",
                src.width[i], src.height[i]
            )));
        }
        let crop = crop.map(|v| v as u32);
        if crop[2] > w || crop[3] > h || crop[0] >= crop[2] || crop[1] >= crop[3] {
            return Prepared::Failed(ImageError::Corrupt(format!(
                "crop {crop:?} does not fit the {w}x{h} image"
            )));
        }
        let mut tensor = vec![0f32; 3 * (input.size * input.size) as usize];
        prepare_crop(&img.image, crop, &input, &mut tensor);
        Prepared::Crop(tensor)
    };
    let prepare = |i: usize, _: &usize| -> (Prepared, Option<FileIdentity>, bool) {
        let identity = if checkpointing {
            FileIdentity::of(&src.paths[i])
        } else {
            None
        };
        let mut replaced = false;
        if let Some(rec) = done_before.get(&resume_key(&src.paths[i])) {
            if identity.is_some() && rec.identity == identity {
                return (Prepared::Restored, None, false);
            }
            replaced = true;
        }
        (prepare_row(i), identity, replaced)
    };

    ordered_stream(
        0..n,
        opts.threads,
        opts.window.max(batch),
        None,
        prepare,
        |i, _, (item, identity, replaced)| {
            if replaced {
                changed.push(src.paths[i].clone());
            }
            match &item {
                Prepared::Restored => identities.push(None),
                _ => identities.push(Some(identity)),
            }
            match item {
                Prepared::Restored => {
                    let rec = &done_before[&resume_key(&src.paths[i])];
                    res.push_record(rec)?;
                }
                Prepared::Pass => {
                    res.detection.push_copy(src, i);
                    res.push_row();
                }
                Prepared::Crop(tensor) => {
                    let row = res.len();
                    res.detection.push_copy(src, i);
                    res.push_row();
                    crops.push(Pending { row, tensor });
                    if crops.len() >= batch {
                        res.classify(&mut classify, &mut crops)?;
                    }
                }
                Prepared::Failed(e) => {
                    let stage = if e.key() == "io" || e.key() == "empty" {
                        "read"
                    } else {
                        "decode"
                    };
                    let row = res.len();
                    res.detection
                        .push_failure(row, &src.paths[i], stage, e.key(), e.to_string());
                    res.detection.date[row] = src.date[i].clone();
                    if as_stored {
                        // DeepFaune: an animal image it cannot read is empty but keeps its count.
                        res.detection.count[row] = src.count[i];
                    }
                    res.push_row();
                }
            }
            if let Some(c) = checkpoint.as_mut() {
                let complete = crops.first().map_or(res.len(), |c| c.row);
                append_rows(c, &res, &identities, &mut recorded, complete)?;
            }
            progress(i + 1, n)
        },
    )?;
    res.classify(&mut classify, &mut crops)?;
    if let Some(c) = checkpoint.as_mut() {
        append_rows(c, &res, &identities, &mut recorded, res.len())?;
        if finish {
            c.finish(res.len())?;
        }
    }
    res.changed_since_checkpoint = changed;
    // Rows the rules dropped (DeepFaune drops the file's failure rows) are listed without a row.
    res.detection
        .failures
        .extend(src.failures.iter().filter(|f| f.index.is_none()).cloned());
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Detection;
    use crate::manifest::Category;
    use std::path::Path;

    #[test]
    fn push_copy_keeps_boxes_best_box_and_failures() {
        let mut src = DetectionResults::default();
        let det = |x: f32, conf: f32, category| Detection {
            bbox: [x, 0.0, x + 10.0, 10.0],
            conf,
            category,
        };
        src.push_row(Path::new("a.jpg"), 100, 100, None, vec![]);
        src.push_row(
            Path::new("b.jpg"),
            100,
            100,
            None,
            vec![
                det(0.0, 0.9, Category::Person),
                det(5.0, 0.6, Category::Animal),
            ],
        );
        src.push_failure(2, Path::new("c.jpg"), "read", "io", "gone".into());
        let mut out = DetectionResults::default();
        // Copy b, then c, then a: rows, boxes and failure indices follow the new order.
        for i in [1, 2, 0] {
            out.push_copy(&src, i);
        }
        assert_eq!(
            out.paths,
            [Path::new("b.jpg"), Path::new("c.jpg"), Path::new("a.jpg")]
        );
        assert_eq!(out.det_image, [0, 0]);
        assert_eq!(out.best_detection, [1, -1, -1]);
        assert_eq!(out.det_xyxy[1], [5.0, 0.0, 15.0, 10.0]);
        assert_eq!(out.category, [1, 255, 0]);
        assert_eq!(out.failures.len(), 1);
        assert_eq!(out.failures[0].index, Some(1));
    }
}
