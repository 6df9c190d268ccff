//! DeepFaune's detector modes: one detector, a backstop, or an ensemble of two.

use image::RgbImage;

use super::detector::{OnnxDetector, PreparedInput};
use super::postprocess::{nms, Detection};
use crate::error::Error;

/// How detectors combine (SPEC 2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectorMode {
    /// One detector (DF, MDS, MDR, or any model).
    Single,
    /// DFbsMDS: the primary; the secondary only on images where the primary finds nothing.
    Backstop,
    /// DFMDS: both on every image, boxes merged by class-aware NMS at [`ENSEMBLE_IOU`].
    Ensemble,
}

/// IoU of the class-aware NMS that merges the two detectors' boxes in [`DetectorMode::Ensemble`].
pub const ENSEMBLE_IOU: f32 = 0.7;

impl DetectorMode {
    /// Parses DeepFaune's mode names: `DF`, `MDS`, `MDR` (single), `DFbsMDS`, `DFMDS`.
    /// Returns the mode and the built-in model ids it uses.
    pub fn parse(name: &str) -> Option<(DetectorMode, &'static str, Option<&'static str>)> {
        match name.to_ascii_uppercase().as_str() {
            "DF" => Some((DetectorMode::Single, "df", None)),
            "MDS" => Some((DetectorMode::Single, "mds", None)),
            "MDR" => Some((DetectorMode::Single, "mdr", None)),
            "DFBSMDS" => Some((DetectorMode::Backstop, "df", Some("mds"))),
            "DFMDS" => Some((DetectorMode::Ensemble, "df", Some("mds"))),
            _ => None,
        }
    }
}

/// Combines the boxes of two detectors per `mode`. `secondary` is `None` when it was not run.
pub fn combine(
    mode: DetectorMode,
    primary: Vec<Detection>,
    secondary: Option<Vec<Detection>>,
    max_det: usize,
) -> Vec<Detection> {
    match (mode, secondary) {
        (DetectorMode::Single, _) | (_, None) => primary,
        (DetectorMode::Backstop, Some(s)) => {
            if primary.is_empty() {
                s
            } else {
                primary
            }
        }
        (DetectorMode::Ensemble, Some(s)) => {
            let mut all = primary;
            all.extend(s);
            nms(all, ENSEMBLE_IOU, max_det)
        }
    }
}

/// The detectors of a mode, ready to run.
#[derive(Debug)]
pub struct DetectorSet {
    /// The mode.
    pub mode: DetectorMode,
    /// DF (or the single model).
    pub primary: OnnxDetector,
    /// MDS in the backstop and ensemble modes.
    pub secondary: Option<OnnxDetector>,
}

impl DetectorSet {
    /// A single detector.
    pub fn single(d: OnnxDetector) -> Self {
        DetectorSet {
            mode: DetectorMode::Single,
            primary: d,
            secondary: None,
        }
    }

    /// Whether the secondary detector can reuse the primary's input tensor.
    fn same_input(&self) -> bool {
        match &self.secondary {
            Some(s) => {
                format!("{:?}", s.manifest.input) == format!("{:?}", self.primary.manifest.input)
            }
            None => true,
        }
    }

    /// Detects on a batch of images whose primary inputs are prepared.
    pub fn detect(
        &mut self,
        images: &[&RgbImage],
        prepared: &[&PreparedInput],
    ) -> Result<Vec<Vec<Detection>>, Error> {
        let primary = self.primary.infer(prepared)?;
        let Some(_) = self.secondary else {
            return Ok(primary);
        };
        let needs: Vec<usize> = (0..images.len())
            .filter(|&i| self.mode == DetectorMode::Ensemble || primary[i].is_empty())
            .collect();
        let mut second: Vec<Option<Vec<Detection>>> = vec![None; images.len()];
        if !needs.is_empty() {
            let same = self.same_input();
            let secondary = self.secondary.as_mut().expect("checked");
            let own: Vec<PreparedInput> = if same {
                Vec::new()
            } else {
                needs
                    .iter()
                    .map(|&i| OnnxDetector::prepare(&secondary.manifest, images[i]))
                    .collect()
            };
            let inputs: Vec<&PreparedInput> = if same {
                needs.iter().map(|&i| prepared[i]).collect()
            } else {
                own.iter().collect()
            };
            for (k, r) in secondary.infer(&inputs)?.into_iter().enumerate() {
                second[needs[k]] = Some(r);
            }
        }
        let max_det = self.primary.manifest.postprocess.max_det;
        Ok(primary
            .into_iter()
            .zip(second)
            .map(|(p, s)| combine(self.mode, p, s, max_det))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Category::*;

    fn d(x: f32, conf: f32) -> Detection {
        Detection {
            bbox: [x, 0., x + 10., 10.],
            conf,
            category: Animal,
        }
    }

    #[test]
    fn parses_modes() {
        assert_eq!(
            DetectorMode::parse("DFbsMDS"),
            Some((DetectorMode::Backstop, "df", Some("mds")))
        );
        assert_eq!(
            DetectorMode::parse("dfmds").unwrap().0,
            DetectorMode::Ensemble
        );
        assert!(DetectorMode::parse("XYZ").is_none());
    }

    #[test]
    fn backstop_uses_secondary_only_when_primary_is_empty() {
        assert_eq!(
            combine(
                DetectorMode::Backstop,
                vec![d(0., 0.9)],
                Some(vec![d(50., 0.8)]),
                300
            ),
            vec![d(0., 0.9)]
        );
        assert_eq!(
            combine(DetectorMode::Backstop, vec![], Some(vec![d(50., 0.8)]), 300),
            vec![d(50., 0.8)]
        );
        assert_eq!(combine(DetectorMode::Backstop, vec![], None, 300), vec![]);
    }

    #[test]
    fn ensemble_merges_with_nms() {
        // Same animal seen by both (IoU 9/11 > 0.7): the stronger stays; a distinct one is added.
        let m = combine(
            DetectorMode::Ensemble,
            vec![d(0., 0.7), d(100., 0.6)],
            Some(vec![d(1., 0.9)]),
            300,
        );
        assert_eq!(m, vec![d(1., 0.9), d(100., 0.6)]);
        let mut p = d(0., 0.7);
        p.category = Person;
        // Other class at the same place survives.
        assert_eq!(
            combine(DetectorMode::Ensemble, vec![p], Some(vec![d(0., 0.9)]), 300).len(),
            2
        );
    }
}
