//! The columns of a detection run: one row per image (size, date, decision, crop), one row per
//! box, and the failures.

use std::path::{Path, PathBuf};

use super::{Failure, CATEGORY_FAILED};
use crate::detect::decision::{decide, ImageDecision};
use crate::image_io::{DecodedImage, Timestamp};

/// Results of a detection run, as columns.
#[derive(Debug, Default, Clone)]
pub struct DetectionResults {
    /// One row per image (input order, sorted as walked).
    pub paths: Vec<PathBuf>,
    /// Image width after EXIF orientation (0 for failures).
    pub width: Vec<u32>,
    /// Image height after EXIF orientation (0 for failures).
    pub height: Vec<u32>,
    /// EXIF DateTimeOriginal.
    pub date: Vec<Option<Timestamp>>,
    /// `ImageKind` code (0 empty, 1 animal, 2 human, 3 vehicle) or [`CATEGORY_FAILED`].
    pub category: Vec<u8>,
    /// Animal boxes.
    pub count: Vec<u32>,
    /// Person boxes.
    pub humancount: Vec<u32>,
    /// Square crop `[x1, y1, x2, y2)` of the best animal box, `-1` when none.
    pub crop: Vec<[i32; 4]>,
    /// Row in the detection columns of the deciding box, `-1` when none.
    pub best_detection: Vec<i64>,
    /// Detection columns: image row of each box.
    pub det_image: Vec<u32>,
    /// `[x1, y1, x2, y2]` in original pixels.
    pub det_xyxy: Vec<[f32; 4]>,
    /// Confidence.
    pub det_conf: Vec<f32>,
    /// Category code (0 animal, 1 person, 2 vehicle).
    pub det_category: Vec<u8>,
    /// Everything that failed, with reasons.
    pub failures: Vec<Failure>,
    /// Ids of the detectors that ran (for output metadata).
    pub detector: String,
    /// None of the detectors that ran has a person class (md-lite): "no person box" then says
    /// nothing about people, and blurring them is refused.
    pub no_person_class: bool,
}

impl DetectionResults {
    /// Appends a failed image row and its [`Failure`].
    pub(crate) fn push_failure(
        &mut self,
        index: usize,
        path: &Path,
        stage: &'static str,
        kind: &'static str,
        reason: String,
    ) {
        self.paths.push(path.to_path_buf());
        self.width.push(0);
        self.height.push(0);
        self.date.push(None);
        self.category.push(CATEGORY_FAILED);
        self.count.push(0);
        self.humancount.push(0);
        self.crop.push([-1; 4]);
        self.best_detection.push(-1);
        self.failures.push(Failure {
            index: Some(index),
            path: path.to_path_buf(),
            stage,
            kind,
            reason,
        });
    }

    /// Appends a decoded image's row (see [`Self::push_row`]).
    pub(crate) fn push_image(
        &mut self,
        path: &Path,
        img: &DecodedImage,
        dets: Vec<crate::detect::Detection>,
    ) {
        let (w, h) = img.image.dimensions();
        self.push_row(path, w, h, img.exif.date.clone(), dets);
    }

    /// Appends an image row of size `w` x `h` (after orientation) with its boxes (all above the
    /// threshold, original pixels) and DeepFaune's decision on them.
    pub(crate) fn push_row(
        &mut self,
        path: &Path,
        w: u32,
        h: u32,
        date: Option<Timestamp>,
        dets: Vec<crate::detect::Detection>,
    ) {
        let d = decide(&dets, w, h);
        self.push_decided(path, w, h, date, dets, d);
    }

    /// Appends an image row with its boxes and a decision made elsewhere (boxes read from a
    /// file with other rules).
    pub(crate) fn push_decided(
        &mut self,
        path: &Path,
        w: u32,
        h: u32,
        date: Option<Timestamp>,
        dets: Vec<crate::detect::Detection>,
        d: ImageDecision,
    ) {
        let row = self.paths.len() as u32;
        let first = self.det_conf.len() as i64;
        self.paths.push(path.to_path_buf());
        self.width.push(w);
        self.height.push(h);
        self.date.push(date);
        self.category.push(d.kind as u8);
        self.count.push(d.count);
        self.humancount.push(d.humancount);
        self.crop
            .push(d.crop.map(|c| c.map(|v| v as i32)).unwrap_or([-1; 4]));
        self.best_detection
            .push(d.best.map(|b| first + b as i64).unwrap_or(-1));
        for det in dets {
            self.det_image.push(row);
            self.det_xyxy.push(det.bbox);
            self.det_conf.push(det.conf);
            self.det_category.push(det.category as u8);
        }
    }

    /// Number of images (rows).
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Puts the rows in the order `order` (new row `k` is old row `order[k]`, a permutation of
    /// `0..len`), with their boxes (grouped by row in the new order, each row's boxes in their
    /// order), `best_detection` and the failures' rows following. Returns the boxes' new order
    /// (new box `k` is old box `result[k]`), for columns kept beside the boxes.
    ///
    /// ```
    /// use deepfaune_rs::results::DetectionResults;
    /// let mut d = DetectionResults::default();
    /// for (p, boxes) in [("a.jpg", 1u32), ("b.jpg", 2)] {
    ///     d.paths.push(p.into());
    ///     d.width.push(10);
    ///     d.height.push(10);
    ///     d.date.push(None);
    ///     d.category.push(1);
    ///     d.count.push(boxes);
    ///     d.humancount.push(0);
    ///     d.crop.push([-1; 4]);
    ///     let row = d.paths.len() as u32 - 1;
    ///     for k in 0..boxes {
    ///         d.det_image.push(row);
    ///         d.det_xyxy.push([k as f32, 0.0, 1.0, 1.0]);
    ///         d.det_conf.push(0.9);
    ///         d.det_category.push(0);
    ///     }
    ///     d.best_detection.push(d.det_image.len() as i64 - 1);
    /// }
    /// let boxes = d.permute(&[1, 0]);
    /// assert_eq!(boxes, [1, 2, 0]);
    /// assert_eq!(d.paths[0].to_str(), Some("b.jpg"));
    /// assert_eq!((d.det_image.as_slice(), d.best_detection.as_slice()), (&[0, 0, 1][..], &[1, 2][..]));
    /// ```
    pub fn permute(&mut self, order: &[usize]) -> Vec<usize> {
        fn take<T: Clone>(v: &mut Vec<T>, order: &[usize]) {
            *v = order.iter().map(|&i| v[i].clone()).collect();
        }
        let n = self.len();
        debug_assert_eq!(order.len(), n);
        let mut by_row: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (k, &r) in self.det_image.iter().enumerate() {
            if let Some(b) = by_row.get_mut(r as usize) {
                b.push(k);
            }
        }
        let mut new_row = vec![0usize; n];
        for (k, &old) in order.iter().enumerate() {
            new_row[old] = k;
        }
        let box_order: Vec<usize> = order
            .iter()
            .flat_map(|&old| by_row[old].iter().copied())
            .collect();
        let mut new_box = vec![0i64; self.det_image.len()];
        for (k, &old) in box_order.iter().enumerate() {
            new_box[old] = k as i64;
        }
        self.det_image = box_order
            .iter()
            .map(|&b| new_row[self.det_image[b] as usize] as u32)
            .collect();
        take(&mut self.det_xyxy, &box_order);
        take(&mut self.det_conf, &box_order);
        take(&mut self.det_category, &box_order);
        take(&mut self.paths, order);
        take(&mut self.width, order);
        take(&mut self.height, order);
        take(&mut self.date, order);
        take(&mut self.category, order);
        take(&mut self.count, order);
        take(&mut self.humancount, order);
        take(&mut self.crop, order);
        self.best_detection = order
            .iter()
            .map(|&i| match usize::try_from(self.best_detection[i]) {
                Ok(b) if b < new_box.len() => new_box[b],
                _ => -1,
            })
            .collect();
        for f in &mut self.failures {
            f.index = f.index.filter(|&i| i < n).map(|i| new_row[i]);
        }
        box_order
    }
}
