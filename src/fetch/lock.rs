//! `deepfaune-rs.lock.json`: the sha256 of every file downloaded (trust on first use where
//! nothing is published) and of every conversion, with its source and converter version.
//!
//! `{"version": 1, "files": {NAME: {"sha256", "size", "url", "recorded"}},
//! "conversions": {ONNX: {"sha256", "source", "source_sha256", "converter_version", "recorded"}}}`
//! Written atomically (`fsio`); each update re-reads the file first, so concurrent fetches
//! into the same folder keep each other's entries. Unknown keys are kept as they are.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::error::{Error, ModelError};

/// The lock file's name in the model directory.
pub const LOCK_NAME: &str = "deepfaune-rs.lock.json";

/// One entry of the lock file (a file or a conversion): its fields, where present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockEntry {
    /// The file's sha256 (an entry without one is ignored).
    pub sha256: String,
    /// A downloaded file's size.
    pub size: Option<u64>,
    /// Where a downloaded file came from (None: found in the folder).
    pub url: Option<String>,
    /// A conversion's source file name.
    pub source: Option<String>,
    /// The sha256 of a conversion's source.
    pub source_sha256: Option<String>,
    /// The converter version of a conversion.
    pub converter_version: Option<String>,
    /// When the entry was written (UTC, ISO 8601).
    pub recorded: Option<String>,
}

/// The lock file of a model directory, as read.
#[derive(Debug, Clone)]
pub struct Lock {
    /// Its path.
    pub path: PathBuf,
    data: Map<String, Value>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(String::from)
}

impl Lock {
    /// Reads the lock file of `folder` (empty when there is none). An unreadable or invalid
    /// one is refused (`ChecksumError`) with what to do.
    pub fn read(folder: &Path) -> Result<Lock, ModelError> {
        let path = folder.join(LOCK_NAME);
        let data = Self::load(&path)?;
        Ok(Lock { path, data })
    }

    fn load(path: &Path) -> Result<Map<String, Value>, ModelError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::empty());
            }
            Err(e) => return Err(Self::unreadable(path, &e.to_string())),
        };
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|e| Self::unreadable(path, &e.to_string()))?;
        let Value::Object(mut data) = value else {
            return Err(ModelError::Refused(format!(
                "{}: not a deepfaune-rs lock file; delete it",
                path.display()
            )));
        };
        data.entry("version").or_insert(json!(1));
        for k in ["files", "conversions"] {
            if !data.get(k).is_some_and(Value::is_object) {
                data.insert(k.into(), json!({}));
            }
        }
        Ok(data)
    }

    fn empty() -> Map<String, Value> {
        let Value::Object(m) = json!({"version": 1, "files": {}, "conversions": {}}) else {
            unreachable!("a literal object")
        };
        m
    }

    fn unreadable(path: &Path, why: &str) -> ModelError {
        ModelError::Refused(format!(
            "{}: unreadable lock file ({why}); fix it or delete it (the hashes it recorded are \
             then taken again from the next downloads)",
            path.display()
        ))
    }

    fn entry(&self, section: &str, name: &str) -> Option<LockEntry> {
        let e = self.data.get(section)?.get(name)?;
        Some(LockEntry {
            sha256: text(e, "sha256")?,
            size: e.get("size").and_then(Value::as_u64),
            url: text(e, "url"),
            source: text(e, "source"),
            source_sha256: text(e, "source_sha256"),
            converter_version: text(e, "converter_version"),
            recorded: text(e, "recorded"),
        })
    }

    /// The entry of the downloaded file `name`, if it has a sha256.
    pub fn file(&self, name: &str) -> Option<LockEntry> {
        self.entry("files", name)
    }

    /// The entry of the conversion to the ONNX file `name`, if it has a sha256.
    pub fn conversion(&self, name: &str) -> Option<LockEntry> {
        self.entry("conversions", name)
    }

    fn update(&mut self, section: &str, name: &str, mut entry: Value) -> Result<(), Error> {
        self.data = Self::load(&self.path)?;
        entry["recorded"] = json!(now_utc());
        if let Some(Value::Object(s)) = self.data.get_mut(section) {
            s.insert(name.into(), entry);
        }
        let mut text = serde_json::to_string_pretty(&self.data).map_err(|e| Error::Output {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        text.push('\n');
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::Output {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        }
        crate::fsio::write_atomic(&self.path, text.as_bytes())
    }

    /// Records the downloaded file `name` (`url`: where it came from, None when it was found
    /// in the folder).
    pub fn record_file(
        &mut self,
        name: &str,
        sha256: &str,
        size: u64,
        url: Option<&str>,
    ) -> Result<(), Error> {
        let e = json!({"sha256": sha256, "size": size, "url": url});
        self.update("files", name, e)
    }

    /// Records the conversion of `source` (sha256 `source_sha256`) to the ONNX file `name`.
    pub fn record_conversion(
        &mut self,
        name: &str,
        sha256: &str,
        source: &str,
        source_sha256: &str,
        converter_version: &str,
    ) -> Result<(), Error> {
        let e = json!({
            "sha256": sha256,
            "source": source,
            "source_sha256": source_sha256,
            "converter_version": converter_version,
        });
        self.update("conversions", name, e)
    }
}

/// The current time, UTC, as `YYYY-MM-DDTHH:MM:SS.ffffff+00:00` (Python's `isoformat()`).
fn now_utc() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = crate::image_io::exif::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_keep_what_others_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let mut lock = Lock::read(dir.path()).unwrap();
        assert_eq!(lock.file("w.pt"), None);
        lock.record_file("w.pt", "aa", 12, Some("http://127.0.0.1/w.pt"))
            .unwrap();
        // Another process records a conversion meanwhile: our next update keeps it.
        let mut other = Lock::read(dir.path()).unwrap();
        other
            .record_conversion("w.onnx", "bb", "w.pt", "aa", "3")
            .unwrap();
        lock.record_file("x.pt", "cc", 1, None).unwrap();
        let back = Lock::read(dir.path()).unwrap();
        let f = back.file("w.pt").unwrap();
        assert_eq!(
            (f.sha256.as_str(), f.size, f.url.as_deref()),
            ("aa", Some(12), Some("http://127.0.0.1/w.pt"))
        );
        assert_eq!(back.file("x.pt").unwrap().url, None);
        let c = back.conversion("w.onnx").unwrap();
        assert_eq!(
            (c.source_sha256.as_deref(), c.converter_version.as_deref()),
            (Some("aa"), Some("3"))
        );
        // The text is the JSON Python's json.dumps(indent=2, sort_keys=True) reads and writes.
        let text = std::fs::read_to_string(dir.path().join(LOCK_NAME)).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["version"], 1);
        let recorded = v["files"]["w.pt"]["recorded"].as_str().unwrap();
        assert_eq!(recorded.len(), "2026-12-02T01:37:15.123456+00:00".len());
        assert!(recorded.ends_with("+00:00") && recorded.as_bytes()[10] == b'T');
        assert!(text.ends_with("}\n") && text.contains("\n  \"conversions\": {"));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left");
    }

    #[test]
    fn torn_or_foreign_lock_files_are_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_NAME);
        std::fs::write(&path, b"{\"version\": 1, \"files\": {\"w.pt\": {\"sha2").unwrap();
        let e = Lock::read(dir.path()).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: unreadable lock file (", path.display())),
            "{e}"
        );
        assert!(e.contains("fix it or delete it"), "{e}");
        std::fs::write(&path, b"[1, 2]").unwrap();
        let e = Lock::read(dir.path()).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: not a deepfaune-rs lock file; delete it",
                path.display()
            )
        );
        // Sections of the wrong type and entries without a sha256 are read as absent.
        std::fs::write(
            &path,
            br#"{"files": [], "conversions": {"w.onnx": {"size": 3}}}"#,
        )
        .unwrap();
        let lock = Lock::read(dir.path()).unwrap();
        assert_eq!((lock.file("w.pt"), lock.conversion("w.onnx")), (None, None));
    }

    #[test]
    fn an_unwritable_folder_is_an_error_naming_the_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        let mut lock = Lock::read(&sub).unwrap();
        std::fs::write(&sub, b"").unwrap(); // the folder's name is now a file's
        let e = lock.record_file("w.pt", "aa", 1, None).unwrap_err();
        assert!(e.to_string().contains(&sub.display().to_string()), "{e}");
        assert!(!sub.join(LOCK_NAME).exists());
    }

    #[test]
    fn the_time_is_a_utc_calendar_date() {
        let t = now_utc();
        let year: i32 = t[..4].parse().unwrap();
        assert!((2024..2200).contains(&year), "{t}");
        let month: u32 = t[5..7].parse().unwrap();
        let day: u32 = t[8..10].parse().unwrap();
        assert!((1..=12).contains(&month) && (1..=31).contains(&day), "{t}");
    }
}
