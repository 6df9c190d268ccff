//! How far two runs over the same images agree (fp32 against int8, `deepfaune-rs agreement`):
//! the per-image decision, the IoU of the deciding boxes, the classifier's top-1 class and the
//! sequence prediction. The runs are given as their columns, image by image in the same order.

use crate::detect::decision::ImageKind;

use super::CATEGORY_FAILED;

/// One run's detection columns (those of [`DetectionResults`](super::DetectionResults)).
#[derive(Debug, Clone, Copy)]
pub struct Decisions<'a> {
    /// Per image: the category code, [`CATEGORY_FAILED`] for a failed image.
    pub category: &'a [u8],
    /// Per image: the row in `boxes` of the deciding box, `-1` when none.
    pub best_detection: &'a [i64],
    /// Every box, `[x1, y1, x2, y2]`.
    pub boxes: &'a [[f64; 4]],
}

/// One run's classifier columns.
#[derive(Debug, Clone, Copy)]
pub struct Classifications<'a> {
    /// Per image: was it classified.
    pub classified: &'a [bool],
    /// Per image: the class of its largest logit (the first of equal ones).
    pub top1: &'a [usize],
    /// Per image: the sequence's prediction.
    pub prediction: &'a [String],
}

/// The agreement of the detection step.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionAgreement {
    /// Images that neither run failed.
    pub images: usize,
    /// Share of those with the same decision (NaN without images).
    pub decision_agreement: f64,
    /// `"a->b"` and how many images went from decision `a` to `b`, in order of first change.
    pub decision_changes: Vec<(String, usize)>,
    /// Images with a deciding box in both runs.
    pub boxes_compared: usize,
    /// Mean IoU of their deciding boxes (NaN without any).
    pub best_box_iou_mean: f64,
    /// Smallest of those IoUs (NaN without any).
    pub best_box_iou_min: f64,
    /// Share of those IoUs at least 0.9 (NaN without any).
    pub best_box_iou_ge_0_9: f64,
}

/// The agreement of the classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationAgreement {
    /// Images both runs classified (and neither failed).
    pub classified_both: usize,
    /// Share of those with the same top-1 class (NaN without any).
    pub top1_agreement: f64,
    /// Share of all images with the same sequence prediction (NaN without images).
    pub sequence_prediction_agreement: f64,
}

/// IoU of two `[x1, y1, x2, y2]` boxes; two boxes without area count as the same (1).
pub fn box_iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f64; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        1.0
    }
}

fn share(n: usize, of: usize) -> f64 {
    if of == 0 {
        f64::NAN
    } else {
        n as f64 / of as f64
    }
}

fn kind_name(code: u8) -> String {
    let kind = match code {
        0 => ImageKind::Empty,
        1 => ImageKind::Animal,
        2 => ImageKind::Human,
        3 => ImageKind::Vehicle,
        other => return format!("category {other}"),
    };
    kind.name().to_string()
}

/// Neither run failed the image.
fn both_ok(a: &Decisions<'_>, b: &Decisions<'_>) -> Vec<bool> {
    a.category
        .iter()
        .zip(b.category)
        .map(|(&x, &y)| x != CATEGORY_FAILED && y != CATEGORY_FAILED)
        .collect()
}

/// The deciding box of image `i`, if any.
fn best<'a>(d: &Decisions<'a>, i: usize) -> Option<&'a [f64; 4]> {
    usize::try_from(d.best_detection[i])
        .ok()
        .and_then(|j| d.boxes.get(j))
}

/// Compares the detection columns of two runs over the same images.
pub fn detection_agreement(a: &Decisions<'_>, b: &Decisions<'_>) -> DetectionAgreement {
    let ok = both_ok(a, b);
    let mut same = 0;
    let mut changes: Vec<(String, usize)> = Vec::new();
    let mut ious = Vec::new();
    for i in (0..ok.len()).filter(|&i| ok[i]) {
        let (x, y) = (a.category[i], b.category[i]);
        if x == y {
            same += 1;
        } else {
            let key = format!("{}->{}", kind_name(x), kind_name(y));
            match changes.iter_mut().find(|(k, _)| *k == key) {
                Some((_, n)) => *n += 1,
                None => changes.push((key, 1)),
            }
        }
        if let (Some(p), Some(q)) = (best(a, i), best(b, i)) {
            ious.push(box_iou(p, q));
        }
    }
    let images = ok.iter().filter(|&&o| o).count();
    let n = ious.len();
    let (mean, min, ge) = if n == 0 {
        (f64::NAN, f64::NAN, f64::NAN)
    } else {
        (
            ious.iter().sum::<f64>() / n as f64,
            ious.iter().copied().fold(f64::INFINITY, f64::min),
            share(ious.iter().filter(|&&v| v >= 0.9).count(), n),
        )
    };
    DetectionAgreement {
        images,
        decision_agreement: share(same, images),
        decision_changes: changes,
        boxes_compared: n,
        best_box_iou_mean: mean,
        best_box_iou_min: min,
        best_box_iou_ge_0_9: ge,
    }
}

/// Compares the classifier columns of two runs over the same images (`a` and `b`: their
/// detection columns, for the failed images).
pub fn classification_agreement(
    a: &Decisions<'_>,
    b: &Decisions<'_>,
    ca: &Classifications<'_>,
    cb: &Classifications<'_>,
) -> ClassificationAgreement {
    let ok = both_ok(a, b);
    let both: Vec<usize> = (0..ok.len())
        .filter(|&i| ok[i] && ca.classified[i] && cb.classified[i])
        .collect();
    let same_top1 = both.iter().filter(|&&i| ca.top1[i] == cb.top1[i]).count();
    let n_pred = ca.prediction.len().min(cb.prediction.len());
    let same_pred = ca
        .prediction
        .iter()
        .zip(cb.prediction)
        .filter(|(x, y)| x == y)
        .count();
    ClassificationAgreement {
        classified_both: both.len(),
        top1_agreement: share(same_top1, both.len()),
        sequence_prediction_agreement: share(same_pred, n_pred),
    }
}

/// The class of the largest value of each row of `logits` (`n_classes` per row; the first of
/// equal values, NaN never chosen over a number).
pub fn argmax_rows(logits: &[f32], n_classes: usize) -> Vec<usize> {
    logits
        .chunks(n_classes.max(1))
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                    if v > bv {
                        (i, v)
                    } else {
                        (bi, bv)
                    }
                })
                .0
        })
        .collect()
}

/// The whole comparison of two runs (`deepfaune-rs agreement`): what ran, the figures, the
/// seconds each run took.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The detector or mode both runs used.
    pub detector: String,
    /// The classifier both runs used (None: the detector alone).
    pub classifier: Option<String>,
    /// The detection step's agreement.
    pub detection: DetectionAgreement,
    /// The classifier's agreement (None: the detector alone).
    pub classification: Option<ClassificationAgreement>,
    /// The fp32 run's seconds (rounded to 0.01), model loading included.
    pub fp32_seconds: f64,
    /// The int8 run's seconds (rounded to 0.01), model loading included.
    pub int8_seconds: f64,
}

/// `x` as Python's `repr(float)` writes it: `2.0`, `0.25`, `nan`, `inf`.
fn py_float(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else if x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

/// `x` with `digits` decimals as Python's `f"{x:.Nf}"` (`nan` for NaN).
fn fixed(x: f64, digits: usize) -> String {
    if x.is_nan() {
        "nan".into()
    } else {
        format!("{x:.digits$}")
    }
}

/// A share as a percentage with one decimal, `n/a` without any.
fn pct(x: f64) -> String {
    if x.is_nan() {
        "n/a".into()
    } else {
        format!("{:.1} %", 100.0 * x)
    }
}

/// `s` as a JSON string (non-ASCII escaped, as Python's `json.dumps`).
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number as Python's `json` writes a float (`NaN`, `Infinity` for the others).
fn json_float(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        py_float(x)
    }
}

impl Report {
    /// The report as aligned text lines.
    pub fn format(&self) -> String {
        let d = &self.detection;
        let mut first = format!(
            "images compared            {} (detector {}",
            d.images, self.detector
        );
        match &self.classifier {
            Some(c) => first.push_str(&format!(", classifier {c})")),
            None => first.push(')'),
        }
        let mut decision = format!("decision agreement         {}", pct(d.decision_agreement));
        if !d.decision_changes.is_empty() {
            let changes: Vec<String> = d
                .decision_changes
                .iter()
                .map(|(k, n)| format!("'{k}': {n}"))
                .collect();
            decision.push_str(&format!("  changes: {{{}}}", changes.join(", ")));
        }
        let mut lines = vec![
            first,
            decision,
            format!(
                "best-box IoU               mean {}, min {}, >= 0.9: {} ({} images with a box \
                 in both)",
                fixed(d.best_box_iou_mean, 4),
                fixed(d.best_box_iou_min, 4),
                pct(d.best_box_iou_ge_0_9),
                d.boxes_compared
            ),
        ];
        if let Some(c) = &self.classification {
            lines.push(format!(
                "top-1 class agreement      {} ({} images classified in both)",
                pct(c.top1_agreement),
                c.classified_both
            ));
            lines.push(format!(
                "sequence prediction agr.   {}",
                pct(c.sequence_prediction_agreement)
            ));
        }
        let speed = if self.int8_seconds != 0.0 {
            self.fp32_seconds / self.int8_seconds
        } else {
            f64::NAN
        };
        lines.push(format!(
            "seconds                    fp32 {}, int8 {} ({}x, including model loading)",
            py_float(self.fp32_seconds),
            py_float(self.int8_seconds),
            fixed(speed, 2)
        ));
        lines.join("\n")
    }

    /// The figures as `(key, value)` in the report's order; a value is JSON text.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let d = &self.detection;
        let changes: Vec<String> = d
            .decision_changes
            .iter()
            .map(|(k, n)| format!("  {}: {n}", json_str(k)))
            .collect();
        let changes = if changes.is_empty() {
            "{}".to_string()
        } else {
            format!("{{\n{}\n }}", changes.join(",\n"))
        };
        let mut out = vec![
            ("images", d.images.to_string()),
            ("detector", json_str(&self.detector)),
            (
                "classifier",
                self.classifier.as_deref().map_or("null".into(), json_str),
            ),
            ("decision_agreement", json_float(d.decision_agreement)),
            ("decision_changes", changes),
            ("boxes_compared", d.boxes_compared.to_string()),
            ("best_box_iou_mean", json_float(d.best_box_iou_mean)),
            ("best_box_iou_min", json_float(d.best_box_iou_min)),
            ("best_box_iou_ge_0_9", json_float(d.best_box_iou_ge_0_9)),
            ("fp32_seconds", json_float(self.fp32_seconds)),
            ("int8_seconds", json_float(self.int8_seconds)),
        ];
        if let Some(c) = &self.classification {
            out.push(("classified_both", c.classified_both.to_string()));
            out.push(("top1_agreement", json_float(c.top1_agreement)));
            out.push((
                "sequence_prediction_agreement",
                json_float(c.sequence_prediction_agreement),
            ));
        }
        out
    }

    /// The figures as Python's `json.dump(report, f, indent=1)` wrote them.
    pub fn to_json(&self) -> String {
        let body: Vec<String> = self
            .fields()
            .into_iter()
            .map(|(k, v)| format!(" {}: {v}", json_str(k)))
            .collect();
        format!("{{\n{}\n}}", body.join(",\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_by_hand() {
        // Half overlap: 50 / (100 + 100 - 50); the same box; disjoint; two empty boxes.
        assert_eq!(
            box_iou(&[0., 0., 10., 10.], &[5., 0., 15., 10.]),
            50.0 / 150.0
        );
        assert_eq!(box_iou(&[0., 0., 10., 10.], &[0., 0., 10., 10.]), 1.0);
        assert_eq!(box_iou(&[0., 0., 2., 2.], &[3., 3., 4., 4.]), 0.0);
        assert_eq!(box_iou(&[1., 1., 1., 1.], &[2., 2., 2., 2.]), 1.0);
        // One inside the other: 4 / 16.
        assert_eq!(box_iou(&[0., 0., 4., 4.], &[1., 1., 3., 3.]), 0.25);
    }

    #[test]
    fn detection_agreement_by_hand() {
        let boxes_a = [[0., 0., 10., 10.], [0., 0., 4., 4.], [9., 9., 9., 9.]];
        let boxes_b = [[5., 0., 15., 10.], [1., 1., 3., 3.]];
        // Images: 0 animal/animal (IoU 1/3), 1 animal/animal (IoU 1/4), 2 empty/animal,
        // 3 failed in b, 4 human/empty, 5 empty/animal, 6 animal/animal box only in a.
        let a = Decisions {
            category: &[1, 1, 0, 1, 2, 0, 1],
            best_detection: &[0, 1, -1, 2, -1, -1, 2],
            boxes: &boxes_a,
        };
        let b = Decisions {
            category: &[1, 1, 1, CATEGORY_FAILED, 0, 1, 1],
            best_detection: &[0, 1, -1, -1, -1, -1, -1],
            boxes: &boxes_b,
        };
        let r = detection_agreement(&a, &b);
        assert_eq!(r.images, 6);
        assert_eq!(r.decision_agreement, 3.0 / 6.0);
        assert_eq!(
            r.decision_changes,
            vec![("empty->animal".into(), 2), ("human->empty".into(), 1)]
        );
        assert_eq!(r.boxes_compared, 2);
        assert_eq!(r.best_box_iou_mean, (1.0 / 3.0 + 0.25) / 2.0);
        assert_eq!(r.best_box_iou_min, 0.25);
        assert_eq!(r.best_box_iou_ge_0_9, 0.0);
    }

    #[test]
    fn nothing_to_compare_is_nan() {
        let a = Decisions {
            category: &[CATEGORY_FAILED],
            best_detection: &[-1],
            boxes: &[],
        };
        let r = detection_agreement(&a, &a);
        assert_eq!((r.images, r.boxes_compared), (0, 0));
        assert!(r.decision_agreement.is_nan() && r.best_box_iou_mean.is_nan());
        assert!(r.best_box_iou_min.is_nan() && r.best_box_iou_ge_0_9.is_nan());
    }

    #[test]
    fn classification_agreement_by_hand() {
        let d = Decisions {
            category: &[1, 1, 1, CATEGORY_FAILED],
            best_detection: &[-1; 4],
            boxes: &[],
        };
        let pa = ["fox", "badger", "lynx", "fox"].map(String::from);
        let pb = ["fox", "fox", "lynx", "fox"].map(String::from);
        let ca = Classifications {
            classified: &[true, true, false, true],
            top1: &[3, 1, 0, 2],
            prediction: &pa,
        };
        let cb = Classifications {
            classified: &[true, true, true, true],
            top1: &[3, 2, 0, 2],
            prediction: &pb,
        };
        let r = classification_agreement(&d, &d, &ca, &cb);
        // Images 0 and 1 classified by both (2: not in a; 3: failed); top-1 agrees on 0 only.
        assert_eq!(r.classified_both, 2);
        assert_eq!(r.top1_agreement, 0.5);
        // Predictions of every image: 3 of 4 the same.
        assert_eq!(r.sequence_prediction_agreement, 0.75);
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax_rows(&[0.1, 0.9, 0.9, 2.0, -1.0, 0.0], 3), vec![1, 0]);
    }
}
