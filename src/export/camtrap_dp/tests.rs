use super::*;
use crate::image_io::Timestamp;
use crate::manifest::classifier::builtin_classifier;
use crate::results::VideoRecord;
use crate::sequence::{Label, Prediction};

fn ts(seconds: i64) -> Option<Timestamp> {
    Some(Timestamp {
        text: String::new(),
        seconds,
    })
}

/// Three images in `<root>/cam1`: a fox sequence of two (one box each), an undated empty image;
/// and a failed file.
fn run(root: &Path) -> (DetectionResults, SequencePredictions) {
    let mut d = DetectionResults {
        detector: "md-lite".into(),
        ..Default::default()
    };
    let cam = root.join("cam1");
    std::fs::create_dir_all(&cam).unwrap();
    for (name, w, date, cat, count) in [
        ("a.jpg", 200, ts(1000), 1, 1),
        ("b.JPG", 200, ts(1005), 1, 2),
        ("c.png", 100, None, 0, 0),
        ("d.jpg", 0, None, CATEGORY_FAILED, 0),
    ] {
        std::fs::write(cam.join(name), b"").unwrap();
        d.paths.push(cam.join(name));
        d.width.push(w);
        d.height.push(100);
        d.date.push(date);
        d.category.push(cat);
        d.count.push(count);
        d.humancount.push(0);
        d.crop.push([-1; 4]);
        d.best_detection.push(-1);
    }
    // Image 0: one animal box; image 1: two animal boxes, the second is the classified one.
    for (img, xyxy, conf) in [
        (0u32, [20.0f32, 10.0, 120.0, 60.0], 0.9f32),
        (1, [0.0, 0.0, 10.0, 10.0], 0.7),
        (1, [50.0, 25.0, 250.0, 75.0], 0.8),
    ] {
        d.det_image.push(img);
        d.det_xyxy.push(xyxy);
        d.det_conf.push(conf);
        d.det_category.push(0);
    }
    d.best_detection[0] = 0;
    d.best_detection[1] = 2;
    let fox = Prediction {
        label: Label::Class(34),
        score: 0.97,
        top1: Label::Class(34),
    };
    let empty = Prediction {
        label: Label::Empty,
        score: 1.0,
        top1: Label::Empty,
    };
    let p = SequencePredictions {
        seqnum: vec![1, 1, 2, 3],
        base: vec![fox, fox, empty, empty],
        sequence: vec![fox, fox, empty, empty],
    };
    (d, p)
}

fn read(folder: &Path, name: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(folder.join(name))
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(String::from).collect())
        .collect()
}

#[test]
fn package_from_images_and_user_deployments() {
    let t = tempfile::tempdir().unwrap();
    let (d, p) = run(t.path());
    let m = builtin_classifier("deepfaune-v14").unwrap();
    let src = CamtrapSource {
        detection: &d,
        predictions: &p,
        manifest: &m,
        videos: &[],
        reviewed: &[],
        video_reviewed: &[],
    };
    let mut user = DeploymentRow::new();
    for (k, v) in [
        ("deploymentID", "cam1"),
        ("latitude", "45.5"),
        ("longitude", "6.25"),
    ] {
        user.insert(k.into(), v.into());
    }
    user.insert("deploymentStart".into(), "1970-01-01T00:00:00+02:00".into());
    let opts = CamtrapOptions {
        deployments: Some(vec![user]),
        root: Some(t.path().to_path_buf()),
        ..Default::default()
    };
    let out = t.path().join("pkg");
    let warnings = write_camtrap_dp(&src, &out, &opts).unwrap();
    let media = read(&out, "media.csv");
    assert_eq!(media[0].join(","), MEDIA_FIELDS.join(","));
    assert_eq!(
        media.len(),
        3,
        "two dated images; undated and failed left out"
    );
    // 1000 s after midnight, camera clock in the user's +02:00.
    assert_eq!(media[1][3], "1970-01-01T00:16:40+02:00");
    assert_eq!(
        media[1][4], "cam1/a.jpg",
        "relative to the package's parent"
    );
    let expected_id: String = Sha256::digest(b"cam1/a.jpg")[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(media[1][0], expected_id);
    let obs = read(&out, "observations.csv");
    let col = |name: &str| OBSERVATION_FIELDS.iter().position(|c| *c == name).unwrap();
    let event = &obs[1];
    assert_eq!(event[col("observationLevel")], "event");
    assert_eq!(event[col("scientificName")], "Vulpes vulpes");
    assert_eq!(event[col("count")], "2");
    assert_eq!(event[col("eventEnd")], "1970-01-01T00:16:45+02:00");
    assert_eq!(obs.len(), 1 + 1 + 3, "one event, three boxes");
    // Image 1's second box: x 50/200, y 25/100, w 200/200 clipped to 150/200, h 50/100.
    let b = &obs[4];
    let bbox: Vec<&str> = ["bboxX", "bboxY", "bboxWidth", "bboxHeight"]
        .iter()
        .map(|c| b[col(c)].as_str())
        .collect();
    assert_eq!(bbox, ["0.25", "0.25", "0.75", "0.5"]);
    assert_eq!(b[col("scientificName")], "Vulpes vulpes");
    assert_eq!(
        obs[3][col("scientificName")],
        "",
        "unclassified box: no species"
    );
    assert_eq!(b[col("classificationProbability")], "0.8");
    let deps = read(&out, "deployments.csv");
    assert_eq!(deps.len(), 2);
    assert_eq!(
        deps[1][6], "1970-01-01T00:00:00+02:00",
        "the user's start wins"
    );
    assert_eq!(
        deps[1][7], "1970-01-01T00:16:45+02:00",
        "end from the last image"
    );
    let joined = warnings.join("\n");
    assert!(
        joined.contains("cam1/c.png") && joined.contains("1 unreadable"),
        "{joined}"
    );
    assert!(joined.contains("deploymentEnd taken from"), "{joined}");
    assert!(!joined.contains("latitude"), "{joined}");
    let desc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("datapackage.json")).unwrap())
            .unwrap();
    assert_eq!(desc["spatial"]["type"], "Point");
    assert_eq!(desc["temporal"]["start"], "1970-01-01");
    assert_eq!(desc["taxonomic"][0]["vernacularNames"]["fra"], "renard");
    // The package sits inside the input tree: later walks must skip it.
    assert!(out.join(OUTPUT_MARKER).is_file());
}

#[test]
fn without_deployments_warns_instead_of_inventing() {
    let t = tempfile::tempdir().unwrap();
    let (d, p) = run(t.path());
    let m = builtin_classifier("deepfaune-v14").unwrap();
    let src = CamtrapSource {
        detection: &d,
        predictions: &p,
        manifest: &m,
        videos: &[],
        reviewed: &[],
        video_reviewed: &[],
    };
    let out = tempfile::tempdir().unwrap();
    let opts = CamtrapOptions {
        undated: UndatedMedia::FileTime,
        ..Default::default()
    };
    let warnings = write_camtrap_dp(&src, &out.path().join("pkg"), &opts).unwrap();
    let joined = warnings.join("\n");
    for needle in [
        "required latitude, longitude missing",
        "taken as UTC",
        "file modification time",
        "project title, samplingDesign, captureMethod missing",
        "spatial coverage left out",
        "contributors missing",
        "filePath is relative to",
    ] {
        assert!(joined.contains(needle), "{needle} not in {joined}");
    }
    let media = read(&out.path().join("pkg"), "media.csv");
    assert_eq!(media.len(), 4, "the undated image is in, dated by mtime");
    assert!(media[1][3].ends_with('Z'));
    let deps = read(&out.path().join("pkg"), "deployments.csv");
    assert_eq!((deps[1][0].as_str(), deps[1][3].as_str()), ("cam1", ""));
    assert!(!out.path().join("pkg").join(OUTPUT_MARKER).exists());
}

#[test]
fn file_paths_never_absolute_for_a_relative_package_folder() {
    let t = tempfile::tempdir().unwrap();
    let (d, p) = run(t.path());
    let m = builtin_classifier("deepfaune-v14").unwrap();
    let src = CamtrapSource {
        detection: &d,
        predictions: &p,
        manifest: &m,
        videos: &[],
        reviewed: &[],
        video_reviewed: &[],
    };
    let opts = CamtrapOptions {
        root: Some(t.path().to_path_buf()),
        ..Default::default()
    };
    // A bare folder name resolves against the working directory, outside the image tree.
    let name = format!("camtrap-test-pkg-{}", std::process::id());
    let result = write_camtrap_dp(&src, Path::new(&name), &opts);
    let media = std::fs::read_to_string(Path::new(&name).join("media.csv"));
    let _ = std::fs::remove_dir_all(&name);
    assert!(result
        .unwrap()
        .iter()
        .any(|w| w.contains("filePath is relative to")));
    let media = media.unwrap();
    assert!(media.contains(",cam1/a.jpg,"), "{media}");
    assert!(!media.contains(",/"), "{media}");
}

/// Videos beside `run`'s images: a wolf clip in cam1 (keyframe 14, one box), an empty clip in
/// cam2, a failed one and an undated one (12.9 s each: 129 frames at 10 per second).
fn videos(root: &Path) -> Vec<VideoRecord> {
    // deepfaune-v14: wolf is class 20; empty's place follows the classes and bird groups.
    let m = builtin_classifier("deepfaune-v14").unwrap();
    let (wolf, empty) = (20, Label::Empty.index(m.num_classes(), m.num_groups()));
    let video = |path: &str, date: Option<&str>, label_index: usize, score: f64| VideoRecord {
        path: root.join(path),
        prediction: String::new(),
        score,
        top1: String::new(),
        label_index,
        top1_index: label_index,
        count: 0,
        humancount: 0,
        date: date.map(str::to_string),
        keyframe: None,
        bbox: None,
        frame_rate: 10.0,
        total_frames: 129,
        positions: Vec::new(),
        frames_processed: Vec::new(),
        frame_size: (640, 480),
        detections: Vec::new(),
        failure: None,
        seconds_extraction: 0.0,
        seconds_total: 0.0,
    };
    // 2000 and 3000 seconds after the epoch on the camera clock.
    vec![
        VideoRecord {
            count: 3,
            keyframe: Some(14),
            bbox: Some([64.0, 48.0, 320.0, 240.0]),
            ..video("cam1/clip.mp4", Some("1970:01:01 00:33:20"), wolf, 0.91)
        },
        video("cam2/still.MOV", Some("1970:01:01 00:50:00"), empty, 1.0),
        VideoRecord {
            failure: Some(crate::results::VideoFailure {
                stage: "read".into(),
                kind: "corrupt".into(),
                reason: "moov atom not found".into(),
            }),
            ..video("cam2/broken.mp4", None, empty, 1.0)
        },
        video("cam2/undated.avi", None, wolf, 0.91),
    ]
}

#[test]
fn videos_are_media_with_their_own_events() {
    let t = tempfile::tempdir().unwrap();
    let (d, p) = run(t.path());
    let vids = videos(t.path());
    let m = builtin_classifier("deepfaune-v14").unwrap();
    let src = CamtrapSource {
        detection: &d,
        predictions: &p,
        manifest: &m,
        videos: &vids,
        reviewed: &[],
        video_reviewed: &[],
    };
    let mut user = DeploymentRow::new();
    user.insert("deploymentID".into(), "cam1".into());
    user.insert("deploymentStart".into(), "1970-01-01T00:00:00+02:00".into());
    let opts = CamtrapOptions {
        deployments: Some(vec![user]),
        root: Some(t.path().to_path_buf()),
        ..Default::default()
    };
    let out = t.path().join("pkg");
    let warnings = write_camtrap_dp(&src, &out, &opts).unwrap();
    let media = read(&out, "media.csv");
    let mcol = |name: &str| MEDIA_FIELDS.iter().position(|c| *c == name).unwrap();
    let files: Vec<&str> = media[1..]
        .iter()
        .map(|r| r[mcol("filePath")].as_str())
        .collect();
    assert_eq!(
        files,
        [
            "cam1/a.jpg",
            "cam1/b.JPG",
            "cam1/clip.mp4",
            "cam2/still.MOV"
        ]
    );
    let clip = &media[3];
    assert_eq!(clip[mcol("fileMediatype")], "video/mp4");
    assert_eq!(media[4][mcol("fileMediatype")], "video/quicktime");
    // 2000 s after midnight on the camera clock, in cam1's +02:00; cam2 has no zone: UTC.
    assert_eq!(clip[mcol("timestamp")], "1970-01-01T00:33:20+02:00");
    assert_eq!(media[4][mcol("timestamp")], "1970-01-01T00:50:00Z");
    let id: String = Sha256::digest(b"cam1/clip.mp4")[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(clip[mcol("mediaID")], id);

    let obs = read(&out, "observations.csv");
    let col = |name: &str| OBSERVATION_FIELDS.iter().position(|c| *c == name).unwrap();
    let find = |level: &str, event: &str| -> Vec<&Vec<String>> {
        obs.iter()
            .filter(|r| r[col("observationLevel")] == level && r[col("eventID")] == event)
            .collect()
    };
    // Images use sequences 1..=3: the videos are 4, 5, 6 (failed), 7 (undated).
    let wolf_sci = m.scientific_names["wolf"].as_str();
    let ev = find("event", "seq4");
    assert_eq!(ev.len(), 1);
    let ev = ev[0];
    assert_eq!(ev[col("eventStart")], "1970-01-01T00:33:20+02:00");
    assert_eq!(
        ev[col("eventEnd")],
        "1970-01-01T00:33:32+02:00",
        "+ 12 whole seconds"
    );
    assert_eq!(ev[col("deploymentID")], "cam1");
    assert_eq!(
        (
            ev[col("scientificName")].as_str(),
            ev[col("count")].as_str()
        ),
        (wolf_sci, "3")
    );
    assert_eq!(ev[col("classificationProbability")], "0.91");
    let still = find("event", "seq5");
    assert_eq!(still[0][col("observationType")], "blank");
    assert!(
        find("media", "seq5").is_empty(),
        "nothing seen, no keyframe"
    );
    assert!(find("event", "seq6").is_empty() && find("event", "seq7").is_empty());
    let key = find("media", "seq4");
    assert_eq!(key.len(), 1);
    let key = key[0];
    assert_eq!(key[col("mediaID")], id);
    assert_eq!(key[col("observationID")], format!("{id}_1"));
    assert_eq!(key[col("observationType")], "animal");
    assert_eq!(key[col("scientificName")], wolf_sci);
    let bbox: Vec<&str> = ["bboxX", "bboxY", "bboxWidth", "bboxHeight"]
        .iter()
        .map(|c| key[col(c)].as_str())
        .collect();
    // x 64/640, y 48/480, width 256/640, height 192/480.
    assert_eq!(bbox, ["0.1", "0.1", "0.4", "0.4"]);
    assert!(
        key[col("observationComments")].contains("wolf")
            && key[col("observationComments")].contains("frame 14"),
        "{key:?}"
    );
    let deps = read(&out, "deployments.csv");
    let cam1 = deps.iter().find(|r| r[0] == "cam1").unwrap();
    assert_eq!(cam1[7], "1970-01-01T00:33:32+02:00", "ends with the clip");
    assert!(deps.iter().any(|r| r[0] == "cam2"));
    let joined = warnings.join("\n");
    assert!(joined.contains("2 unreadable"), "{joined}");
    assert!(
        joined.contains("1 video(s) have no creation_time and were left out")
            && joined.contains("undated.avi"),
        "{joined}"
    );
    let desc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("datapackage.json")).unwrap())
            .unwrap();
    let taxa: Vec<&str> = desc["taxonomic"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["scientificName"].as_str().unwrap())
        .collect();
    assert!(taxa.contains(&wolf_sci) && taxa.contains(&"Vulpes vulpes"));
}

#[test]
fn undated_videos_dated_by_file_time() {
    let t = tempfile::tempdir().unwrap();
    let (d, p) = run(t.path());
    let vids = videos(t.path());
    std::fs::create_dir_all(t.path().join("cam2")).unwrap();
    std::fs::write(t.path().join("cam2/undated.avi"), b"").unwrap();
    let m = builtin_classifier("deepfaune-v14").unwrap();
    let src = CamtrapSource {
        detection: &d,
        predictions: &p,
        manifest: &m,
        videos: &vids,
        reviewed: &[],
        video_reviewed: &[],
    };
    let opts = CamtrapOptions {
        root: Some(t.path().to_path_buf()),
        undated: UndatedMedia::FileTime,
        ..Default::default()
    };
    let out = t.path().join("pkg");
    let warnings = write_camtrap_dp(&src, &out, &opts).unwrap();
    assert!(warnings
        .iter()
        .any(|w| w.contains("1 video(s) have no creation_time and were dated by their file")));
    let media = std::fs::read_to_string(out.join("media.csv")).unwrap();
    assert!(media.contains(",cam2/undated.avi,"), "{media}");
    let obs = read(&out, "observations.csv");
    assert!(obs.iter().any(|r| r[3] == "seq7"), "its own event");
}

#[test]
fn a_video_a_person_relabelled_is_a_human_classification() {
    let t = tempfile::tempdir().unwrap();
    let (d, p) = run(t.path());
    let vids = videos(t.path());
    let m = builtin_classifier("deepfaune-v14").unwrap();
    let anna = Some(crate::results::Reviewed {
        label: Some(Label::Class(20)),
        verified: true,
        by: Some("anna".into()),
        time: "2026-01-02T03:04:05.678Z".into(),
    });
    let src = CamtrapSource {
        detection: &d,
        predictions: &p,
        manifest: &m,
        videos: &vids,
        reviewed: &[],
        video_reviewed: &[anna, None, None, None],
    };
    let opts = CamtrapOptions {
        root: Some(t.path().to_path_buf()),
        ..Default::default()
    };
    let out = t.path().join("pkg");
    write_camtrap_dp(&src, &out, &opts).unwrap();
    let obs = read(&out, "observations.csv");
    let col = |name: &str| OBSERVATION_FIELDS.iter().position(|c| *c == name).unwrap();
    let fields = |r: &Vec<String>| {
        [
            "classificationMethod",
            "classifiedBy",
            "classificationTimestamp",
            "classificationProbability",
        ]
        .map(|c| r[col(c)].clone())
    };
    // The clip (seq4): its event and its keyframe's observation are the person's, without
    // milliseconds (Camtrap DP's format) and without the machine's probability.
    let clip: Vec<&Vec<String>> = obs.iter().filter(|r| r[col("eventID")] == "seq4").collect();
    assert_eq!(clip.len(), 2);
    for r in clip {
        assert_eq!(fields(r), ["human", "anna", "2026-01-02T03:04:05Z", ""]);
    }
    // The still clip (seq5) stays the machine's.
    let still = obs.iter().find(|r| r[col("eventID")] == "seq5").unwrap();
    assert_eq!(fields(still)[0], "machine");
    assert_eq!(fields(still)[3], "1");
}
