//! `media.csv` and `observations.csv` rows, and the CSV text of all three tables.

use std::collections::BTreeMap;

use crate::export::table::field;
use crate::manifest::classifier::ClassifierManifest;
use crate::sequence::{Label, Prediction};

/// The columns of `media.csv`, in the schema's order.
pub const MEDIA_FIELDS: [&str; 11] = [
    "mediaID",
    "deploymentID",
    "captureMethod",
    "timestamp",
    "filePath",
    "filePublic",
    "fileName",
    "fileMediatype",
    "exifData",
    "favorite",
    "mediaComments",
];

/// The columns of `observations.csv`, in the schema's order.
pub const OBSERVATION_FIELDS: [&str; 28] = [
    "observationID",
    "deploymentID",
    "mediaID",
    "eventID",
    "eventStart",
    "eventEnd",
    "observationLevel",
    "observationType",
    "cameraSetupType",
    "scientificName",
    "count",
    "lifeStage",
    "sex",
    "behavior",
    "individualID",
    "individualPositionRadius",
    "individualPositionAngle",
    "individualSpeed",
    "bboxX",
    "bboxY",
    "bboxWidth",
    "bboxHeight",
    "classificationMethod",
    "classifiedBy",
    "classificationTimestamp",
    "classificationProbability",
    "observationTags",
    "observationComments",
];

/// A table row: column -> text (absent = empty cell).
pub type Row = BTreeMap<&'static str, String>;

/// CSV text (RFC 4180 quoting, `\n` line ends) of rows in the given column order.
pub fn csv_text<K: std::borrow::Borrow<str> + Ord>(
    columns: &[&str],
    rows: &[&BTreeMap<K, String>],
) -> String {
    let mut out = columns.join(",");
    out.push('\n');
    for r in rows {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| r.get(*c).map(|v| field(v)).unwrap_or_default())
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// IANA media type from the file extension: the images the walk yields and the videos DeepFaune
/// reads (Python's `_core.media_type`).
pub fn media_type(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avi" => "video/x-msvideo",
        "mp4" => "video/mp4",
        "mpeg" => "video/mpeg",
        "mov" => "video/quicktime",
        "m4v" => "video/x-m4v",
        _ => "image/unknown",
    }
}

/// What an observation says about the taxon.
pub struct Taxon {
    /// `animal`, `human`, `vehicle`, `blank`.
    pub observation_type: &'static str,
    /// From the manifest's `scientific_names`, when the label is a class that has one.
    pub scientific_name: Option<String>,
    /// DeepFaune's own (English) label, for `observationComments`.
    pub comment: String,
}

/// The English name of an animal label (class or bird group).
pub fn english_name(m: &ClassifierManifest, label: Label) -> Option<&str> {
    match label {
        Label::Class(i) => m.classes.get("en")?.get(i).map(String::as_str),
        Label::BirdGroup(j) => m
            .bird_head
            .as_ref()?
            .groups
            .get("en")?
            .get(j)
            .map(String::as_str),
        _ => None,
    }
}

/// Camtrap DP's view of a prediction. DeepFaune's `undefined` (an animal whose class scored
/// below the threshold) stays an `animal` observation without a scientific name: the detector
/// is sure there is an animal, only the species is unknown.
pub fn taxon(m: &ClassifierManifest, p: &Prediction) -> Taxon {
    let animal = |label: Label, comment: String| Taxon {
        observation_type: "animal",
        scientific_name: english_name(m, label).and_then(|n| m.scientific_names.get(n).cloned()),
        comment,
    };
    match p.label {
        Label::Human => plain("human"),
        Label::Vehicle => plain("vehicle"),
        Label::Empty => plain("blank"),
        Label::Undefined => Taxon {
            scientific_name: None,
            ..animal(
                p.top1,
                format!(
                    "DeepFaune: undefined (best class: {})",
                    english_name(m, p.top1).unwrap_or("?")
                ),
            )
        },
        l => animal(
            l,
            format!("DeepFaune: {}", english_name(m, l).unwrap_or("?")),
        ),
    }
}

fn plain(kind: &'static str) -> Taxon {
    Taxon {
        observation_type: kind,
        scientific_name: None,
        comment: format!(
            "DeepFaune: {}",
            if kind == "blank" { "empty" } else { kind }
        ),
    }
}

/// A box `[x1, y1, x2, y2]` in pixels as Camtrap DP's `(bboxX, bboxY, bboxWidth, bboxHeight)`:
/// fractions of the image from its top-left corner, clipped to the image, 6 decimals. `None`
/// when nothing of the box is left inside the image.
///
/// ```
/// use deepfaune_rs::export::camtrap_dp::normalised_bbox;
/// assert_eq!(normalised_bbox([10.0, 20.0, 60.0, 120.0], 100, 200), Some([0.1, 0.1, 0.5, 0.5]));
/// assert_eq!(normalised_bbox([-10.0, 0.0, 50.0, 300.0], 100, 200), Some([0.0, 0.0, 0.5, 1.0]));
/// assert_eq!(normalised_bbox([100.0, 0.0, 120.0, 10.0], 100, 200), None);
/// ```
pub fn normalised_bbox(xyxy: [f32; 4], width: u32, height: u32) -> Option<[f64; 4]> {
    if width == 0 || height == 0 {
        return None;
    }
    let (w, h) = (f64::from(width), f64::from(height));
    let clip = |v: f32, size: f64| (f64::from(v) / size).clamp(0.0, 1.0);
    let (x1, y1) = (clip(xyxy[0], w), clip(xyxy[1], h));
    let (x2, y2) = (clip(xyxy[2], w), clip(xyxy[3], h));
    let r = |v: f64| (v * 1e6).round() / 1e6;
    let out = [r(x1), r(y1), r(x2 - x1), r(y2 - y1)];
    (out[2] > 0.0 && out[3] > 0.0 && out[0] + out[2] <= 1.0 + 1e-9 && out[1] + out[3] <= 1.0 + 1e-9)
        .then_some(out.map(|v| v.min(1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::classifier::builtin_classifier;

    #[test]
    fn taxa_of_predictions() {
        let m = builtin_classifier("deepfaune-v14").unwrap();
        let p = |label, top1| Prediction {
            label,
            score: 0.9,
            top1,
        };
        let t = taxon(&m, &p(Label::Class(34), Label::Class(34)));
        assert_eq!(
            (t.observation_type, t.scientific_name.as_deref()),
            ("animal", Some("Vulpes vulpes"))
        );
        // micromammal has no scientific name in the table: the label goes to the comment.
        let t = taxon(&m, &p(Label::Class(24), Label::Class(24)));
        assert_eq!(
            (t.scientific_name, t.comment.as_str()),
            (None, "DeepFaune: micromammal")
        );
        let t = taxon(&m, &p(Label::Undefined, Label::Class(20)));
        assert_eq!(t.observation_type, "animal");
        assert!(t.scientific_name.is_none() && t.comment.contains("wolf"));
        assert_eq!(
            taxon(&m, &p(Label::Empty, Label::Empty)).observation_type,
            "blank"
        );
        assert_eq!(
            taxon(&m, &p(Label::Human, Label::Human)).scientific_name,
            None
        );
    }

    #[test]
    fn csv_quotes_and_orders_columns() {
        let mut r = Row::new();
        r.insert("b", "x,y".into());
        r.insert("a", "1".into());
        assert_eq!(csv_text(&["a", "b", "c"], &[&r]), "a,b,c\n1,\"x,y\",\n");
        assert_eq!(media_type("x/IMG.JPG"), "image/jpeg");
        assert_eq!(media_type("a.tif"), "image/tiff");
        assert_eq!(media_type("cam/CLIP.MOV"), "video/quicktime");
        assert_eq!(media_type("a.m4v"), "video/x-m4v");
    }
}
