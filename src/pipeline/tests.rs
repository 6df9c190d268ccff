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
        .run(&inputs, false, None, &mut |done, total| {
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
    let stopped = models.run(&inputs, false, Some(&checkpoint), &mut |done, _| {
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
        .run(&inputs, false, Some(&checkpoint), &mut |_, _| Ok(()))
        .unwrap();
    let fresh = models
        .run(&inputs, false, None, &mut |_, _| Ok(()))
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
        .run(&inputs, false, Some(&checkpoint), &mut |_, _| Ok(()))
        .unwrap();
    let stricter = pipe(PipelineOptions {
        score_threshold: Some(0.5),
        ..base
    });
    let refused = stricter
        .models(true)
        .run(&inputs, false, Some(&checkpoint), &mut |_, _| Ok(()));
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
        message(models.run(&inputs, false, None, &mut |_, _| Ok(())))
            .starts_with("this pipeline has no detector: pass detections=")
    );
}
