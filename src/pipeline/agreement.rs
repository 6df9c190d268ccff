//! fp32 against int8 on the user's own images (`deepfaune-rs agreement FOLDER`): both
//! precisions run the same sample of images through the same detector (and classifier), one
//! after the other, and [`Report`] says how often they agree (the figures are
//! `crate::results::agreement`'s).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use super::{Detectors, Pipeline, PipelineOptions};
use crate::detect::loader::{load, LoadOptions};
use crate::error::Error;
use crate::image_io::walk::image_files;
use crate::results::agreement::{
    argmax_rows, classification_agreement, detection_agreement, Classifications, Decisions, Report,
};
use crate::run::{detect_files, DetectionResults, RunOptions};
use crate::runtime::{Device, SessionOptions};

/// What to compare.
#[derive(Debug, Clone, PartialEq)]
pub struct AgreementOptions {
    /// Images compared, evenly spread over the sorted walk (None: all).
    pub sample: Option<usize>,
    /// Detector or mode.
    pub detector: String,
    /// Classifier (None: the detector alone).
    pub classifier: Option<String>,
    /// Where the models run (`cpu`, `cuda`, ...).
    pub device: String,
}

/// One run's columns, image by image.
struct Columns {
    category: Vec<u8>,
    best_detection: Vec<i64>,
    boxes: Vec<[f64; 4]>,
    /// Classified, top-1 class, sequence prediction (with a classifier).
    classes: Option<(Vec<bool>, Vec<usize>, Vec<String>)>,
}

impl Columns {
    fn of(d: &DetectionResults) -> Self {
        Columns {
            category: d.category.clone(),
            best_detection: d.best_detection.clone(),
            boxes: d.det_xyxy.iter().map(|b| b.map(f64::from)).collect(),
            classes: None,
        }
    }

    fn decisions(&self) -> Decisions<'_> {
        Decisions {
            category: &self.category,
            best_detection: &self.best_detection,
            boxes: &self.boxes,
        }
    }

    fn classifications(&self) -> Option<Classifications<'_>> {
        self.classes.as_ref().map(|(c, t, p)| Classifications {
            classified: c,
            top1: t,
            prediction: p,
        })
    }
}

/// A run's `(done, total)` callback; an error (Ctrl-C in the host) stops it.
pub type Progress<'a> = &'a mut dyn FnMut(usize, usize) -> Result<(), Error>;

/// Runs `files` at one precision; the columns and the seconds taken, model loading included.
fn run_once(
    files: &[PathBuf],
    opts: &AgreementOptions,
    int8: bool,
    progress: Progress<'_>,
) -> Result<(Columns, f64), Error> {
    let t0 = Instant::now();
    let session = SessionOptions {
        device: Device::parse(&opts.device)?,
        int8,
        ..SessionOptions::default()
    };
    let load_opts = LoadOptions {
        threshold: None,
        weights: HashMap::new(),
        manifest: None,
        session: session.clone(),
    };
    let mut set = load(&opts.detector, None, None, &load_opts)?;
    let run = RunOptions::default();
    let columns = match &opts.classifier {
        None => Columns::of(&detect_files(files, &mut set, &run, progress, &[])?),
        Some(classifier) => {
            let popts = PipelineOptions {
                classifier: classifier.clone(),
                session,
                ..PipelineOptions::default()
            };
            let pipeline = Pipeline::new(Some(Detectors::new(set, run)), &popts)?;
            let done = pipeline
                .models(true)
                .run(files, false, None, None, progress)?;
            let r = &done.results;
            let mut c = Columns::of(&r.detection);
            let top1 = argmax_rows(&r.logits, r.num_classes);
            let n = c.category.len();
            if r.classified.len() != n || top1.len() != n {
                return Err(Error::InvalidArgument(
                    "classifier columns of another length than the images".into(),
                ));
            }
            c.classes = Some((
                r.classified.clone(),
                top1,
                done.decided.text.prediction.clone(),
            ));
            c
        }
    };
    Ok((columns, t0.elapsed().as_secs_f64()))
}

/// Seconds rounded to 0.01, as the report shows them.
fn centis(s: f64) -> f64 {
    (s * 100.0).round() / 100.0
}

/// Runs the sample of `inputs` at fp32 then at int8 and compares them. No image file is an
/// [`Error::InvalidArgument`]; a missing int8 variant is the loader's missing-weights error
/// naming the command that makes it. `progress` is called as each run goes (`(done, total)`
/// images of that run); its error stops the comparison.
pub fn agreement(
    inputs: &[PathBuf],
    opts: &AgreementOptions,
    progress: Progress<'_>,
) -> Result<Report, Error> {
    let files = image_files(inputs, opts.sample);
    if files.is_empty() {
        let names: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
        return Err(Error::InvalidArgument(format!(
            "no image files in {}",
            names.join(", ")
        )));
    }
    let (fp32, s32) = run_once(&files, opts, false, &mut *progress)?;
    let (int8, s8) = run_once(&files, opts, true, progress)?;
    if fp32.category.len() != int8.category.len() {
        return Err(Error::InvalidArgument(
            "the two runs have different numbers of images".into(),
        ));
    }
    let classification = match (fp32.classifications(), int8.classifications()) {
        (Some(a), Some(b)) => Some(classification_agreement(
            &fp32.decisions(),
            &int8.decisions(),
            &a,
            &b,
        )),
        _ => None,
    };
    Ok(Report {
        detector: opts.detector.clone(),
        classifier: opts.classifier.clone(),
        detection: detection_agreement(&fp32.decisions(), &int8.decisions()),
        classification,
        fp32_seconds: centis(s32),
        int8_seconds: centis(s8),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_kept_to_the_hundredth() {
        assert_eq!(centis(1.234_9), 1.23);
    }

    #[test]
    fn no_image_is_an_invalid_argument() {
        let dir = tempfile::tempdir().unwrap();
        let opts = AgreementOptions {
            sample: None,
            detector: "md-lite".into(),
            classifier: None,
            device: "cpu".into(),
        };
        let e = agreement(&[dir.path().to_path_buf()], &opts, &mut |_, _| Ok(())).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "invalid argument: no image files in {}",
                dir.path().display()
            )
        );
    }
}
