//! Observations (event and media level) and the `datapackage.json` descriptor.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::deployments::{coordinates, DeploymentRow};
use super::tables::{english_name, normalised_bbox, taxon, Row};
use super::time::{iso_datetime, now_utc_seconds, UtcOffset};
use super::{CamtrapSource, Item, Medium, VideoFacts};
use crate::manifest::classifier::ClassifierManifest;
use crate::results::Reviewed;
use crate::sequence::Label;

/// Where the standard publishes the profile and table schemas of this version.
pub const SCHEMA_BASE: &str = "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2";

/// Required project fields only the user knows.
const PROJECT_FROM_USER: [&str; 3] = ["title", "samplingDesign", "captureMethod"];

/// Manifest languages as ISO 639-3 codes (`vernacularNames` keys).
const LANGUAGES: [(&str, &str); 8] = [
    ("en", "eng"),
    ("fr", "fra"),
    ("it", "ita"),
    ("de", "deu"),
    ("es", "spa"),
    ("no", "nor"),
    ("se", "swe"),
    ("pt", "por"),
];

fn classified_by(src: &CamtrapSource<'_>, with_classifier: bool) -> String {
    let version = env!("CARGO_PKG_VERSION");
    if with_classifier {
        format!("deepfaune-rs {version} ({})", src.manifest.id)
    } else {
        format!("deepfaune-rs {version} ({})", src.detection.detector)
    }
}

/// Event rows (one per sequence with exported media, one per video), then media rows (one per
/// image box, one per video with a keyframe).
pub(super) fn observations(
    src: &CamtrapSource<'_>,
    videos: &[VideoFacts],
    media: &[Medium],
    media_rows: &[Row],
) -> Vec<Row> {
    let d = src.detection;
    let p = src.predictions;
    let mut events: BTreeMap<u32, Vec<&Medium>> = BTreeMap::new();
    for m in media {
        events.entry(m.seq).or_default().push(m);
    }
    let mut rows = Vec::new();
    for (&seq, members) in &events {
        let first = members.iter().map(|m| m.local_seconds).min().unwrap_or(0);
        let last = members.iter().map(|m| m.end_seconds).max().unwrap_or(0);
        let offset = members[0].offset;
        let (start, end) = (iso_datetime(first, offset), iso_datetime(last, offset));
        // A sequence is images of one folder, or one video.
        let images: Vec<usize> = members.iter().filter_map(|m| m.image()).collect();
        // Reviewed by a person when every image of the sequence was (relabelled or verified);
        // otherwise the machine's answer, from an image no one corrected.
        let human = match members[0].item {
            Item::Image(_) => human_review(src, &images),
            Item::Video(k) => video_reviewed(src, k),
        };
        let (pred, count, humancount) = match members[0].item {
            Item::Image(i) => (
                p.sequence[match human {
                    Some(_) => i,
                    None => images
                        .iter()
                        .copied()
                        .find(|&k| reviewed(src, k).is_none())
                        .unwrap_or(i),
                }],
                images.iter().map(|&i| d.count[i]).max(),
                images.iter().map(|&i| d.humancount[i]).max(),
            ),
            Item::Video(k) => {
                let v = &src.videos[k];
                (videos[k].prediction, Some(v.count), Some(v.humancount))
            }
        };
        let t = taxon(src.manifest, &pred);
        let count = match t.observation_type {
            "animal" => count,
            "human" => humancount,
            _ => None,
        };
        let mut r = Row::new();
        r.insert("observationID", event_id(seq));
        r.insert("deploymentID", members[0].deployment.clone());
        r.insert("eventID", event_id(seq));
        r.insert("eventStart", start);
        r.insert("eventEnd", end);
        r.insert("observationLevel", "event".into());
        r.insert("observationType", t.observation_type.into());
        if let Some(n) = t.scientific_name {
            r.insert("scientificName", n);
        }
        if let Some(c) = count.filter(|&c| c > 0) {
            r.insert("count", c.to_string());
        }
        match human {
            Some(h) => mark_human(&mut r, h),
            None => {
                r.insert("classificationMethod", "machine".into());
                r.insert(
                    "classifiedBy",
                    classified_by(src, t.observation_type == "animal"),
                );
                r.insert("classificationProbability", prob(pred.score));
            }
        }
        r.insert("observationComments", t.comment);
        rows.push(r);
    }
    let by_image: BTreeMap<usize, (&Medium, &str)> = media
        .iter()
        .zip(media_rows)
        .filter_map(|(m, r)| Some((m.image()?, (m, r["timestamp"].as_str()))))
        .collect();
    let mut box_number: BTreeMap<usize, usize> = BTreeMap::new();
    for k in 0..d.det_image.len() {
        let i = d.det_image[k] as usize;
        let Some(&(m, timestamp)) = by_image.get(&i) else {
            continue;
        };
        let n = box_number.entry(i).or_insert(0);
        *n += 1;
        let kind = match d.det_category[k] {
            0 => "animal",
            1 => "human",
            _ => "vehicle",
        };
        let bbox = normalised_bbox(d.det_xyxy[k], d.width[i], d.height[i]);
        let mut r = media_observation(m, *n, (timestamp, timestamp), kind, bbox);
        // The one box the classifier saw carries the image's own species.
        let classified = d.best_detection[i] == k as i64 && kind == "animal";
        let base = &p.base[i];
        let name = classified
            .then(|| english_name(src.manifest, base.label))
            .flatten();
        if let Some(en) = name {
            if let Some(sci) = src.manifest.scientific_names.get(en) {
                r.insert("scientificName", sci.clone());
            }
            r.insert(
                "observationComments",
                format!("DeepFaune: {en}, score {}", prob(base.score)),
            );
        } else if classified && base.label == Label::Undefined {
            r.insert("observationComments", "DeepFaune: undefined".into());
        }
        match reviewed(src, i).filter(|_| classified) {
            Some(h) => mark_human(&mut r, h),
            None => {
                r.insert("classifiedBy", classified_by(src, name.is_some()));
                r.insert("classificationProbability", prob(f64::from(d.det_conf[k])));
            }
        }
        rows.push(r);
    }
    // A video's media observation: its keyframe, the deciding box, the video's answer.
    for (m, row) in media.iter().zip(media_rows) {
        let Item::Video(k) = m.item else { continue };
        let v = &src.videos[k];
        let prediction = &videos[k].prediction;
        let t = taxon(src.manifest, prediction);
        let Some(frame) = v.keyframe.filter(|_| t.observation_type != "blank") else {
            continue;
        };
        let (w, h) = v.frame_size;
        let bbox = v.bbox.and_then(|b| normalised_bbox(b, w, h));
        let end = iso_datetime(m.end_seconds, m.offset);
        let span = (row["timestamp"].as_str(), end.as_str());
        let mut r = media_observation(m, 1, span, t.observation_type, bbox);
        if let Some(n) = t.scientific_name {
            r.insert("scientificName", n);
        }
        r.insert(
            "observationComments",
            format!("{}; keyframe: frame {frame}", t.comment),
        );
        match video_reviewed(src, k) {
            Some(h) => mark_human(&mut r, h),
            None => {
                r.insert(
                    "classifiedBy",
                    classified_by(src, t.observation_type == "animal"),
                );
                r.insert("classificationProbability", prob(prediction.score));
            }
        }
        rows.push(r);
    }
    rows
}

/// What the corrections journal says about video `k`.
fn video_reviewed<'a>(src: &CamtrapSource<'a>, k: usize) -> Option<&'a Reviewed> {
    src.video_reviewed.get(k).and_then(Option::as_ref)
}

/// What the corrections journal says about image `i`.
fn reviewed<'a>(src: &CamtrapSource<'a>, i: usize) -> Option<&'a Reviewed> {
    src.reviewed.get(i).and_then(Option::as_ref)
}

/// The latest review of `images` when a person reviewed every one of them.
fn human_review<'a>(src: &CamtrapSource<'a>, images: &[usize]) -> Option<&'a Reviewed> {
    let all: Option<Vec<&Reviewed>> = images.iter().map(|&i| reviewed(src, i)).collect();
    all?.into_iter().max_by(|a, b| a.time.cmp(&b.time))
}

/// Camtrap DP's fields of a classification made (or confirmed) by a person.
fn mark_human(r: &mut Row, h: &Reviewed) {
    r.insert("classificationMethod", "human".into());
    r.insert(
        "classifiedBy",
        h.by.clone().unwrap_or_else(|| "deepfaune-rs review".into()),
    );
    // Camtrap DP's datetime format (`%Y-%m-%dT%H:%M:%S%z`) has no fraction of a second.
    let time = match (h.time.find('.'), h.time.strip_suffix('Z')) {
        (Some(dot), Some(_)) => format!("{}Z", &h.time[..dot]),
        _ => h.time.clone(),
    };
    r.insert("classificationTimestamp", time);
}

fn event_id(seq: u32) -> String {
    format!("seq{seq}")
}

/// The columns every media-level observation has: ids, time span, type, one individual and
/// its box.
fn media_observation(
    m: &Medium,
    n: usize,
    (start, end): (&str, &str),
    kind: &str,
    bbox: Option<[f64; 4]>,
) -> Row {
    let mut r = Row::new();
    r.insert("observationID", format!("{}_{n}", m.id));
    r.insert("deploymentID", m.deployment.clone());
    r.insert("mediaID", m.id.clone());
    r.insert("eventID", event_id(m.seq));
    r.insert("eventStart", start.to_string());
    r.insert("eventEnd", end.to_string());
    r.insert("observationLevel", "media".into());
    r.insert("observationType", kind.into());
    r.insert("count", "1".into());
    if let Some(b) = bbox {
        for (name, v) in ["bboxX", "bboxY", "bboxWidth", "bboxHeight"]
            .into_iter()
            .zip(b)
        {
            r.insert(name, format!("{v}"));
        }
    }
    r.insert("classificationMethod", "machine".into());
    r
}

fn prob(p: f64) -> String {
    format!("{}", (p.clamp(0.0, 1.0) * 1000.0).round() / 1000.0)
}

/// `datapackage.json`: resources, profile, creation time, project, and the coverage that the
/// tables allow (spatial from coordinates, temporal from deployment dates, taxonomic from
/// scientific names). What only the user knows comes from `metadata`; missing required parts
/// are warned about.
pub(super) fn descriptor(
    manifest: &ClassifierManifest,
    deployments: &[DeploymentRow],
    observations: &[Row],
    metadata: &Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Value {
    let resource = |name: &str| {
        json!({
            "name": name,
            "path": format!("{name}.csv"),
            "profile": "tabular-data-resource",
            "format": "csv",
            "mediatype": "text/csv",
            "encoding": "utf-8",
            "schema": format!("{SCHEMA_BASE}/{name}-table-schema.json"),
        })
    };
    let mut doc = Map::new();
    doc.insert(
        "resources".into(),
        json!([
            resource("deployments"),
            resource("media"),
            resource("observations")
        ]),
    );
    doc.insert(
        "profile".into(),
        json!(format!("{SCHEMA_BASE}/camtrap-dp-profile.json")),
    );
    let now = now_utc_seconds();
    doc.insert("created".into(), json!(iso_datetime(now, UtcOffset(0))));
    doc.insert(
        "sources".into(),
        json!([{"title": "deepfaune-rs", "version": env!("CARGO_PKG_VERSION")}]),
    );
    let mut project = json!({"individualAnimals": false, "observationLevel": ["media", "event"]});
    for (k, v) in metadata {
        match (k.as_str(), v) {
            ("resources" | "profile", _) => warnings.push(format!(
                "metadata: '{k}' is set by the exporter and was ignored"
            )),
            ("project", Value::Object(p)) => {
                for (pk, pv) in p {
                    project[pk] = pv.clone();
                }
            }
            _ => {
                doc.insert(k.clone(), v.clone());
            }
        }
    }
    let missing: Vec<&str> = PROJECT_FROM_USER
        .into_iter()
        .filter(|k| project.get(*k).is_none())
        .collect();
    if !missing.is_empty() {
        warnings.push(format!(
            "package: project {} missing (required by Camtrap DP; pass them in the metadata's 'project')",
            missing.join(", ")
        ));
    }
    doc.insert("project".into(), project);
    if !doc.contains_key("contributors") {
        warnings.push(
            "package: contributors missing (Camtrap DP requires at least one, with a title; pass \
             them in the metadata)"
                .into(),
        );
    }
    if !doc.contains_key("spatial") {
        match spatial(deployments) {
            Some(s) => {
                doc.insert("spatial".into(), s);
            }
            None => warnings.push(
                "package: spatial coverage left out (no deployment has coordinates); it is required".into(),
            ),
        }
    }
    if !doc.contains_key("temporal") {
        let dates: Vec<&str> = deployments
            .iter()
            .flat_map(|r| [r.get("deploymentStart"), r.get("deploymentEnd")])
            .flatten()
            .filter_map(|s| s.get(..10))
            .collect();
        match (dates.iter().min(), dates.iter().max()) {
            (Some(a), Some(b)) => {
                doc.insert("temporal".into(), json!({"start": a, "end": b}));
            }
            _ => warnings.push(
                "package: temporal coverage left out (no deployment dates); it is required".into(),
            ),
        }
    }
    doc.insert("taxonomic".into(), taxonomic(manifest, observations));
    Value::Object(doc)
}

fn spatial(deployments: &[DeploymentRow]) -> Option<Value> {
    let points: Vec<(f64, f64)> = deployments.iter().filter_map(coordinates).collect();
    let (lat0, lon0) = *points.first()?;
    let (mut s, mut n, mut w, mut e) = (lat0, lat0, lon0, lon0);
    for &(lat, lon) in &points {
        (s, n, w, e) = (s.min(lat), n.max(lat), w.min(lon), e.max(lon));
    }
    Some(if s == n && w == e {
        json!({"type": "Point", "coordinates": [lon0, lat0]})
    } else {
        json!({"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]})
    })
}

/// One entry per scientific name used, with DeepFaune's names in every language the manifest has.
fn taxonomic(manifest: &ClassifierManifest, observations: &[Row]) -> Value {
    let mut used: Vec<&str> = observations
        .iter()
        .filter_map(|r| r.get("scientificName").map(String::as_str))
        .collect();
    used.sort_unstable();
    used.dedup();
    let groups = manifest.bird_head.as_ref().map(|b| &b.groups);
    Value::Array(
        used.into_iter()
            .map(|sci| {
                let mut names = Map::new();
                let en = manifest
                    .scientific_names
                    .iter()
                    .find(|(_, s)| s.as_str() == sci)
                    .map(|(en, _)| en.as_str());
                for (lang, iso) in LANGUAGES {
                    let pick = |list: Option<&Vec<String>>, en_list: Option<&Vec<String>>| {
                        let at = en_list?.iter().position(|c| Some(c.as_str()) == en)?;
                        list?.get(at).cloned()
                    };
                    let name = pick(manifest.classes.get(lang), manifest.classes.get("en"))
                        .or_else(|| {
                            pick(
                                groups.and_then(|g| g.get(lang)),
                                groups.and_then(|g| g.get("en")),
                            )
                        });
                    if let Some(n) = name {
                        names.insert(iso.into(), json!(n));
                    }
                }
                json!({"scientificName": sci, "vernacularNames": names})
            })
            .collect(),
    )
}
