//! Decoding raw detector outputs and non-maximum suppression.

use crate::manifest::{Category, OutputLayout};

/// One detected box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// `[x1, y1, x2, y2]` (input pixels while decoding, original pixels after mapping back).
    pub bbox: [f32; 4],
    /// Confidence (class score, times objectness for YOLOv5/YOLOX).
    pub conf: f32,
    /// Detection category.
    pub category: Category,
}

/// Decodes one image's slice of a raw output tensor into boxes above `threshold` (strictly
/// above for the ultralytics layouts, at or above for YOLOX, as each reference does).
///
/// `data` is the image's part of the tensor, `rows` = N anchors and `cols` = per-anchor values
/// (`4 + nc` for YOLOv8 where the tensor is `[4+nc, N]`, i.e. channel-major; `5 + nc` for
/// YOLOv5/YOLOX, anchor-major). `classes` maps model class index to category.
pub fn decode_boxes(
    data: &[f32],
    layout: OutputLayout,
    anchors: usize,
    classes: &[Category],
    threshold: f32,
) -> Vec<Detection> {
    let nc = classes.len();
    let mut out = Vec::new();
    match layout {
        OutputLayout::Yolov8 => {
            let ch = 4 + nc;
            debug_assert_eq!(data.len(), ch * anchors);
            let at = |c: usize, i: usize| data[c * anchors + i];
            for i in 0..anchors {
                let (mut best, mut cls) = (f32::NEG_INFINITY, 0);
                for c in 0..nc {
                    let s = at(4 + c, i);
                    if s > best {
                        best = s;
                        cls = c;
                    }
                }
                if best > threshold && best.is_finite() {
                    out.push(Detection {
                        bbox: xywh_to_xyxy(at(0, i), at(1, i), at(2, i), at(3, i)),
                        conf: best,
                        category: classes[cls],
                    });
                }
            }
        }
        OutputLayout::Yolov5 | OutputLayout::Yolox => {
            let w = 5 + nc;
            debug_assert_eq!(data.len(), w * anchors);
            for row in data.chunks_exact(w) {
                let obj = row[4];
                if !obj.is_finite() {
                    continue;
                }
                let (mut best, mut cls) = (f32::NEG_INFINITY, 0);
                for c in 0..nc {
                    if row[5 + c] > best {
                        best = row[5 + c];
                        cls = c;
                    }
                }
                let conf = obj * best;
                // ultralytics keeps `conf > threshold`, YOLOX `conf >= threshold`.
                let passes = if layout == OutputLayout::Yolox {
                    conf >= threshold
                } else {
                    conf > threshold
                };
                if passes && conf.is_finite() {
                    out.push(Detection {
                        bbox: xywh_to_xyxy(row[0], row[1], row[2], row[3]),
                        conf,
                        category: classes[cls],
                    });
                }
            }
        }
    }
    out
}

fn xywh_to_xyxy(cx: f32, cy: f32, w: f32, h: f32) -> [f32; 4] {
    [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
}

/// Intersection over union of two `xyxy` boxes (0 when either is empty).
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Class-aware greedy NMS (as `torchvision.ops.batched_nms`): boxes sorted by confidence
/// (stable, so ties keep input order), a box is dropped when its IoU with a kept box of the
/// same category is **above** `iou_threshold`; at most `max_det` boxes are kept.
pub fn nms(mut dets: Vec<Detection>, iou_threshold: f32, max_det: usize) -> Vec<Detection> {
    dets.sort_by(|a, b| b.conf.total_cmp(&a.conf));
    let mut keep: Vec<Detection> = Vec::new();
    for d in dets {
        if keep.len() >= max_det {
            break;
        }
        if keep
            .iter()
            .all(|k| k.category != d.category || iou(&k.bbox, &d.bbox) <= iou_threshold)
        {
            keep.push(d);
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;
    use Category::*;

    fn det(b: [f32; 4], conf: f32, category: Category) -> Detection {
        Detection {
            bbox: b,
            conf,
            category,
        }
    }

    #[test]
    fn iou_hand_values() {
        assert_eq!(iou(&[0., 0., 2., 2.], &[1., 1., 3., 3.]), 1.0 / 7.0);
        assert_eq!(iou(&[0., 0., 1., 1.], &[2., 2., 3., 3.]), 0.0);
        assert_eq!(iou(&[0., 0., 2., 2.], &[0., 0., 2., 2.]), 1.0);
    }

    #[test]
    fn nms_is_class_aware_and_ordered() {
        let d = vec![
            det([0., 0., 10., 10.], 0.8, Animal),
            det([1., 0., 11., 10.], 0.9, Animal), // IoU 9/11 = 0.82 with the first
            det([0., 0., 10., 10.], 0.7, Person), // same place, other class: kept
            det([50., 50., 60., 60.], 0.6, Animal),
        ];
        let k = nms(d, 0.7, 300);
        assert_eq!(
            k.iter().map(|d| d.conf).collect::<Vec<_>>(),
            vec![0.9, 0.7, 0.6]
        );
        // Threshold above the overlap keeps both animals.
        let d2 = vec![
            det([0., 0., 10., 10.], 0.8, Animal),
            det([1., 0., 11., 10.], 0.9, Animal),
        ];
        assert_eq!(nms(d2, 0.85, 300).len(), 2);
    }

    #[test]
    fn nms_caps_at_max_det() {
        let d: Vec<_> = (0..10)
            .map(|i| {
                det(
                    [i as f32 * 20., 0., i as f32 * 20. + 10., 10.],
                    0.5 + i as f32 / 100.,
                    Animal,
                )
            })
            .collect();
        let k = nms(d, 0.7, 3);
        assert_eq!(k.len(), 3);
        assert_eq!(k[0].conf, 0.5 + 9.0f32 / 100.0);
    }

    #[test]
    fn decodes_yolov8_channel_major() {
        // 2 classes (animal, person), 3 anchors: [4+2, 3] channel-major.
        #[rustfmt::skip]
        let t = [
            10., 50., 0.,    // cx
            10., 50., 0.,    // cy
            4.,  8.,  2.,    // w
            2.,  8.,  2.,    // h
            0.9, 0.1, 0.2,   // animal score
            0.3, 0.7, 0.1,   // person score
        ];
        let d = decode_boxes(&t, OutputLayout::Yolov8, 3, &[Animal, Person], 0.5);
        assert_eq!(
            d,
            vec![
                det([8., 9., 12., 11.], 0.9, Animal),
                det([46., 46., 54., 54.], 0.7, Person)
            ]
        );
    }

    #[test]
    fn decodes_yolox_with_objectness() {
        #[rustfmt::skip]
        let t = [
            10., 10., 4., 2., 0.5, 0.9,   // 0.45
            20., 20., 4., 4., 0.9, 0.9,   // 0.81
        ];
        let d = decode_boxes(&t, OutputLayout::Yolox, 2, &[Animal], 0.5);
        assert_eq!(d.len(), 1);
        assert!((d[0].conf - 0.81).abs() < 1e-6);
        assert_eq!(d[0].bbox, [18., 18., 22., 22.]);
    }
}
