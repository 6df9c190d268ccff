//! Cross-check of [`super::predict_all`] against the independent Python reference
//! (`tests/reference/deepfaune_sequence_ref.py`) on many generated runs: folders, undated images,
//! every image kind, disabled classes, the bird head, and the temperatures of DeepFaune 1.4.1,
//! 1.5 and arbitrary ones. Runs `python3` once; skipped (with a message) when python3 or numpy is
//! missing.

use std::process::Command;

use serde_json::{json, Value};

use super::*;
use crate::manifest::classifier::Temperatures;

/// A small deterministic generator (64-bit LCG, high bits), so the cases need no extra crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Roughly normal (sum of uniforms), times `scale`.
    fn normal(&mut self, scale: f32) -> f32 {
        let s: f32 = (0..4).map(|_| self.below(10_000) as f32 / 10_000.0).sum();
        (s - 2.0) * 1.7 * scale
    }
}

struct Case {
    names: Vec<String>,
    dates: Vec<Option<i64>>,
    kinds: Vec<ImageKind>,
    logits: Vec<f32>,
    width: usize,
    birds: Option<Vec<f32>>,
    opts: AggregateOptions,
    maxlag: f64,
}

const GROUPS: usize = 3;

fn make_case(g: &mut Lcg) -> Case {
    let n = 1 + g.below(25) as usize;
    let width = 2 + g.below(6) as usize;
    let names = (0..n)
        .map(|i| format!("cam{}/img{i:03}.jpg", g.below(3)))
        .collect();
    let dates = (0..n)
        .map(|_| {
            if g.below(7) == 0 {
                None
            } else {
                Some(g.below(200) as i64)
            }
        })
        .collect();
    let kinds = (0..n)
        .map(|_| {
            [
                ImageKind::Empty,
                ImageKind::Animal,
                ImageKind::Animal,
                ImageKind::Human,
                ImageKind::Vehicle,
            ][g.below(5) as usize]
        })
        .collect();
    let scale = [0.5, 2.0, 6.0][g.below(3) as usize];
    let logits = (0..n * width).map(|_| g.normal(scale)).collect();
    let with_birds = g.below(3) == 0;
    let birds = with_birds.then(|| (0..n * GROUPS).map(|_| g.normal(3.0)).collect());
    let disabled = if g.below(2) == 0 {
        vec![g.below(width as u64) as usize]
    } else {
        vec![]
    };
    let temperatures = match g.below(3) {
        0 => [1.10, 1.04, 0.9],  // DeepFaune 1.4.1
        1 => [1.12, 1.10, 1.00], // DeepFaune 1.5
        _ => [g.below(150), g.below(150), g.below(150)].map(|v| 0.5 + v as f32 / 100.0),
    };
    let opts = AggregateOptions {
        threshold: [0.3, 0.5, 0.8][g.below(3) as usize],
        disabled,
        bird_class: with_birds.then(|| g.below(width as u64) as usize),
        temperatures: Temperatures {
            image: temperatures[0],
            sequence: temperatures[1],
            bird: Some(temperatures[2]),
        },
        class_thresholds: Vec::new(),
    };
    Case {
        names,
        dates,
        kinds,
        logits,
        width,
        birds,
        opts,
        maxlag: [5.0, 10.0, 20.0][g.below(3) as usize],
    }
}

/// EXIF text of a date in seconds after 2024:01:01 00:00:00 (all cases stay within one day).
fn exif_text(s: i64) -> String {
    format!(
        "2024:01:01 {:02}:{:02}:{:02}",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

fn case_json(c: &Case) -> Value {
    let code = |k: &ImageKind| *k as u8;
    json!({
        "names": c.names,
        "dates": c.dates.iter().map(|d| d.map(exif_text)).collect::<Vec<_>>(),
        "kinds": c.kinds.iter().map(code).collect::<Vec<_>>(),
        "logits": c.logits.chunks(c.width).collect::<Vec<_>>(),
        "birds": c.birds.as_ref().map(|b| b.chunks(GROUPS).collect::<Vec<_>>()),
        "threshold": c.opts.threshold,
        "forbidden": c.opts.disabled,
        "bird_index": c.opts.bird_class,
        "maxlag": c.maxlag,
        "temperatures": [
            c.opts.temperatures.image,
            c.opts.temperatures.sequence,
            c.opts.temperatures.bird,
        ],
    })
}

const DRIVER: &str = r#"
import importlib.util, json, sys
import numpy as np
spec = importlib.util.spec_from_file_location("deepfaune_sequence_ref", sys.argv[1])
ref = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = ref
spec.loader.exec_module(ref)
out = []
for c in json.load(sys.stdin):
    birds = None if c["birds"] is None else np.array(c["birds"], dtype=np.float32)
    rules = ref.Rules("generated", *c["temperatures"])
    r = ref.predict(c["names"], c["dates"], c["kinds"], np.array(c["logits"], dtype=np.float32),
                    threshold=c["threshold"], maxlag=c["maxlag"], forbidden=c["forbidden"],
                    bird_logits=birds, bird_index=c["bird_index"], rules=rules)
    out.append({k: r[k] for k in ("seqnum", "predictionbase", "scorebase", "prediction", "score", "top1")})
json.dump(out, sys.stdout)
"#;

fn run_reference(cases: &[Value]) -> Option<Vec<Value>> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/deepfaune_sequence_ref.py"
    );
    let child = Command::new("python3")
        .args(["-c", DRIVER, script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("skipped: python3 not found");
        return None;
    };
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped");
        stdin
            .write_all(serde_json::to_string(cases).unwrap().as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("No module named 'numpy'") {
        eprintln!("skipped: numpy not installed for python3");
        return None;
    }
    assert!(out.status.success(), "reference failed: {stderr}");
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[test]
fn predict_all_matches_the_python_reference() {
    let mut g = Lcg(2024);
    let cases: Vec<Case> = (0..300).map(|_| make_case(&mut g)).collect();
    let Some(expected) = run_reference(&cases.iter().map(case_json).collect::<Vec<_>>()) else {
        return;
    };
    for (k, (c, e)) in cases.iter().zip(&expected).enumerate() {
        let groups = if c.birds.is_some() { GROUPS } else { 0 };
        let birds = c
            .birds
            .as_ref()
            .map(|b| LogitTable::new(b, GROUPS).unwrap());
        let rows = ImageRows::new(
            &c.kinds,
            LogitTable::new(&c.logits, c.width).unwrap(),
            birds,
        )
        .unwrap();
        let got = predict_all(&c.names, &c.dates, &rows, c.maxlag, &c.opts).unwrap();
        let labels = |ps: &[Prediction], top1: bool| -> Vec<usize> {
            ps.iter()
                .map(|p| if top1 { p.top1 } else { p.label }.index(c.width, groups))
                .collect()
        };
        let scores = |ps: &[Prediction]| -> Vec<i64> {
            ps.iter()
                .map(|p| (p.score * 100.0).round() as i64)
                .collect()
        };
        let want_scores = |key: &str| -> Vec<i64> {
            e[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| (v.as_f64().unwrap() * 100.0).round() as i64)
                .collect()
        };
        let want = |key: &str| -> Vec<usize> { serde_json::from_value(e[key].clone()).unwrap() };
        let seq: Vec<u32> = serde_json::from_value(e["seqnum"].clone()).unwrap();
        assert_eq!(got.seqnum, seq, "case {k}: seqnum");
        assert_eq!(
            labels(&got.base, false),
            want("predictionbase"),
            "case {k}: predictionbase"
        );
        assert_eq!(
            scores(&got.base),
            want_scores("scorebase"),
            "case {k}: scorebase"
        );
        assert_eq!(
            labels(&got.sequence, false),
            want("prediction"),
            "case {k}: prediction"
        );
        assert_eq!(
            scores(&got.sequence),
            want_scores("score"),
            "case {k}: score"
        );
        assert_eq!(labels(&got.sequence, true), want("top1"), "case {k}: top1");
    }
}
