//! The corrections journal: one JSON line per change a person makes (relabel a sequence or an
//! image, mark images verified), appended and synced to disk at once, never rewritten. The
//! results of the run are never edited: the journal is applied to them when they are read
//! ([`apply_corrections`]), later lines over earlier ones.
//!
//! A line:
//! `{"time": "2026-12-01T13:20:05.123Z", "files": ["cam/1.jpg", "cam/2.jpg"], "scope": "sequence",
//! "label": "chamois", "verified": true, "by": "anna"}`. `label` is a label of the run's
//! classifier in any of its languages (`null`: only verified); `files` are the images' paths as
//! the results hold them. A relabelled image takes the label with score 1.0 in both its own and
//! its sequence's columns (DeepFaune's GUI gives a corrected sequence score 1.0 too), `top1`
//! included. A relabelled video ([`apply_corrections_to_videos`]) takes the label as its
//! prediction and top1 with score 1.0.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::manifest::classifier::{ClassifierManifest, LabelNames};
use crate::results::{Reviewed, VideoRecord};
use crate::run::checkpoint::path_key;
use crate::sequence::{Label, Prediction, SequencePredictions};

/// One change a person made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Correction {
    /// When (UTC, ISO 8601 with milliseconds and `Z`).
    pub time: String,
    /// The images it applies to, as the results name them.
    pub files: Vec<String>,
    /// `sequence` (a whole sequence was relabelled or verified) or `image`.
    #[serde(default = "image_scope")]
    pub scope: String,
    /// The new label (any language of the classifier), `None` for a plain verification.
    #[serde(default)]
    pub label: Option<String>,
    /// Whether the images count as checked by a person.
    #[serde(default)]
    pub verified: bool,
    /// Who (free text; `None` when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

fn image_scope() -> String {
    "image".into()
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn now_iso() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let ms = d.subsec_millis();
    let text =
        crate::export::camtrap_dp::iso_datetime(secs, crate::export::camtrap_dp::UtcOffset(0));
    // iso_datetime writes `...:SSZ`; put the milliseconds before the zone.
    match text.strip_suffix('Z') {
        Some(t) => format!("{t}.{ms:03}Z"),
        None => text,
    }
}

/// Appends `c` to the journal at `path` (created if needed) as one line, then syncs the file
/// to disk before returning: a change the page confirmed survives a crash or a pulled plug.
pub fn append_correction(path: &Path, c: &Correction) -> Result<(), Error> {
    let err = |e: std::io::Error| Error::Output {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut line = serde_json::to_string(c).map_err(|e| Error::Output {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    line.push('\n');
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(err)?;
    // A line torn by a crash has no newline: end it first, or this line would be glued to it.
    let len = f.metadata().map_err(err)?.len();
    if len > 0 {
        use std::io::{Read, Seek, SeekFrom};
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1)).map_err(err)?;
        f.read_exact(&mut last).map_err(err)?;
        if last[0] != b'\n' {
            line.insert(0, '\n');
        }
    }
    // One write of the whole line: with O_APPEND, lines of two writers never interleave.
    f.write_all(line.as_bytes()).map_err(err)?;
    f.sync_data().map_err(err)
}

/// Reads a journal. A missing file is an empty journal; a torn line (the process died
/// mid-write: its JSON ends early) is ignored; any other line that is not a correction is an
/// error naming it.
pub fn read_journal(path: &Path) -> Result<Vec<Correction>, Error> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::InvalidArgument(format!(
                "cannot read corrections {}: {e}",
                path.display()
            )))
        }
    };
    let lines: Vec<String> = BufReader::new(f)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|e| {
            Error::InvalidArgument(format!("cannot read corrections {}: {e}", path.display()))
        })?;
    let mut out = Vec::new();
    for (k, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Correction>(line) {
            Ok(c) => out.push(c),
            // A line cut short by a crash (the JSON ends early), wherever it is: later appends
            // start on a new line.
            Err(e) if e.is_eof() || k + 1 == lines.len() => {}
            Err(e) => {
                return Err(Error::InvalidArgument(format!(
                    "corrections {} line {}: not a correction ({e})",
                    path.display(),
                    k + 1
                )))
            }
        }
    }
    Ok(out)
}

/// The [`Label`] a text names in any language of `m`, with or without the bird head's
/// wording (`bird undefined`, `bird raptors`).
pub fn resolve_label(m: &ClassifierManifest, text: &str) -> Option<Label> {
    let (n, g) = (m.num_classes(), m.num_groups());
    let wanted = text.trim().to_lowercase();
    for lang in m.languages() {
        let Some(names) = m.names(lang) else { continue };
        for i in 0..n + g + 4 {
            let label = Label::from_index(i, n, g)?;
            for bird in [false, true] {
                if label.text(&names, bird).to_lowercase() == wanted {
                    return Some(label);
                }
            }
        }
    }
    None
}

/// Applies `journal` in order to the predictions of a run whose images are `paths`: each
/// relabelled image gets `Prediction { label, score: 1.0, top1: label }` as its own and its
/// sequence's prediction. Returns, per image, what the journal says about it, and the number of
/// file entries that name no image of the run (left alone: a journal may cover several runs).
/// A label that is none of the classifier's is an error naming it.
pub fn apply_corrections(
    paths: &[PathBuf],
    preds: &mut SequencePredictions,
    journal: &[Correction],
    manifest: &ClassifierManifest,
) -> Result<(Vec<Option<Reviewed>>, usize), Error> {
    let keys: Vec<String> = paths.iter().map(|p| path_key(p).0).collect();
    let (reviewed, unknown) = reviews(&keys, journal, manifest)?;
    for (i, r) in reviewed.iter().enumerate() {
        if let Some(label) = r.as_ref().and_then(|r| r.label) {
            let p = Prediction {
                label,
                score: 1.0,
                top1: label,
            };
            preds.base[i] = p;
            preds.sequence[i] = p;
        }
    }
    Ok((reviewed, unknown))
}

/// Applies `journal` to a run's videos as [`apply_corrections`] does to its images: each
/// relabelled video takes the label as its prediction and its top1 (texts in `names`'
/// language, with the bird head's wording when `bird_head`), score 1.0, and the label's place
/// in DeepFaune's label list as both indices. Returns, per video, what the journal says.
pub fn apply_corrections_to_videos(
    videos: &mut [VideoRecord],
    journal: &[Correction],
    manifest: &ClassifierManifest,
    names: &LabelNames<'_>,
    bird_head: bool,
) -> Result<Vec<Option<Reviewed>>, Error> {
    let keys: Vec<String> = videos.iter().map(|v| path_key(&v.path).0).collect();
    let (reviewed, _) = reviews(&keys, journal, manifest)?;
    let (n, g) = (manifest.num_classes(), manifest.num_groups());
    for (v, r) in videos.iter_mut().zip(&reviewed) {
        if let Some(label) = r.as_ref().and_then(|r| r.label) {
            let text = label.text(names, bird_head);
            v.prediction = text.clone();
            v.top1 = text;
            v.score = 1.0;
            v.label_index = label.index(n, g);
            v.top1_index = v.label_index;
        }
    }
    Ok(reviewed)
}

/// What a file's review becomes when line `c` names it (`label`: the line's label, resolved):
/// the last label given stands (a plain verification keeps the one before), a verification
/// stays, who and when are the line's. The one rule for a run's rows ([`apply_corrections`]) and
/// the review page's ([`super::ReviewRows::apply`]).
pub fn reviewed_after<L>(
    before: Option<Reviewed<L>>,
    c: &Correction,
    label: Option<L>,
) -> Reviewed<L> {
    let (old, verified) = match before {
        Some(b) => (b.label, b.verified),
        None => (None, false),
    };
    Reviewed {
        label: label.or(old),
        verified: c.verified || verified,
        by: c.by.clone(),
        time: c.time.clone(),
    }
}

/// What `journal` says about each of the files `keys` (later lines over earlier ones: the last
/// label given stands, a verification stays), and how many file entries name none of them.
fn reviews(
    keys: &[String],
    journal: &[Correction],
    manifest: &ClassifierManifest,
) -> Result<(Vec<Option<Reviewed>>, usize), Error> {
    let index: HashMap<&str, usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let mut reviewed: Vec<Option<Reviewed>> = vec![None; keys.len()];
    let mut unknown = 0;
    for c in journal {
        let label = match &c.label {
            None => None,
            Some(text) => Some(resolve_label(manifest, text).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "correction at {}: '{text}' is not a label of {}",
                    c.time, manifest.id
                ))
            })?),
        };
        for f in &c.files {
            let Some(&i) = index.get(f.as_str()) else {
                unknown += 1;
                continue;
            };
            reviewed[i] = Some(reviewed_after(reviewed[i].take(), c, label));
        }
    }
    Ok((reviewed, unknown))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::manifest::classifier::builtin_classifier;

    fn entry(files: &[&str], label: Option<&str>, verified: bool) -> Correction {
        entry_by(files, label, verified, "t")
    }

    /// A journal line of now, relabelling (`label`) or verifying `files`, by `by`.
    pub(crate) fn entry_by(
        files: &[&str],
        label: Option<&str>,
        verified: bool,
        by: &str,
    ) -> Correction {
        Correction {
            time: now_iso(),
            files: files.iter().map(|f| f.to_string()).collect(),
            scope: "image".into(),
            label: label.map(str::to_string),
            verified,
            by: Some(by.into()),
        }
    }

    #[test]
    fn journal_appends_and_reads_back_ignoring_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv.corrections.jsonl");
        assert!(read_journal(&path).unwrap().is_empty());
        let a = entry(&["a.jpg"], Some("chamois"), false);
        let b = entry(&["b.jpg"], None, true);
        append_correction(&path, &a).unwrap();
        append_correction(&path, &b).unwrap();
        assert_eq!(read_journal(&path).unwrap(), vec![a.clone(), b.clone()]);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"time\": \"2026").unwrap();
        assert_eq!(read_journal(&path).unwrap().len(), 2);
        // The next change starts on a line of its own: nothing is lost.
        append_correction(&path, &a).unwrap();
        assert_eq!(
            read_journal(&path).unwrap(),
            vec![a.clone(), b.clone(), a.clone()]
        );
        // A line that is whole JSON but not a correction is an error, with its number.
        f.write_all(b"{\"files\": 3}\n").unwrap();
        append_correction(&path, &b).unwrap();
        let e = read_journal(&path).unwrap_err().to_string();
        assert!(e.contains("line 5"), "{e}");
        assert!(a.time.ends_with('Z') && a.time.len() == 24, "{}", a.time);
    }

    #[test]
    fn later_lines_win_and_labels_resolve_in_any_language() {
        let m = builtin_classifier("deepfaune-v15").unwrap();
        let en = m.names("en").unwrap();
        let chamois = Label::Class(en.classes.iter().position(|c| c == "chamois").unwrap());
        assert_eq!(resolve_label(&m, "chamois"), Some(chamois));
        assert_eq!(resolve_label(&m, "Vide"), Some(Label::Empty));
        assert_eq!(resolve_label(&m, "nothing-like-it"), None);
        let p0 = Prediction {
            label: Label::Undefined,
            score: 0.5,
            top1: Label::Class(0),
        };
        let mut preds = SequencePredictions {
            seqnum: vec![1, 1, 2],
            base: vec![p0; 3],
            sequence: vec![p0; 3],
        };
        let paths: Vec<PathBuf> = ["a.jpg", "b.jpg", "c.jpg"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let journal = [
            entry(&["a.jpg", "b.jpg"], Some("chamois"), false),
            entry(&["b.jpg", "elsewhere.jpg"], Some("vide"), true),
            entry(&["a.jpg"], None, true),
        ];
        let (rev, unknown) = apply_corrections(&paths, &mut preds, &journal, &m).unwrap();
        assert_eq!(unknown, 1);
        let one = |l| Prediction {
            label: l,
            score: 1.0,
            top1: l,
        };
        assert_eq!(preds.sequence, [one(chamois), one(Label::Empty), p0]);
        assert_eq!(preds.base, preds.sequence);
        let a = rev[0].as_ref().unwrap();
        assert_eq!((a.label, a.verified), (Some(chamois), true));
        assert!(rev[1].as_ref().unwrap().verified && rev[2].is_none());
        let bad = [entry(&["a.jpg"], Some("unicorn"), false)];
        let e = apply_corrections(&paths, &mut preds, &bad, &m).unwrap_err();
        assert!(e.to_string().contains("unicorn"), "{e}");
    }

    #[test]
    fn videos_take_the_last_label_in_the_results_language() {
        let m = builtin_classifier("deepfaune-v15").unwrap();
        let fr = m.names("fr").unwrap();
        let v: VideoRecord = serde_json::from_str(
            r#"{"path": "cam/clip.mp4", "prediction": "renard", "score": 0.62, "top1": "renard",
                "label_index": 12, "top1_index": 12}"#,
        )
        .unwrap();
        let mut videos = [
            v.clone(),
            VideoRecord {
                path: "cam/other.mp4".into(),
                ..v.clone()
            },
        ];
        let journal = [
            entry(&["cam/clip.mp4", "a.jpg"], Some("chamois"), false),
            entry(&["cam/clip.mp4"], Some("wolf"), false),
            entry(&["cam/clip.mp4", "cam/other.mp4"], None, true),
        ];
        let reviewed = apply_corrections_to_videos(&mut videos, &journal, &m, &fr, false).unwrap();
        let wolf = m
            .names("en")
            .unwrap()
            .classes
            .iter()
            .position(|c| c == "wolf")
            .unwrap();
        let c = &videos[0];
        assert_eq!(
            (
                c.prediction.as_str(),
                c.top1.as_str(),
                c.score,
                c.label_index,
                c.top1_index
            ),
            ("loup", "loup", 1.0, wolf, wolf)
        );
        // Verified only: the machine's answer stands, the review is recorded.
        assert_eq!(
            videos[1],
            VideoRecord {
                path: "cam/other.mp4".into(),
                ..v
            }
        );
        let (a, b) = (reviewed[0].as_ref().unwrap(), reviewed[1].as_ref().unwrap());
        assert_eq!((a.label, a.verified), (Some(Label::Class(wolf)), true));
        assert_eq!((b.label, b.verified), (None, true));
        let bad = [entry(&["cam/clip.mp4"], Some("unicorn"), false)];
        assert!(apply_corrections_to_videos(&mut videos, &bad, &m, &fr, false).is_err());
    }
}
