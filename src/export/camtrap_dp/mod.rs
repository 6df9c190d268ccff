//! Camtrap DP 1.0.2 (the TDWG camera-trap data package, SPEC 3): `deployments.csv`,
//! `media.csv`, `observations.csv` and `datapackage.json`, each written atomically.
//!
//! - media: one row per readable image; `mediaID` = the first 16 hex digits of the SHA-256 of
//!   its path relative to the input root (stable across runs); `timestamp` = EXIF
//!   DateTimeOriginal in the deployment's time zone (EXIF has none: [`CamtrapOptions::timezone`],
//!   else the offset of the user's `deploymentStart`, else UTC with a warning). The schema
//!   requires a timestamp: undated images are left out with a warning listing them, or dated by
//!   their file modification time with [`UndatedMedia::FileTime`].
//! - observations: one `event` row per sequence (`eventID` = `seq<seqnum>`, the sequence's
//!   prediction, `count` = the most animals (or people) in one of its images) and one `media`
//!   row per detection box (the box's class and confidence; the classified best animal box
//!   also gets the image's own species).
//! - deployments: the user's rows (any Camtrap DP deployment column), matched to images by
//!   their folder; what the user did not give is filled only from the images
//!   (deploymentStart/End), and missing required fields are warned about, never invented.
//!
//! The descriptor points at the standard's URLs, as the Camtrap DP example package does.

mod deployments;
mod package;
mod tables;
mod time;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use deployments::{DeploymentRow, DEPLOYMENT_FIELDS};
pub use tables::{normalised_bbox, MEDIA_FIELDS, OBSERVATION_FIELDS};
pub use time::{iso_date, iso_datetime, UtcOffset};

use crate::error::Error;
use crate::export::write_atomic;
use crate::image_io::walk::OUTPUT_MARKER;
use crate::manifest::classifier::ClassifierManifest;
use crate::run::detection::{DetectionResults, CATEGORY_FAILED};
use crate::sequence::SequencePredictions;
use deployments::{complete_row, user_rows, ObservedSpan};
use tables::{csv_text, media_type, Row};

/// What to do with images that have no EXIF date (Camtrap DP requires a timestamp).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UndatedMedia {
    /// Leave them (and their observations) out, with a warning listing them.
    #[default]
    Exclude,
    /// Use the file's modification time (often the copy time, not the capture time), warned.
    FileTime,
}

/// Settings of an export.
#[derive(Debug, Clone, Default)]
pub struct CamtrapOptions {
    /// The user's deployments (Camtrap DP deployment columns; `deploymentID` required).
    pub deployments: Option<Vec<DeploymentRow>>,
    /// Folder (path as given, path relative to the root, or bare name) -> deploymentID.
    /// Unlisted folders are their own deployment, named by their path relative to the root.
    pub deployment_of: BTreeMap<String, String>,
    /// Time zone of every camera clock; `None` = each deployment's `deploymentStart` offset.
    pub timezone: Option<UtcOffset>,
    /// Input root (for stable media ids and relative paths); `None` = the images' common folder.
    pub root: Option<PathBuf>,
    /// Undated images.
    pub undated: UndatedMedia,
    /// Package metadata merged into `datapackage.json` (`title`, `contributors`, `licenses`,
    /// ...; `project` is merged key by key).
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// A pipeline run as the exporter needs it.
pub struct CamtrapSource<'a> {
    /// Detection columns (paths, sizes, dates, boxes).
    pub detection: &'a DetectionResults,
    /// Sequences and predictions, in the same row order.
    pub predictions: &'a SequencePredictions,
    /// The classifier's manifest (English names, scientific names, id).
    pub manifest: &'a ClassifierManifest,
}

struct Medium {
    row: usize,
    id: String,
    deployment: String,
    local_seconds: i64,
    offset: UtcOffset,
}

/// Writes the package into `folder` (created if needed) and returns the warnings.
pub fn write_camtrap_dp(
    src: &CamtrapSource<'_>,
    folder: &Path,
    opts: &CamtrapOptions,
) -> Result<Vec<String>, Error> {
    let d = src.detection;
    if src.predictions.seqnum.len() != d.len() || src.predictions.sequence.len() != d.len() {
        return Err(Error::InvalidArgument(
            "predictions and detections have different lengths".into(),
        ));
    }
    let mut warnings = Vec::new();
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let paths: Vec<PathBuf> = d.paths.iter().map(|p| abs(p)).collect();
    let root = opts
        .root
        .as_deref()
        .map(abs)
        .unwrap_or_else(|| common_folder(&paths));
    let rel = |p: &Path| p.strip_prefix(&root).ok().map(slash_path);
    let user = opts
        .deployments
        .as_deref()
        .map(|rows| user_rows(rows, &mut warnings))
        .unwrap_or_default();

    // Time zone per deployment.
    let deployment_of = |p: &Path| deployment_id(p, &root, &opts.deployment_of);
    let mut in_utc = BTreeSet::new();
    let mut zone = |dep: &str| -> UtcOffset {
        opts.timezone
            .or_else(|| {
                user.get(dep)
                    .and_then(|r| r.get("deploymentStart"))
                    .and_then(|s| UtcOffset::of_datetime(s))
            })
            .unwrap_or_else(|| {
                in_utc.insert(dep.to_string());
                UtcOffset(0)
            })
    };

    let mut media = Vec::new();
    let (mut left_out, mut by_mtime, mut failed) = (Vec::new(), Vec::new(), 0usize);
    for (i, p) in paths.iter().enumerate() {
        if d.category[i] == CATEGORY_FAILED {
            failed += 1;
            continue;
        }
        // The camera's naive clock, or the file's UTC modification time shifted below.
        let (clock, utc) = match (&d.date[i], opts.undated) {
            (Some(t), _) => (t.seconds, false),
            (None, UndatedMedia::FileTime) if modified_seconds(p).is_some() => {
                by_mtime.push(p.display().to_string());
                (modified_seconds(p).unwrap_or_default(), true)
            }
            (None, _) => {
                left_out.push(p.display().to_string());
                continue;
            }
        };
        let dep = deployment_of(p);
        let offset = zone(&dep);
        let local_seconds = if utc {
            clock + i64::from(offset.0) * 60
        } else {
            clock
        };
        let key = rel(p).unwrap_or_else(|| slash_path(p));
        media.push(Medium {
            row: i,
            id: hex16(&Sha256::digest(key.as_bytes())),
            deployment: dep,
            local_seconds,
            offset,
        });
    }
    if failed > 0 {
        warnings.push(format!(
            "{failed} unreadable file(s) left out (see the run's failures)"
        ));
    }
    for (list, what) in [
        (
            &left_out,
            "have no EXIF date and were left out (Camtrap DP requires a timestamp)",
        ),
        (
            &by_mtime,
            "have no EXIF date and were dated by their file modification time",
        ),
    ] {
        if !list.is_empty() {
            warnings.push(format!("{} image(s) {what}: {}", list.len(), listing(list)));
        }
    }
    if !in_utc.is_empty() {
        warnings.push(format!(
            "no time zone for deployment(s) {:?}: camera clocks taken as UTC (pass a timezone, or \
             give deploymentStart with an offset in the deployments CSV)",
            in_utc
        ));
    }

    // Absolute first: the parent of a bare name ("pkg") is "", which every path starts with.
    let base = abs(folder).parent().map(Path::to_path_buf);
    let mut outside = false;
    let media_rows: Vec<Row> = media
        .iter()
        .map(|m| {
            let p = &paths[m.row];
            let file_path = match base.as_deref().and_then(|b| p.strip_prefix(b).ok()) {
                Some(r) => slash_path(r),
                None => {
                    outside = true;
                    rel(p).unwrap_or_else(|| slash_path(p).trim_start_matches('/').to_string())
                }
            };
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut r = Row::new();
            r.insert("mediaID", m.id.clone());
            r.insert("deploymentID", m.deployment.clone());
            r.insert("timestamp", iso_datetime(m.local_seconds, m.offset));
            r.insert("filePath", file_path);
            r.insert("filePublic", "false".into());
            r.insert("fileMediatype", media_type(&name).into());
            r.insert("fileName", name);
            r
        })
        .collect();
    if outside {
        warnings.push(format!(
            "the images are not below the package's parent folder: media filePath is relative to {}",
            root.display()
        ));
    }

    let by_row: BTreeMap<usize, &Medium> = media.iter().map(|m| (m.row, m)).collect();
    let observation_rows = package::observations(src, &media_rows, &by_row);

    // Deployments: every one with media, plus the user's other rows.
    let mut spans: BTreeMap<String, ObservedSpan> = BTreeMap::new();
    for m in &media {
        let s = spans.entry(m.deployment.clone()).or_default();
        s.offset = Some(m.offset);
        s.span = Some(match s.span {
            Some((a, b)) => (a.min(m.local_seconds), b.max(m.local_seconds)),
            None => (m.local_seconds, m.local_seconds),
        });
    }
    let ids: BTreeSet<&String> = spans.keys().chain(user.keys()).collect();
    let deployment_rows: Vec<DeploymentRow> = ids
        .into_iter()
        .map(|id| {
            complete_row(
                id,
                user.get(id),
                &spans.get(id).copied().unwrap_or_default(),
                &mut warnings,
            )
        })
        .collect();

    let descriptor = package::descriptor(
        src.manifest,
        &deployment_rows,
        &observation_rows,
        &opts.metadata,
        &mut warnings,
    );

    std::fs::create_dir_all(folder).map_err(|e| Error::Output {
        path: folder.to_path_buf(),
        reason: e.to_string(),
    })?;
    let tables = [
        (
            "deployments.csv",
            csv_text(
                &DEPLOYMENT_FIELDS,
                &deployment_rows.iter().collect::<Vec<_>>(),
            ),
        ),
        (
            "media.csv",
            csv_text(&MEDIA_FIELDS, &media_rows.iter().collect::<Vec<_>>()),
        ),
        (
            "observations.csv",
            csv_text(
                &OBSERVATION_FIELDS,
                &observation_rows.iter().collect::<Vec<_>>(),
            ),
        ),
    ];
    for (name, text) in tables {
        write_atomic(&folder.join(name), text.as_bytes())?;
    }
    let json = serde_json::to_string_pretty(&descriptor).map_err(|e| Error::Output {
        path: folder.join("datapackage.json"),
        reason: e.to_string(),
    })?;
    // Last, so a descriptor only exists beside complete tables.
    write_atomic(&folder.join("datapackage.json"), json.as_bytes())?;
    if abs(folder).starts_with(&root) {
        write_atomic(&folder.join(OUTPUT_MARKER), b"")?;
    }
    Ok(warnings)
}

/// The deploymentID of an image: `deployment_of` looked up by the folder's path as given, its
/// path relative to `root`, then its name; otherwise its path relative to `root` (or its name).
fn deployment_id(path: &Path, root: &Path, deployment_of: &BTreeMap<String, String>) -> String {
    let folder = path.parent().unwrap_or(Path::new(""));
    let relative = folder
        .strip_prefix(root)
        .ok()
        .map(slash_path)
        .filter(|s| !s.is_empty());
    let name = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into());
    let keys = [
        Some(slash_path(folder)),
        relative.clone(),
        Some(name.clone()),
    ];
    keys.iter()
        .flatten()
        .find_map(|k| deployment_of.get(k).cloned())
        .unwrap_or(relative.unwrap_or(name))
}

fn common_folder(paths: &[PathBuf]) -> PathBuf {
    let mut it = paths.iter().filter_map(|p| p.parent());
    let Some(first) = it.next() else {
        return PathBuf::new();
    };
    let mut common = first.to_path_buf();
    for p in it {
        while !p.starts_with(&common) {
            if !common.pop() {
                return PathBuf::new();
            }
        }
    }
    common
}

/// Up to ten items, then how many more.
fn listing(items: &[String]) -> String {
    let shown = items
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    match items.len().saturating_sub(10) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

fn slash_path(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "/")
}

fn hex16(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn modified_seconds(p: &Path) -> Option<i64> {
    let t = std::fs::metadata(p).ok()?.modified().ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64)
}

#[cfg(test)]
mod tests;
