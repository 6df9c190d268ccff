//! Camtrap DP 1.0.2 (the TDWG camera-trap data package, SPEC 3): `deployments.csv`,
//! `media.csv`, `observations.csv` and `datapackage.json`, each written atomically.
//!
//! - media: one row per readable image and per readable video (a [`VideoRecord`], `fileMediatype`
//!   `video/mp4`, ...); `mediaID` = the first 16 hex digits of the SHA-256 of its path relative
//!   to the input root (stable across runs); `timestamp` = EXIF DateTimeOriginal (a video's
//!   `creation_time`, read as a camera clock like DeepFaune does) in the deployment's time zone
//!   (EXIF has none: [`CamtrapOptions::timezone`], else the offset of the user's
//!   `deploymentStart`, else UTC with a warning). The schema requires a timestamp: undated media
//!   are left out with a warning listing them, or dated by their file modification time with
//!   [`UndatedMedia::FileTime`]. Unreadable images and videos are left out, counted in a warning.
//! - observations: one `event` row per sequence (`eventID` = `seq<seqnum>`, the sequence's
//!   prediction, `count` = the most animals (or people) in one of its images) and one `media`
//!   row per detection box (the box's class and confidence; the classified best animal box
//!   also gets the image's own species). Every video is a sequence of its own, numbered after
//!   the images' as in DeepFaune's table: an `event` row from its start to its start plus its
//!   whole seconds, with its prediction and counts, and a `media` row for its keyframe (the
//!   deciding box, the video's species, the frame number in `observationComments`).
//!   An image or video a person relabelled or verified (the corrections journal,
//!   [`crate::results::Reviewed`]) has `classificationMethod` `human`, `classifiedBy` and
//!   `classificationTimestamp` instead of the machine's classifier and probability.
//! - deployments: the user's rows (any Camtrap DP deployment column), matched to media by
//!   their folder; what the user did not give is filled only from the media
//!   (deploymentStart/End, up to the end of the last video), and missing required fields are
//!   warned about, never invented.
//!
//! The descriptor points at the standard's URLs, as the Camtrap DP example package does.

mod deployments;
mod package;
mod tables;
mod time;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use deployments::{read_rows as read_deployments, DeploymentRow, DEPLOYMENT_FIELDS};
pub use tables::{media_type, normalised_bbox, MEDIA_FIELDS, OBSERVATION_FIELDS};
pub use time::{iso_date, iso_datetime, UtcOffset};

use crate::error::Error;
use crate::fsio::write_atomic;
use crate::image_io::exif::parse_exif_datetime;
use crate::image_io::walk::OUTPUT_MARKER;
use crate::image_io::Timestamp;
use crate::manifest::classifier::ClassifierManifest;
use crate::results::{DetectionResults, Reviewed, VideoRecord, CATEGORY_FAILED};
use crate::sequence::{Label, Prediction, SequencePredictions};
use deployments::{complete_row, user_rows, ObservedSpan};
use tables::{csv_text, Row};

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
    /// The run's videos, in the run's order (failed ones included: they keep the numbering of
    /// the videos' sequences), corrections applied.
    pub videos: &'a [VideoRecord],
    /// Per image, what the corrections journal says (`predictions` already carry the labels a
    /// person gave): such observations are `classificationMethod` `human`, with
    /// `classifiedBy` and `classificationTimestamp`. Empty: no corrections.
    pub reviewed: &'a [Option<Reviewed>],
    /// The same per video.
    pub video_reviewed: &'a [Option<Reviewed>],
}

/// What the exporter reads from a [`VideoRecord`] beyond its fields: its `creation_time` as the
/// camera clock (like EXIF DateTimeOriginal, a naive time placed in the deployment's time
/// zone) and its answer as labels.
#[derive(Debug, Clone)]
struct VideoFacts {
    date: Option<Timestamp>,
    prediction: Prediction,
}

impl VideoFacts {
    fn of(v: &VideoRecord, m: &ClassifierManifest) -> Result<VideoFacts, Error> {
        let (n, g) = (m.num_classes(), m.num_groups());
        let label = |i: usize| match Label::from_index(i, n, g) {
            Some(l) => Some(l),
            // A video that could not be read is left out whatever its labels say.
            None if v.failure.is_some() => Some(Label::Empty),
            None => None,
        };
        let (Some(label), Some(top1)) = (label(v.label_index), label(v.top1_index)) else {
            return Err(Error::InvalidArgument(format!(
                "video {}: label_index/top1_index past the {} labels of {}",
                v.path.display(),
                n + g + 4,
                m.id
            )));
        };
        Ok(VideoFacts {
            date: v.date.as_deref().and_then(parse_exif_datetime),
            prediction: Prediction {
                label,
                score: v.score,
                top1,
            },
        })
    }
}

/// What a media row stands for: an image (its row in the detection columns) or a video (its
/// index in [`CamtrapSource::videos`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Image(usize),
    Video(usize),
}

/// One exported media file.
struct Medium {
    item: Item,
    path: PathBuf,
    id: String,
    deployment: String,
    /// Its sequence number (`eventID` = `seq<seq>`): the image's sequence, or the video's own.
    seq: u32,
    local_seconds: i64,
    /// The last second it shows: its timestamp for an image, plus the whole seconds of its
    /// length for a video.
    end_seconds: i64,
    offset: UtcOffset,
}

impl Medium {
    fn image(&self) -> Option<usize> {
        match self.item {
            Item::Image(i) => Some(i),
            Item::Video(_) => None,
        }
    }
}

/// A file that may become a [`Medium`].
struct Candidate<'a> {
    item: Item,
    path: PathBuf,
    failed: bool,
    date: Option<&'a Timestamp>,
    seq: u32,
    length_s: i64,
}

/// Undated media, per kind: the noun and what is missing.
const UNDATED: [(&str, &str); 2] = [
    ("image(s)", "no EXIF date"),
    ("video(s)", "no creation_time"),
];

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
    let facts = src
        .videos
        .iter()
        .map(|v| VideoFacts::of(v, src.manifest))
        .collect::<Result<Vec<_>, _>>()?;
    let seqnum = &src.predictions.seqnum;
    // Every video is a sequence of its own, numbered after the images' (as DeepFaune's table).
    let first_video_seq = seqnum.iter().copied().max().unwrap_or(0) + 1;
    let images = (0..d.len()).map(|i| Candidate {
        item: Item::Image(i),
        path: abs(&d.paths[i]),
        failed: d.category[i] == CATEGORY_FAILED,
        date: d.date[i].as_ref(),
        seq: seqnum[i],
        length_s: 0,
    });
    let videos = src.videos.iter().enumerate().map(|(k, v)| Candidate {
        item: Item::Video(k),
        path: abs(&v.path),
        failed: v.failure.is_some(),
        date: facts[k].date.as_ref(),
        seq: first_video_seq + k as u32,
        length_s: whole_seconds(v.duration_s()),
    });
    let candidates: Vec<Candidate<'_>> = images.chain(videos).collect();
    let paths: Vec<PathBuf> = candidates.iter().map(|c| c.path.clone()).collect();
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
    let (mut left_out, mut by_mtime, mut failed) = ([vec![], vec![]], [vec![], vec![]], 0usize);
    for c in candidates {
        if c.failed {
            failed += 1;
            continue;
        }
        let kind = usize::from(matches!(c.item, Item::Video(_)));
        let p = &c.path;
        // The camera's naive clock, or the file's UTC modification time shifted below.
        let (clock, utc) = match (c.date, opts.undated) {
            (Some(t), _) => (t.seconds, false),
            (None, UndatedMedia::FileTime) if modified_seconds(p).is_some() => {
                by_mtime[kind].push(p.display().to_string());
                (modified_seconds(p).unwrap_or_default(), true)
            }
            (None, _) => {
                left_out[kind].push(p.display().to_string());
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
            item: c.item,
            id: hex16(&Sha256::digest(key.as_bytes())),
            deployment: dep,
            seq: c.seq,
            local_seconds,
            end_seconds: local_seconds + c.length_s,
            offset,
            path: c.path,
        });
    }
    if failed > 0 {
        warnings.push(format!(
            "{failed} unreadable file(s) left out (see the run's failures)"
        ));
    }
    for (kind, (noun, missing)) in UNDATED.into_iter().enumerate() {
        for (list, what) in [
            (
                &left_out[kind],
                "were left out (Camtrap DP requires a timestamp)",
            ),
            (
                &by_mtime[kind],
                "were dated by their file modification time",
            ),
        ] {
            if !list.is_empty() {
                warnings.push(format!(
                    "{} {noun} have {missing} and {what}: {}",
                    list.len(),
                    listing(list)
                ));
            }
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
            let p = &m.path;
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
            "the media files are not below the package's parent folder: media filePath is relative to {}",
            root.display()
        ));
    }

    let observation_rows = package::observations(src, &facts, &media, &media_rows);

    // Deployments: every one with media, plus the user's other rows.
    let mut spans: BTreeMap<String, ObservedSpan> = BTreeMap::new();
    for m in &media {
        let s = spans.entry(m.deployment.clone()).or_default();
        s.offset = Some(m.offset);
        s.span = Some(match s.span {
            Some((a, b)) => (a.min(m.local_seconds), b.max(m.end_seconds)),
            None => (m.local_seconds, m.end_seconds),
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

/// The whole seconds of a length (0 when not a finite positive number).
fn whole_seconds(seconds: f64) -> i64 {
    if seconds.is_finite() && seconds > 0.0 {
        seconds.floor() as i64
    } else {
        0
    }
}

fn modified_seconds(p: &Path) -> Option<i64> {
    let t = std::fs::metadata(p).ok()?.modified().ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64)
}

#[cfg(test)]
mod tests;
