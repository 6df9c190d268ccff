//! Checkpoints: resuming a run after a crash, a sleep or a pulled plug.
//!
//! A checkpoint is an append-only JSON-lines file: a header line with the run's fingerprint
//! (models and settings), then one line per processed image with everything the final outputs
//! need (detections, decision, logits, embedding, failure). Lines are flushed after every image
//! and synced to disk every [`SYNC_EVERY`] images or [`SYNC_SECONDS`]; a torn last line (the
//! process died mid-write) is ignored on resume. Floats are stored as their exact bits, so a
//! resumed run produces the same bytes as an uninterrupted one.
//!
//! Each record carries the identity of the file it was made from ([`FileIdentity`]: size,
//! modification time, a hash of the first and last 64 KiB): a file replaced under the same name
//! (a card emptied and refilled, the camera's counter restarted) is processed again, never
//! given the old results. A run that reaches its end appends a completion line
//! ([`Checkpoint::finish`]; [`is_complete`]).
//!
//! A video is one line of its own kind, `{"video": <VideoRecord>, "identity": <FileIdentity>}`
//! ([`VideoLine`], [`Checkpoint::append_video`]): the same file, the same torn-line and identity
//! rules; image lines and checkpoints written before videos had lines read as before.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::image_io::Timestamp;
use crate::results::VideoRecord;

/// Images between two syncs to disk.
pub const SYNC_EVERY: usize = 20;
/// Seconds between two syncs to disk.
pub const SYNC_SECONDS: u64 = 10;
const FORMAT: &str = "deepfaune-rs-checkpoint/1";

/// Everything the outputs need about one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The image path (lossy UTF-8 for display; `path_bytes` is exact).
    pub path: String,
    /// The exact path bytes (base64) where the platform gives them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_bytes: Option<String>,
    /// Width after orientation.
    pub width: u32,
    /// Height after orientation.
    pub height: u32,
    /// EXIF date text and seconds.
    pub date: Option<(String, i64)>,
    /// Category code (255 failed).
    pub category: u8,
    /// Animal boxes.
    pub count: u32,
    /// Person boxes.
    pub humancount: u32,
    /// Crop box or -1.
    pub crop: [i32; 4],
    /// Index of the deciding box among this image's boxes, -1 when none.
    pub best: i64,
    /// Boxes: xyxy bits, conf bits, category.
    pub boxes: Vec<([u32; 4], u32, u8)>,
    /// Whether the classifier ran on this image.
    pub classified: bool,
    /// Logits, embedding, bird logits as base64 of little-endian f32.
    pub logits: String,
    /// See `logits`.
    pub embedding: String,
    /// See `logits`.
    pub bird_logits: String,
    /// Failure (stage, kind, reason) of a failed image.
    pub failure: Option<(String, String, String)>,
    /// The file the record was made from; a record without it (or with another) is not reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<FileIdentity>,
}

/// Bytes hashed at each end of a file for its [`FileIdentity`].
pub const IDENTITY_EDGE: u64 = 64 * 1024;

/// What tells one file from another under the same path: size, modification time (seconds and
/// nanoseconds since the epoch) and the SHA-256 (first 16 bytes, hex) of its first and last
/// [`IDENTITY_EDGE`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileIdentity {
    /// Size in bytes.
    pub size: u64,
    /// Modification time: seconds since the epoch (negative before it).
    pub mtime_s: i64,
    /// Modification time: nanoseconds within the second.
    pub mtime_ns: u32,
    /// Hash of the first and last 64 KiB.
    pub edges: String,
}

impl FileIdentity {
    /// The identity of the file at `path` (links followed), `None` when it cannot be read (the
    /// image then fails to read anyway, and is never taken from a checkpoint).
    pub fn of(path: &Path) -> Option<FileIdentity> {
        use sha2::{Digest, Sha256};
        use std::io::{Read, Seek, SeekFrom};
        // Never open a pipe or a device (it could block): checked before opening.
        if !std::fs::metadata(path).ok()?.is_file() {
            return None;
        }
        let mut f = File::open(path).ok()?;
        let meta = f.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        let size = meta.len();
        let (mtime_s, mtime_ns) = match meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH)
        {
            Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => {
                let d = e.duration();
                (-(d.as_secs() as i64) - 1, 1_000_000_000 - d.subsec_nanos())
            }
        };
        let mut h = Sha256::new();
        let mut buf = Vec::with_capacity(IDENTITY_EDGE as usize);
        (&mut f).take(IDENTITY_EDGE).read_to_end(&mut buf).ok()?;
        h.update(&buf);
        if size > IDENTITY_EDGE {
            let tail = (size - IDENTITY_EDGE).max(IDENTITY_EDGE);
            f.seek(SeekFrom::Start(tail)).ok()?;
            buf.clear();
            f.take(IDENTITY_EDGE).read_to_end(&mut buf).ok()?;
            h.update(&buf);
        }
        let edges = h.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Some(FileIdentity {
            size,
            mtime_s,
            mtime_ns,
            edges,
        })
    }
}

/// [`VideoLine`] written without copying the record.
#[derive(Serialize)]
struct VideoLineRef<'a> {
    video: &'a VideoRecord,
    identity: Option<&'a FileIdentity>,
}

/// The line a finished run appends.
#[derive(Debug, Serialize, Deserialize)]
struct Complete {
    complete: bool,
    images: usize,
}

/// True when the checkpoint at `path` ends with the line of a finished run.
pub fn is_complete(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    let last = BufReader::new(f).lines().map_while(Result::ok).last();
    last.and_then(|l| serde_json::from_str::<Complete>(&l).ok())
        .is_some_and(|c| c.complete)
}

/// Encodes f32 values exactly.
pub fn encode_f32(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    B64.encode(bytes)
}

/// Decodes [`encode_f32`].
pub fn decode_f32(s: &str) -> Result<Vec<f32>, String> {
    let bytes = B64.decode(s).map_err(|e| e.to_string())?;
    if bytes.len() % 4 != 0 {
        return Err("float data length is not a multiple of 4".into());
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// The key under which a checkpoint holds a file's record (image or video): the path's text,
/// or the base64 of its bytes when they are not UTF-8.
pub fn resume_key(p: &Path) -> String {
    let (s, b) = path_key(p);
    b.unwrap_or(s)
}

/// The key identifying an image across runs.
pub fn path_key(p: &Path) -> (String, Option<String>) {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let bytes = p.as_os_str().as_bytes();
        match std::str::from_utf8(bytes) {
            Ok(s) => (s.to_string(), None),
            Err(_) => (p.to_string_lossy().into_owned(), Some(B64.encode(bytes))),
        }
    }
    #[cfg(not(unix))]
    {
        (p.to_string_lossy().into_owned(), None)
    }
}

impl Record {
    /// The exact path.
    pub fn path_buf(&self) -> PathBuf {
        #[cfg(unix)]
        if let Some(b) = self.path_bytes.as_deref().and_then(|b| B64.decode(b).ok()) {
            use std::os::unix::ffi::OsStrExt;
            return PathBuf::from(std::ffi::OsStr::from_bytes(&b));
        }
        PathBuf::from(&self.path)
    }

    /// One checkpoint line, `None` when it is not a record (a torn or damaged line).
    pub fn parse_line(line: &str) -> Option<Record> {
        serde_json::from_str(line).ok()
    }

    /// The date as a [`Timestamp`].
    pub fn timestamp(&self) -> Option<Timestamp> {
        self.date.as_ref().map(|(text, seconds)| Timestamp {
            text: text.clone(),
            seconds: *seconds,
        })
    }
}

/// A video's checkpoint line: its record and the identity of the file it was made from (a
/// line without one, or with another, is not reused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoLine {
    /// The video's record.
    pub video: VideoRecord,
    /// The video file's identity when it was processed.
    #[serde(default)]
    pub identity: Option<FileIdentity>,
}

impl VideoLine {
    /// The key of its video ([`resume_key`]).
    pub fn key(&self) -> String {
        resume_key(&self.video.path)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    fingerprint: serde_json::Value,
}

/// An open checkpoint, appending records.
pub struct Checkpoint {
    path: PathBuf,
    out: BufWriter<File>,
    unsynced: usize,
    last_sync: Instant,
    /// The video lines read at opening, keyed by [`VideoLine::key`] (taken by the run).
    videos: HashMap<String, VideoLine>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .finish()
    }
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Output {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

impl Checkpoint {
    /// The file this checkpoint is written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `path` for a run with `fingerprint`. An existing checkpoint with the same
    /// fingerprint is resumed (its records are returned, keyed by path); one with another
    /// fingerprint is refused with [`Error::InvalidArgument`] saying what differs.
    pub fn open(
        path: &Path,
        fingerprint: serde_json::Value,
    ) -> Result<(Checkpoint, HashMap<String, Record>), Error> {
        // Compare what the file will hold: serde_json's float parsing is not an exact inverse
        // of its printing (1.04f32 prints as 1.0399999618530273, parses back one ulp off), so
        // the new fingerprint goes through the same text round trip as the stored one.
        let fingerprint: serde_json::Value =
            serde_json::from_str(&fingerprint.to_string()).map_err(|e| io_err(path, e))?;
        let mut done = HashMap::new();
        let mut videos: HashMap<String, VideoLine> = HashMap::new();
        let exists = path.is_file()
            && std::fs::metadata(path)
                .map(|m| m.len() > 0)
                .unwrap_or(false);
        if exists {
            let f = File::open(path).map_err(|e| io_err(path, e))?;
            let mut lines = BufReader::new(f).lines();
            let header: Header = match lines.next() {
                Some(Ok(l)) => serde_json::from_str(&l).map_err(|e| {
                    Error::InvalidArgument(format!(
                        "{} is not a deepfaune-rs checkpoint ({e})",
                        path.display()
                    ))
                })?,
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "{} is not a deepfaune-rs checkpoint",
                        path.display()
                    )))
                }
            };
            if header.format != FORMAT {
                return Err(Error::InvalidArgument(format!(
                    "{}: unknown checkpoint format '{}'",
                    path.display(),
                    header.format
                )));
            }
            if header.fingerprint != fingerprint {
                return Err(Error::InvalidArgument(format!(
                    "the checkpoint {} comes from another model or other settings ({}); delete it or write to another output",
                    path.display(),
                    describe_difference(&header.fingerprint, &fingerprint)
                )));
            }
            for line in lines {
                // A torn last line (killed mid-write) or an I/O error ends the usable part.
                let Ok(line) = line else { break };
                let Some(rec) = Record::parse_line(&line) else {
                    if let Ok(video) = serde_json::from_str::<VideoLine>(&line) {
                        videos.insert(video.key(), video);
                        continue;
                    }
                    // A finished run's completion line: the run that resumes it adds to it.
                    if serde_json::from_str::<Complete>(&line).is_ok() {
                        continue;
                    }
                    break;
                };
                done.insert(
                    rec.path_bytes.clone().unwrap_or_else(|| rec.path.clone()),
                    rec,
                );
            }
            // Rewrite the valid part so appends follow a complete line.
            let mut text = serde_json::to_string(&header).map_err(|e| io_err(path, e))?;
            text.push('\n');
            let mut recs: Vec<&Record> = done.values().collect();
            recs.sort_by(|a, b| a.path.cmp(&b.path));
            for r in recs {
                text.push_str(&serde_json::to_string(r).map_err(|e| io_err(path, e))?);
                text.push('\n');
            }
            let mut lines: Vec<&VideoLine> = videos.values().collect();
            lines.sort_by(|a, b| a.video.path.cmp(&b.video.path));
            for v in lines {
                text.push_str(&serde_json::to_string(v).map_err(|e| io_err(path, e))?);
                text.push('\n');
            }
            crate::fsio::write_atomic(path, text.as_bytes())?;
        } else {
            let header = Header {
                format: FORMAT.into(),
                fingerprint,
            };
            let mut text = serde_json::to_string(&header).map_err(|e| io_err(path, e))?;
            text.push('\n');
            crate::fsio::write_atomic(path, text.as_bytes())?;
        }
        let f = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| io_err(path, e))?;
        Ok((
            Checkpoint {
                path: path.to_path_buf(),
                out: BufWriter::new(f),
                unsynced: 0,
                last_sync: Instant::now(),
                videos,
            },
            done,
        ))
    }

    /// The video lines the file held when it was opened, keyed by [`VideoLine::key`] (empty
    /// the second time).
    pub fn take_videos(&mut self) -> HashMap<String, VideoLine> {
        std::mem::take(&mut self.videos)
    }

    /// Appends one video's line (flushed and synced: a video costs seconds, a sync little).
    pub fn append_video(
        &mut self,
        video: &VideoRecord,
        identity: Option<&FileIdentity>,
    ) -> Result<(), Error> {
        let line = VideoLineRef { video, identity };
        let mut text = serde_json::to_string(&line).map_err(|e| io_err(&self.path, e))?;
        text.push('\n');
        self.out
            .write_all(text.as_bytes())
            .map_err(|e| io_err(&self.path, e))?;
        self.sync()
    }

    /// Appends one image's record.
    pub fn append(&mut self, rec: &Record) -> Result<(), Error> {
        let mut line = serde_json::to_string(rec).map_err(|e| io_err(&self.path, e))?;
        line.push('\n');
        self.out
            .write_all(line.as_bytes())
            .map_err(|e| io_err(&self.path, e))?;
        self.out.flush().map_err(|e| io_err(&self.path, e))?;
        self.unsynced += 1;
        if self.unsynced >= SYNC_EVERY
            || self.last_sync.elapsed() >= Duration::from_secs(SYNC_SECONDS)
        {
            self.sync()?;
        }
        Ok(())
    }

    /// Marks the run as finished with `images` rows (appended and synced): [`is_complete`].
    pub fn finish(&mut self, images: usize) -> Result<(), Error> {
        let mut line = serde_json::to_string(&Complete {
            complete: true,
            images,
        })
        .map_err(|e| io_err(&self.path, e))?;
        line.push('\n');
        self.out
            .write_all(line.as_bytes())
            .map_err(|e| io_err(&self.path, e))?;
        self.sync()
    }

    /// Forces the appended records to disk.
    pub fn sync(&mut self) -> Result<(), Error> {
        self.out.flush().map_err(|e| io_err(&self.path, e))?;
        self.out
            .get_ref()
            .sync_data()
            .map_err(|e| io_err(&self.path, e))?;
        self.unsynced = 0;
        self.last_sync = Instant::now();
        Ok(())
    }
}

/// The fingerprint of a pipeline run: models (manifest and weights identity) and every setting
/// that changes the outputs. `settings` are added as given (threshold, maxlag, language, ...).
pub fn fingerprint(
    detectors: &crate::detect::DetectorSet,
    classifier: Option<&crate::classify::OnnxClassifier>,
    settings: serde_json::Value,
) -> serde_json::Value {
    let det = |d: &crate::detect::OnnxDetector| {
        serde_json::json!({
            "id": d.manifest.id,
            "manifest": short_hash(format!("{:?}{:?}{:?}", d.manifest.input, d.manifest.output, d.manifest.postprocess)),
            "weights": d.source,
        })
    };
    serde_json::json!({
        "mode": format!("{:?}", detectors.mode),
        "detector": det(&detectors.primary),
        "secondary": detectors.secondary.as_ref().map(det),
        "classifier": classifier.map(|c| classifier_fingerprint(&c.manifest, &c.source, c.has_bird_head())),
        "settings": settings,
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// The fingerprint of a run over imported boxes ([`super::run_imported`]): the boxes (their
/// digest, [`super::imported::digest`]) instead of the detectors.
pub fn fingerprint_imported(
    detections_digest: &str,
    classifier: &crate::classify::OnnxClassifier,
    settings: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "detections": detections_digest,
        "classifier": classifier_fingerprint(&classifier.manifest, &classifier.source, classifier.has_bird_head()),
        "settings": settings,
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// The classifier's part of [`fingerprint`]: its id and DeepFaune version, what its manifest says
/// about inputs, outputs, classes and temperatures, and the weights' identity. A checkpoint
/// written with one classifier version is refused by another, even for the same weights file.
pub fn classifier_fingerprint(
    m: &crate::manifest::classifier::ClassifierManifest,
    weights: &str,
    bird_head: bool,
) -> serde_json::Value {
    let t = m.temperatures();
    serde_json::json!({
        "id": m.id,
        "version": m.version,
        "manifest": short_hash(format!("{:?}{:?}{:?}", m.input, m.output, m.classes)),
        "temperatures": [t.image, t.sequence, t.bird],
        "weights": weights,
        "bird_head": bird_head,
    })
}

/// The first 8 bytes of a sha256, in hex: enough to tell manifests apart in a fingerprint.
fn short_hash(s: String) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn describe_difference(old: &serde_json::Value, new: &serde_json::Value) -> String {
    match (old.as_object(), new.as_object()) {
        (Some(a), Some(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            let diffs: Vec<String> = keys
                .into_iter()
                .filter(|k| a.get(*k) != b.get(*k))
                .map(|k| {
                    format!(
                        "{k}: {} -> {}",
                        a.get(k).unwrap_or(&serde_json::Value::Null),
                        b.get(k).unwrap_or(&serde_json::Value::Null)
                    )
                })
                .collect();
            diffs.join("; ")
        }
        _ => "unreadable fingerprint".into(),
    }
}

/// What a finished run's checkpoint says to load the run again (for review): the models (the
/// built-in ids it names, a two-detector mode as its name) and the settings it ran with.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOfCheckpoint {
    /// The checkpoint file.
    pub checkpoint: PathBuf,
    /// Detector id, or the mode name of two detectors (`DFbsMDS`, `DFMDS`).
    pub detector: String,
    /// Classifier id, if one ran.
    pub classifier: Option<String>,
    /// The score threshold it ran with (`None`: the manifest's).
    pub score_threshold: Option<f64>,
    /// Sequence gap, seconds.
    pub maxlag_s: f64,
    /// Label language.
    pub language: String,
    /// The run's inputs.
    pub inputs: Vec<String>,
    /// Embeddings were kept.
    pub keep_embeddings: bool,
}

/// The run whose results are `results` (the table, its checkpoint `<results>.checkpoint` beside
/// it, or the checkpoint itself): a one-line error when there is no checkpoint, it is not ours,
/// or it is a run over a MegaDetector file.
pub fn run_of_checkpoint(results: &Path) -> Result<RunOfCheckpoint, Error> {
    let text = results.to_string_lossy();
    let checkpoint = if text.ends_with(".checkpoint") {
        results.to_path_buf()
    } else {
        PathBuf::from(format!("{text}.checkpoint"))
    };
    let shown = checkpoint.display();
    if !checkpoint.is_file() {
        return Err(Error::InvalidArgument(format!(
            "{shown}: no checkpoint of the run; review needs the run's logits and boxes: run it \
             with --resume (which keeps OUTPUT.checkpoint)"
        )));
    }
    let not_ours = || Error::InvalidArgument(format!("{shown} is not a deepfaune-rs checkpoint"));
    let mut line = String::new();
    BufReader::new(File::open(&checkpoint).map_err(|_| not_ours())?)
        .read_line(&mut line)
        .map_err(|_| not_ours())?;
    let header: Header = serde_json::from_str(&line).map_err(|_| not_ours())?;
    let fp = &header.fingerprint;
    if fp.get("detections").is_some() {
        return Err(Error::InvalidArgument(format!(
            "{shown}: a run over a MegaDetector file (--detections) cannot be reviewed from its \
             checkpoint yet"
        )));
    }
    let id = |k: &str| fp.get(k).and_then(|d| d.get("id")).and_then(|i| i.as_str());
    let primary = id("detector").ok_or_else(not_ours)?;
    let detector = match (
        fp.get("mode").and_then(|m| m.as_str()),
        primary,
        id("secondary"),
    ) {
        (_, _, None) => primary.to_string(),
        (Some("Backstop"), "df", Some("mds")) => "DFbsMDS".into(),
        (Some("Ensemble"), "df", Some("mds")) => "DFMDS".into(),
        _ => primary.to_string(),
    };
    let settings = fp.get("settings").cloned().unwrap_or_default();
    let get = |k: &str| settings.get(k).filter(|v| !v.is_null());
    Ok(RunOfCheckpoint {
        detector,
        classifier: id("classifier").map(str::to_string),
        // The checkpoint records the score threshold as "threshold".
        score_threshold: get("threshold").and_then(|v| v.as_f64()),
        maxlag_s: get("maxlag_s").and_then(|v| v.as_f64()).unwrap_or(10.0),
        language: get("language")
            .and_then(|v| v.as_str())
            .unwrap_or("en")
            .to_string(),
        inputs: get("inputs")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        keep_embeddings: get("keep_embeddings")
            .and_then(|v| v.as_bool())
            .unwrap_or(true),
        checkpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(path: &str) -> Record {
        Record {
            path: path.into(),
            path_bytes: None,
            width: 10,
            height: 20,
            date: Some(("2021:01:01 00:00:00".into(), 1_609_459_200)),
            category: 1,
            count: 1,
            humancount: 0,
            crop: [1, 2, 3, 4],
            best: 0,
            boxes: vec![([1.5f32.to_bits(), 2, 3, 4], 0.9f32.to_bits(), 0)],
            classified: true,
            logits: encode_f32(&[0.1, -2.5, f32::MIN_POSITIVE]),
            embedding: String::new(),
            bird_logits: String::new(),
            failure: None,
            identity: None,
        }
    }

    #[test]
    fn floats_round_trip_exactly() {
        let v = [0.1f32, -0.0, 1e-38, 3.4e38, f32::EPSILON];
        let back = decode_f32(&encode_f32(&v)).unwrap();
        assert_eq!(
            v.map(f32::to_bits).to_vec(),
            back.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }

    #[test]
    fn resumes_and_ignores_a_torn_line() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("run.ckpt");
        let fp = json!({"model": "a", "threshold": 0.8});
        {
            let (mut c, done) = Checkpoint::open(&p, fp.clone()).unwrap();
            assert!(done.is_empty());
            c.append(&rec("a.jpg")).unwrap();
            c.append(&rec("b.jpg")).unwrap();
        }
        // Simulate a crash in the middle of a line.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"path\": \"c.jp").unwrap();
        drop(f);
        let (mut c, done) = Checkpoint::open(&p, fp.clone()).unwrap();
        assert_eq!(done.len(), 2);
        assert_eq!(done["a.jpg"], rec("a.jpg"));
        c.append(&rec("c.jpg")).unwrap();
        drop(c);
        let (_, done) = Checkpoint::open(&p, fp).unwrap();
        assert_eq!(done.len(), 3);
    }

    #[test]
    fn identity_tells_a_replaced_file_and_finish_marks_completion() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a.jpg");
        // Bigger than two edges: a change in the middle only shows in size or time.
        let mut bytes = vec![7u8; 200_000];
        std::fs::write(&a, &bytes).unwrap();
        let first = FileIdentity::of(&a).unwrap();
        assert_eq!(first, FileIdentity::of(&a).unwrap());
        assert_eq!(first.size, 200_000);
        bytes[199_999] = 8; // same size: the tail hash differs
        std::fs::write(&a, &bytes).unwrap();
        let second = FileIdentity::of(&a).unwrap();
        assert_ne!(first.edges, second.edges);
        assert!(FileIdentity::of(&t.path().join("missing")).is_none());
        assert!(FileIdentity::of(t.path()).is_none());

        let p = t.path().join("run.ckpt");
        let fp = json!({"model": "a"});
        let mut r = rec("a.jpg");
        r.identity = Some(second.clone());
        {
            let (mut c, _) = Checkpoint::open(&p, fp.clone()).unwrap();
            c.append(&r).unwrap();
            assert!(!is_complete(&p));
            c.finish(1).unwrap();
        }
        assert!(is_complete(&p));
        // Resumed: the record (with its identity) is back; appending makes it incomplete again.
        let (mut c, done) = Checkpoint::open(&p, fp).unwrap();
        assert_eq!(done["a.jpg"].identity.as_ref(), Some(&second));
        c.append(&rec("b.jpg")).unwrap();
        drop(c);
        assert!(!is_complete(&p));
    }

    /// Video lines live beside image lines: kept on reopening (the rewrite too), a torn one
    /// dropped, image records read as before.
    #[test]
    fn video_lines_resume_beside_images() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("run.ckpt");
        let fp = json!({"model": "a"});
        let video = |path: &str| VideoRecord {
            path: path.into(),
            prediction: "fox".into(),
            score: 0.93,
            top1: "fox".into(),
            label_index: 12,
            top1_index: 12,
            count: 1,
            humancount: 0,
            date: None,
            keyframe: Some(40),
            bbox: Some([1.0, 2.0, 3.5, 4.0]),
            frame_rate: 29.97,
            total_frames: 300,
            positions: vec![0, 9],
            frames_processed: vec![0, 9],
            frame_size: (640, 480),
            detections: Vec::new(),
            failure: None,
            seconds_extraction: 0.1,
            seconds_total: 0.2,
        };
        let identity = FileIdentity {
            size: 3,
            mtime_s: 1,
            mtime_ns: 2,
            edges: "ab".into(),
        };
        {
            let (mut c, _) = Checkpoint::open(&p, fp.clone()).unwrap();
            c.append(&rec("a.jpg")).unwrap();
            c.finish(1).unwrap();
            c.append_video(&video("v.mp4"), Some(&identity)).unwrap();
            c.append_video(&video("w.mp4"), None).unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"video\": {\"path\": \"x.mp").unwrap();
        drop(f);
        for _ in 0..2 {
            let (mut c, done) = Checkpoint::open(&p, fp.clone()).unwrap();
            assert_eq!(done.len(), 1);
            assert_eq!(done["a.jpg"], rec("a.jpg"));
            let videos = c.take_videos();
            assert_eq!(videos.len(), 2);
            assert_eq!(videos["v.mp4"].video, video("v.mp4"));
            assert_eq!(videos["v.mp4"].identity.as_ref(), Some(&identity));
            assert_eq!(videos["w.mp4"].identity, None);
            assert!(c.take_videos().is_empty());
        }
    }

    #[test]
    fn refuses_other_settings() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("run.ckpt");
        drop(Checkpoint::open(&p, json!({"model": "a", "threshold": 0.8})).unwrap());
        let e = Checkpoint::open(&p, json!({"model": "b", "threshold": 0.8}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("another model or other settings") && e.contains("model: \"a\" -> \"b\""),
            "{e}"
        );
        std::fs::write(&p, b"not json\n").unwrap();
        assert!(Checkpoint::open(&p, json!({})).is_err());
    }

    #[test]
    fn refuses_a_checkpoint_of_another_classifier_version() {
        use crate::manifest::classifier::builtin_classifier;
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("run.ckpt");
        let fp = |id: &str| {
            let m = builtin_classifier(id).unwrap();
            json!({"classifier": classifier_fingerprint(&m, "file:same.onnx", false)})
        };
        drop(Checkpoint::open(&p, fp("deepfaune-v14")).unwrap());
        assert!(
            Checkpoint::open(&p, fp("deepfaune-v14")).is_ok(),
            "same version"
        );
        // f32 settings survive the text round trip whatever their value.
        let q = t.path().join("floats.ckpt");
        let floats: Vec<f32> = (1..200).map(|i| i as f32 * 0.0137).collect();
        drop(Checkpoint::open(&q, json!({ "floats": floats })).unwrap());
        assert!(Checkpoint::open(&q, json!({ "floats": floats })).is_ok());
        let e = Checkpoint::open(&p, fp("deepfaune-v15"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("another model or other settings")
                && e.contains("\"version\":\"1.4\"")
                && e.contains("\"version\":\"1.5\""),
            "{e}"
        );
        // The same id and classes with other temperatures is another classifier too.
        let mut m = builtin_classifier("deepfaune-v14").unwrap();
        let a = classifier_fingerprint(&m, "w", false);
        m.postprocess.temperature_sequence = 1.10;
        assert_ne!(a, classifier_fingerprint(&m, "w", false));
    }

    #[test]
    fn the_run_of_a_checkpoint_for_review() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("r.csv");
        let e = run_of_checkpoint(&results).unwrap_err().to_string();
        assert!(
            e.contains("no checkpoint of the run") && e.contains("--resume"),
            "{e}"
        );
        let cp = dir.path().join("r.csv.checkpoint");
        let header = |fp: serde_json::Value| {
            let h = serde_json::json!({"format": "x", "fingerprint": fp});
            std::fs::write(&cp, format!("{h}\n{{}}\n")).unwrap();
        };
        header(serde_json::json!({
            "mode": "Backstop", "detector": {"id": "df"}, "secondary": {"id": "mds"},
            "classifier": {"id": "deepfaune-v15"},
            "settings": {"threshold": 0.5, "maxlag_s": 20.0, "language": "fr",
                         "inputs": ["cam"], "keep_embeddings": false}}));
        let r = run_of_checkpoint(&results).unwrap();
        assert_eq!(run_of_checkpoint(&cp).unwrap(), r);
        assert_eq!(
            r,
            RunOfCheckpoint {
                checkpoint: cp.clone(),
                detector: "DFbsMDS".into(),
                classifier: Some("deepfaune-v15".into()),
                score_threshold: Some(0.5),
                maxlag_s: 20.0,
                language: "fr".into(),
                inputs: vec!["cam".into()],
                keep_embeddings: false,
            }
        );
        header(
            serde_json::json!({"detector": {"id": "md-lite"}, "secondary": null,
                                  "classifier": null, "settings": {"threshold": null}}),
        );
        let r = run_of_checkpoint(&results).unwrap();
        assert_eq!(
            (r.detector.as_str(), r.classifier, r.score_threshold),
            ("md-lite", None, None)
        );
        assert_eq!(
            (r.maxlag_s, r.language.as_str(), r.keep_embeddings),
            (10.0, "en", true)
        );
        header(serde_json::json!({"detections": "abc", "classifier": {"id": "x"}}));
        let e = run_of_checkpoint(&results).unwrap_err().to_string();
        assert!(e.contains("MegaDetector file"), "{e}");
        std::fs::write(&cp, "not json\n").unwrap();
        let e = run_of_checkpoint(&results).unwrap_err().to_string();
        assert!(e.contains("is not a deepfaune-rs checkpoint"), "{e}");
    }
}
