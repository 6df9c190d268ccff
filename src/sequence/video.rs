//! One prediction per video (SPEC 2.5): the sampled frames aggregated like a sequence, counts
//! as maxima over the frames, and the keyframe that shows the prediction best.
//!
//! DeepFaune samples 12 frame positions per video; a position may repeat a frame (very short or
//! low-frame-rate videos) or point past the last frame. Rows are therefore given per decoded
//! frame and the positions as `slots`: `Some(row)` for a frame that was read, `None` for one that
//! could not be (DeepFaune leaves such a row empty). A repeated frame weighs as often as it is
//! sampled, as in DeepFaune.

use super::aggregate::{aggregate, AggregateOptions, ImageRows, LogitTable, Prediction};
use super::label::Label;
use crate::detect::decision::ImageKind;
use crate::error::Error;

/// The answer for one video.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoSummary {
    /// The aggregated prediction over the sampled positions.
    pub prediction: Prediction,
    /// Most animal boxes in one frame.
    pub count: u32,
    /// Most person boxes in one frame.
    pub humancount: u32,
    /// The slot whose frame shows the prediction best (`None` when the video is empty):
    /// for an animal class (or `undefined`, through its `top1`), the animal frame with the
    /// highest logit of that class; for `human` / `vehicle`, the first such frame. Ties go to the
    /// earliest slot.
    pub keyframe: Option<usize>,
}

/// Per-frame inputs of [`summarize_video`], one entry per decoded frame.
#[derive(Debug, Clone, Copy)]
pub struct FrameRows<'a> {
    /// The detector's decision per frame.
    pub kinds: &'a [ImageKind],
    /// Row-major `[frames, classes]` classifier logits (rows of non-animal frames are not read).
    pub logits: &'a [f32],
    /// Classes per row.
    pub num_classes: usize,
    /// Row-major `[frames, groups]` bird-head logits, or empty.
    pub bird_logits: &'a [f32],
    /// Animal boxes per frame.
    pub count: &'a [u32],
    /// Person boxes per frame.
    pub humancount: &'a [u32],
}

/// Aggregates the sampled `slots` of a video (see the module docs).
///
/// ```
/// use deepfaune_rs::detect::decision::ImageKind::{Animal, Empty};
/// use deepfaune_rs::manifest::classifier::builtin_classifier;
/// use deepfaune_rs::sequence::video::{summarize_video, FrameRows};
/// use deepfaune_rs::sequence::{AggregateOptions, Label};
/// // Two decoded frames, two classes; frame 1 is sampled twice, one position was unreadable.
/// let rows = FrameRows {
///     kinds: &[Empty, Animal],
///     logits: &[0.0, 0.0, 0.0, 3.12],
///     num_classes: 2,
///     bird_logits: &[],
///     count: &[0, 2],
///     humancount: &[0, 0],
/// };
/// let v14 = AggregateOptions::for_manifest(&builtin_classifier("deepfaune-v14").unwrap());
/// let v = summarize_video(&rows, &[Some(0), Some(1), Some(1), None], &v14).unwrap();
/// // Two animal rows: mean [0, 3.12] / 1.04 = [0, 3]; softmax = 1 / (1 + e^-3) = 0.9526 -> 0.95.
/// assert_eq!((v.prediction.label, v.prediction.score), (Label::Class(1), 0.95));
/// assert_eq!((v.count, v.keyframe), (2, Some(1)));
/// ```
pub fn summarize_video(
    rows: &FrameRows<'_>,
    slots: &[Option<usize>],
    opts: &AggregateOptions,
) -> Result<VideoSummary, Error> {
    let n = rows.kinds.len();
    if rows.count.len() != n || rows.humancount.len() != n {
        return Err(Error::InvalidArgument(format!(
            "{n} frames but {} counts and {} human counts",
            rows.count.len(),
            rows.humancount.len()
        )));
    }
    let logits = LogitTable::new(rows.logits, rows.num_classes)?;
    let bird = if rows.bird_logits.is_empty() {
        None
    } else {
        Some(LogitTable::new(
            rows.bird_logits,
            rows.bird_logits.len() / n.max(1),
        )?)
    };
    let image_rows = ImageRows::new(rows.kinds, logits, bird)?;
    let members: Vec<usize> = slots.iter().flatten().copied().collect();
    let prediction = aggregate(&image_rows, &members, opts)?;
    let count = members.iter().map(|&i| rows.count[i]).max().unwrap_or(0);
    let humancount = members
        .iter()
        .map(|&i| rows.humancount[i])
        .max()
        .unwrap_or(0);
    let keyframe = keyframe(rows, slots, &prediction);
    Ok(VideoSummary {
        prediction,
        count,
        humancount,
        keyframe,
    })
}

fn keyframe(rows: &FrameRows<'_>, slots: &[Option<usize>], p: &Prediction) -> Option<usize> {
    let label = if p.label == Label::Undefined {
        p.top1
    } else {
        p.label
    };
    let first_of = |kind: ImageKind| {
        slots
            .iter()
            .position(|s| s.is_some_and(|i| rows.kinds[i] == kind))
    };
    // The value to maximise over animal frames, when the label names one column.
    let column: Option<(&[f32], usize, usize)> = match label {
        Label::Empty => return None,
        Label::Human => return first_of(ImageKind::Human),
        Label::Vehicle => return first_of(ImageKind::Vehicle),
        Label::Class(c) => Some((rows.logits, rows.num_classes, c)),
        Label::BirdGroup(g) if !rows.bird_logits.is_empty() => Some((
            rows.bird_logits,
            rows.bird_logits.len() / rows.kinds.len(),
            g,
        )),
        Label::BirdGroup(_) | Label::Undefined => None,
    };
    let Some((table, width, c)) = column else {
        return first_of(ImageKind::Animal);
    };
    let mut best: Option<(usize, f32)> = None;
    for (slot, s) in slots.iter().enumerate() {
        let Some(i) = *s else { continue };
        if rows.kinds[i] != ImageKind::Animal {
            continue;
        }
        let v = table[i * width + c];
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((slot, v));
        }
    }
    best.map(|(slot, _)| slot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::classifier::builtin_classifier;
    use ImageKind::{Animal, Empty, Human, Vehicle};

    fn options(id: &str) -> AggregateOptions {
        AggregateOptions::for_manifest(&builtin_classifier(id).unwrap())
    }

    /// DeepFaune 1.4.1's temperatures: 1.10 for one animal frame, 1.04 for several.
    fn v14() -> AggregateOptions {
        options("deepfaune-v14")
    }

    fn rows<'a>(kinds: &'a [ImageKind], logits: &'a [f32], count: &'a [u32]) -> FrameRows<'a> {
        FrameRows {
            kinds,
            logits,
            num_classes: 2,
            bird_logits: &[],
            count,
            humancount: count,
        }
    }

    #[test]
    fn nothing_read_is_empty_without_keyframe() {
        let r = rows(&[], &[], &[]);
        let v = summarize_video(&r, &[None; 12], &v14()).unwrap();
        assert_eq!(v.prediction.label, Label::Empty);
        assert_eq!((v.count, v.humancount, v.keyframe), (0, 0, None));
    }

    #[test]
    fn one_animal_frame_uses_the_image_temperature() {
        // A single animal row: [0, 2.2] / 1.10 = [0, 2] -> e^2 / (1 + e^2) = 0.8808 -> 0.88.
        let r = rows(&[Empty, Animal], &[0.0, 0.0, 0.0, 2.2], &[0, 1]);
        let v = summarize_video(&r, &[Some(0), Some(1)], &v14()).unwrap();
        assert_eq!(
            (v.prediction.label, v.prediction.score),
            (Label::Class(1), 0.88)
        );
        assert_eq!(v.keyframe, Some(1));
    }

    #[test]
    fn keyframe_is_the_highest_logit_of_the_predicted_class() {
        // Frame 0 has the highest logit overall (class 0: 9), frame 2 the highest of class 1 (5).
        // Mean over the three animal rows: [(9 + 0 + 0) / 3, (1 + 4 + 5) / 3] = [3, 3.333]:
        // class 1 wins, so the keyframe is slot 3 (frame 2), not frame 0 (DeepFaune would take
        // the frame with the highest animal logit of any class).
        let logits = [9.0, 1.0, 0.0, 4.0, 0.0, 5.0, 0.0, 0.0];
        let r = rows(&[Animal, Animal, Animal, Human], &logits, &[3, 1, 1, 0]);
        let slots = [Some(3), Some(0), Some(1), Some(2), None];
        let v = summarize_video(&r, &slots, &v14()).unwrap();
        assert_eq!(v.prediction.top1, Label::Class(1));
        assert_eq!(v.keyframe, Some(3));
        assert_eq!((v.count, v.humancount), (3, 3));
    }

    #[test]
    fn undefined_uses_top1_and_people_take_the_first_frame() {
        // [0.1, 0] / 1.10: softmax 0.52 < 0.8 -> undefined, top1 class 0, the only animal frame.
        let r = rows(&[Human, Animal], &[0.0, 0.0, 0.11, 0.0], &[0, 1]);
        let v = summarize_video(&r, &[Some(0), Some(1)], &v14()).unwrap();
        assert_eq!(v.prediction.label, Label::Undefined);
        assert_eq!(v.keyframe, Some(1));
        let r = rows(&[Empty, Vehicle, Human, Human], &[0.0; 8], &[0, 0, 1, 2]);
        let slots = [Some(0), Some(1), Some(2), Some(3)];
        let v = summarize_video(&r, &slots, &v14()).unwrap();
        // Two human frames against one vehicle frame: human; its first frame is slot 2.
        assert_eq!((v.prediction.label, v.keyframe), (Label::Human, Some(2)));
    }

    #[test]
    fn repeated_frames_weigh_as_often_as_sampled() {
        // Frame 0 (class 0 logit 2) sampled three times, frame 1 (class 1 logit 2) once:
        // mean [1.5, 0.5] / 1.04 -> class 0.
        let r = rows(&[Animal, Animal], &[2.0, 0.0, 0.0, 2.0], &[1, 1]);
        let slots = [Some(0), Some(0), Some(0), Some(1)];
        let v = summarize_video(&r, &slots, &v14()).unwrap();
        assert_eq!(v.prediction.top1, Label::Class(0));
        assert!(summarize_video(&r, &[Some(2)], &v14()).is_err());
    }

    #[test]
    fn v15_videos_use_1_12_for_one_animal_frame_and_1_10_for_several() {
        let v15 = options("deepfaune-v15");
        // One animal frame: [0, 2.24] / 1.12 = [0, 2] -> 0.8808 -> 0.88.
        let r = rows(&[Empty, Animal], &[0.0, 0.0, 0.0, 2.24], &[0, 1]);
        let v = summarize_video(&r, &[Some(0), Some(1)], &v15).unwrap();
        assert_eq!(
            (v.prediction.label, v.prediction.score),
            (Label::Class(1), 0.88)
        );
        // Two animal frames: mean [0, 2.2] / 1.10 = [0, 2] -> 0.88; 1.4.1's 1.04 gives
        // 1 / (1 + e^-2.11538) = 0.8924 -> 0.89.
        let r = rows(&[Animal, Animal], &[0.0, 2.0, 0.0, 2.4], &[1, 2]);
        let slots = [Some(0), Some(1)];
        let v = summarize_video(&r, &slots, &v15).unwrap();
        assert_eq!(
            (v.prediction.label, v.prediction.score),
            (Label::Class(1), 0.88)
        );
        assert_eq!(
            summarize_video(&r, &slots, &v14())
                .unwrap()
                .prediction
                .score,
            0.89
        );
    }
}
