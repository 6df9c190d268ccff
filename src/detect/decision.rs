//! DeepFaune's per-image decision after detection (SPEC 2.2), and the classifier's square crop.

use super::postprocess::Detection;
use crate::manifest::Category;

/// What an image is, after detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ImageKind {
    /// No box above the threshold.
    Empty = 0,
    /// At least one animal box: the best one goes to the classifier.
    Animal = 1,
    /// No animal box; the most confident box is a person.
    Human = 2,
    /// No animal box; the most confident box is a vehicle.
    Vehicle = 3,
}

impl ImageKind {
    /// `empty`, `animal`, `human`, `vehicle`.
    pub fn name(self) -> &'static str {
        match self {
            ImageKind::Empty => "empty",
            ImageKind::Animal => "animal",
            ImageKind::Human => "human",
            ImageKind::Vehicle => "vehicle",
        }
    }
}

/// The decision for one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageDecision {
    /// Empty, animal, human or vehicle.
    pub kind: ImageKind,
    /// Index (in the image's detection list) of the box that decided: the best animal box, or the
    /// best box overall for human/vehicle images.
    pub best: Option<usize>,
    /// Number of animal boxes.
    pub count: u32,
    /// Number of person boxes.
    pub humancount: u32,
    /// The square crop `[x1, y1, x2, y2)` (pixel bounds in the original image) of the best animal box.
    pub crop: Option<[u32; 4]>,
}

/// Decides from boxes that all passed the threshold (any order).
pub fn decide(dets: &[Detection], width: u32, height: u32) -> ImageDecision {
    let confs: Vec<f64> = dets.iter().map(|d| d.conf as f64).collect();
    decide_with(dets, &confs, width, height)
}

/// [`decide`] comparing the confidences `confs` (one per box) instead of the boxes' `f32`
/// copies: boxes read from a file keep the file's `f64` values for the choice of the best box.
pub fn decide_with(dets: &[Detection], confs: &[f64], width: u32, height: u32) -> ImageDecision {
    debug_assert_eq!(dets.len(), confs.len());
    let count = dets
        .iter()
        .filter(|d| d.category == Category::Animal)
        .count() as u32;
    let humancount = dets
        .iter()
        .filter(|d| d.category == Category::Person)
        .count() as u32;
    let best_of = |pred: &dyn Fn(&Detection) -> bool| {
        dets.iter()
            .zip(confs)
            .enumerate()
            .filter(|(_, (d, _))| pred(d))
            .fold(None::<(usize, f64)>, |acc, (i, (_, &c))| match acc {
                Some((_, best)) if best >= c => acc,
                _ => Some((i, c)),
            })
            .map(|(i, _)| i)
    };
    if let Some(i) = best_of(&|d| d.category == Category::Animal) {
        return ImageDecision {
            kind: ImageKind::Animal,
            best: Some(i),
            count,
            humancount,
            crop: crop_square(dets[i].bbox, width, height),
        };
    }
    match best_of(&|_| true) {
        None => ImageDecision {
            kind: ImageKind::Empty,
            best: None,
            count,
            humancount,
            crop: None,
        },
        Some(i) => ImageDecision {
            kind: if dets[i].category == Category::Vehicle {
                ImageKind::Vehicle
            } else {
                ImageKind::Human
            },
            best: Some(i),
            count,
            humancount,
            crop: None,
        },
    }
}

/// DeepFaune's `cropSquareCVtoPIL`: grow the short side of `[x1, y1, x2, y2]` by
/// `int((long - short) / 2)` on each side, truncate to integers, clip to the image.
/// Returns pixel bounds `[x1, y1, x2, y2)`, or `None` when nothing is left.
///
/// ```
/// use deepfaune_rs::detect::crop_square;
/// // 100x40 box: the height grows by int(60 / 2) = 30 on each side.
/// assert_eq!(crop_square([10.0, 50.0, 110.0, 90.0], 1000, 1000), Some([10, 20, 110, 120]));
/// ```
pub fn crop_square(b: [f32; 4], width: u32, height: u32) -> Option<[u32; 4]> {
    crop_square_f64(b.map(f64::from), width, height)
}

/// [`crop_square`] of an `f64` box (boxes computed from a file's fractions).
pub fn crop_square_f64(b: [f64; 4], width: u32, height: u32) -> Option<[u32; 4]> {
    let [mut x1, mut y1, mut x2, mut y2] = b;
    let (xs, ys) = (x2 - x1, y2 - y1);
    if xs > ys {
        let d = ((xs - ys) / 2.0).trunc();
        y1 -= d;
        y2 += d;
    }
    if ys > xs {
        let d = ((ys - xs) / 2.0).trunc();
        x1 -= d;
        x2 += d;
    }
    // Python's int() truncates toward zero, then max(0, .) / min(., size).
    let cx1 = (x1.trunc() as i64).max(0);
    let cy1 = (y1.trunc() as i64).max(0);
    let cx2 = (x2.trunc() as i64).min(width as i64);
    let cy2 = (y2.trunc() as i64).min(height as i64);
    if cx2 <= cx1 || cy2 <= cy1 {
        return None;
    }
    Some([cx1 as u32, cy1 as u32, cx2 as u32, cy2 as u32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use Category::*;

    fn d(conf: f32, category: Category) -> Detection {
        Detection {
            bbox: [10., 10., 50., 30.],
            conf,
            category,
        }
    }

    #[test]
    fn empty_animal_human_vehicle() {
        assert_eq!(decide(&[], 100, 100).kind, ImageKind::Empty);
        let a = decide(
            &[
                d(0.9, Person),
                d(0.7, Animal),
                d(0.8, Animal),
                d(0.95, Vehicle),
            ],
            100,
            100,
        );
        assert_eq!(
            (a.kind, a.best, a.count, a.humancount),
            (ImageKind::Animal, Some(2), 2, 1)
        );
        assert_eq!(a.crop, Some([10, 0, 50, 40]));
        let h = decide(&[d(0.7, Vehicle), d(0.9, Person), d(0.8, Person)], 100, 100);
        assert_eq!(
            (h.kind, h.best, h.count, h.humancount, h.crop),
            (ImageKind::Human, Some(1), 0, 2, None)
        );
        let v = decide(&[d(0.95, Vehicle), d(0.9, Person)], 100, 100);
        assert_eq!(v.kind, ImageKind::Vehicle);
    }

    #[test]
    fn crop_square_clips_and_truncates() {
        // Tall box at the left border: width grows by int(25/2) = 12 each side, clipped at 0.
        assert_eq!(
            crop_square([2.5, 10.0, 7.5, 40.0], 100, 100),
            Some([0, 10, 19, 40])
        );
        // Fractional box: 10.7..20.2 x 5.9..30.1: ys - xs = 14.7 -> d = 7; x 3.7..27.2 -> 3..27.
        assert_eq!(
            crop_square([10.7, 5.9, 20.2, 30.1], 100, 100),
            Some([3, 5, 27, 30])
        );
        // Clipped at the far borders.
        assert_eq!(
            crop_square([90.0, 0.0, 100.0, 50.0], 100, 60),
            Some([70, 0, 100, 50])
        );
        assert_eq!(crop_square([5.0, 5.0, 5.0, 5.0], 100, 60), None);
    }
}
