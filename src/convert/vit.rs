//! DeepFaune's classifiers and bird heads as ONNX graphs, built from the checkpoint's arrays.
//!
//! No torch and no tracing: the graphs are written node by node with [`Graph`] from timm's
//! architecture definitions (read in timm 1.0.31, `models/vision_transformer.py`,
//! `models/eva.py`, `layers/pos_embed.py`, `layers/pos_embed_sincos.py`), and every dimension
//! (width, depth, MLP width, patch size, register tokens, classes) is read from the tensors.
//!
//! Supported backbones ([`BACKBONES`], `args["backbone"]` of a DeepFaune checkpoint):
//!
//! - `vit_large_patch14_dinov2.lvd142m` (DeepFaune 1.1, 1.3, 1.4): timm `VisionTransformer`:
//!   patch embedding, `[CLS, patches]` plus a learned position embedding (a 37x37 grid for
//!   518 px, plus the CLS entry), pre-norm blocks (LayerNorm eps 1e-6, attention with q/k/v bias,
//!   LayerScale, GELU MLP), final LayerNorm, CLS token, `head`. DeepFaune runs it at 182 px with
//!   `dynamic_img_size=True`, so timm resamples the grid to 13x13 at every call
//!   (`resample_abs_pos_embed`: torch's antialiased bicubic, `align_corners=False`).
//!   [`resample_pos_embed`] computes that resampling (torch's `_upsample_bicubic2d_aa` weights,
//!   bit for bit) and the graph holds the result.
//! - `vit_large_patch16_dinov3.lvd1689m` (DeepFaune 1.5): timm `Eva` with DINOv3 settings:
//!   `[CLS, 4 registers, patches]`, no absolute position embedding, rotary embeddings
//!   (`RotaryEmbeddingDinoV3`, temperature 100, rotate-half layout, applied to the patch tokens'
//!   q and k only), no q/k/v bias, LayerScale (`gamma_1`, `gamma_2`), LayerNorm eps 1e-5, final
//!   norm before pooling, **CLS-token pooling** (DeepFaune builds it with `global_pool="token"`;
//!   timm's default "avg" would give other logits). [`dinov3_rope_tables`] computes the sin/cos
//!   tables for the input size.
//!
//! Attention heads: the checkpoint does not store them. `args["num_heads"]` is used when
//! present; otherwise the head width is [`HEAD_DIM`] (timm's ViT-L/14 and ViT-L/16 have 1024 /
//! 16), so `heads = width / 64`. The small test copies follow the same rule.
//!
//! The graph (opset 17, input `input` [batch, 3, S, S], outputs `logits` [batch, classes] and
//! `embedding` [batch, width] = the CLS token after the final norm) computes what timm computes,
//! with a few exact or rounding-level rewrites that ONNX Runtime runs faster: the attention
//! scale folded into the query weights (a power of two for 64-wide heads, so exact), LayerScale
//! folded into the output projections, the q/k/v projection as one MatMul, GELU written as the
//! Erf formula ONNX Runtime fuses, and the last block computed for the CLS token only (the only
//! token the outputs use). The float32 / float64 mix of every precomputed table is the Python
//! converter's (and torch's), for bit-level parity.

use std::collections::{HashMap, HashSet};

use ndarray::{s, Array1, Array2, Array3, ArrayD, Axis, Ix2, IxDyn};

use super::graph::{Attr, Dim, Elem, Graph};
use super::pickle::{Tensor, Value};
use super::{ConvertError, Result};

/// The timm family of a backbone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// timm `VisionTransformer` (DINOv2).
    Dinov2,
    /// timm `Eva` with DINOv3 settings.
    Dinov3,
}

impl Family {
    /// `dinov2` / `dinov3`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Dinov2 => "dinov2",
            Family::Dinov3 => "dinov3",
        }
    }
}

/// What the builder needs to know of a backbone beyond its tensors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backbone {
    /// Its timm family.
    pub family: Family,
    /// The input side DeepFaune runs it at.
    pub default_size: u32,
    /// LayerNorm epsilon.
    pub ln_eps: f32,
    /// Rotary embedding temperature (DINOv3), 0 without.
    pub rope_temperature: f64,
}

/// The supported backbones by DeepFaune's `args["backbone"]` name.
pub const BACKBONES: &[(&str, Backbone)] = &[
    (
        "vit_large_patch14_dinov2.lvd142m",
        Backbone {
            family: Family::Dinov2,
            default_size: 182,
            ln_eps: 1e-6,
            rope_temperature: 0.0,
        },
    ),
    (
        "vit_large_patch16_dinov3.lvd1689m",
        Backbone {
            family: Family::Dinov3,
            default_size: 224,
            ln_eps: 1e-5,
            rope_temperature: 100.0,
        },
    ),
];

/// The attention head width when the checkpoint does not give `num_heads` (timm's ViT-L).
pub const HEAD_DIM: usize = 64;
const PREFIX: &str = "base_model.";
const OPSET: i64 = 17;

fn build_err(msg: String) -> ConvertError {
    ConvertError::Build(msg)
}

fn ckpt_err(msg: String) -> ConvertError {
    ConvertError::Checkpoint(msg)
}

fn backbone(name: Option<&Value>) -> Result<Backbone> {
    let found = name
        .and_then(Value::as_str)
        .and_then(|n| BACKBONES.iter().find(|(k, _)| *k == n));
    match found {
        Some((_, b)) => Ok(*b),
        None => {
            let mut names: Vec<&str> = BACKBONES.iter().map(|(k, _)| *k).collect();
            names.sort_unstable();
            let shown = match name {
                Some(Value::Str(s)) => format!("'{s}'"),
                Some(other) => format!("{other:?}"),
                None => "None".into(),
            };
            Err(build_err(format!(
                "unsupported classifier backbone {shown}; supported: {}",
                names.join(", ")
            )))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Position grid resampling (timm resample_abs_pos_embed -> F.interpolate(bicubic, antialias))

/// float32 fused multiply-add: the product of two float32 values is exact in float64, then one
/// rounding to float32.
fn fma32(p: f32, q: f32, r: f64) -> f32 {
    (f64::from(p) * f64::from(q) + r) as f32
}

/// torch's antialiasing bicubic filter (Keys, a = -0.5 as Pillow) in float32, with the fused
/// multiply-adds of torch's compiled CPU kernel (its weights then match torch's bit for bit).
fn aa_cubic(x: f32) -> f32 {
    let a = -0.5f64;
    let x = x.abs();
    if x < 1.0 {
        let inner = fma32((a + 2.0) as f32, x, -(a + 3.0));
        fma32(inner * x, x, 1.0)
    } else if x < 2.0 {
        fma32(fma32(fma32(a as f32, x, -5.0 * a), x, 8.0 * a), x, -4.0 * a)
    } else {
        0.0
    }
}

/// The [n_out, n_in] float32 weights torch's antialiased bicubic resize (align_corners=False, no
/// scale factor) uses along one axis: the filter is widened by in/out when shrinking (Pillow's
/// support scaling), each row normalised to sum 1. The float32 / float64 mix of torch's
/// `_compute_indices_min_size_weights_aa` is kept, so the weights are torch's to the bit.
fn aa_bicubic_weights(n_in: usize, n_out: usize) -> Array2<f32> {
    let scale = n_in as f32 / n_out as f32;
    let (support, invscale) = if scale >= 1.0 {
        (
            (2.0 * f64::from(scale)) as f32,
            (1.0 / f64::from(scale)) as f32,
        )
    } else {
        (2.0f32, 1.0f32)
    };
    let mut w = Array2::<f32>::zeros((n_out, n_in));
    for i in 0..n_out {
        let center = (f64::from(scale) * (i as f64 + 0.5)) as f32;
        // Python's int(): toward zero.
        let xmin = ((f64::from(center - support) + 0.5) as i64).max(0) as usize;
        let xmax = ((f64::from(center + support) + 0.5) as i64)
            .min(n_in as i64)
            .max(0) as usize;
        let taps: Vec<f32> = (xmin..xmax)
            .map(|j| {
                let arg = f64::from(j as f32 - center) + 0.5;
                aa_cubic((arg * f64::from(invscale)) as f32)
            })
            .collect();
        // Sequential float32 sum, as torch.
        let total = taps.iter().fold(0.0f32, |t, &v| t + v);
        for (k, &t) in taps.iter().enumerate() {
            w[[i, xmin + k]] = if total != 0.0 { t / total } else { t };
        }
    }
    w
}

/// Resamples a position grid [H, W, C] to [h, w, C] as timm's `resample_abs_pos_embed` (torch
/// `F.interpolate(mode="bicubic", antialias=True, align_corners=False)`): width first, then
/// height, float32 between the passes. The weights are torch's exactly; the sums are taken in
/// float64 and rounded once, so results agree with torch to about one float32 unit in the last
/// place (torch's compiled accumulation order is not reproducible).
pub fn resample_pos_embed(grid: &Array3<f32>, new_size: (usize, usize)) -> Array3<f32> {
    let (h_in, w_in, c) = grid.dim();
    let (h_out, w_out) = new_size;
    let mut out = grid.clone();
    if w_out != w_in {
        let ww = aa_bicubic_weights(w_in, w_out);
        let mut next = Array3::<f32>::zeros((h_in, w_out, c));
        for h in 0..h_in {
            for p in 0..w_out {
                for ch in 0..c {
                    let mut acc = 0.0f64;
                    for w in 0..w_in {
                        acc += f64::from(ww[[p, w]]) * f64::from(out[[h, w, ch]]);
                    }
                    next[[h, p, ch]] = acc as f32;
                }
            }
        }
        out = next;
    }
    if h_out != h_in {
        let wh = aa_bicubic_weights(h_in, h_out);
        let wcur = out.dim().1;
        let mut next = Array3::<f32>::zeros((h_out, wcur, c));
        for o in 0..h_out {
            for w in 0..wcur {
                for ch in 0..c {
                    let mut acc = 0.0f64;
                    for h in 0..h_in {
                        acc += f64::from(wh[[o, h]]) * f64::from(out[[h, w, ch]]);
                    }
                    next[[o, w, ch]] = acc as f32;
                }
            }
        }
        out = next;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// DINOv3 rotary tables (timm RotaryEmbeddingDinoV3, eval mode, no coordinate augmentation)

/// `(sin, cos)`, each [H*W, head_dim] float32, in timm's layout for `rotate_half=True`.
///
/// As `RotaryEmbeddingDinoV3` (normalize_coords="separate", grid "ij", offset 0): patch centres
/// `(i + 0.5) / n` mapped to [-1, 1] per axis; periods `temperature ** (2 k / (head_dim / 2))`
/// for k < head_dim / 4; angles `2 pi coord / period` ordered [row angles, column angles]; each
/// table repeats its head_dim / 2 values twice (rotate-half layout). Angles are computed in
/// float32 with timm's operation order (identical bits); sin and cos are rounded from float64,
/// within one float32 ulp of torch's.
pub fn dinov3_rope_tables(
    grid: (usize, usize),
    head_dim: usize,
    temperature: f64,
) -> Result<(Array2<f32>, Array2<f32>)> {
    if head_dim % 4 != 0 {
        return Err(build_err(format!(
            "rotary head width {head_dim} is not a multiple of 4"
        )));
    }
    let quarter = head_dim / 4;
    let half = head_dim / 2;
    let periods: Vec<f32> = (0..quarter)
        .map(|k| {
            let e = (2.0f32 * k as f32) / half as f32;
            temperature.powf(f64::from(e)) as f32
        })
        .collect();
    let axis = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|i| 2.0f32 * ((i as f32 + 0.5f32) / n as f32) - 1.0f32)
            .collect()
    };
    let (rows, cols) = (axis(grid.0), axis(grid.1));
    let two_pi = (2.0 * std::f64::consts::PI) as f32;
    let n = grid.0 * grid.1;
    let mut sin = Array2::<f32>::zeros((n, head_dim));
    let mut cos = Array2::<f32>::zeros((n, head_dim));
    for (t, (r, c)) in rows
        .iter()
        .flat_map(|r| cols.iter().map(move |c| (*r, *c)))
        .enumerate()
    {
        for (a, coord) in [r, c].into_iter().enumerate() {
            for (k, p) in periods.iter().enumerate() {
                let angle = f64::from((two_pi * coord) / p);
                let j = a * quarter + k;
                for col in [j, j + half] {
                    sin[[t, col]] = angle.sin() as f32;
                    cos[[t, col]] = angle.cos() as f32;
                }
            }
        }
    }
    Ok((sin, cos))
}

// ---------------------------------------------------------------------------------------------
// Checkpoint access

/// A state dict read strictly, as `load_state_dict` does: a missing key, a wrong shape or a key
/// nothing used is an error.
struct State<'a> {
    tensors: HashMap<&'a str, &'a Value>,
    keys: Vec<&'a str>,
    what: String,
    used: HashSet<String>,
}

impl<'a> State<'a> {
    fn new(items: impl Iterator<Item = (&'a str, &'a Value)>, what: String) -> State<'a> {
        let mut tensors = HashMap::new();
        let mut keys = Vec::new();
        for (k, v) in items {
            if tensors.insert(k, v).is_none() {
                keys.push(k);
            }
        }
        State {
            tensors,
            keys,
            what,
            used: HashSet::new(),
        }
    }

    fn has(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    fn get(&mut self, key: &str, shape: &[Option<usize>]) -> Result<&'a Tensor> {
        let what = &self.what;
        let v = self
            .tensors
            .get(key)
            .ok_or_else(|| ckpt_err(format!("{what}: tensor '{key}' missing")))?;
        let t = v
            .as_tensor()
            .ok_or_else(|| ckpt_err(format!("{what}: '{key}' is not a tensor")))?;
        let got = t.shape();
        if got.len() != shape.len()
            || shape
                .iter()
                .zip(got)
                .any(|(s, g)| s.is_some_and(|s| s != *g))
        {
            let want: Vec<String> = shape
                .iter()
                .map(|s| s.map_or("?".into(), |s| s.to_string()))
                .collect();
            let got: Vec<String> = got.iter().map(|g| g.to_string()).collect();
            return Err(ckpt_err(format!(
                "{what}: '{key}' has shape {}, expected {}",
                got.join("x"),
                want.join("x")
            )));
        }
        self.used.insert(key.to_string());
        Ok(t)
    }

    fn f32(&mut self, key: &str, shape: &[Option<usize>]) -> Result<ArrayD<f32>> {
        Ok(self.get(key, shape)?.to_f32())
    }

    /// A 1-D float32 vector of `n`.
    fn vec(&mut self, key: &str, n: usize) -> Result<Array1<f32>> {
        Ok(self
            .f32(key, &[Some(n)])?
            .into_dimensionality()
            .expect("checked 1-D"))
    }

    fn check_all_used(&self, ignore: &str) -> Result<()> {
        let mut left: Vec<&str> = self
            .keys
            .iter()
            .copied()
            .filter(|k| !self.used.contains(*k) && (ignore.is_empty() || !k.ends_with(ignore)))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        left.sort_unstable();
        let more = if left.len() > 5 {
            format!(" and {} more", left.len() - 5)
        } else {
            String::new()
        };
        Err(ckpt_err(format!(
            "{}: unexpected tensors {}{more} (not the architecture its backbone name says)",
            self.what,
            left[..left.len().min(5)].join(", ")
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Graph pieces

/// torch Linear weight [out, in] -> MatMul operand [in, out], float32, each column scaled.
fn linear_t(w: &Tensor, col_scale: Option<&Array1<f32>>) -> ArrayD<f32> {
    let w: Array2<f32> = w
        .to_f32()
        .into_dimensionality::<Ix2>()
        .expect("checked 2-D");
    let mut wt = w.reversed_axes().as_standard_layout().into_owned();
    if let Some(s) = col_scale {
        wt *= &s.view().insert_axis(Axis(0));
    }
    wt.into_dyn()
}

fn ints(v: &[i64]) -> Attr {
    Attr::Ints(v.to_vec())
}

/// Exact GELU, x * 0.5 * (1 + erf(x / sqrt 2)): the node pattern torch exports for nn.GELU,
/// which ONNX Runtime fuses into its Gelu kernel.
fn gelu(g: &mut Graph, x: &str) -> String {
    let c = g.const_f32(&[std::f64::consts::SQRT_2 as f32], &[]);
    let d = g.op("Div", &[x, &c], vec![]);
    let e = g.op("Erf", &[&d], vec![]);
    let one = g.const_f32(&[1.0], &[]);
    let a = g.op("Add", &[&e, &one], vec![]);
    let m = g.op("Mul", &[x, &a], vec![]);
    let h = g.const_f32(&[0.5], &[]);
    g.op("Mul", &[&m, &h], vec![])
}

fn layer_norm(
    g: &mut Graph,
    st: &mut State<'_>,
    x: &str,
    key: &str,
    width: usize,
    eps: f32,
) -> Result<String> {
    let w = st.f32(&format!("{key}.weight"), &[Some(width)])?;
    let w = g.init(&format!("{key}.weight"), w);
    let b = st.f32(&format!("{key}.bias"), &[Some(width)])?;
    let b = g.init(&format!("{key}.bias"), b);
    Ok(g.op(
        "LayerNormalization",
        &[x, &w, &b],
        vec![("axis", Attr::Int(-1)), ("epsilon", Attr::Float(eps))],
    ))
}

struct Dims {
    width: usize,
    heads: usize,
    head_dim: usize,
    mlp: usize,
}

fn slice(g: &mut Graph, x: &str, start: i64, end: i64, axis: i64) -> String {
    let s = g.const_i64(&[start], &[1]);
    let e = g.const_i64(&[end], &[1]);
    let a = g.const_i64(&[axis], &[1]);
    g.op("Slice", &[x, &s, &e, &a], vec![])
}

/// One pre-norm transformer block; with `cls_only` the output is [b, 1, D], the CLS token (keys
/// and values still come from every token).
#[allow(clippy::too_many_arguments)]
fn block(
    g: &mut Graph,
    st: &mut State<'_>,
    x: &str,
    i: usize,
    dims: &Dims,
    arch: &Backbone,
    rope: Option<&(String, String)>,
    cls_only: bool,
) -> Result<String> {
    let p = format!("blocks.{i}");
    let (d, heads, hd) = (dims.width, dims.heads, dims.head_dim);
    let dinov2 = arch.family == Family::Dinov2;
    let h = layer_norm(g, st, x, &format!("{p}.norm1"), d, arch.ln_eps)?;

    // q/k/v as one MatMul; the attention scale 1/sqrt(head_dim) folded into the q columns.
    let mut scale = Array1::<f32>::ones(3 * d);
    scale.slice_mut(s![..d]).fill((hd as f64).powf(-0.5) as f32);
    let key = format!("{p}.attn.qkv.weight");
    let w_qkv = linear_t(st.get(&key, &[Some(3 * d), Some(d)])?, Some(&scale));
    let w_qkv = g.init(&key, w_qkv);
    let mut qkv = g.op("MatMul", &[&h, &w_qkv], vec![]);
    if dinov2 {
        let key = format!("{p}.attn.qkv.bias");
        let b = st.vec(&key, 3 * d)? * &scale;
        let b = g.init(&key, b.into_dyn());
        qkv = g.op("Add", &[&qkv, &b], vec![]);
    }

    let qkv5 = if let Some((cos_t, sin_t)) = rope {
        // x * cos + rotate_half(x) * sin on [b, N, 3, H, 2, hd/2]; the tables hold cos=1, sin=0
        // for the prefix tokens and for v. rotate_half = the two halves swapped (a reversed
        // Slice over the axis of size 2), the minus sign of its first half is in the sin table.
        let shape6 = g.const_i64(&[0, 0, 3, heads as i64, 2, (hd / 2) as i64], &[6]);
        let six = g.op("Reshape", &[&qkv, &shape6], vec![]);
        let starts = g.const_i64(&[-1], &[1]);
        let ends = g.const_i64(&[-(1i64 << 62)], &[1]);
        let axes = g.const_i64(&[4], &[1]);
        let steps = g.const_i64(&[-1], &[1]);
        let swapped = g.op("Slice", &[&six, &starts, &ends, &axes, &steps], vec![]);
        let a = g.op("Mul", &[&six, cos_t], vec![]);
        let b = g.op("Mul", &[&swapped, sin_t], vec![]);
        let rotated = g.op("Add", &[&a, &b], vec![]);
        let shape5 = g.const_i64(&[0, 0, 3, heads as i64, hd as i64], &[5]);
        g.op("Reshape", &[&rotated, &shape5], vec![])
    } else {
        let shape5 = g.const_i64(&[0, 0, 3, heads as i64, hd as i64], &[5]);
        g.op("Reshape", &[&qkv, &shape5], vec![])
    };
    let t = g.op(
        "Transpose",
        &[&qkv5],
        vec![("perm", ints(&[2, 0, 3, 1, 4]))],
    ); // [3, b, H, N, hd]
    let axis0 = g.const_i64(&[0], &[1]);
    let parts = g.op_n("Split", &[&t], 3, vec![("axis", Attr::Int(0))]);
    let mut qkv3: Vec<String> = parts
        .iter()
        .map(|part| g.op("Squeeze", &[part, &axis0], vec![]))
        .collect();
    let v = qkv3.pop().expect("three parts");
    let k = qkv3.pop().expect("three parts");
    let mut q = qkv3.pop().expect("three parts");
    if cls_only {
        q = slice(g, &q, 0, 1, 2);
    }
    let kt = g.op("Transpose", &[&k], vec![("perm", ints(&[0, 1, 3, 2]))]);
    let scores = g.op("MatMul", &[&q, &kt], vec![]);
    let probs = g.op("Softmax", &[&scores], vec![("axis", Attr::Int(-1))]);
    let ctx = g.op("MatMul", &[&probs, &v], vec![]); // [b, H, n, hd]
    let ctx = g.op("Transpose", &[&ctx], vec![("perm", ints(&[0, 2, 1, 3]))]);
    let shape3 = g.const_i64(&[0, 0, d as i64], &[3]);
    let ctx = g.op("Reshape", &[&ctx, &shape3], vec![]);

    // Output projection with LayerScale folded in: (ctx W^T + b) * gamma.
    let ls1_key = if dinov2 {
        format!("{p}.ls1.gamma")
    } else {
        format!("{p}.gamma_1")
    };
    let ls1 = st.vec(&ls1_key, d)?;
    let key = format!("{p}.attn.proj.weight");
    let w_proj = linear_t(st.get(&key, &[Some(d), Some(d)])?, Some(&ls1));
    let w_proj = g.init(&key, w_proj);
    let key = format!("{p}.attn.proj.bias");
    let b_proj = st.vec(&key, d)? * &ls1;
    let b_proj = g.init(&key, b_proj.into_dyn());
    let a = g.op("MatMul", &[&ctx, &w_proj], vec![]);
    let a = g.op("Add", &[&a, &b_proj], vec![]);
    let x = if cls_only {
        slice(g, x, 0, 1, 1)
    } else {
        x.to_string()
    };
    let x = g.op("Add", &[&x, &a], vec![]);

    let h = layer_norm(g, st, &x, &format!("{p}.norm2"), d, arch.ln_eps)?;
    let key = format!("{p}.mlp.fc1.weight");
    let w_fc1 = linear_t(st.get(&key, &[Some(dims.mlp), Some(d)])?, None);
    let w_fc1 = g.init(&key, w_fc1);
    let m = g.op("MatMul", &[&h, &w_fc1], vec![]);
    let key = format!("{p}.mlp.fc1.bias");
    let b_fc1 = st.f32(&key, &[Some(dims.mlp)])?;
    let b_fc1 = g.init(&key, b_fc1);
    let m = g.op("Add", &[&m, &b_fc1], vec![]);
    let m = gelu(g, &m);
    let ls2_key = if dinov2 {
        format!("{p}.ls2.gamma")
    } else {
        format!("{p}.gamma_2")
    };
    let ls2 = st.vec(&ls2_key, d)?;
    let key = format!("{p}.mlp.fc2.weight");
    let w_fc2 = linear_t(st.get(&key, &[Some(d), Some(dims.mlp)])?, Some(&ls2));
    let w_fc2 = g.init(&key, w_fc2);
    let m = g.op("MatMul", &[&m, &w_fc2], vec![]);
    let key = format!("{p}.mlp.fc2.bias");
    let b_fc2 = st.vec(&key, d)? * &ls2;
    let b_fc2 = g.init(&key, b_fc2.into_dyn());
    let m = g.op("Add", &[&m, &b_fc2], vec![]);
    Ok(g.op("Add", &[&x, &m], vec![]))
}

fn depth(st: &State<'_>) -> Result<usize> {
    let mut depth = 0;
    while st.has(&format!("blocks.{depth}.norm1.weight")) {
        depth += 1;
    }
    if depth == 0 {
        return Err(ckpt_err(format!(
            "{}: no transformer blocks (blocks.0.norm1.weight missing)",
            st.what
        )));
    }
    Ok(depth)
}

/// The integer square root (rounded down).
fn isqrt(n: usize) -> usize {
    let mut r = (n as f64).sqrt() as usize;
    while r * r > n {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= n {
        r += 1;
    }
    r
}

fn batch_dim() -> Dim {
    Dim::Named("batch".into())
}

/// The parts of a DeepFaune classifier checkpoint: `args` and the state dict's tensors with
/// DeepFaune's `base_model.` prefix taken off.
fn classifier_parts(ckpt: &Value) -> Result<(&Value, Vec<(&str, &Value)>)> {
    let (Some(args), Some(sd)) = (ckpt.get("args"), ckpt.get("state_dict")) else {
        return Err(ckpt_err(
            "not a DeepFaune classifier checkpoint ({'args': {'backbone', 'num_classes'}, \
             'state_dict'} expected)"
                .into(),
        ));
    };
    let (Some(_), Some(items)) = (args.dict_items(), sd.dict_items()) else {
        return Err(ckpt_err(
            "DeepFaune classifier checkpoint: 'args' / 'state_dict' not dicts".into(),
        ));
    };
    let state = items
        .iter()
        .filter_map(|(k, v)| k.as_str().map(|k| (k.strip_prefix(PREFIX).unwrap_or(k), v)))
        .collect();
    Ok((args, state))
}

/// The ONNX graph of a DeepFaune classifier checkpoint (`{"args": {"backbone", "num_classes"},
/// "state_dict": {"base_model.*": tensors}, ...}`, as [`super::load_checkpoint`] reads it).
/// `size` is the input side in pixels (default: DeepFaune's, 182 for DINOv2, 224 for DINOv3).
pub fn build_classifier(ckpt: &Value, size: Option<u32>) -> Result<Graph> {
    let (args, state) = classifier_parts(ckpt)?;
    let arch = backbone(args.get("backbone"))?;
    let name = args.get("backbone").and_then(Value::as_str).unwrap_or("");
    let mut st = State::new(state.into_iter(), format!("{name} checkpoint"));
    let size = size.unwrap_or(arch.default_size);
    if size == 0 {
        return Err(build_err(format!(
            "input size must be a positive integer, not {size}"
        )));
    }
    let size = size as usize;

    let pw = st.get("patch_embed.proj.weight", &[None, Some(3), None, None])?;
    let (width, patch, patch_w) = (pw.shape()[0], pw.shape()[2], pw.shape()[3]);
    if patch != patch_w {
        return Err(ckpt_err(format!(
            "{}: non-square patches {patch}x{patch_w}",
            st.what
        )));
    }
    let grid = size / patch.max(1);
    if grid < 1 {
        return Err(build_err(format!(
            "input size {size} is smaller than the {patch} px patch"
        )));
    }
    let heads = match args.get("num_heads") {
        None | Some(Value::None) => {
            if width % HEAD_DIM != 0 {
                return Err(ckpt_err(format!(
                    "{}: width {width} is not a multiple of {HEAD_DIM} (the head width); give \
                     args['num_heads']",
                    st.what
                )));
            }
            (width / HEAD_DIM) as i64
        }
        Some(v) => v
            .as_i64()
            .ok_or_else(|| ckpt_err(format!("{}: args['num_heads'] is not an integer", st.what)))?,
    };
    if heads <= 0 || width % heads as usize != 0 {
        return Err(ckpt_err(format!(
            "{}: width {width} does not split into {heads} heads",
            st.what
        )));
    }
    let heads = heads as usize;
    let head_w = st.get("head.weight", &[None, Some(width)])?;
    let num_classes = head_w.shape()[0];
    if let Some(n) = args.get("num_classes") {
        let n = n.as_i64().ok_or_else(|| {
            ckpt_err(format!(
                "{}: args['num_classes'] is not an integer",
                st.what
            ))
        })?;
        if n != num_classes as i64 {
            return Err(ckpt_err(format!(
                "{}: args say {n} classes, the head has {num_classes}",
                st.what
            )));
        }
    }
    let depth = depth(&st)?;
    let mlp = st
        .get("blocks.0.mlp.fc1.weight", &[None, Some(width)])?
        .shape()[0];

    let mut g = Graph::new(&format!("deepfaune_{}_classifier", arch.family.name()));
    let x_in = g.input(
        "input",
        Elem::Float,
        &[
            batch_dim(),
            Dim::Fixed(3),
            Dim::Fixed(size as i64),
            Dim::Fixed(size as i64),
        ],
    );
    let w = g.init("patch_embed.proj.weight", pw.to_f32());
    let b = st.f32("patch_embed.proj.bias", &[Some(width)])?;
    let b = g.init("patch_embed.proj.bias", b);
    let p = patch as i64;
    let y = g.op(
        "Conv",
        &[&x_in, &w, &b],
        vec![("kernel_shape", ints(&[p, p])), ("strides", ints(&[p, p]))],
    );
    let shape = g.const_i64(&[0, width as i64, (grid * grid) as i64], &[3]);
    let y = g.op("Reshape", &[&y, &shape], vec![]);
    let mut y = g.op("Transpose", &[&y], vec![("perm", ints(&[0, 2, 1]))]); // [b, grid*grid, width]

    let cls = st.f32("cls_token", &[Some(1), Some(1), Some(width)])?;
    let prefix: ArrayD<f32> = match arch.family {
        Family::Dinov2 => {
            let pos = st.f32("pos_embed", &[Some(1), None, Some(width)])?;
            let n = pos.shape()[1];
            let old = isqrt(n.saturating_sub(1));
            if n == 0 || old * old != n - 1 {
                return Err(ckpt_err(format!(
                    "{}: pos_embed of {n} tokens is not 1 + n*n",
                    st.what
                )));
            }
            let patches: Array3<f32> = pos
                .slice(s![0, 1.., ..])
                .to_owned()
                .into_shape_with_order((old, old, width))
                .expect("checked n*n tokens");
            let patches = if old != grid {
                resample_pos_embed(&patches, (grid, grid))
            } else {
                patches
            };
            let patches = patches
                .into_shape_with_order(IxDyn(&[1, grid * grid, width]))
                .expect("same size");
            let pos_init = g.init("pos_embed", patches);
            y = g.op("Add", &[&y, &pos_init], vec![]);
            // timm concatenates, then adds pos_embed: the same sum.
            (&cls + &pos.slice(s![.., ..1, ..])).into_dyn()
        }
        Family::Dinov3 => {
            let reg = st.f32("reg_token", &[Some(1), None, Some(width)])?;
            ndarray::concatenate(Axis(1), &[cls.view(), reg.view()]).expect("same widths")
        }
    };
    let n_prefix = prefix.shape()[1];
    let dims = Dims {
        width,
        heads,
        head_dim: width / heads,
        mlp,
    };

    let rope = if arch.family == Family::Dinov3 {
        let (sin, cos) = dinov3_rope_tables((grid, grid), dims.head_dim, arch.rope_temperature)?;
        let half = dims.head_dim / 2;
        let n = n_prefix + grid * grid;
        let mut cos_t = ndarray::Array5::<f32>::ones((n, 3, 1, 1, half));
        let mut sin_t = ndarray::Array5::<f32>::zeros((n, 3, 1, 2, half));
        for t in 0..grid * grid {
            for part in 0..2 {
                for j in 0..half {
                    cos_t[[n_prefix + t, part, 0, 0, j]] = cos[[t, j]];
                    sin_t[[n_prefix + t, part, 0, 0, j]] = -sin[[t, j]];
                    sin_t[[n_prefix + t, part, 0, 1, j]] = sin[[t, half + j]];
                }
            }
        }
        Some((
            g.init("rope_cos", cos_t.into_dyn()),
            g.init("rope_sin", sin_t.into_dyn()),
        ))
    } else {
        None
    };

    // Prefix tokens repeated over the batch: Expand to [batch, 1, 1] broadcasts [1, P, D].
    let shape_of = g.op("Shape", &[&x_in], vec![]);
    let batch = slice(&mut g, &shape_of, 0, 1, 0);
    let ones = g.const_i64(&[1, 1], &[2]);
    let shape = g.op("Concat", &[&batch, &ones], vec![("axis", Attr::Int(0))]);
    let prefix = g.init("prefix_tokens", prefix);
    let pre = g.op("Expand", &[&prefix, &shape], vec![]);
    let mut x = g.op("Concat", &[&pre, &y], vec![("axis", Attr::Int(1))]);

    for i in 0..depth {
        x = block(
            &mut g,
            &mut st,
            &x,
            i,
            &dims,
            &arch,
            rope.as_ref(),
            i == depth - 1,
        )?;
    }
    let x = layer_norm(&mut g, &mut st, &x, "norm", width, arch.ln_eps)?; // [b, 1, D]: the CLS token
    let shape = g.const_i64(&[-1, width as i64], &[2]);
    let emb = g.op("Reshape", &[&x, &shape], vec![]);
    let hw = g.init("head.weight", head_w.to_f32());
    let hb = st.f32("head.bias", &[Some(num_classes)])?;
    let hb = g.init("head.bias", hb);
    let logits = g.op("Gemm", &[&emb, &hw, &hb], vec![("transB", Attr::Int(1))]);
    st.check_all_used("")?;
    g.output(
        &logits,
        "logits",
        Elem::Float,
        &[batch_dim(), Dim::Fixed(num_classes as i64)],
    );
    g.output(
        &emb,
        "embedding",
        Elem::Float,
        &[batch_dim(), Dim::Fixed(width as i64)],
    );
    Ok(g)
}

/// The ONNX graph of a DeepFaune bird head (a state dict of `BirdModel`: `bird_model.0`
/// Linear(D, H), `.1` BatchNorm1d(H) (eval: running statistics, eps 1e-5, the default DeepFaune
/// builds it with), GELU, Dropout(0), `.4` Linear(H, groups)). Input `embedding` [batch, D],
/// output `logits` [batch, groups]. The BatchNorm is folded into the first Linear.
pub fn build_bird_head(ckpt: &Value) -> Result<Graph> {
    let items = ckpt.dict_items().ok_or_else(|| {
        ckpt_err("not a DeepFaune bird head (a state dict of bird_model.* expected)".into())
    })?;
    let mut st = State::new(
        items.iter().filter_map(|(k, v)| k.as_str().map(|k| (k, v))),
        "bird head checkpoint".into(),
    );
    let w0 = st.get("bird_model.0.weight", &[None, None])?;
    let (hidden, dim) = (w0.shape()[0], w0.shape()[1]);
    let f64v = |st: &mut State<'_>, key: &str| -> Result<Vec<f64>> {
        Ok(st.vec(key, hidden)?.iter().map(|&v| f64::from(v)).collect())
    };
    let b0 = f64v(&mut st, "bird_model.0.bias")?;
    let gamma = f64v(&mut st, "bird_model.1.weight")?;
    let beta = f64v(&mut st, "bird_model.1.bias")?;
    let mean = f64v(&mut st, "bird_model.1.running_mean")?;
    let var = f64v(&mut st, "bird_model.1.running_var")?;
    let w4 = st.get("bird_model.4.weight", &[None, Some(hidden)])?;
    let groups = w4.shape()[0];
    let alpha: Vec<f64> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + 1e-5).sqrt())
        .collect();
    let alpha32 = Array1::from_iter(alpha.iter().map(|&a| a as f32));
    let bias: Vec<f32> = (0..hidden)
        .map(|i| ((b0[i] - mean[i]) * alpha[i] + beta[i]) as f32)
        .collect();

    let mut g = Graph::new("deepfaune_bird_head");
    let x = g.input(
        "embedding",
        Elem::Float,
        &[batch_dim(), Dim::Fixed(dim as i64)],
    );
    let w = g.init("bird_model.0.weight", linear_t(w0, Some(&alpha32)));
    let b = g.init("bird_model.0.bias", Array1::from(bias).into_dyn());
    let h = g.op("Gemm", &[&x, &w, &b], vec![]);
    let h = gelu(&mut g, &h);
    let w4 = g.init("bird_model.4.weight", w4.to_f32());
    let b4 = st.f32("bird_model.4.bias", &[Some(groups)])?;
    let b4 = g.init("bird_model.4.bias", b4);
    let logits = g.op("Gemm", &[&h, &w4, &b4], vec![("transB", Attr::Int(1))]);
    st.check_all_used("num_batches_tracked")?;
    g.output(
        &logits,
        "logits",
        Elem::Float,
        &[batch_dim(), Dim::Fixed(groups as i64)],
    );
    Ok(g)
}

/// The opset the builders write.
pub const VIT_OPSET: i64 = OPSET;

#[cfg(test)]
#[path = "vit_tests.rs"]
mod tests;
