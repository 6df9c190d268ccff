use super::*;
use crate::image_io::ExifInfo;
use crate::results::CATEGORY_FAILED;

fn header_of(w: u32, h: u32) -> impl Fn(&Path) -> Result<ImageHeader, ImageError> + Sync {
    move |p: &Path| {
        if p.to_string_lossy().contains("missing") {
            return Err(ImageError::Io("No such file or directory".into()));
        }
        Ok(ImageHeader {
            width: w,
            height: h,
            exif: ExifInfo {
                date: None,
                orientation: 1,
            },
        })
    }
}

const DOC: &str = r#"{
  "info": {"format_version": "1.6", "detector": "md_v5a.0.0.pt"},
  "detection_categories": {"1": "animal", "2": "person", "3": "vehicle", "4": "group"},
  "classification_categories": {"10": "fox", "2": "badger"},
  "images": [
    {"file": "a/one.jpg", "detections": [
      {"category": "2", "conf": 0.95, "bbox": [0.0, 0.0, 0.5, 0.5]},
      {"category": "1", "conf": 0.6, "bbox": [0.25, 0.1, 0.5, 0.3],
       "classifications": [["10", 0.9], ["2", 0.05]]},
      {"category": "1", "conf": 0.4, "bbox": [0.1, 0.1, 0.1, 0.1]},
      {"category": "4", "conf": 0.8, "bbox": [0.1, 0.1, 0.1, 0.1]}
    ]},
    {"file": "a/two.jpg", "detections": []},
    {"file": "a/three.jpg", "failure": "Failure image access", "detections": null},
    {"file": "a/four.jpg", "detections": null},
    {"file": "a/missing.jpg", "detections": [{"category": "3", "conf": 0.9, "bbox": [0, 0, 1, 1]}]},
    {"file": "a/five.jpg", "detections": [{"category": 3, "conf": 0.41, "bbox": [0.5, 0.5, 0.5, 0.5]}]}
  ]
}"#;

#[test]
fn parses_categories_failures_and_classifications() {
    let f = parse(DOC).unwrap();
    assert_eq!(f.format_version, "1.6");
    assert_eq!(f.detector, "md_v5a.0.0.pt");
    assert_eq!(
        f.classification_categories,
        [("2".into(), "badger".into()), ("10".into(), "fox".into())]
    );
    assert_eq!(f.images.len(), 6);
    let boxes = f.images[0].detections.as_ref().unwrap();
    assert_eq!(boxes.len(), 4);
    assert_eq!(boxes[0].category, Some(Category::Person));
    assert_eq!(boxes[3].category, None, "\"group\" is not one of ours");
    assert_eq!(
        boxes[1].classifications,
        [("10".to_string(), 0.9), ("2".to_string(), 0.05)]
    );
    assert_eq!(
        f.images[2].detections,
        Err("Failure image access".to_string())
    );
    assert!(f.images[3].detections.is_err());
    // Numeric category ids (some tools write them) are accepted.
    assert_eq!(
        f.images[5].detections.as_ref().unwrap()[0].category,
        Some(Category::Vehicle)
    );
}

#[test]
fn builds_rows_like_deepfaune_json_path() {
    let f = parse(DOC).unwrap();
    let out = to_results(
        &f,
        Path::new("/data"),
        0.4,
        JsonRules::Corrected,
        &header_of(640, 480),
    );
    let r = &out.results;
    assert_eq!(r.len(), 6);
    assert_eq!(r.paths[0], Path::new("/data/a/one.jpg"));
    // Image 0: person 0.95 and animal 0.6 kept; animal at exactly 0.4 is not above the
    // threshold; "group" is ignored. The animal box is classified.
    assert_eq!(r.category[0], 1);
    assert_eq!((r.count[0], r.humancount[0]), (1, 1));
    assert_eq!(out.ignored_boxes, 1);
    let best = r.best_detection[0] as usize;
    // int(0.25*640)=160, 160+int(0.5*640)=480, int(0.1*480)=48, 48+int(0.3*480)=192
    assert_eq!(r.det_xyxy[best], [160.0, 48.0, 480.0, 192.0]);
    // Square crop of a 320x144 box: the height grows by int(176/2)=88 each side.
    assert_eq!(r.crop[0], [160, 0, 480, 280]);
    // Image 1: processed, nothing found.
    assert_eq!((r.category[1], r.width[1], r.height[1]), (0, 640, 480));
    // Images 2, 3: upstream failures; image 4: the file is not there.
    assert_eq!(r.category[2], CATEGORY_FAILED);
    assert_eq!(r.category[3], CATEGORY_FAILED);
    assert_eq!(r.category[4], CATEGORY_FAILED);
    let kinds: Vec<(Option<usize>, &str, &str)> = r
        .failures
        .iter()
        .map(|f| (f.index, f.stage, f.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            (Some(2), "detect", "upstream"),
            (Some(3), "detect", "upstream"),
            (Some(4), "read", "io")
        ]
    );
    assert_eq!(r.failures[0].reason, "Failure image access");
    // Image 5: a vehicle just above 0.4.
    assert_eq!(r.category[5], 3);
    assert_eq!(
        r.det_xyxy[r.best_detection[5] as usize],
        [320.0, 240.0, 640.0, 480.0]
    );
    // Classifications stay with their boxes.
    let c = &out.classifications;
    assert_eq!(c.start.len(), r.det_conf.len() + 1);
    let pairs: Vec<(&str, f32)> = c.of_box(best).collect();
    assert_eq!(pairs, [("10", 0.9), ("2", 0.05)]);
    assert_eq!(c.of_box(0).count(), 0);
}

#[test]
fn maps_other_tools_category_names() {
    let doc = r#"{"detection_categories": {"0": "Animal", "1": "Human", "2": "Vehicle"},
        "images": [{"file": "x.jpg", "detections": [
            {"category": "1", "conf": 0.9, "bbox": [0.1, 0.1, 0.2, 0.2]},
            {"category": "0", "conf": 0.5, "bbox": [0.1, 0.1, 0.2, 0.2]}]}]}"#;
    let f = parse(doc).unwrap();
    assert_eq!(f.format_version, "unknown");
    let out = to_results(
        &f,
        Path::new("."),
        0.4,
        JsonRules::Corrected,
        &header_of(100, 100),
    );
    assert_eq!(out.results.det_category, [1, 0]);
    assert_eq!(out.results.category[0], 1);
}

#[test]
fn a_higher_threshold_makes_images_empty() {
    let f = parse(DOC).unwrap();
    let out = to_results(
        &f,
        Path::new("/d"),
        0.99,
        JsonRules::Corrected,
        &header_of(10, 10),
    );
    assert_eq!(out.results.category[0], 0);
    assert!(out.results.det_conf.is_empty());
    assert_eq!(out.classifications.start, [0]);
}

#[test]
fn refuses_what_is_not_the_format() {
    for text in [
        "",
        "[]",
        "{}",
        r#"{"images": 3}"#,
        r#"{"images": [{"detections": []}]}"#,
        r#"{"images": [], "detection_categories": []}"#,
        "{\"images\": [",
    ] {
        assert!(
            matches!(parse(text), Err(Error::InvalidArgument(_))),
            "{text:?}"
        );
    }
    // Odd boxes are skipped, not fatal.
    let f = parse(
        r#"{"images": [{"file": "x", "detections": [{"category": "1"},
        {"category": "1", "conf": "high", "bbox": [0, 0, 1, 1]},
        {"category": "1", "conf": 0.5, "bbox": [0, 0, 1]}, 7,
        {"category": "1", "conf": 0.5, "bbox": [0, 0, 1, 1]}]}]}"#,
    )
    .unwrap();
    assert_eq!(f.ignored_boxes, 4);
    assert_eq!(f.images[0].detections.as_ref().unwrap().len(), 1);
}

#[test]
fn round_trips_our_own_output() {
    let mut res = DetectionResults::default();
    let dets = vec![
        Detection {
            bbox: [100.4, 50.2, 700.9, 400.7],
            conf: 0.8765,
            category: Category::Animal,
        },
        Detection {
            bbox: [10.0, 20.0, 30.0, 60.0],
            conf: 0.55,
            category: Category::Person,
        },
    ];
    res.push_row(Path::new("/r/cam/a.jpg"), 1920, 1080, None, dets.clone());
    res.push_row(Path::new("/r/cam/b.jpg"), 1920, 1080, None, vec![]);
    res.push_failure(
        2,
        Path::new("/r/cam/c.jpg"),
        "decode",
        "corrupt",
        "bad".into(),
    );
    let text = serde_json::to_string(&crate::export::megadetector::to_json(
        &res,
        Some(Path::new("/r")),
        0.25,
    ))
    .unwrap();
    let f = parse(&text).unwrap();
    let back = to_results(
        &f,
        Path::new("/r"),
        0.0,
        JsonRules::Corrected,
        &header_of(1920, 1080),
    )
    .results;
    assert_eq!(back.paths, res.paths);
    assert_eq!(back.category, res.category);
    assert_eq!(back.count, res.count);
    assert_eq!(back.humancount, res.humancount);
    assert_eq!(back.best_detection, res.best_detection);
    assert_eq!(back.det_category, res.det_category);
    for (a, b) in back.det_xyxy.iter().zip(&res.det_xyxy) {
        for k in 0..4 {
            // 4-decimal rounding (0.1 px at 1920) plus DeepFaune's truncation of both the corner
            // and the width: up to 2 px, always towards smaller values.
            assert!(b[k] - a[k] >= -0.2 && b[k] - a[k] <= 2.2, "{a:?} vs {b:?}");
        }
    }
    for (a, b) in back.det_conf.iter().zip(&res.det_conf) {
        assert!((a - b).abs() <= 0.0005);
    }
    assert_eq!(back.failures[0].reason, "bad");
}

/// Issue 18: coordinates and confidences stay float64 from the JSON text through DeepFaune's
/// `int(x * W)` and the `conf > 0.4` test, as Python's `json` and DeepFaune compute them.
#[test]
fn coordinates_and_confidences_stay_float64() {
    let doc = r#"{"images": [{"file": "x.jpg", "detections": [
        {"category": "1", "conf": 0.40000001, "bbox": [0.4775, 0.4775, 0.1, 0.1]}]}]}"#;
    let f = parse(doc).unwrap();
    let out = to_results(
        &f,
        Path::new("."),
        0.4,
        JsonRules::Corrected,
        &header_of(800, 800),
    );
    let r = &out.results;
    // 0.40000001 > 0.4 in float64; in float32 both are 0.4 and the box would be dropped.
    assert_eq!(r.det_conf.len(), 1, "a confidence just above 0.4 is kept");
    // Python: int(0.4775 * 800) == 382; parsed as f32 first, 0.47749999 * 800 = 381.99999 -> 381.
    assert_eq!(r.det_xyxy[0][0], 382.0);
    assert_eq!(r.det_xyxy[0][1], 382.0);
    assert_eq!(r.category[0], 1);
}

/// DeepFaune's rules on the same file: the most confident box of any category decides,
/// `count` counts every category, `humancount` is 0, failure rows are dropped but listed.
#[test]
fn deepfaune_rules_reproduce_predictor_json() {
    let f = parse(DOC).unwrap();
    let out = to_results(
        &f,
        Path::new("/data"),
        0.4,
        JsonRules::DeepFaune,
        &header_of(640, 480),
    );
    let r = &out.results;
    let names: Vec<String> = r.paths.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(
        names,
        [
            "/data/a/one.jpg",
            "/data/a/two.jpg",
            "/data/a/missing.jpg",
            "/data/a/five.jpg"
        ]
    );
    // one.jpg: the person (0.95) decides over the animal (0.6); person, animal and "group"
    // (0.8) are above 0.4: count 3; humancount is always 0.
    assert_eq!((r.category[0], r.count[0], r.humancount[0]), (2, 3, 0));
    assert_eq!(r.crop[0], [-1; 4]);
    assert_eq!(r.det_category[r.best_detection[0] as usize], 1);
    // Stored boxes: ids "1", "2", "3" above 0.4 ("4" is not stored).
    assert_eq!(r.det_image.iter().filter(|&&i| i == 0).count(), 2);
    assert_eq!((r.category[1], r.count[1]), (0, 0));
    // missing.jpg cannot be read: a failure row that keeps DeepFaune's count.
    assert_eq!((r.category[2], r.count[2]), (CATEGORY_FAILED, 1));
    assert_eq!(r.category[3], 3);
    let listed: Vec<(Option<usize>, &str)> = r.failures.iter().map(|f| (f.index, f.kind)).collect();
    assert_eq!(
        listed,
        [(None, "upstream"), (None, "upstream"), (Some(2), "io")]
    );
}

/// DeepFaune reads the image as stored: boxes are converted with the stored size, not the
/// size after EXIF orientation; a category id it cannot read as a number is a failure.
#[test]
fn deepfaune_rules_ignore_exif_orientation() {
    let doc = r#"{"images": [{"file": "x.jpg", "detections": [
        {"category": "1", "conf": 0.9, "bbox": [0.5, 0.25, 0.25, 0.5]}]},
        {"file": "y.jpg", "detections": [{"category": "animal", "conf": 0.9, "bbox": [0, 0, 1, 1]}]},
        {"file": "z.jpg", "detections": [{"category": "7", "conf": 0.9, "bbox": [0, 0, 1, 1]}]}]}"#;
    let f = parse(doc).unwrap();
    // Stored 640x480, orientation 6: upright 480x640.
    let header = |_: &Path| {
        Ok(ImageHeader {
            width: 480,
            height: 640,
            exif: ExifInfo {
                date: None,
                orientation: 6,
            },
        })
    };
    let df = to_results(&f, Path::new("."), 0.4, JsonRules::DeepFaune, &header).results;
    assert_eq!((df.width[0], df.height[0]), (640, 480));
    assert_eq!(df.det_xyxy[0], [320.0, 120.0, 480.0, 360.0]);
    // 160x240 box: the width grows by int(80 / 2) = 40 on each side.
    assert_eq!(df.crop[0], [280, 120, 520, 360]);
    assert_eq!(
        (df.category[1], df.failures[0].kind),
        (CATEGORY_FAILED, "format")
    );
    // Another number decides: "not empty", an animal row without a crop (zero logits).
    assert_eq!(
        (df.category[2], df.crop[2], df.best_detection[2]),
        (1, [-1; 4], -1)
    );
    let ours = to_results(&f, Path::new("."), 0.4, JsonRules::Corrected, &header).results;
    assert_eq!((ours.width[0], ours.height[0]), (480, 640));
    assert_eq!(ours.det_xyxy[0], [240.0, 160.0, 360.0, 480.0]);
}

#[test]
fn rules_have_names() {
    for r in [JsonRules::Corrected, JsonRules::DeepFaune] {
        assert_eq!(JsonRules::parse(r.name()).unwrap(), r);
    }
    assert!(JsonRules::parse("exact").is_err());
}
