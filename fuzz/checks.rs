//! What each fuzz target checks, shared with the regression test (`tests/fuzz_regressions.rs`)
//! that replays saved inputs under `cargo test`.

use std::path::Path;

use deepfaune_rs::image_io::decode::{decode_bytes, DecodeOptions};
use deepfaune_rs::image_io::exif::{parse_exif_datetime, read_exif};
use deepfaune_rs::image_io::{ExifInfo, ImageHeader};
use deepfaune_rs::import::megadetector::{parse, to_results, JsonRules};
use deepfaune_rs::manifest::classifier::ClassifierManifest;
use deepfaune_rs::manifest::DetectorManifest;
use deepfaune_rs::reid::kb::KnowledgeBase;
use deepfaune_rs::run::checkpoint::Record;
use deepfaune_rs::run::PipelineResults;

/// Decoding and EXIF: any bytes give an image within the pixel limit or an `ImageError`.
pub fn decode_image(data: &[u8]) {
    // A small limit keeps each run fast; the limit logic itself is part of what is fuzzed.
    let opts = DecodeOptions {
        max_pixels: 4_000_000,
    };
    if let Ok(d) = decode_bytes(data, &opts) {
        let (w, h) = d.image.dimensions();
        assert!(w as u64 * h as u64 <= opts.max_pixels);
        assert!((1..=8).contains(&d.exif.orientation));
    }
}

/// EXIF from any container, and the DateTimeOriginal parser.
pub fn exif(data: &[u8]) {
    let info = read_exif(data);
    assert!((1..=8).contains(&info.orientation));
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(t) = parse_exif_datetime(s) {
            // A parsed date parses back to itself from its own text.
            assert_eq!(parse_exif_datetime(&t.text), Some(t));
        }
    }
}

/// The MegaDetector batch-file reader, with a fixed image size instead of files.
pub fn megadetector_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = parse(text) else {
        return;
    };
    let header = |_: &Path| {
        Ok(ImageHeader {
            width: 640,
            height: 480,
            exif: ExifInfo {
                date: None,
                orientation: 1,
            },
        })
    };
    for rules in [JsonRules::Corrected, JsonRules::DeepFaune] {
        let out = to_results(&file, Path::new("/fuzz"), 0.4, rules, &header);
        let r = &out.results;
        // DeepFaune's rules drop the rows the file marks as failed; ours keep every row.
        let rows = match rules {
            JsonRules::Corrected => file.images.len(),
            JsonRules::DeepFaune => file.images.iter().filter(|i| i.detections.is_ok()).count(),
        };
        assert_eq!(r.len(), rows);
        assert_eq!(out.classifications.start.len(), r.det_conf.len() + 1);
        for (i, best) in r.best_detection.iter().enumerate() {
            if *best >= 0 {
                assert_eq!(r.det_image[*best as usize] as usize, i);
            }
        }
    }
}

/// Model manifests (detector and classifier), parsed then validated.
pub fn manifest_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = DetectorManifest::from_toml(text, "fuzz");
    if let Ok(m) = ClassifierManifest::from_toml(text, "fuzz") {
        for lang in m.languages() {
            let _ = m.names(lang);
        }
        let _ = m.num_classes();
    }
}

/// The re-identification knowledge base (lynx-id's CSV + safetensors) from any bytes: the first
/// two bytes say how long the CSV part is. A base that loads is saved and loads back equal (a
/// base that cannot be saved and read back would lose a user's individuals).
pub fn kb_files(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let split = usize::from(u16::from_le_bytes([data[0], data[1]])).min(data.len() - 2);
    let (csv, tensors) = data[2..].split_at(split);
    let Ok(kb) = KnowledgeBase::from_bytes(csv, "fuzz.csv", tensors, "fuzz.safetensors") else {
        return;
    };
    let csv2 = kb.csv_bytes().expect("a loaded base saves its CSV");
    let tensors2 = kb
        .safetensors_bytes()
        .expect("a loaded base saves its embeddings");
    let back = KnowledgeBase::from_bytes(&csv2, "saved.csv", &tensors2, "saved.safetensors")
        .expect("a saved base loads back");
    assert_eq!(back.records(), kb.records());
    assert_eq!(back.extra_columns(), kb.extra_columns());
    assert_eq!(back.dim(), kb.dim());
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(back.embeddings()), bits(kb.embeddings()));
}

/// A checkpoint line: parsed, checked against a run's shape (3 classes), and, when accepted,
/// turned back into the same record.
pub fn checkpoint_record(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(rec) = Record::parse_line(text) else {
        return;
    };
    let mut res = PipelineResults {
        num_classes: 3,
        ..Default::default()
    };
    if res.push_record(&rec).is_ok() {
        let back = res.record(0);
        assert_eq!(
            (&back.boxes, back.best, back.category, &back.logits),
            (&rec.boxes, rec.best, rec.category, &rec.logits)
        );
        assert_eq!(
            (back.width, back.height, back.crop),
            (rec.width, rec.height, rec.crop)
        );
    }
}
