//! Stage 6 (sequence): sequences. Images taken in a burst are judged together (SPEC 2.4).
//!
//! - [`grouping`]: cutting the images into sequences (per folder, by date, `maxlag_s`).
//! - [`label`]: what a prediction says, and its name in each language.
//! - [`aggregate`]: DeepFaune's averaging of logits over images into one prediction, used for
//!   single images ("base" results), sequences and video frames alike.
//! - [`video`]: one prediction per video from its sampled frames (counts, keyframe).
//!
//! [`predict_all`] does both for a whole run and returns, for every image, its sequence number,
//! its own prediction and its sequence's prediction.
//!
//! ```
//! use deepfaune_rs::detect::decision::ImageKind;
//! use deepfaune_rs::manifest::classifier::builtin_classifier;
//! use deepfaune_rs::sequence::{predict_all, AggregateOptions, ImageRows, Label, LogitTable};
//! let paths = ["cam/1.jpg", "cam/2.jpg", "cam/3.jpg"];
//! let dates = [Some(0), Some(5), Some(100)];
//! let kinds = [ImageKind::Animal, ImageKind::Empty, ImageKind::Human];
//! let logits = [0.0, 3.3, 0.0, 0.0, 0.0, 0.0]; // [3 images, 2 classes]
//! let rows = ImageRows::new(&kinds, LogitTable::new(&logits, 2).unwrap(), None).unwrap();
//! let opts = AggregateOptions::for_manifest(&builtin_classifier("deepfaune-v15").unwrap());
//! let r = predict_all(&paths, &dates, &rows, 10.0, &opts).unwrap();
//! assert_eq!(r.seqnum, [1, 1, 2]);
//! // The empty image takes its sequence's animal prediction; its own ("base") stays empty.
//! assert_eq!((r.base[1].label, r.sequence[1].label), (Label::Empty, Label::Class(1)));
//! assert_eq!(r.sequence[2].label, Label::Human);
//! ```

pub mod aggregate;
pub mod grouping;
pub mod label;
pub mod video;

use std::path::Path;

pub use aggregate::{aggregate, AggregateOptions, ImageRows, LogitTable, Prediction};
pub use grouping::{group_sequences, order_by_sequence, table_order};
pub use label::Label;

use crate::detect::decision::ImageKind;
use crate::error::Error;

/// DeepFaune's default logit for the human, vehicle and empty columns of its per-image rows.
pub const DEFAULT_LOGIT: f32 = 15.0;

/// Predictions of a run, one entry per image in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct SequencePredictions {
    /// Sequence number (1..N), see [`group_sequences`].
    pub seqnum: Vec<u32>,
    /// Each image judged alone (DeepFaune's `predictionbase`, `scorebase`).
    pub base: Vec<Prediction>,
    /// The image's sequence judged as a whole (`prediction`, `score`, `top1`).
    pub sequence: Vec<Prediction>,
}

impl SequencePredictions {
    /// The rows in the order `order` (new row `k` is old row `order[k]`).
    pub fn permute(&mut self, order: &[usize]) {
        self.seqnum = order.iter().map(|&i| self.seqnum[i]).collect();
        self.base = order.iter().map(|&i| self.base[i]).collect();
        self.sequence = order.iter().map(|&i| self.sequence[i]).collect();
    }
}

/// Groups the images into sequences and aggregates each image and each sequence.
/// `paths` and `dates` as for [`group_sequences`]; `rows` holds the detector's decisions and the
/// classifier's logits in the same order.
pub fn predict_all<P: AsRef<Path>>(
    paths: &[P],
    dates: &[Option<i64>],
    rows: &ImageRows<'_>,
    maxlag_s: f64,
    opts: &AggregateOptions,
) -> Result<SequencePredictions, Error> {
    if rows.len() != paths.len() {
        return Err(Error::InvalidArgument(format!(
            "{} paths but {} image rows",
            paths.len(),
            rows.len()
        )));
    }
    let seqnum = group_sequences(paths, dates, maxlag_s)?;
    let base = (0..rows.len())
        .map(|i| aggregate(rows, &[i], opts))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sequence = base.clone();
    let order = order_by_sequence(&seqnum);
    for members in order.chunk_by(|&a, &b| seqnum[a] == seqnum[b]) {
        let p = aggregate(rows, members, opts)?;
        for &i in members {
            sequence[i] = p;
        }
    }
    Ok(SequencePredictions {
        seqnum,
        base,
        sequence,
    })
}

/// The [`ImageKind`] of a detection category code (`0` empty, `1` animal, `2` human,
/// `3` vehicle); anything else, such as a failed file, counts as empty, as in DeepFaune.
///
/// ```
/// use deepfaune_rs::detect::decision::ImageKind;
/// assert_eq!(deepfaune_rs::sequence::kind_from_code(2), ImageKind::Human);
/// assert_eq!(deepfaune_rs::sequence::kind_from_code(255), ImageKind::Empty);
/// ```
pub fn kind_from_code(code: u8) -> ImageKind {
    match code {
        1 => ImageKind::Animal,
        2 => ImageKind::Human,
        3 => ImageKind::Vehicle,
        _ => ImageKind::Empty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::classifier::builtin_classifier;
    use ImageKind::{Animal, Empty, Human, Vehicle};

    /// DeepFaune 1.4.1's temperatures (1.10 for one animal image, 1.04 for several).
    fn v14() -> AggregateOptions {
        AggregateOptions::for_manifest(&builtin_classifier("deepfaune-v14").unwrap())
    }

    #[test]
    fn sequences_share_one_prediction_and_bases_stay_per_image() {
        // Folder a: images 0 (t=0), 1 (t=8), 3 (t=16) form one sequence (gaps 8, 8 <= 10).
        // Folder b: image 2 alone. Image 4 in folder a is undated: alone.
        let paths = ["a/0", "a/1", "b/2", "a/3", "a/4"];
        let dates = [Some(0), Some(8), Some(8), Some(16), None];
        let kinds = [Animal, Animal, Vehicle, Human, Animal];
        // 2 classes. Image 0: [2.2, 0] alone -> /1.1 = [2, 0] -> 0.8808 (class 0).
        // Image 1: [0, 1.1] alone -> [0, 1] -> 0.7311 (class 1, undefined at 0.8).
        // Sequence {0, 1, 3}: animal images 0 and 1 -> mean [1.1, 0.55] / 1.04 = [1.05769, 0.52885];
        // softmax: 1 / (1 + e^(0.52885 - 1.05769)) = 1 / (1 + e^-0.52885) = 1 / 1.58931 = 0.62920
        // -> class 0, undefined, score 0.62.
        let logits = [2.2, 0.0, 0.0, 1.1, 0.0, 0.0, 0.0, 0.0, 5.5, 0.0];
        let rows = ImageRows::new(&kinds, LogitTable::new(&logits, 2).unwrap(), None).unwrap();
        let r = predict_all(&paths, &dates, &rows, 10.0, &v14()).unwrap();
        assert_eq!(r.seqnum, [1, 1, 3, 1, 2]);
        assert_eq!((r.base[0].label, r.base[0].score), (Label::Class(0), 0.88));
        assert_eq!(
            (r.base[1].label, r.base[1].score, r.base[1].top1),
            (Label::Undefined, 0.73, Label::Class(1))
        );
        assert_eq!((r.base[3].label, r.base[3].score), (Label::Human, 1.0));
        for i in [0, 1, 3] {
            assert_eq!(
                r.sequence[i],
                Prediction {
                    label: Label::Undefined,
                    score: 0.62,
                    top1: Label::Class(0)
                }
            );
        }
        assert_eq!(r.sequence[2].label, Label::Vehicle);
        // [5.5, 0] / 1.1 = [5, 0] -> 1 / (1 + e^-5) = 0.99331 -> 0.99
        assert_eq!(
            (r.sequence[4].label, r.sequence[4].score),
            (Label::Class(0), 0.99)
        );
        assert_eq!(r.sequence[4], r.base[4]);
    }

    #[test]
    fn empty_run_and_mismatched_lengths() {
        let none: [&str; 0] = [];
        let rows = ImageRows::new(&[], LogitTable::new(&[], 3).unwrap(), None).unwrap();
        let r = predict_all(&none, &[], &rows, 10.0, &v14()).unwrap();
        assert!(r.seqnum.is_empty() && r.base.is_empty() && r.sequence.is_empty());
        assert!(predict_all(&["a"], &[None], &rows, 10.0, &v14()).is_err());
        let kinds = [Empty];
        let rows = ImageRows::new(&kinds, LogitTable::new(&[0.0; 3], 3).unwrap(), None).unwrap();
        assert!(predict_all(&["a"], &[], &rows, 10.0, &v14()).is_err());
    }
}

#[cfg(test)]
mod parity_tests;
