//! DeepFaune's aggregation of images into one prediction (SPEC 2.4; `predictTools.py`,
//! `PredictorBase.__averageLogitInSequence`): one image, a sequence, or the frames of a video.
//!
//! DeepFaune builds one row per image: the animal logits, then human, vehicle and empty columns
//! (empty = 15 by default, 0 once the detector found something; human or vehicle = 15 for such
//! images) and tells the image kinds apart by which of the last three columns is positive. Those
//! columns only encode the detector's decision, so here the decision is passed directly as an
//! [`ImageKind`] per row and the logits array holds the animal columns only (`[n, classes]`,
//! exactly what the classifier returns); rows of non-animal images are never read.
//!
//! The arithmetic follows DeepFaune's numpy float32 steps: the per-class mean of the animal rows
//! (summed row by row), divided by the temperature, `exp`, a sum in class order, one division.
//! The temperatures are the classifier manifest's ([`Temperatures`]): they differ between
//! DeepFaune versions (1.4.1: 1.10 / 1.04 / bird 0.9; 1.5: 1.12 / 1.10 / bird 1.00).
//! The threshold is compared with the untruncated score (as DeepFaune does); the reported score is
//! then truncated to two decimals, `int(score * 100) / 100`.
//!
//! Where DeepFaune would crash or print NaN, this code answers instead (documented on
//! [`aggregate`]): non-finite mean logits are left out of the softmax, a softmax whose plain sum
//! overflows is recomputed relative to its maximum, and when no class is left (all disabled, all
//! NaN) the answer is `undefined` with score 0.

use super::label::Label;
use crate::detect::decision::ImageKind;
use crate::error::Error;
use crate::manifest::classifier::{ClassifierManifest, Temperatures};

/// The answer for one image, sequence or video.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// The prediction (`Undefined` when the score is below the threshold).
    pub label: Label,
    /// The score truncated to two decimals, as DeepFaune's float64 holds it: `0.39` is the
    /// double nearest 0.39 (not the float32 0.389999985..., which `>= 0.39` would reject).
    pub score: f64,
    /// The best label whatever the threshold (equals `label` unless that is `Undefined`).
    pub top1: Label,
}

/// Aggregation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateOptions {
    /// Scores below it give `undefined` (DeepFaune's GUI default: 0.8).
    pub threshold: f32,
    /// Animal classes the user switched off (indices); they are dropped before the softmax.
    pub disabled: Vec<usize>,
    /// Index of the `bird` class: when set and bird logits are given, a passing `bird` is refined
    /// into a bird group (see [`aggregate`]).
    pub bird_class: Option<usize>,
    /// The classifier's temperatures.
    pub temperatures: Temperatures,
    /// Per-class thresholds `(class index, threshold)` that replace `threshold` for those classes
    /// (a rare species kept at 0.5, a look-alike raised to 0.95). Empty: `threshold` for all.
    pub class_thresholds: Vec<(usize, f32)>,
}

impl AggregateOptions {
    /// The manifest's defaults: its threshold and temperatures, no class disabled, bird head off.
    ///
    /// ```
    /// use deepfaune_rs::manifest::classifier::builtin_classifier;
    /// use deepfaune_rs::sequence::AggregateOptions;
    /// let o = AggregateOptions::for_manifest(&builtin_classifier("deepfaune-v15").unwrap());
    /// assert_eq!((o.threshold, o.temperatures.image, o.bird_class), (0.8, 1.12, None));
    /// ```
    pub fn for_manifest(m: &ClassifierManifest) -> Self {
        AggregateOptions {
            threshold: m.postprocess.threshold,
            disabled: Vec::new(),
            bird_class: None,
            temperatures: m.temperatures(),
            class_thresholds: Vec::new(),
        }
    }

    /// The threshold a prediction of `label` must reach: the class's own when
    /// [`Self::class_thresholds`] has one, else [`Self::threshold`]. A bird group is judged by
    /// `bird`'s.
    ///
    /// ```
    /// use deepfaune_rs::manifest::classifier::builtin_classifier;
    /// use deepfaune_rs::sequence::{AggregateOptions, Label};
    /// let mut o = AggregateOptions::for_manifest(&builtin_classifier("deepfaune-v15").unwrap());
    /// o.class_thresholds = vec![(3, 0.5)];
    /// assert_eq!((o.threshold_of(Label::Class(3)), o.threshold_of(Label::Class(4))), (0.5, 0.8));
    /// ```
    pub fn threshold_of(&self, label: Label) -> f32 {
        let class = match label {
            Label::Class(c) => Some(c),
            Label::BirdGroup(_) => self.bird_class,
            _ => None,
        };
        class
            .and_then(|c| self.class_thresholds.iter().find(|(k, _)| *k == c))
            .map_or(self.threshold, |&(_, t)| t)
    }
}

/// A row-major `[rows, width]` table of f32 logits, borrowed (a numpy array's buffer fits as is).
#[derive(Debug, Clone, Copy)]
pub struct LogitTable<'a> {
    values: &'a [f32],
    width: usize,
}

impl<'a> LogitTable<'a> {
    /// Wraps `values` as rows of `width`; an error when the length is not a multiple of `width`.
    pub fn new(values: &'a [f32], width: usize) -> Result<Self, Error> {
        if width == 0 || !values.len().is_multiple_of(width) {
            return Err(Error::InvalidArgument(format!(
                "{} logits do not make rows of {width}",
                values.len()
            )));
        }
        Ok(LogitTable { values, width })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.values.len() / self.width
    }

    /// Columns per row.
    pub fn width(&self) -> usize {
        self.width
    }

    fn row(&self, i: usize) -> &'a [f32] {
        &self.values[i * self.width..(i + 1) * self.width]
    }
}

/// Per-image inputs of the aggregation: the detector's decision, the classifier's logits and,
/// optionally, the bird head's logits. All have one row per image.
#[derive(Debug, Clone, Copy)]
pub struct ImageRows<'a> {
    kinds: &'a [ImageKind],
    logits: LogitTable<'a>,
    bird_logits: Option<LogitTable<'a>>,
}

impl<'a> ImageRows<'a> {
    /// Checks that every table has one row per image. Rows of non-animal images may hold anything
    /// (zeros, NaN): they are never read.
    pub fn new(
        kinds: &'a [ImageKind],
        logits: LogitTable<'a>,
        bird_logits: Option<LogitTable<'a>>,
    ) -> Result<Self, Error> {
        let n = kinds.len();
        if logits.rows() != n || bird_logits.is_some_and(|b| b.rows() != n) {
            return Err(Error::InvalidArgument(format!(
                "{n} images but {} logit rows and {:?} bird logit rows",
                logits.rows(),
                bird_logits.map(|b| b.rows())
            )));
        }
        Ok(ImageRows {
            kinds,
            logits,
            bird_logits,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// The detector's decision for each image.
    pub fn kinds(&self) -> &'a [ImageKind] {
        self.kinds
    }
}

/// DeepFaune's `__averageLogitInSequence` over the images `members` (one image, a sequence, or
/// the frames of a video):
///
/// 1. every image empty (or no image at all) => `Empty`, score 1.0, no threshold;
/// 2. else, if any image is an animal image: the mean logit of each enabled class over the animal
///    images only, divided by the image temperature ([`Temperatures::image`]) for one animal
///    image or the sequence temperature for several, softmax; the best class (the first one on
///    ties) and its probability. With [`AggregateOptions::bird_class`] set, bird logits given,
///    `bird` best and its probability at or above the threshold: the bird groups' mean logits
///    over the same images, at the bird temperature, softmax; the best group replaces `bird` only
///    if it passes too;
/// 3. else `Human` if there are at least as many human images as vehicle images, else `Vehicle`,
///    probability 1.0.
///
/// The probability is compared with the threshold (below => `Undefined`, `top1` keeps the best
/// label), then truncated to two decimals.
///
/// Beyond DeepFaune (which crashes or returns NaN there): a class whose mean logit is not finite
/// is left out; if the plain softmax sum overflows it is recomputed relative to the maximum; if no
/// class is left the answer is `Undefined`, score 0, top1 `Undefined`.
///
/// ```
/// use deepfaune_rs::detect::decision::ImageKind;
/// use deepfaune_rs::manifest::classifier::builtin_classifier;
/// use deepfaune_rs::sequence::{aggregate, AggregateOptions, ImageRows, Label, LogitTable};
/// let kinds = [ImageKind::Animal, ImageKind::Empty];
/// let logits = [0.0, 2.24, 0.0, 0.0]; // two classes, two images
/// let rows = ImageRows::new(&kinds, LogitTable::new(&logits, 2).unwrap(), None).unwrap();
/// let v15 = AggregateOptions::for_manifest(&builtin_classifier("deepfaune-v15").unwrap());
/// let p = aggregate(&rows, &[0, 1], &v15).unwrap();
/// // one animal image: logits / 1.12 = [0, 2]; softmax = e^2 / (1 + e^2) = 0.8808 -> 0.88
/// assert_eq!((p.label, p.score, p.top1), (Label::Class(1), 0.88, Label::Class(1)));
/// ```
pub fn aggregate(
    rows: &ImageRows<'_>,
    members: &[usize],
    opts: &AggregateOptions,
) -> Result<Prediction, Error> {
    if let Some(&i) = members.iter().find(|&&i| i >= rows.len()) {
        return Err(Error::InvalidArgument(format!(
            "image {i} out of range ({} images)",
            rows.len()
        )));
    }
    let kind_count = |k: ImageKind| members.iter().filter(|&&i| rows.kinds[i] == k).count();
    if kind_count(ImageKind::Empty) == members.len() {
        return Ok(Prediction {
            label: Label::Empty,
            score: 1.0,
            top1: Label::Empty,
        });
    }
    let animals: Vec<usize> = members
        .iter()
        .copied()
        .filter(|&i| rows.kinds[i] == ImageKind::Animal)
        .collect();
    let (top1, score) = if animals.is_empty() {
        let best = if kind_count(ImageKind::Human) >= kind_count(ImageKind::Vehicle) {
            Label::Human
        } else {
            Label::Vehicle
        };
        (best, 1.0f32)
    } else {
        let temperature = if animals.len() == 1 {
            opts.temperatures.image
        } else {
            opts.temperatures.sequence
        };
        let enabled: Vec<usize> = (0..rows.logits.width())
            .filter(|c| !opts.disabled.contains(c))
            .collect();
        match softmax_best(&rows.logits, &animals, &enabled, temperature) {
            None => {
                return Ok(Prediction {
                    label: Label::Undefined,
                    score: 0.0,
                    top1: Label::Undefined,
                })
            }
            Some((best, p)) => {
                refine_bird(rows, &animals, opts, best, p).unwrap_or((Label::Class(best), p))
            }
        }
    };
    // DeepFaune: `bestscore < threshold` on the float32 score, then `int(bestscore * 100) / 100.`
    let label = if score < opts.threshold_of(top1) {
        Label::Undefined
    } else {
        top1
    };
    Ok(Prediction {
        label,
        score: truncate_2(score),
        top1,
    })
}

/// The bird head step: `Some((group, p))` when `best` is the bird class, passes the threshold, and
/// the best group passes too.
fn refine_bird(
    rows: &ImageRows<'_>,
    animals: &[usize],
    opts: &AggregateOptions,
    best: usize,
    p: f32,
) -> Option<(Label, f32)> {
    let birds = rows.bird_logits?;
    let temperature = opts.temperatures.bird?;
    let threshold = opts.threshold_of(Label::Class(best));
    if opts.bird_class != Some(best) || p < threshold {
        return None;
    }
    let groups: Vec<usize> = (0..birds.width()).collect();
    let (g, pg) = softmax_best(&birds, animals, &groups, temperature)?;
    (pg >= threshold).then_some((Label::BirdGroup(g), pg))
}

/// Mean of `columns` over `images`, divided by `temperature`, softmax over the finite ones;
/// the first best column and its probability.
fn softmax_best(
    table: &LogitTable<'_>,
    images: &[usize],
    columns: &[usize],
    temperature: f32,
) -> Option<(usize, f32)> {
    let n = images.len() as f32;
    let mut scaled: Vec<(usize, f32)> = Vec::with_capacity(columns.len());
    for &c in columns {
        // numpy's mean along axis 0 of a C-ordered array adds the rows one after the other.
        let mut sum = 0.0f32;
        for &i in images {
            sum += table.row(i)[c];
        }
        let v = sum / n / temperature;
        if v.is_finite() {
            scaled.push((c, v));
        }
    }
    let (best, best_v) =
        scaled
            .iter()
            .copied()
            .fold(None, |acc: Option<(usize, f32)>, (c, v)| match acc {
                Some((_, bv)) if bv >= v => acc,
                _ => Some((c, v)),
            })?;
    let sum: f32 = scaled.iter().map(|&(_, v)| v.exp()).sum();
    let p = if sum.is_finite() && best_v.exp().is_finite() {
        best_v.exp() / sum
    } else {
        1.0 / scaled.iter().map(|&(_, v)| (v - best_v).exp()).sum::<f32>()
    };
    Some((best, p))
}

/// `int(score * 100) / 100` with DeepFaune's float32 product; the division in float64, as
/// Python's.
fn truncate_2(score: f32) -> f64 {
    let hundredths = (score * 100.0).trunc();
    f64::from(hundredths) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::classifier::builtin_classifier;
    use ImageKind::{Animal, Empty, Human, Vehicle};

    /// DeepFaune 1.4.1's settings, written out: the expected values below are computed by hand
    /// with temperatures 1.10 (one image), 1.04 (several) and 0.9 (bird head).
    fn v14() -> AggregateOptions {
        AggregateOptions {
            threshold: 0.8,
            disabled: Vec::new(),
            bird_class: None,
            temperatures: Temperatures {
                image: 1.10,
                sequence: 1.04,
                bird: Some(0.9),
            },
            class_thresholds: Vec::new(),
        }
    }

    /// DeepFaune 1.5's: 1.12, 1.10 and 1.00.
    fn v15() -> AggregateOptions {
        AggregateOptions {
            temperatures: Temperatures {
                image: 1.12,
                sequence: 1.10,
                bird: Some(1.0),
            },
            ..v14()
        }
    }

    #[test]
    fn manifests_carry_each_versions_temperatures() {
        for (id, want) in [("deepfaune-v15", v15()), ("deepfaune-v14", v14())] {
            let m = builtin_classifier(id).unwrap();
            assert_eq!(AggregateOptions::for_manifest(&m), want, "{id}");
        }
        // Older versions keep 1.4.1's (their own code is not available); no bird head there.
        for id in ["deepfaune-v13", "deepfaune-v11"] {
            let t = builtin_classifier(id).unwrap().temperatures();
            assert_eq!((t.image, t.sequence, t.bird), (1.10, 1.04, None), "{id}");
        }
    }

    fn run(
        kinds: &[ImageKind],
        logits: &[f32],
        width: usize,
        opts: &AggregateOptions,
    ) -> Prediction {
        let rows = ImageRows::new(kinds, LogitTable::new(logits, width).unwrap(), None).unwrap();
        let all: Vec<usize> = (0..kinds.len()).collect();
        aggregate(&rows, &all, opts).unwrap()
    }

    #[test]
    fn all_empty_is_empty_with_score_one_whatever_the_threshold() {
        let opts = AggregateOptions {
            threshold: 1.0,
            ..v14()
        };
        let p = run(&[Empty, Empty], &[9.0, 0.0, 0.0, 9.0], 2, &opts);
        assert_eq!(
            p,
            Prediction {
                label: Label::Empty,
                score: 1.0,
                top1: Label::Empty
            }
        );
        let rows = ImageRows::new(&[], LogitTable::new(&[], 2).unwrap(), None).unwrap();
        assert_eq!(
            aggregate(&rows, &[], &opts).unwrap().label,
            Label::Empty,
            "no image = all empty"
        );
    }

    #[test]
    fn one_image_uses_temperature_1_10() {
        // logits [1.1, 0, 0] / 1.10 = [1, 0, 0]; softmax(1) = e / (e + 2) = 2.71828 / 4.71828 = 0.57612
        let p = run(
            &[Animal],
            &[1.1, 0.0, 0.0],
            3,
            &AggregateOptions {
                threshold: 0.5,
                ..v14()
            },
        );
        assert_eq!((p.label, p.score), (Label::Class(0), 0.57));
        // Same with threshold 0.8: undefined, top1 kept, score still reported.
        let p = run(&[Animal], &[1.1, 0.0, 0.0], 3, &v14());
        assert_eq!(
            (p.label, p.score, p.top1),
            (Label::Undefined, 0.57, Label::Class(0))
        );
    }

    #[test]
    fn a_class_threshold_replaces_the_threshold_for_that_class_only() {
        // [1.1, 0, 0] / 1.10 = [1, 0, 0] -> e / (e + 2) = 0.57612 (class 0), as above.
        let own = |t: f32| AggregateOptions {
            class_thresholds: vec![(0, t)],
            ..v14()
        };
        let p = run(&[Animal], &[1.1, 0.0, 0.0], 3, &own(0.5));
        assert_eq!((p.label, p.score), (Label::Class(0), 0.57));
        let p = run(&[Animal], &[1.1, 0.0, 0.0], 3, &own(0.58));
        assert_eq!((p.label, p.top1), (Label::Undefined, Label::Class(0)));
        // Another class's threshold leaves class 0 at the general 0.8.
        let other = AggregateOptions {
            class_thresholds: vec![(1, 0.1)],
            ..v14()
        };
        assert_eq!(
            run(&[Animal], &[1.1, 0.0, 0.0], 3, &other).label,
            Label::Undefined
        );
        // Human and vehicle answers (probability 1.0) pass any class threshold.
        let strict = AggregateOptions {
            threshold: 1.0,
            ..own(1.0)
        };
        assert_eq!(run(&[Human], &[0.0; 3], 3, &strict).label, Label::Human);
    }

    #[test]
    fn sequence_mean_over_animal_images_only_with_temperature_1_04() {
        // Animal rows [3.12, 0] and [1.04, 0] -> mean [2.08, 0] / 1.04 = [2, 0];
        // softmax = e^2 / (e^2 + 1) = 7.389056 / 8.389056 = 0.880797 -> 0.88.
        // The human and empty rows hold garbage that must not be read.
        let kinds = [Animal, Human, Animal, Empty];
        let logits = [3.12, 0.0, 99.0, -99.0, 1.04, 0.0, f32::NAN, 5.0];
        let p = run(&kinds, &logits, 2, &v14());
        assert_eq!(
            (p.label, p.score, p.top1),
            (Label::Class(0), 0.88, Label::Class(0))
        );
    }

    #[test]
    fn score_is_truncated_not_rounded() {
        // [ln 9 * 1.1, 0]: / 1.1 -> [ln 9, 0]; softmax = 9 / 10 = 0.9 exactly in theory; any float
        // error must not lift it above 0.90. And 0.8999 -> 0.89, never 0.90.
        let p = run(&[Animal], &[9f32.ln() * 1.1, 0.0], 2, &v14());
        assert!(p.score == 0.9 || p.score == 0.89, "{}", p.score);
        // e^x / (e^x + 1) = 0.996 -> x = ln(0.996 / 0.004) = 5.5175; rounding would give 1.0.
        let x = (0.996f32 / 0.004).ln() * 1.1;
        let p = run(&[Animal], &[x, 0.0], 2, &v14());
        assert_eq!(p.score, 0.99);
    }

    #[test]
    fn threshold_is_applied_to_the_untruncated_score() {
        // softmax of [x, 0] = 0.805 at threshold 0.805: passes (0.805 >= 0.805 in f32 up to one ulp)
        // though the printed score is 0.80, below the threshold.
        let x = (0.8051f32 / 0.1949).ln() * 1.1; // p = 0.8051
        let opts = AggregateOptions {
            threshold: 0.805,
            ..v14()
        };
        let p = run(&[Animal], &[x, 0.0], 2, &opts);
        assert_eq!((p.label, p.score), (Label::Class(0), 0.80));
    }

    #[test]
    fn disabled_classes_are_dropped_before_the_softmax() {
        // [4.4, 2.2, 0] / 1.1 = [4, 2, 0]; class 0 disabled -> softmax over [2, 0]:
        // e^2 / (e^2 + 1) = 0.8808 -> class 1, 0.88. With class 0 enabled, class 0 would win.
        let opts = AggregateOptions {
            disabled: vec![0],
            ..v14()
        };
        let p = run(&[Animal], &[4.4, 2.2, 0.0], 3, &opts);
        assert_eq!((p.label, p.score), (Label::Class(1), 0.88));
        let all_off = AggregateOptions {
            disabled: vec![0, 1, 2],
            ..v14()
        };
        let p = run(&[Animal], &[4.4, 2.2, 0.0], 3, &all_off);
        assert_eq!(
            p,
            Prediction {
                label: Label::Undefined,
                score: 0.0,
                top1: Label::Undefined
            }
        );
    }

    #[test]
    fn ties_go_to_the_first_class() {
        // [0, 0] -> 0.5 each; first class wins (numpy argmax).
        let opts = AggregateOptions {
            threshold: 0.5,
            ..v14()
        };
        let p = run(&[Animal], &[0.0, 0.0], 2, &opts);
        assert_eq!((p.label, p.score), (Label::Class(0), 0.5));
    }

    #[test]
    fn human_and_vehicle_by_majority_ties_to_human() {
        let d = v14();
        let z = [0.0; 6];
        assert_eq!(
            run(&[Human, Vehicle, Empty], &z, 2, &d).label,
            Label::Human,
            "1 human vs 1 vehicle"
        );
        assert_eq!(
            run(&[Vehicle, Vehicle, Human], &z, 2, &d).label,
            Label::Vehicle
        );
        let p = run(&[Empty, Vehicle, Empty], &z, 2, &d);
        assert_eq!(
            (p.label, p.score, p.top1),
            (Label::Vehicle, 1.0, Label::Vehicle)
        );
        // An animal anywhere wins over people and vehicles.
        let logits = [0.0, 0.0, 0.0, 0.0, 5.5, 0.0];
        assert_eq!(
            run(&[Human, Human, Animal], &logits, 2, &d).label,
            Label::Class(0)
        );
    }

    #[test]
    fn nan_and_huge_logits_do_not_poison_the_answer() {
        // NaN class left out: [NaN, 2.2, 0] / 1.1 -> softmax over [2, 0] = 0.8808.
        let p = run(&[Animal], &[f32::NAN, 2.2, 0.0], 3, &v14());
        assert_eq!((p.label, p.score), (Label::Class(1), 0.88));
        // exp(1000) overflows f32: recomputed relative to the max: 1 / (1 + e^-1000) = 1.0.
        let p = run(&[Animal], &[1100.0, 0.0], 2, &v14());
        assert_eq!((p.label, p.score), (Label::Class(0), 1.0));
        let p = run(&[Animal], &[f32::NAN, f32::INFINITY], 2, &v14());
        assert_eq!(p.label, Label::Undefined);
    }

    fn bird_rows<'a>(kinds: &'a [ImageKind], logits: &'a [f32], birds: &'a [f32]) -> ImageRows<'a> {
        ImageRows::new(
            kinds,
            LogitTable::new(logits, 2).unwrap(),
            Some(LogitTable::new(birds, 3).unwrap()),
        )
        .unwrap()
    }

    #[test]
    fn bird_head_refines_a_passing_bird() {
        // Class 1 is "bird". Logits [0, 3.3] / 1.1 = [0, 3]: p(bird) = e^3 / (e^3 + 1) = 0.9526.
        // Bird logits [0, 2.7, 0] / 0.9 = [0, 3, 0]: p = e^3 / (e^3 + 2) = 20.0855 / 22.0855 = 0.9094.
        let kinds = [Animal];
        let opts = AggregateOptions {
            bird_class: Some(1),
            ..v14()
        };
        let p = aggregate(
            &bird_rows(&kinds, &[0.0, 3.3], &[0.0, 2.7, 0.0]),
            &[0],
            &opts,
        )
        .unwrap();
        assert_eq!(
            (p.label, p.score, p.top1),
            (Label::BirdGroup(1), 0.90, Label::BirdGroup(1))
        );
        // A weak group (bird logits [0, 0.9, 0] / 0.9 = [0, 1, 0]: e / (e + 2) = 0.576) keeps "bird".
        let p = aggregate(
            &bird_rows(&kinds, &[0.0, 3.3], &[0.0, 0.9, 0.0]),
            &[0],
            &opts,
        )
        .unwrap();
        assert_eq!((p.label, p.score), (Label::Class(1), 0.95));
        // Bird below the threshold: no refinement even with a confident group; undefined.
        let p = aggregate(
            &bird_rows(&kinds, &[0.0, 1.1], &[0.0, 9.0, 0.0]),
            &[0],
            &opts,
        )
        .unwrap();
        assert_eq!((p.label, p.top1), (Label::Undefined, Label::Class(1)));
        // Bird head off (bird_class None): plain bird.
        let off = v14();
        let p = aggregate(
            &bird_rows(&kinds, &[0.0, 3.3], &[0.0, 2.7, 0.0]),
            &[0],
            &off,
        )
        .unwrap();
        assert_eq!(p.label, Label::Class(1));
    }

    #[test]
    fn bird_groups_average_over_the_animal_images_only() {
        // Two animal images: logits mean [0, 3.12] / 1.04 = [0, 3] -> bird 0.9526.
        // Bird rows [0, 1.8, 0] and [0, 3.6, 0] -> mean [0, 2.7, 0] / 0.9 = [0, 3, 0] -> 0.9094.
        // The empty image's bird row (huge values) must not count.
        let kinds = [Animal, Empty, Animal];
        let logits = [0.0, 3.12, 0.0, 0.0, 0.0, 3.12];
        let birds = [0.0, 1.8, 0.0, 50.0, -50.0, 50.0, 0.0, 3.6, 0.0];
        let opts = AggregateOptions {
            bird_class: Some(1),
            ..v14()
        };
        let p = aggregate(&bird_rows(&kinds, &logits, &birds), &[0, 1, 2], &opts).unwrap();
        assert_eq!((p.label, p.score), (Label::BirdGroup(1), 0.90));
    }

    #[test]
    fn v15_one_image_uses_temperature_1_12() {
        // [1.12, 0, 0] / 1.12 = [1, 0, 0]: e / (e + 2) = 2.71828 / 4.71828 = 0.57612 -> 0.57.
        let low = |o: AggregateOptions| AggregateOptions {
            threshold: 0.5,
            ..o
        };
        let p = run(&[Animal], &[1.12, 0.0, 0.0], 3, &low(v15()));
        assert_eq!((p.label, p.score), (Label::Class(0), 0.57));
        // 1.4.1 divides by 1.10: [1.01818, 0, 0] -> 2.76822 / 4.76822 = 0.58056 -> 0.58.
        let p = run(&[Animal], &[1.12, 0.0, 0.0], 3, &low(v14()));
        assert_eq!((p.label, p.score), (Label::Class(0), 0.58));
    }

    #[test]
    fn v15_sequence_uses_temperature_1_10() {
        // Animal rows [3.3, 0] and [1.1, 0]: mean [2.2, 0] / 1.10 = [2, 0]:
        // e^2 / (e^2 + 1) = 0.880797 -> 0.88. The empty row is not read.
        let kinds = [Animal, Empty, Animal];
        let logits = [3.3, 0.0, 50.0, -50.0, 1.1, 0.0];
        let p = run(&kinds, &logits, 2, &v15());
        assert_eq!((p.label, p.score), (Label::Class(0), 0.88));
        // 1.4.1: [2.2, 0] / 1.04 = [2.11538, 0]: 1 / (1 + e^-2.11538) = 0.892367 -> 0.89.
        let p = run(&kinds, &logits, 2, &v14());
        assert_eq!((p.label, p.score), (Label::Class(0), 0.89));
        // A group with one animal image among empties uses the single-image temperature:
        // [1.12 * ln 4, 0] / 1.12 = [ln 4, 0]: 4 / 5 = 0.8 exactly in theory -> 0.79 or 0.8.
        let x = 4f32.ln() * 1.12;
        let p = run(
            &[Empty, Animal, Empty],
            &[0.0, 0.0, x, 0.0, 0.0, 0.0],
            2,
            &v15(),
        );
        assert!(p.score == 0.8 || p.score == 0.79, "{}", p.score);
    }

    #[test]
    fn v15_bird_head_uses_raw_logits() {
        // Class 1 is bird: [0, 3.36] / 1.12 = [0, 3]: p(bird) = 0.9526 passes 0.8.
        // Bird logits [0, 3, 0] / 1.00: e^3 / (e^3 + 2) = 20.0855 / 22.0855 = 0.90944 -> 0.90.
        let kinds = [Animal];
        let bird = |o: AggregateOptions| AggregateOptions {
            bird_class: Some(1),
            ..o
        };
        let p = aggregate(
            &bird_rows(&kinds, &[0.0, 3.36], &[0.0, 3.0, 0.0]),
            &[0],
            &bird(v15()),
        )
        .unwrap();
        assert_eq!((p.label, p.score), (Label::BirdGroup(1), 0.90));
        // 1.4.1 sharpens by 0.9: [0, 3.3333, 0]: 28.0316 / 30.0316 = 0.93340 -> 0.93.
        let p = aggregate(
            &bird_rows(&kinds, &[0.0, 3.36], &[0.0, 3.0, 0.0]),
            &[0],
            &bird(v14()),
        )
        .unwrap();
        assert_eq!((p.label, p.score), (Label::BirdGroup(1), 0.93));
        // Bird logits [0, 2, 0]: 1.5 gives e^2 / (e^2 + 2) = 7.389 / 9.389 = 0.78699 < 0.8, so
        // "bird" stays (its own p: e^3 / (e^3 + 1) = 0.95257 -> 0.95); 1.4.1 gives
        // e^2.2222 / (e^2.2222 + 2) = 9.2278 / 11.2278 = 0.82187: the group.
        let weak = [0.0, 2.0, 0.0];
        let p = aggregate(&bird_rows(&kinds, &[0.0, 3.36], &weak), &[0], &bird(v15())).unwrap();
        assert_eq!((p.label, p.score), (Label::Class(1), 0.95));
        let p = aggregate(&bird_rows(&kinds, &[0.0, 3.36], &weak), &[0], &bird(v14())).unwrap();
        assert_eq!((p.label, p.score), (Label::BirdGroup(1), 0.82));
    }

    #[test]
    fn bad_shapes_and_indices_are_errors() {
        assert!(LogitTable::new(&[0.0; 5], 2).is_err());
        assert!(LogitTable::new(&[], 0).is_err());
        let t = LogitTable::new(&[0.0; 4], 2).unwrap();
        assert!(ImageRows::new(&[Animal], t, None).is_err());
        let rows = ImageRows::new(&[Animal, Empty], t, None).unwrap();
        assert!(aggregate(&rows, &[2], &v14()).is_err());
    }
}
