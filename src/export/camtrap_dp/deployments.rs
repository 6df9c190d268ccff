//! `deployments.csv`: from the user's rows where given, otherwise only what the media tell
//! (deploymentStart/End from their dates). Coordinates are never invented: a missing required
//! field is reported as a warning and left empty.

use std::collections::BTreeMap;
use std::path::Path;

use super::time::{iso_datetime, UtcOffset};
use crate::error::Error;

/// The columns of Camtrap DP 1.0.2 `deployments.csv`, in the schema's order.
pub const DEPLOYMENT_FIELDS: [&str; 24] = [
    "deploymentID",
    "locationID",
    "locationName",
    "latitude",
    "longitude",
    "coordinateUncertainty",
    "deploymentStart",
    "deploymentEnd",
    "setupBy",
    "cameraID",
    "cameraModel",
    "cameraDelay",
    "cameraHeight",
    "cameraDepth",
    "cameraTilt",
    "cameraHeading",
    "detectionDistance",
    "timestampIssues",
    "baitUse",
    "featureType",
    "habitat",
    "deploymentGroups",
    "deploymentTags",
    "deploymentComments",
];

/// Fields the schema requires.
pub const REQUIRED: [&str; 5] = [
    "deploymentID",
    "latitude",
    "longitude",
    "deploymentStart",
    "deploymentEnd",
];

/// One deployment row: Camtrap DP field -> text (absent = empty cell).
pub type DeploymentRow = BTreeMap<String, String>;

/// What the media of one deployment tell: the earliest start and latest end (naive dates).
#[derive(Debug, Clone, Copy, Default)]
pub struct ObservedSpan {
    /// Earliest start and latest end of its dated media (naive local seconds), if any is dated.
    pub span: Option<(i64, i64)>,
    /// The time zone used for the deployment's media.
    pub offset: Option<UtcOffset>,
}

/// The user's deployment rows from a CSV file (UTF-8, with or without a byte-order mark):
/// one row per line after the header, column name -> cell text; a short line has no entry for
/// its missing cells.
pub fn read_rows(path: &Path) -> Result<Vec<DeploymentRow>, Error> {
    let bad = |e: &dyn std::fmt::Display| {
        Error::InvalidArgument(format!("deployments file {}: {e}", path.display()))
    };
    let bytes = std::fs::read(path).map_err(|e| bad(&e))?;
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    rows_of_csv(text).map_err(|e| bad(&e))
}

fn rows_of_csv(text: &[u8]) -> Result<Vec<DeploymentRow>, csv::Error> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text);
    let header = reader.headers()?.clone();
    reader
        .records()
        .map(|record| {
            let record = record?;
            Ok(header
                .iter()
                .zip(record.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect())
        })
        .collect()
}

/// Checks the user's rows: unknown columns are dropped (warned), rows without a deploymentID
/// or with a duplicate one are dropped (warned). Returns the rows by deploymentID.
pub fn user_rows(
    rows: &[DeploymentRow],
    warnings: &mut Vec<String>,
) -> BTreeMap<String, DeploymentRow> {
    let mut unknown: Vec<&str> = rows
        .iter()
        .flat_map(|r| r.keys())
        .map(String::as_str)
        .filter(|k| !DEPLOYMENT_FIELDS.contains(k))
        .collect();
    unknown.sort_unstable();
    unknown.dedup();
    if !unknown.is_empty() {
        warnings.push(format!(
            "deployments: columns {unknown:?} are no Camtrap DP 1.0.2 deployment fields and were left out"
        ));
    }
    let mut out = BTreeMap::new();
    for (i, r) in rows.iter().enumerate() {
        let id = r.get("deploymentID").map(|s| s.trim()).unwrap_or("");
        if id.is_empty() {
            warnings.push(format!(
                "deployments: row {} has no deploymentID and was left out",
                i + 1
            ));
            continue;
        }
        let kept: DeploymentRow = r
            .iter()
            .filter(|(k, v)| DEPLOYMENT_FIELDS.contains(&k.as_str()) && !v.trim().is_empty())
            .map(|(k, v)| (k.clone(), v.trim().to_string()))
            .collect();
        if out.insert(id.to_string(), kept).is_some() {
            warnings.push(format!(
                "deployments: deploymentID '{id}' appears twice; the last row is kept"
            ));
        }
    }
    out
}

/// The final row of one deployment: the user's values, deploymentStart/End filled from the
/// media where the user gave none, and a warning naming the required fields still missing.
pub fn complete_row(
    id: &str,
    user: Option<&DeploymentRow>,
    observed: &ObservedSpan,
    warnings: &mut Vec<String>,
) -> DeploymentRow {
    let mut row = user.cloned().unwrap_or_default();
    row.insert("deploymentID".into(), id.to_string());
    let mut filled = Vec::new();
    if let (Some((first, last)), Some(tz)) = (observed.span, observed.offset) {
        for (field, t) in [("deploymentStart", first), ("deploymentEnd", last)] {
            if !row.contains_key(field) {
                row.insert(field.into(), iso_datetime(t, tz));
                filled.push(field);
            }
        }
    }
    if !filled.is_empty() {
        warnings.push(format!(
            "deployment '{id}': {} taken from the first/last media dates (the camera may have run longer)",
            filled.join(" and ")
        ));
    }
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|f| !row.contains_key(*f))
        .collect();
    if !missing.is_empty() {
        warnings.push(format!(
            "deployment '{id}': required {} missing (not in the media; give them in a deployments CSV), \
             the package will not validate until they are filled",
            missing.join(", ")
        ));
    }
    row
}

/// The numeric coordinates of a row, when both parse.
pub fn coordinates(row: &DeploymentRow) -> Option<(f64, f64)> {
    let lat = row.get("latitude")?.parse::<f64>().ok()?;
    let lon = row.get("longitude")?.parse::<f64>().ok()?;
    (lat.is_finite() && lon.is_finite()).then_some((lat, lon))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_file_gives_its_rows_by_column_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.csv");
        // A byte-order mark, a quoted comma, an empty cell and a short line.
        std::fs::write(
            &path,
            "\u{feff}deploymentID,latitude,locationName\nA,45.1,\"Col, nord\"\nB,,\nC\n",
        )
        .unwrap();
        let rows = read_rows(&path).unwrap();
        let row = |pairs: &[(&str, &str)]| -> DeploymentRow {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            rows,
            vec![
                row(&[
                    ("deploymentID", "A"),
                    ("latitude", "45.1"),
                    ("locationName", "Col, nord")
                ]),
                row(&[
                    ("deploymentID", "B"),
                    ("latitude", ""),
                    ("locationName", "")
                ]),
                row(&[("deploymentID", "C")]),
            ]
        );
        let gone = read_rows(&dir.path().join("gone.csv")).unwrap_err();
        assert!(gone.to_string().contains("gone.csv"), "{gone}");
    }

    fn row(pairs: &[(&str, &str)]) -> DeploymentRow {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn user_rows_drop_unknown_columns_and_bad_rows() {
        let mut w = Vec::new();
        let rows = [
            row(&[
                ("deploymentID", "cam1"),
                ("latitude", "45.1"),
                ("colour", "red"),
            ]),
            row(&[("latitude", "1")]),
        ];
        let out = user_rows(&rows, &mut w);
        assert_eq!(out.len(), 1);
        assert!(!out["cam1"].contains_key("colour"));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("colour") && w[1].contains("row 2"));
    }

    #[test]
    fn dates_filled_from_images_and_missing_coordinates_warned() {
        let mut w = Vec::new();
        let seen = ObservedSpan {
            span: Some((0, 86_400)),
            offset: Some(UtcOffset(60)),
        };
        let r = complete_row("cam1", None, &seen, &mut w);
        assert_eq!(r["deploymentStart"], "1970-01-01T00:00:00+01:00");
        assert_eq!(r["deploymentEnd"], "1970-01-02T00:00:00+01:00");
        assert!(!r.contains_key("latitude"));
        assert!(w[1].contains("latitude, longitude") && !w[1].contains("deploymentStart"));
        // User values win and nothing is reported missing.
        let mut w = Vec::new();
        let user = row(&[
            ("latitude", "45"),
            ("longitude", "6"),
            ("deploymentStart", "2020-01-01T00:00:00Z"),
            ("deploymentEnd", "2020-02-01T00:00:00Z"),
        ]);
        let r = complete_row("cam1", Some(&user), &seen, &mut w);
        assert_eq!(r["deploymentStart"], "2020-01-01T00:00:00Z");
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(coordinates(&r), Some((45.0, 6.0)));
    }
}
