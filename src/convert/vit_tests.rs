//! The builders against timm / torch: the reduced DeepFaune checkpoints of
//! tests/fixtures/convert and the outputs torch computed from them
//! (scripts/fixtures/make_vit_fixtures.py), plus filter weights worked out by hand.

use ndarray::{Array2, Array3};

use super::*;
use crate::convert::pickle::load_checkpoint;
use crate::convert::testdata::{fixture, read_npz};

#[test]
fn bicubic_weights_by_hand() {
    // Same size: the cubic is 1 at 0 and 0 at +-1, +-2: the identity.
    let w = aa_bicubic_weights(5, 5);
    assert_eq!(w, Array2::<f32>::eye(5));
    // 4 -> 2: scale 2, support 4, taps at |x| = 0.25, 0.25, 0.75, 1.25 for the first output:
    // Keys (a = -0.5): 1.5|x|^3 - 2.5|x|^2 + 1 below 1, -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2 below 2.
    let taps = [0.867_187_5f32, 0.867_187_5, 0.226_562_5, -0.070_312_5];
    let total: f32 = taps.iter().sum();
    assert_eq!(total, 1.890625);
    let w = aa_bicubic_weights(4, 2);
    let row: Vec<f32> = w.row(0).to_vec();
    assert_eq!(row, taps.map(|t| t / total));
    let mirrored: Vec<f32> = w.row(1).iter().rev().copied().collect();
    assert_eq!(mirrored, row);
}

#[test]
fn position_grid_resampled_as_torch() {
    let ckpt = load_checkpoint(&fixture("vit_dinov2.pt")).unwrap();
    let pos = ckpt
        .get("state_dict")
        .unwrap()
        .get("base_model.pos_embed")
        .unwrap()
        .as_tensor()
        .unwrap()
        .to_f32();
    let c = pos.shape()[2];
    let grid: Array3<f32> = pos
        .slice(ndarray::s![0, 1.., ..])
        .to_owned()
        .into_shape_with_order((37, 37, c))
        .unwrap();
    assert_eq!(resample_pos_embed(&grid, (37, 37)), grid);
    let refs = read_npz(&fixture("vit_dinov2.npz"));
    for (name, h, w) in [
        ("pos_grid_13", 13, 13),
        ("pos_grid_16", 16, 16),
        ("pos_grid_9x20", 9, 20),
    ] {
        let r = &refs[name];
        let ours = resample_pos_embed(&grid, (h, w));
        assert_eq!(ours.shape(), r.shape.as_slice());
        let expect = r.f32();
        let peak = expect.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let err = ours
            .iter()
            .zip(&expect)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err < 1e-6 * peak, "{name}: {err}");
    }
}

#[test]
fn rope_tables_match_timm() {
    let refs = read_npz(&fixture("vit_dinov3.npz"));
    for n in [14, 16] {
        let r = refs[&format!("rope_{n}")].f32();
        let (sin, cos) = dinov3_rope_tables((n, n), 64, 100.0).unwrap();
        assert_eq!(sin.dim(), (n * n, 64));
        for t in 0..n * n {
            for j in 0..64 {
                assert!((sin[[t, j]] - r[t * 128 + j]).abs() < 1e-6);
                assert!((cos[[t, j]] - r[t * 128 + 64 + j]).abs() < 1e-6);
            }
        }
    }
    assert!(dinov3_rope_tables((2, 2), 6, 100.0).is_err());
}

/// Runs `g` in ONNX Runtime on one float32 input; None without a runtime.
fn run(g: &Graph, input: &str, x: ndarray::ArrayD<f32>, output: &str) -> Option<Vec<f32>> {
    if let Err(e) = crate::runtime::environment() {
        eprintln!("skipped: {e}");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    std::fs::write(&path, g.to_model_bytes(VIT_OPSET, &[])).unwrap();
    let source = crate::runtime::ModelSource::File(path);
    let mut session =
        crate::runtime::new_session(&source, crate::runtime::SessionOptions::default()).unwrap();
    let t = ort::value::TensorRef::from_array_view(x.view()).unwrap();
    let out = session.run(ort::inputs![input => t]).unwrap();
    Some(out[output].try_extract_tensor::<f32>().unwrap().1.to_vec())
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn classifiers_match_timm() {
    for (pt, npz, size) in [
        ("vit_dinov2.pt", "vit_dinov2.npz", 182usize),
        ("vit_dinov3.pt", "vit_dinov3.npz", 224),
    ] {
        let ckpt = load_checkpoint(&fixture(pt)).unwrap();
        let g = build_classifier(&ckpt, None).unwrap();
        let refs = read_npz(&fixture(npz));
        let x =
            ndarray::ArrayD::from_shape_vec(vec![3, 3, size, size], refs["input"].f32()).unwrap();
        if let Some(logits) = run(&g, "input", x, "logits") {
            let err = max_diff(&logits, &refs["logits"].f32());
            assert!(err < 1e-4, "{pt}: {err}");
        }
    }
}

#[test]
fn bird_heads_match_torch() {
    for name in ["bird_head", "dtype_bird_head_fp16"] {
        let ckpt = load_checkpoint(&fixture(&format!("{name}.pt"))).unwrap();
        let g = build_bird_head(&ckpt).unwrap();
        let refs = read_npz(&fixture(&format!("{name}.npz")));
        let e = &refs["embedding"];
        let x = ndarray::ArrayD::from_shape_vec(e.shape.clone(), e.f32()).unwrap();
        if let Some(logits) = run(&g, "embedding", x, "logits") {
            let err = max_diff(&logits, &refs["logits"].f32());
            assert!(err < 1e-4, "{name}: {err}");
        }
    }
}

#[test]
fn checkpoint_errors_name_the_problem() {
    let ckpt = load_checkpoint(&fixture("vit_dinov2.pt")).unwrap();
    let Value::Dict(mut top) = ckpt else { panic!() };
    let e = build_classifier(&Value::Dict(top.clone()), Some(0))
        .err()
        .unwrap();
    assert!(e.to_string().contains("input size"), "{e}");
    for (k, v) in top.iter_mut() {
        if k.as_str() == Some("args") {
            let Value::Dict(args) = v else { panic!() };
            for (ak, av) in args.iter_mut() {
                if ak.as_str() == Some("backbone") {
                    *av = Value::Str("convnext_base.fb_in22k".into());
                }
            }
        }
    }
    let e = build_classifier(&Value::Dict(top), None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("unsupported classifier backbone 'convnext_base.fb_in22k'"),
        "{e}"
    );
    assert!(BACKBONES.iter().all(|(n, _)| e.contains(n)));
    let e = build_bird_head(&Value::Int(1)).err().unwrap().to_string();
    assert!(e.contains("not a DeepFaune bird head"), "{e}");
}
