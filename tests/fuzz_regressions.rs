//! Replays every input kept under `tests/fuzz-regressions/<target>/` (crashes found by
//! `scripts/fuzz.sh`, and hand-made hostile inputs) through the fuzz targets' checks.

#[path = "../fuzz/checks.rs"]
#[allow(dead_code)]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-regressions")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{} panics", path.display());
        n += 1;
    }
    n
}

#[test]
fn decode_image_inputs() {
    assert!(replay("decode_image", checks::decode_image) > 0);
}

#[test]
fn exif_inputs() {
    assert!(replay("exif", checks::exif) > 0);
}

#[test]
fn megadetector_json_inputs() {
    assert!(replay("megadetector_json", checks::megadetector_json) > 0);
}

#[test]
fn manifest_toml_inputs() {
    assert!(replay("manifest_toml", checks::manifest_toml) > 0);
}

#[test]
fn kb_files_inputs() {
    assert!(replay("kb_files", checks::kb_files) > 0);
}

#[test]
fn checkpoint_record_inputs() {
    assert!(replay("checkpoint_record", checks::checkpoint_record) > 0);
}
