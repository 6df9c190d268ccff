//! Presets: a region's species list saved under a name, as the classes to switch off when
//! re-deciding (`result.redecide(preset=NAME)`, the review page's "re-decide"). One JSON file
//! per preset, `{"disabled_classes": [...]}`, in [`presets_dir`]; names are checked so a name
//! never reaches outside that folder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::fsio::write_atomic;

#[derive(Serialize, Deserialize)]
struct Preset {
    disabled_classes: Vec<String>,
}

/// Where presets are saved: `$DEEPFAUNE_RS_PRESETS`, else `~/.config/deepfaune-rs/presets`.
pub fn presets_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DEEPFAUNE_RS_PRESETS").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".config").join("deepfaune-rs").join("presets")
}

/// The file of preset `name` in `dir`: letters, digits, `-`, `_` and `.` only, not starting
/// with `.` (so never a path, nor a hidden file).
pub fn preset_file(dir: &Path, name: &str) -> Result<PathBuf, Error> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        return Err(Error::InvalidArgument(format!(
            "preset name '{name}': use letters, digits, '-', '_' and '.' only"
        )));
    }
    Ok(dir.join(format!("{name}.json")))
}

/// Saves `disabled_classes` as preset `name` in `dir` (written atomically); returns the file.
pub fn save_preset(dir: &Path, name: &str, disabled_classes: &[String]) -> Result<PathBuf, Error> {
    let path = preset_file(dir, name)?;
    let output = |reason: String| Error::Output {
        path: path.clone(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| output(e.to_string()))?;
    let preset = Preset {
        disabled_classes: disabled_classes.to_vec(),
    };
    let mut text = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut text, fmt);
    preset
        .serialize(&mut ser)
        .map_err(|e| output(e.to_string()))?;
    write_atomic(&path, &text)?;
    Ok(path)
}

/// The `disabled_classes` of preset `name` saved in `dir`.
pub fn load_preset(dir: &Path, name: &str) -> Result<Vec<String>, Error> {
    let path = preset_file(dir, name)?;
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::InvalidArgument(format!(
                "no preset '{name}' in {} (save one with save_preset)",
                dir.display()
            )))
        }
        Err(e) => {
            return Err(Error::InvalidArgument(format!(
                "preset '{name}': cannot read {} ({e})",
                path.display()
            )))
        }
    };
    let preset: Preset = serde_json::from_slice(&text).map_err(|e| {
        Error::InvalidArgument(format!(
            "preset '{name}': {} is not a preset ({e}; save it again with save_preset)",
            path.display()
        ))
    })?;
    Ok(preset.disabled_classes)
}

/// Names of the presets saved in `dir`, sorted (a missing folder: none).
pub fn list_presets(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| f.strip_suffix(".json").map(str::to_string))
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_sorted_list_and_the_file_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let presets = dir.path().join("presets");
        assert!(list_presets(&presets).is_empty());
        let alps = ["reindeer".to_string(), "arctic fox".to_string()];
        let file = save_preset(&presets, "alps", &alps).unwrap();
        assert_eq!(file, presets.join("alps.json"));
        // What Python's json.dump(..., indent=1) writes.
        let want = "{\n \"disabled_classes\": [\n  \"reindeer\",\n  \"arctic fox\"\n ]\n}";
        assert_eq!(std::fs::read_to_string(&file).unwrap(), want);
        assert_eq!(load_preset(&presets, "alps").unwrap(), alps);
        save_preset(&presets, "Écrins_2.v1", &[]).unwrap();
        std::fs::write(presets.join("notes.txt"), "x").unwrap();
        assert_eq!(list_presets(&presets), ["alps", "Écrins_2.v1"]);
        assert!(load_preset(&presets, "Écrins_2.v1").unwrap().is_empty());
        // Saving again replaces.
        save_preset(&presets, "alps", &alps[..1]).unwrap();
        assert_eq!(load_preset(&presets, "alps").unwrap(), &alps[..1]);
    }

    #[test]
    fn bad_names_missing_and_broken_presets_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["", "../x", ".hidden", "a/b", "a b", "x\\y"] {
            let e = save_preset(dir.path(), name, &[]).unwrap_err().to_string();
            assert!(e.contains("preset name"), "{name}: {e}");
            assert!(load_preset(dir.path(), name).is_err());
        }
        assert!(list_presets(dir.path()).is_empty());
        let e = load_preset(dir.path(), "nope").unwrap_err().to_string();
        assert!(
            e.contains("no preset 'nope'") && e.contains("save_preset"),
            "{e}"
        );
        std::fs::write(dir.path().join("bad.json"), "{\"classes\": 1}").unwrap();
        let e = load_preset(dir.path(), "bad").unwrap_err().to_string();
        assert!(e.contains("not a preset"), "{e}");
    }
}
