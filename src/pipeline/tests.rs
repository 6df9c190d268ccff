//! Tests of the driver: option checks and manifest defaults (no runtime needed), then runs of
//! the small shared models (skipped, saying why, without ONNX Runtime or ../shared).

use super::decided::Redecide;
use super::*;
use crate::manifest::classifier::builtin_classifier;
use crate::run::detection::CATEGORY_FAILED;
use crate::run::run_pipeline;
use crate::sequence::AggregateOptions;

fn message<T>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::InvalidArgument(m)) => m,
        Err(other) => panic!("expected an InvalidArgument error, got {other:?}"),
        Ok(_) => panic!("expected an InvalidArgument error, got a value"),
    }
}

fn v15() -> ClassifierManifest {
    builtin_classifier("deepfaune-v15").unwrap()
}

#[test]
fn each_invalid_option_is_refused_with_its_message() {
    let both = "score_threshold must be within 0..1 and maxlag_s >= 0";
    for opts in [
        PipelineOptions {
            score_threshold: Some(1.5),
            ..Default::default()
        },
        PipelineOptions {
            score_threshold: Some(-0.1),
            ..Default::default()
        },
        PipelineOptions {
            maxlag_s: -5.0,
            ..Default::default()
        },
        PipelineOptions {
            maxlag_s: f64::NAN,
            ..Default::default()
        },
    ] {
        assert_eq!(message(opts.validate()), both);
        assert_eq!(message(opts.decision_settings(&v15())), both);
    }
    let m = v15();
    let en = m.names("en").unwrap().classes.to_vec();

    let language = PipelineOptions {
        language: "xx".into(),
        ..Default::default()
    };
    let msg = message(language.decision_settings(&m));
    let available = m.languages().join(", ");
    assert_eq!(
        msg,
        format!("language 'xx' is not available for deepfaune-v15 (available: {available})")
    );
    assert!(
        available.contains("en") && available.contains("fr"),
        "{available}"
    );

    let disabled = PipelineOptions {
        disabled_classes: vec!["chamoix".into()],
        ..Default::default()
    };
    let msg = message(disabled.decision_settings(&m));
    assert!(
        msg.starts_with(
            "unknown classes to disable: [\"chamoix\"] (the classes of deepfaune-v15: "
        ),
        "{msg}"
    );
    // Every valid name is listed.
    assert!(en.iter().all(|c| msg.contains(c.as_str())), "{msg}");

    let out_of_range = PipelineOptions {
        class_thresholds: BTreeMap::from([(en[0].clone(), 1.5)]),
        ..Default::default()
    };
    assert_eq!(
        message(out_of_range.decision_settings(&m)),
        format!(
            "class threshold of '{}' must be within 0..1 (got 1.5)",
            en[0]
        )
    );
    let unknown = PipelineOptions {
        class_thresholds: BTreeMap::from([("nope".to_string(), 0.5)]),
        ..Default::default()
    };
    assert_eq!(
        message(unknown.decision_settings(&m)),
        "unknown classes in class_thresholds: [\"nope\"]"
    );
}

/// An invalid setting is refused before the classifier is loaded (no model, no runtime).
#[test]
fn options_are_checked_before_loading_the_classifier() {
    let opts = PipelineOptions {
        classifier: "/nonexistent/classifier.onnx".into(),
        score_threshold: Some(2.0),
        ..Default::default()
    };
    assert_eq!(
        message(Pipeline::new(None, &opts)),
        "score_threshold must be within 0..1 and maxlag_s >= 0"
    );
}

/// The score threshold and temperatures default to the classifier manifest's (read here
/// from the TOML text), whatever they are; a given threshold wins.
#[test]
fn defaults_come_from_the_classifier_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-pixel-c38.toml"),
    )
    .unwrap();
    let text = text.replacen("threshold = 0.8 ", "threshold = 0.65 ", 1);
    let path = dir.path().join("tiny-pixel-c38.toml");
    std::fs::write(&path, &text).unwrap();
    let raw: toml::Value = toml::from_str(&text).unwrap();
    let post = &raw["postprocess"];
    let want = post["threshold"].as_float().unwrap() as f32;
    assert_eq!(want, 0.65);
    let m = ClassifierManifest::from_file(&path).unwrap();

    let s = PipelineOptions::default().decision_settings(&m).unwrap();
    assert_eq!(s.opts.threshold, want);
    assert_eq!(
        s.opts.temperatures.image,
        post["temperature_image"].as_float().unwrap() as f32
    );
    assert_eq!(
        s.opts.temperatures.sequence,
        post["temperature_sequence"].as_float().unwrap() as f32
    );
    assert_eq!((s.maxlag_s, s.language.as_str()), (10.0, "en"));
    assert!(s.opts.disabled.is_empty() && s.opts.class_thresholds.is_empty());

    let given = PipelineOptions {
        score_threshold: Some(0.3),
        maxlag_s: 30.0,
        disabled_classes: vec!["chamois".into(), "bison".into()],
        class_thresholds: BTreeMap::from([("lynx".to_string(), 0.5)]),
        ..Default::default()
    };
    let s = given.decision_settings(&m).unwrap();
    let en = m.names("en").unwrap().classes.to_vec();
    let at = |c: &str| en.iter().position(|x| x == c).unwrap();
    assert_eq!((s.opts.threshold, s.maxlag_s), (0.3, 30.0));
    assert_eq!(s.opts.disabled, vec![at("bison"), at("chamois")]);
    assert_eq!(s.opts.class_thresholds, vec![(at("lynx"), 0.5)]);
}

#[test]
fn redecide_checks_each_change() {
    let m = v15();
    let s = PipelineOptions::default().decision_settings(&m).unwrap();
    let change = |c: Redecide| s.redecide(&m, c);
    assert_eq!(
        message(change(Redecide {
            score_threshold: Some(1.5),
            ..Default::default()
        })),
        "score_threshold must be within 0..1 (got 1.5)"
    );
    assert_eq!(
        message(change(Redecide {
            maxlag_s: Some(-1.0),
            ..Default::default()
        })),
        "maxlag_s must be >= 0 (got -1)"
    );
    assert_eq!(
        message(change(Redecide {
            disabled_classes: Some(vec!["nope".into()]),
            ..Default::default()
        })),
        "unknown classes to disable: [\"nope\"]"
    );
    let kept = change(Redecide {
        score_threshold: Some(0.5),
        ..Default::default()
    })
    .unwrap();
    assert_eq!((kept.opts.threshold, kept.maxlag_s), (0.5, s.maxlag_s));
}

// The tests below run ONNX models: they need the runtime (`DEEPFAUNE_ORT_DYLIB`) and the
// shared test models (../shared/models); without them they say so and pass.

/// `../shared/<path>`, or under `DEEPFAUNE_SHARED` (the test images under
/// `DEEPFAUNE_TESTDATA`), as the Python tests find them.
fn shared(path: &str) -> PathBuf {
    if let (Some(d), Some(rest)) = (
        std::env::var_os("DEEPFAUNE_TESTDATA"),
        path.strip_prefix("testdata/"),
    ) {
        return PathBuf::from(d).join(rest);
    }
    std::env::var_os("DEEPFAUNE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
        .join(path)
}

fn runtime_and_models() -> bool {
    if let Err(e) = crate::runtime::environment() {
        eprintln!("skipped: {e}");
        return false;
    }
    let ok = shared("models/pixel_classifier_182_c38.onnx").is_file()
        && shared("testdata/ena24").is_dir();
    if !ok {
        eprintln!("skipped: ../shared/models or ../shared/testdata missing");
    }
    ok
}

fn run_options() -> RunOptions {
    RunOptions {
        threads: 2,
        window: 4,
        batch_size: 1,
        ..RunOptions::default()
    }
}

fn classifier_options() -> PipelineOptions {
    PipelineOptions {
        classifier: shared("models/pixel_classifier_182_c38.onnx")
            .to_string_lossy()
            .into_owned(),
        classifier_manifest: Some(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("models/tiny-pixel-c38.toml")
                .to_string_lossy()
                .into_owned(),
        ),
        batch_size: 2,
        ..Default::default()
    }
}

fn detectors() -> Detectors {
    Detectors::load(
        "md-lite",
        None,
        None,
        &LoadOptions::default(),
        run_options(),
    )
    .unwrap()
}

/// A folder of `n` ena24 photos and one file that is no image; and its image files.
fn folder(n: usize) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let mut photos: Vec<_> = std::fs::read_dir(shared("testdata/ena24"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    photos.sort();
    for p in &photos[..n] {
        std::fs::copy(p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(dir.path().join("broken.jpg"), b"not a jpeg").unwrap();
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    (dir, files)
}

fn assert_same_rows(a: &PipelineResults, b: &PipelineResults) {
    let (x, y) = (&a.detection, &b.detection);
    assert_eq!(x.paths, y.paths);
    assert_eq!(x.category, y.category);
    assert_eq!((&x.count, &x.humancount), (&y.count, &y.humancount));
    assert_eq!((&x.crop, &x.det_image), (&y.crop, &y.det_image));
    assert_eq!((&x.det_xyxy, &x.det_conf), (&y.det_xyxy, &y.det_conf));
    assert_eq!(x.failures, y.failures);
    assert_eq!((&a.logits, &a.classified), (&b.logits, &b.classified));
    assert_eq!(a.input_index, b.input_index);
}

/// A run of the pipeline gives the rows of the serial path (`run_pipeline`, then the
/// sequences with the manifest's settings), one per file of the folder.
#[test]
fn runs_a_folder_as_the_serial_path_does() {
    if !runtime_and_models() {
        return;
    }
    let (dir, files) = folder(5);
    let inputs = vec![dir.path().to_path_buf()];
    let opts = classifier_options();
    let pipeline = Pipeline::new(Some(detectors()), &opts).unwrap();
    let mut calls = Vec::new();
    let got = pipeline
        .models(true)
        .run(&inputs, false, None, None, &mut |done, total| {
            calls.push((done, total));
            Ok(())
        })
        .unwrap();
    assert_eq!(calls.last(), Some(&(files.len(), files.len())));

    let mut set = load("md-lite", None, None, &LoadOptions::default()).unwrap();
    let mut clf = load_classifier(
        &opts.classifier,
        opts.classifier_manifest.as_deref(),
        false,
        SessionOptions::default(),
    )
    .unwrap();
    let stage = ClassifyStage {
        classifier: &mut clf,
        batch_size: 2,
        keep_embeddings: false,
    };
    let mut serial = run_pipeline(
        &inputs,
        &mut set,
        Some(stage),
        &run_options(),
        &mut |_, _| Ok(()),
    )
    .unwrap();
    let walked = serial.detection.paths.clone();
    let settings = DecisionSettings {
        language: "en".into(),
        opts: AggregateOptions::for_manifest(&clf.manifest),
        maxlag_s: 10.0,
    };
    let decided = decide(&mut serial, &clf.manifest, &settings, &[]).unwrap();
    assert_same_rows(&got.results, &serial);
    assert_eq!(got.decided, decided);

    // One row per file; the file that is no image is a failure, never a label.
    let mut paths = walked.clone();
    paths.sort();
    assert_eq!(paths, files);
    let d = &got.results.detection;
    let broken = d
        .paths
        .iter()
        .position(|p| p.ends_with("broken.jpg"))
        .unwrap();
    assert_eq!(d.category[broken], CATEGORY_FAILED);
    assert_eq!(d.failures.len(), 1);
    assert_eq!(got.decided.table.len(), files.len());
}

/// A run stopped half-way and resumed from its checkpoint gives a fresh run's results.
#[test]
fn a_resumed_run_gives_a_fresh_runs_results() {
    if !runtime_and_models() {
        return;
    }
    let (dir, _) = folder(5);
    let inputs = vec![dir.path().to_path_buf()];
    let out = tempfile::tempdir().unwrap();
    let checkpoint = out.path().join("run.ckpt");
    let pipeline = Pipeline::new(Some(detectors()), &classifier_options()).unwrap();
    let mut models = pipeline.models(true);
    let stopped = models.run(&inputs, false, Some(&checkpoint), None, &mut |done, _| {
        if done >= 3 {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    });
    assert!(matches!(stopped, Err(Error::Cancelled)), "{stopped:?}");
    let lines = std::fs::read_to_string(&checkpoint)
        .unwrap()
        .lines()
        .count();
    assert!(
        lines >= 2,
        "the stopped run recorded no image ({lines} lines)"
    );

    let resumed = models
        .run(&inputs, false, Some(&checkpoint), None, &mut |_, _| Ok(()))
        .unwrap();
    let fresh = models
        .run(&inputs, false, None, None, &mut |_, _| Ok(()))
        .unwrap();
    assert!(resumed.results.changed_since_checkpoint.is_empty());
    assert_same_rows(&resumed.results, &fresh.results);
    assert_eq!(resumed.decided, fresh.decided);
}

/// The fingerprint changes with every setting that changes the results, and a checkpoint
/// written with other settings is refused.
#[test]
fn the_fingerprint_follows_the_settings() {
    if !runtime_and_models() {
        return;
    }
    let (dir, _) = folder(1);
    let inputs = vec![dir.path().to_path_buf()];
    let det = detectors();
    let base = classifier_options();
    let pipe = |o: PipelineOptions| Pipeline::new(Some(det.clone()), &o).unwrap();
    let fp = |p: &Pipeline, keep: bool| p.models(true).fingerprint(&inputs, keep).unwrap();
    let a = pipe(base.clone());
    let reference = fp(&a, false);
    assert_eq!(reference, fp(&pipe(base.clone()), false));
    assert_ne!(reference, fp(&a, true));
    let other = a.models(true).fingerprint(&[dir.path().join("x")], false);
    assert_ne!(reference, other.unwrap());
    let variants = [
        PipelineOptions {
            score_threshold: Some(0.5),
            ..base.clone()
        },
        PipelineOptions {
            maxlag_s: 30.0,
            ..base.clone()
        },
        PipelineOptions {
            disabled_classes: vec!["lynx".into()],
            ..base.clone()
        },
        PipelineOptions {
            class_thresholds: BTreeMap::from([("lynx".to_string(), 0.5)]),
            ..base.clone()
        },
        PipelineOptions {
            language: "fr".into(),
            ..base.clone()
        },
    ];
    for o in variants {
        assert_ne!(reference, fp(&pipe(o.clone()), false), "{o:?}");
    }

    let out = tempfile::tempdir().unwrap();
    let checkpoint = out.path().join("run.ckpt");
    a.models(true)
        .run(&inputs, false, Some(&checkpoint), None, &mut |_, _| Ok(()))
        .unwrap();
    let stricter = pipe(PipelineOptions {
        score_threshold: Some(0.5),
        ..base
    });
    let refused =
        stricter
            .models(true)
            .run(&inputs, false, Some(&checkpoint), None, &mut |_, _| Ok(()));
    assert!(
        message(refused).contains("comes from another model or other settings"),
        "a checkpoint of other settings must be refused"
    );
}

/// Frames held in memory give the rows their files give, one per frame; slots are checked.
#[test]
fn frames_give_the_rows_of_their_files() {
    if !runtime_and_models() {
        return;
    }
    let (dir, files) = folder(3);
    let photos: Vec<_> = files
        .into_iter()
        .filter(|p| !p.ends_with("broken.jpg"))
        .collect();
    std::fs::remove_file(dir.path().join("broken.jpg")).unwrap();
    let opts = classifier_options();
    let pipeline = Pipeline::new(Some(detectors()), &opts).unwrap();
    let mut models = pipeline.models(true);
    let decode = crate::image_io::decode::DecodeOptions::default();
    let frames = || -> Vec<RgbImage> {
        photos
            .iter()
            .map(|p| {
                crate::image_io::decode::read_image(p, &decode)
                    .unwrap()
                    .image
            })
            .collect()
    };
    let slots = [Some(0), None, Some(1), Some(2)];
    let video = models
        .run_frames(frames(), &slots, Path::new("clip.mp4"), false)
        .unwrap();

    let mut set = load("md-lite", None, None, &LoadOptions::default()).unwrap();
    let mut clf = load_classifier(
        &opts.classifier,
        opts.classifier_manifest.as_deref(),
        false,
        SessionOptions::default(),
    )
    .unwrap();
    let stage = ClassifyStage {
        classifier: &mut clf,
        batch_size: 2,
        keep_embeddings: false,
    };
    let inputs = vec![dir.path().to_path_buf()];
    let files = run_pipeline(
        &inputs,
        &mut set,
        Some(stage),
        &run_options(),
        &mut |_, _| Ok(()),
    )
    .unwrap();
    let (v, f) = (&video.results.detection, &files.detection);
    assert_eq!(v.len(), 3);
    assert_eq!((&v.category, &v.count), (&f.category, &f.count));
    assert_eq!((&v.det_xyxy, &v.det_conf), (&f.det_xyxy, &f.det_conf));
    assert_eq!(video.results.logits, files.logits);
    // The texts are the labels' in the pipeline's language.
    let names = pipeline.manifest().names("en").unwrap();
    assert_eq!(
        video.prediction,
        video.summary.prediction.label.text(&names, false)
    );
    assert_eq!(
        video.top1,
        video.summary.prediction.top1.text(&names, false)
    );

    assert_eq!(
        message(models.run_frames(frames(), &[Some(3)], Path::new("clip.mp4"), false)),
        "slot points at frame 3 but 3 frames were given"
    );
    drop(models);
    let without = Pipeline::new(None, &opts).unwrap();
    let mut models = without.models(true);
    assert_eq!(
        message(models.run_frames(frames(), &[Some(0)], Path::new("clip.mp4"), false)),
        "this pipeline has no detector: videos need one (build the Pipeline with a detector)"
    );
    assert!(
        message(models.run(&inputs, false, None, None, &mut |_, _| Ok(())))
            .starts_with("this pipeline has no detector: pass detections=")
    );
}

/// Decoded photos of the shared test data, as a fake video's frames.
fn photo_frames(n: usize) -> Vec<RgbImage> {
    let (_dir, files) = folder(n);
    let decode = crate::image_io::decode::DecodeOptions::default();
    files
        .iter()
        .filter(|p| !p.ends_with("broken.jpg"))
        .map(|p| {
            crate::image_io::decode::read_image(p, &decode)
                .unwrap()
                .image
        })
        .collect()
}

/// What a fake sampler reads from a video named `stem`: three photos as frames 0, 10 and 20
/// (which photos depends on the name), positions with a repeat and one unread frame.
fn fake_sample(stem: &str, photos: &[RgbImage]) -> SampledVideo {
    let first = stem.len() % photos.len();
    let frames: Vec<RgbImage> = (0..3)
        .map(|k| photos[(first + k) % photos.len()].clone())
        .collect();
    SampledVideo {
        frames,
        frame_numbers: vec![0, 10, 20],
        slots: vec![Some(0), Some(1), Some(2), None, Some(0)],
        positions: vec![0, 10, 20, 30, 0],
        fps: 30.0,
        total_frames: 31,
        date: Some(format!("2024:05:01 10:00:{:02}", stem.len())),
        seconds: 0.0,
    }
}

/// The record of `sampled` computed from `run_frames` and the video summary by hand: each box
/// with the frame number of its row, the keyframe the frame number of the summary's slot, its
/// box the frame's deciding box.
fn expected_record(models: &mut Models<'_>, path: &Path, v: SampledVideo) -> VideoRecord {
    let run = models
        .run_frames(v.frames.clone(), &v.slots, path, false)
        .unwrap();
    let d = &run.results.detection;
    let mut detections = Vec::new();
    for k in 0..d.det_conf.len() {
        let row = d.det_image[k] as usize;
        detections.push(crate::results::VideoDetection {
            frame_number: v.frame_numbers[row],
            category: d.det_category[k],
            conf: d.det_conf[k],
            xyxy: d.det_xyxy[k],
        });
    }
    let (mut keyframe, mut bbox) = (None, None);
    if let Some(slot) = run.summary.keyframe {
        let frame = v.slots[slot].unwrap();
        keyframe = Some(v.frame_numbers[frame]);
        let best = d.best_detection[frame];
        if best >= 0 {
            bbox = Some(d.det_xyxy[best as usize]);
        }
    }
    VideoRecord {
        path: path.to_path_buf(),
        prediction: run.prediction.clone(),
        score: run.summary.prediction.score,
        top1: run.top1.clone(),
        label_index: run.label_index,
        top1_index: run.top1_index,
        count: run.summary.count,
        humancount: run.summary.humancount,
        date: v.date.clone(),
        keyframe,
        bbox,
        frame_rate: v.fps,
        total_frames: v.total_frames,
        positions: v.positions.clone(),
        frames_processed: v.frame_numbers.clone(),
        frame_size: v.frames[0].dimensions(),
        detections,
        failure: None,
        seconds_extraction: 0.0,
        seconds_total: 0.0,
    }
}

/// The records with their timings zeroed (the only fields that differ between two runs).
fn untimed(records: &[VideoRecord]) -> Vec<VideoRecord> {
    records
        .iter()
        .map(|r| VideoRecord {
            seconds_extraction: 0.0,
            seconds_total: 0.0,
            ..r.clone()
        })
        .collect()
}

/// Videos run after the images (given ones first, then the walk's), each record what its
/// frames give; a failed video is DeepFaune's `empty` with its failure. A run stopped among the
/// videos and resumed gives a fresh run's results without sampling the recorded videos again;
/// a video replaced since is sampled again and listed as changed. Without a sampler, videos
/// are failures saying what reads frames.
#[test]
fn videos_run_after_the_images_and_resume_from_the_checkpoint() {
    if !runtime_and_models() {
        return;
    }
    let photos = photo_frames(4);
    let (dir, files) = folder(2);
    for (name, bytes) in [("a.mp4", "aa"), ("bb.mp4", "bbb"), ("broken.mp4", "c")] {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let other = tempfile::tempdir().unwrap();
    let given = other.path().join("given.mov");
    std::fs::write(&given, b"given").unwrap();
    let inputs = vec![given.clone(), dir.path().to_path_buf()];
    let order = [
        given.clone(),
        dir.path().join("a.mp4"),
        dir.path().join("bb.mp4"),
        dir.path().join("broken.mp4"),
    ];
    let failure = crate::results::VideoFailure {
        stage: "decode".into(),
        kind: "corrupt".into(),
        reason: "no frame could be decoded".into(),
    };
    let calls = std::cell::RefCell::new(Vec::<PathBuf>::new());
    let mut sampler = |p: &Path| -> Result<Sampled, Error> {
        calls.borrow_mut().push(p.to_path_buf());
        let stem = p.file_stem().unwrap().to_str().unwrap();
        Ok(if stem == "broken" {
            Err(failure.clone())
        } else {
            Ok(fake_sample(stem, &photos))
        })
    };
    let pipeline = Pipeline::new(Some(detectors()), &classifier_options()).unwrap();
    let mut models = pipeline.models(true);

    let mut progress = Vec::new();
    let fresh = models
        .run(&inputs, false, None, Some(&mut sampler), &mut |d, t| {
            progress.push((d, t));
            Ok(())
        })
        .unwrap();
    let n = files.len();
    assert_eq!(fresh.results.len(), n, "the images' rows only");
    assert_eq!(progress.last(), Some(&(n + 4, n + 4)));
    assert_eq!(*calls.borrow(), order);
    let paths: Vec<_> = fresh.videos.iter().map(|v| v.path.clone()).collect();
    assert_eq!(paths, order);
    for (rec, path) in fresh.videos.iter().zip(&order).take(3) {
        let stem = path.file_stem().unwrap().to_str().unwrap();
        let want = expected_record(&mut models, path, fake_sample(stem, &photos));
        assert_eq!(untimed(std::slice::from_ref(rec)), [want]);
    }
    let failed = &fresh.videos[3];
    let names = pipeline.manifest().names("en").unwrap();
    let empty = crate::sequence::Label::Empty;
    let m = pipeline.manifest();
    assert_eq!(failed.prediction, empty.text(&names, false));
    assert_eq!(
        failed.label_index,
        empty.index(m.num_classes(), m.num_groups())
    );
    assert_eq!(failed.failure.as_ref(), Some(&failure));
    assert_eq!((failed.keyframe, failed.count), (None, 0));

    // Stopped after the second video, then resumed.
    let out = tempfile::tempdir().unwrap();
    let checkpoint = out.path().join("run.ckpt");
    calls.borrow_mut().clear();
    let stopped = models.run(
        &inputs,
        false,
        Some(&checkpoint),
        Some(&mut sampler),
        &mut |d, _| {
            if d >= n + 2 {
                Err(Error::Cancelled)
            } else {
                Ok(())
            }
        },
    );
    assert!(matches!(stopped, Err(Error::Cancelled)), "{stopped:?}");
    assert!(!crate::run::checkpoint::is_complete(&checkpoint));
    calls.borrow_mut().clear();
    let resumed = models
        .run(
            &inputs,
            false,
            Some(&checkpoint),
            Some(&mut sampler),
            &mut |_, _| Ok(()),
        )
        .unwrap();
    assert_eq!(
        *calls.borrow(),
        order[2..],
        "recorded videos are not sampled again"
    );
    assert!(resumed.results.changed_since_checkpoint.is_empty());
    assert_eq!(untimed(&resumed.videos), untimed(&fresh.videos));
    assert_same_rows(&resumed.results, &fresh.results);
    assert_eq!(resumed.decided, fresh.decided);
    assert!(crate::run::checkpoint::is_complete(&checkpoint));
    let text = std::fs::read_to_string(&checkpoint).unwrap();
    let video_lines = text
        .lines()
        .filter(|l| l.starts_with("{\"video\":"))
        .count();
    assert_eq!(video_lines, 4, "one line per video in the run's checkpoint");

    // A video replaced under its name is run again and listed as changed; the others restored.
    std::fs::write(dir.path().join("a.mp4"), b"another file").unwrap();
    calls.borrow_mut().clear();
    let again = models
        .run(
            &inputs,
            false,
            Some(&checkpoint),
            Some(&mut sampler),
            &mut |_, _| Ok(()),
        )
        .unwrap();
    assert_eq!(*calls.borrow(), [order[1].clone()]);
    assert_eq!(again.results.changed_since_checkpoint, [order[1].clone()]);
    assert_eq!(untimed(&again.videos), untimed(&fresh.videos));

    // No sampler: every video is a failure saying what reads frames.
    let without = models
        .run(&inputs, false, None, None, &mut |_, _| Ok(()))
        .unwrap();
    assert_eq!(without.videos.len(), 4);
    for v in &without.videos {
        let f = v.failure.as_ref().unwrap();
        assert_eq!(f, &no_sampler_failure());
        assert!(f.reason.contains("pip install"), "{}", f.reason);
        assert_eq!(v.prediction, empty.text(&names, false));
    }
}
