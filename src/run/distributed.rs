//! Runs split by folder, for many machines (the Ray driver: `python/deepfaune_rs/distributed.py`).
//!
//! [`plan`] walks the inputs once (listings only) and cuts the images into work units, one per
//! folder (sequences never cross a folder, so a folder is never split), remembering the unit of
//! every image in the order of one single run. Each unit runs anywhere as an ordinary run over
//! its files; its rows travel as a part ([`encode_part`]: a header line, then the checkpoint's
//! JSON-lines records, exact to the float bit). [`merge`] puts the parts' rows back in the
//! single run's order and adds the walk's own findings as that run does, so sequences and
//! every export come out byte for byte as on one machine.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::checkpoint::Record;
use super::detection::{walk_inputs, DetectionResults, Discovered};
use super::pipeline::PipelineResults;
use crate::error::Error;
use crate::image_io::walk::{Found, MediaKind};

const PART_FORMAT: &str = "deepfaune-rs-part/1";

/// The images and videos of one folder (as met under one input), in walk order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Unit {
    /// The folder.
    pub folder: PathBuf,
    /// Its images, in walk order.
    pub images: Vec<PathBuf>,
    /// Its videos in DeepFaune's formats, in walk order.
    pub videos: Vec<PathBuf>,
}

/// A single run cut into units.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    /// The units, in the order the walk first met them.
    pub units: Vec<Unit>,
    /// The unit of each image, in the single run's row order.
    pub order: Vec<u32>,
    /// What else the walk met (videos in walk order, unsupported videos, walk failures,
    /// skipped metadata), as a single run reports it.
    pub discovered: Discovered,
}

/// Walks `inputs` as a single run does and cuts its images and videos into one unit per
/// folder of each input (an image given by name is a unit with the others of its folder).
pub fn plan(inputs: &[PathBuf]) -> Plan {
    let mut plan = Plan::default();
    let mut index: HashMap<(usize, PathBuf), u32> = HashMap::new();
    for (i, input) in inputs.iter().enumerate() {
        for found in walk_inputs(std::slice::from_ref(input)) {
            let (path, is_image) = match &found {
                Found::File(p, MediaKind::Image) => (p.clone(), true),
                Found::File(p, MediaKind::Video) => (p.clone(), false),
                _ => {
                    plan.discovered.sort_out(found);
                    continue;
                }
            };
            let folder = path.parent().map(PathBuf::from).unwrap_or_default();
            let units = &mut plan.units;
            let u = *index.entry((i, folder.clone())).or_insert_with(|| {
                units.push(Unit {
                    folder,
                    ..Unit::default()
                });
                (units.len() - 1) as u32
            });
            let unit = &mut plan.units[u as usize];
            if is_image {
                unit.images.push(path);
                plan.order.push(u);
            } else {
                unit.videos.push(path.clone());
                plan.discovered.videos.push(path);
            }
        }
    }
    plan
}

/// A part's first line: what the records alone do not tell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PartHeader {
    format: String,
    /// Ids of the detectors that ran.
    detector: String,
    /// The detector's confidence threshold (f32 bits).
    threshold: u32,
    num_classes: usize,
    embedding_dim: usize,
    num_bird_groups: usize,
    /// None of the detectors has a person class (blurring people is then refused).
    #[serde(default)]
    no_person_class: bool,
}

/// One unit's results as text: a header line, then one checkpoint record per row (floats as
/// their exact bits). `detection` stands for `res.detection` (a caller may have moved it out).
pub fn encode_part(
    res: &PipelineResults,
    detection: &DetectionResults,
    threshold: f32,
) -> Result<String, Error> {
    let header = PartHeader {
        format: PART_FORMAT.into(),
        detector: detection.detector.clone(),
        threshold: threshold.to_bits(),
        num_classes: res.num_classes,
        embedding_dim: res.embedding_dim,
        num_bird_groups: res.num_bird_groups,
        no_person_class: detection.no_person_class,
    };
    let json = |e: serde_json::Error| Error::InvalidArgument(format!("part: {e}"));
    let mut out = serde_json::to_string(&header).map_err(json)?;
    out.push('\n');
    for i in 0..detection.len() {
        out.push_str(&serde_json::to_string(&res.record_with(detection, i)).map_err(json)?);
        out.push('\n');
    }
    Ok(out)
}

/// A part read back: its header and rows.
struct Part {
    header: PartHeader,
    records: Vec<Record>,
}

fn decode_part(unit: usize, text: &str) -> Result<Part, Error> {
    let bad = |what: String| Error::InvalidArgument(format!("part of unit {unit}: {what}"));
    let mut lines = text.lines();
    let header: PartHeader = serde_json::from_str(lines.next().unwrap_or(""))
        .map_err(|e| bad(format!("no part header ({e})")))?;
    if header.format != PART_FORMAT {
        return Err(bad(format!("unknown format '{}'", header.format)));
    }
    let records = lines
        .map(|l| Record::parse_line(l).ok_or_else(|| bad("a damaged record".into())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Part { header, records })
}

/// The results of the single run `plan` stands for, from the parts of its units (`parts[u]`:
/// [`encode_part`] of unit `u`'s run), and the detector threshold of the parts. Rows go back in
/// the single run's order, then the walk's failures follow (sorted by path) as in that run.
/// Parts that do not fit the plan (another unit's rows, other models) are refused.
pub fn merge(plan: &Plan, parts: &[String]) -> Result<(PipelineResults, f32), Error> {
    if parts.len() != plan.units.len() {
        return Err(Error::InvalidArgument(format!(
            "{} parts for {} units",
            parts.len(),
            plan.units.len()
        )));
    }
    let parts = parts
        .iter()
        .enumerate()
        .map(|(u, t)| decode_part(u, t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut res = PipelineResults::default();
    let mut threshold = 0.0;
    if let Some(first) = parts.first() {
        let h = &first.header;
        res.detection.detector = h.detector.clone();
        res.num_classes = h.num_classes;
        res.embedding_dim = h.embedding_dim;
        res.num_bird_groups = h.num_bird_groups;
        res.detection.no_person_class = h.no_person_class;
        threshold = f32::from_bits(h.threshold);
    }
    for (u, (part, unit)) in parts.iter().zip(&plan.units).enumerate() {
        if parts.first().is_some_and(|f| f.header != part.header) {
            return Err(Error::InvalidArgument(format!(
                "part of unit {u} comes from other models or settings than unit 0's"
            )));
        }
        let paths: Vec<PathBuf> = part.records.iter().map(Record::path_buf).collect();
        if paths != unit.images {
            return Err(Error::InvalidArgument(format!(
                "part of unit {u} does not hold the images of {}",
                unit.folder.display()
            )));
        }
    }
    let mut next = vec![0usize; parts.len()];
    for &u in &plan.order {
        let u = u as usize;
        res.push_record(&parts[u].records[next[u]])?;
        next[u] += 1;
    }
    let mut discovered = plan.discovered.clone();
    discovered.walk_failures.sort_by(|a, b| a.path.cmp(&b.path));
    res.detection
        .failures
        .extend(std::mem::take(&mut discovered.walk_failures));
    res.discovered = discovered;
    Ok((res, threshold))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &std::path::Path, names: &[&str]) {
        for n in names {
            let p = root.join(n);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
    }

    #[test]
    fn plan_cuts_by_folder_and_keeps_the_walk_order() {
        let t = tempfile::tempdir().unwrap();
        // `sub` sorts between `a.jpg` and `z.jpg`: the folder's rows are not contiguous.
        touch(
            t.path(),
            &["a.jpg", "sub/b.jpg", "sub/c.mp4", "z.jpg", "notes.txt"],
        );
        let plan = plan(&[t.path().to_path_buf()]);
        let names = |v: &[PathBuf]| -> Vec<String> {
            v.iter()
                .map(|p| p.strip_prefix(t.path()).unwrap().display().to_string())
                .collect()
        };
        assert_eq!(plan.units.len(), 2);
        assert_eq!(names(&plan.units[0].images), ["a.jpg", "z.jpg"]);
        assert_eq!(names(&plan.units[1].images), ["sub/b.jpg"]);
        assert_eq!(names(&plan.units[1].videos), ["sub/c.mp4"]);
        assert_eq!(plan.order, [0, 1, 0]);
        assert_eq!(names(&plan.discovered.videos), ["sub/c.mp4"]);
        assert_eq!(plan.discovered.walk_failures.len(), 1);
    }

    fn part_of(paths: &[&str], logits: &[f32]) -> String {
        let mut res = PipelineResults {
            num_classes: 1,
            ..PipelineResults::default()
        };
        for (p, l) in paths.iter().zip(logits) {
            res.detection.paths.push(PathBuf::from(p));
            res.detection.width.push(1);
            res.detection.height.push(1);
            res.detection.date.push(None);
            res.detection.category.push(1);
            res.detection.count.push(0);
            res.detection.humancount.push(0);
            res.detection.crop.push([-1; 4]);
            res.detection.best_detection.push(-1);
            res.logits.push(*l);
            res.classified.push(true);
        }
        res.detection.no_person_class = true;
        encode_part(&res, &res.detection, 0.5).unwrap()
    }

    #[test]
    fn merge_restores_the_single_run_order_exactly() {
        let plan = Plan {
            units: vec![
                Unit {
                    folder: "r".into(),
                    images: vec!["r/a.jpg".into(), "r/z.jpg".into()],
                    videos: vec![],
                },
                Unit {
                    folder: "r/sub".into(),
                    images: vec!["r/sub/b.jpg".into()],
                    videos: vec![],
                },
            ],
            order: vec![0, 1, 0],
            discovered: Discovered::default(),
        };
        // A float that JSON text could round: its bits must survive.
        let odd = f32::from_bits(0x3f8c_cccd);
        let parts = [
            part_of(&["r/a.jpg", "r/z.jpg"], &[1.0, odd]),
            part_of(&["r/sub/b.jpg"], &[2.0]),
        ];
        let (res, threshold) = merge(&plan, &parts).unwrap();
        assert_eq!(threshold, 0.5);
        assert!(res.detection.no_person_class);
        let paths: Vec<_> = res
            .detection
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(paths, ["r/a.jpg", "r/sub/b.jpg", "r/z.jpg"]);
        assert_eq!(res.logits[2].to_bits(), odd.to_bits());
        assert_eq!(res.logits[1], 2.0);
        // Parts swapped: refused, never merged into the wrong rows.
        let swapped = [parts[1].clone(), parts[0].clone()];
        assert!(merge(&plan, &swapped).is_err());
    }
}
