use super::*;
use crate::image_io::ExifInfo;
use crate::run::detection::CATEGORY_FAILED;

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
    let out = to_results(&f, Path::new("/data"), 0.4, &header_of(640, 480));
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
    let out = to_results(&f, Path::new("."), 0.4, &header_of(100, 100));
    assert_eq!(out.results.det_category, [1, 0]);
    assert_eq!(out.results.category[0], 1);
}

#[test]
fn a_higher_threshold_makes_images_empty() {
    let f = parse(DOC).unwrap();
    let out = to_results(&f, Path::new("/d"), 0.99, &header_of(10, 10));
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
    let text =
        serde_json::to_string(&super::super::to_json(&res, Some(Path::new("/r")), 0.25)).unwrap();
    let f = parse(&text).unwrap();
    let back = to_results(&f, Path::new("/r"), 0.0, &header_of(1920, 1080)).results;
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
