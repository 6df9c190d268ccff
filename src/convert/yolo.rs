//! ONNX graphs of ultralytics (YOLOv8, YOLO11) and YOLOv5 detectors, built without torch.
//!
//! The checkpoint's pickled model (read by [`super::pickle`] into stand-in [`Object`]s) carries
//! the whole architecture: the layers of `model.model` with their `f` (inputs) and `i` (index),
//! every sub-module with its attributes (strides, paddings, groups, epsilons, heads...) and its
//! tensors. The graph is built by walking that tree exactly as the model's forward pass does
//! (ultralytics' `BaseModel._predict_once`), so widths, depths, strides, the number of classes
//! and the DFL size all come from the checkpoint.
//!
//! Numerics follow what ultralytics runs on CPU: the model in fp32 (fp16 tensors are upcast),
//! each BatchNorm folded into its convolution (in float64, then rounded to fp32 once), the
//! detection grid built at run time from the feature-map sizes, so height and width stay dynamic.
//!
//! Output, as the model returns it in eval mode:
//! * ultralytics `Detect`: `output0` [batch, 4 + nc, N] (cx, cy, w, h in input pixels, then
//!   sigmoid class scores);
//! * YOLOv5 `Detect` (anchor based): `output0` [batch, N, 5 + nc] (cx, cy, w, h, objectness,
//!   class scores).

use std::collections::HashMap;

use ndarray::{ArrayD, Axis, IxDyn};

use super::graph::{Attr, Dim, Elem, Graph};
use super::pickle::{Object, Value};
use super::ConvertError;

/// The ONNX opset of the detector graphs.
pub const OPSET: i64 = 17;

/// The module names this converter knows (the last part of their class name), sorted.
pub const MODULES: [&str; 28] = [
    "Attention",
    "Bottleneck",
    "C2PSA",
    "C2f",
    "C3",
    "C3k",
    "C3k2",
    "Concat",
    "Conv",
    "Conv2d",
    "DWConv",
    "Detect",
    "GELU",
    "Hardswish",
    "Identity",
    "LeakyReLU",
    "MaxPool2d",
    "Mish",
    "ModuleList",
    "PSABlock",
    "ReLU",
    "ReLU6",
    "SPPF",
    "Sequential",
    "SiLU",
    "Sigmoid",
    "Tanh",
    "Upsample",
];

type Result<T> = std::result::Result<T, ConvertError>;

fn fail<T>(msg: String) -> Result<T> {
    Err(ConvertError::Build(msg))
}

/// What a module is given: one tensor, or several (`Concat`, `Detect`).
enum Input {
    One(String),
    Many(Vec<String>),
}

impl Input {
    fn list(&self) -> Vec<&str> {
        match self {
            Input::One(x) => vec![x.as_str()],
            Input::Many(xs) => xs.iter().map(String::as_str).collect(),
        }
    }
}

/// Turns a module tree into ONNX nodes (one per conversion); shared constants made once.
struct Builder {
    g: Graph,
    i64s: HashMap<(bool, Vec<i64>), String>,
    f32s: HashMap<(bool, Vec<u32>), String>,
}

impl Builder {
    fn new(name: &str) -> Builder {
        Builder {
            g: Graph::new(name),
            i64s: HashMap::new(),
            f32s: HashMap::new(),
        }
    }

    /// A 0-d int64 constant (a Gather index, Range bounds).
    fn scalar_i64(&mut self, v: i64) -> String {
        let key = (true, vec![v]);
        if let Some(n) = self.i64s.get(&key) {
            return n.clone();
        }
        let n = self
            .g
            .op("Constant", &[], vec![("value_int", Attr::Int(v))]);
        self.i64s.insert(key, n.clone());
        n
    }

    /// A 1-d int64 constant.
    fn i64s(&mut self, values: &[i64]) -> String {
        let key = (false, values.to_vec());
        if let Some(n) = self.i64s.get(&key) {
            return n.clone();
        }
        let n = self.g.const_i64(values, &[values.len()]);
        self.i64s.insert(key, n.clone());
        n
    }

    /// A 0-d float constant.
    fn scalar_f32(&mut self, v: f32) -> String {
        let key = (true, vec![v.to_bits()]);
        if let Some(n) = self.f32s.get(&key) {
            return n.clone();
        }
        let n = self
            .g
            .op("Constant", &[], vec![("value_float", Attr::Float(v))]);
        self.f32s.insert(key, n.clone());
        n
    }

    /// A 1-d float constant.
    fn f32s(&mut self, values: &[f32]) -> String {
        let key = (false, values.iter().map(|v| v.to_bits()).collect());
        if let Some(n) = self.f32s.get(&key) {
            return n.clone();
        }
        let n = self.g.const_f32(values, &[values.len()]);
        self.f32s.insert(key, n.clone());
        n
    }

    fn op(&mut self, op_type: &str, inputs: &[&str]) -> String {
        self.g.op(op_type, inputs, vec![])
    }

    fn op_a(&mut self, op_type: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        self.g.op(op_type, inputs, attrs)
    }

    fn concat(&mut self, inputs: &[&str], axis: i64) -> String {
        self.op_a("Concat", inputs, vec![("axis", Attr::Int(axis))])
    }

    fn unsqueeze(&mut self, x: &str, axis: i64) -> String {
        let a = self.i64s(&[axis]);
        self.op("Unsqueeze", &[x, &a])
    }

    fn split(&mut self, x: &str, sizes: &[i64], axis: i64) -> Vec<String> {
        let s = self.i64s(sizes);
        self.g.op_n(
            "Split",
            &[x, &s],
            sizes.len(),
            vec![("axis", Attr::Int(axis))],
        )
    }

    /// Runs module `m` on `x`: the handler of its class name.
    fn run(&mut self, m: &Object, x: &Input, path: &str) -> Result<String> {
        let name = m.name();
        if !MODULES.contains(&name) {
            return fail(format!(
                "unsupported module {} at {path}: this converter knows {}",
                m.classname(),
                MODULES.join(", ")
            ));
        }
        state(m)?;
        if let ("Concat" | "Detect", xs) = (name, x) {
            let xs = xs.list();
            return if name == "Concat" {
                let axis = int_attr(m, "d", 1, path)?;
                Ok(self.concat(&xs, axis))
            } else {
                self.detect_any(m, &xs, path)
            };
        }
        let x = match x {
            Input::One(x) => x.as_str(),
            Input::Many(_) => {
                return fail(format!(
                    "{} at {path}: takes one input, given several",
                    m.classname()
                ))
            }
        };
        match name {
            "Conv" | "DWConv" => self.conv_bn_act(m, x, path),
            "Conv2d" => {
                let w = tensor(m, "weight", path)?;
                let b = opt_tensor(m, "bias");
                self.conv_node(m, x, path, w, b)
            }
            "Identity" => Ok(x.to_string()),
            "SiLU" => {
                let s = self.op("Sigmoid", &[x]);
                Ok(self.op("Mul", &[x, &s]))
            }
            "ReLU" => Ok(self.op("Relu", &[x])),
            "Sigmoid" => Ok(self.op("Sigmoid", &[x])),
            "Tanh" => Ok(self.op("Tanh", &[x])),
            "LeakyReLU" => {
                let alpha = float_attr(m, "negative_slope", 0.01)? as f32;
                Ok(self.op_a("LeakyRelu", &[x], vec![("alpha", Attr::Float(alpha))]))
            }
            "ReLU6" => {
                let (lo, hi) = (self.scalar_f32(0.0), self.scalar_f32(6.0));
                Ok(self.op("Clip", &[x, &lo, &hi]))
            }
            "Hardswish" => Ok(self.op("HardSwish", &[x])),
            "GELU" => self.gelu(m, x, path),
            "Mish" => {
                let sp = self.op("Softplus", &[x]);
                let t = self.op("Tanh", &[&sp]);
                Ok(self.op("Mul", &[x, &t]))
            }
            "Sequential" | "ModuleList" => {
                let mut y = x.to_string();
                for (key, child) in children(m)? {
                    y = self.run(child, &Input::One(y), &format!("{path}.{key}"))?;
                }
                Ok(y)
            }
            "Bottleneck" => {
                let y = self.sub(m, "cv1", x, path)?;
                let y = self.sub(m, "cv2", &y, path)?;
                Ok(if truthy(m.get("add")) {
                    self.op("Add", &[x, &y])
                } else {
                    y
                })
            }
            "C2f" | "C3k2" => self.c2f(m, x, path),
            "C3" | "C3k" => {
                let a = self.sub(m, "cv1", x, path)?;
                let a = self.sub(m, "m", &a, path)?;
                let c = self.sub(m, "cv2", x, path)?;
                let cat = self.concat(&[&a, &c], 1);
                self.sub(m, "cv3", &cat, path)
            }
            "SPPF" => self.sppf(m, x, path),
            "MaxPool2d" => self.maxpool(m, x, path),
            "Attention" => self.attention(m, x, path),
            "PSABlock" => {
                let add = m.get("add").is_none_or(|v| truthy(Some(v)));
                let a = self.sub(m, "attn", x, path)?;
                let x = if add { self.op("Add", &[x, &a]) } else { a };
                let f = self.sub(m, "ffn", &x, path)?;
                Ok(if add { self.op("Add", &[&x, &f]) } else { f })
            }
            "C2PSA" => {
                let y = self.sub(m, "cv1", x, path)?;
                let c = int_req(m, "c", path)?;
                let parts = self.split(&y, &[c, c], 1);
                let z = self.sub(m, "m", &parts[1], path)?;
                let cat = self.concat(&[&parts[0], &z], 1);
                self.sub(m, "cv2", &cat, path)
            }
            "Upsample" => self.upsample(m, x, path),
            _ => unreachable!("every name of MODULES has a handler"),
        }
    }

    /// Runs the child `key` of `m` on `x`.
    fn sub(&mut self, m: &Object, key: &str, x: &str, path: &str) -> Result<String> {
        let c = child(m, key, path)?;
        self.run(c, &Input::One(x.to_string()), &format!("{path}.{key}"))
    }

    // ---- convolutions ----------------------------------------------------------------------

    fn conv_node(
        &mut self,
        conv: &Object,
        x: &str,
        path: &str,
        w: ArrayD<f64>,
        bias: Option<ArrayD<f64>>,
    ) -> Result<String> {
        if conv.name() != "Conv2d" {
            return fail(format!(
                "{} at {path}: expected torch.nn.Conv2d",
                conv.classname()
            ));
        }
        if let Some(mode) = conv.get("padding_mode").and_then(Value::as_str) {
            if mode != "zeros" {
                return fail(format!("Conv2d at {path}: padding_mode {mode} unsupported"));
            }
        }
        if truthy(conv.get("transposed")) {
            return fail(format!(
                "Conv2d at {path}: transposed convolutions unsupported"
            ));
        }
        if let Some(p) = conv.get("padding").and_then(Value::as_str) {
            return fail(format!("Conv2d at {path}: padding='{p}' unsupported"));
        }
        if w.ndim() != 4 {
            return fail(format!("Conv2d at {path}: weight of shape {:?}", w.shape()));
        }
        let [ph, pw] = pair_attr(conv, "padding", 0, path)?;
        let strides = pair_attr(conv, "stride", 1, path)?;
        let dilations = pair_attr(conv, "dilation", 1, path)?;
        let group = int_attr(conv, "groups", 1, path)?;
        let kernel = vec![w.shape()[2] as i64, w.shape()[3] as i64];
        let wname = self.g.init(&format!("{path}.weight"), w.mapv(|v| v as f32));
        let mut inputs = vec![x.to_string(), wname];
        if let Some(b) = bias {
            inputs.push(self.g.init(&format!("{path}.bias"), b.mapv(|v| v as f32)));
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        Ok(self.op_a(
            "Conv",
            &inputs,
            vec![
                ("kernel_shape", Attr::Ints(kernel)),
                ("strides", Attr::Ints(strides.to_vec())),
                ("pads", Attr::Ints(vec![ph, pw, ph, pw])),
                ("dilations", Attr::Ints(dilations.to_vec())),
                ("group", Attr::Int(group)),
            ],
        ))
    }

    /// ultralytics / YOLOv5 `Conv` (and `DWConv`): act(bn(conv(x))); a fused one has no bn.
    fn conv_bn_act(&mut self, m: &Object, x: &str, path: &str) -> Result<String> {
        let conv = child(m, "conv", path)?;
        let cpath = format!("{path}.conv");
        state(conv)?;
        let mut w = tensor(conv, "weight", &cpath)?;
        let mut bias = opt_tensor(conv, "bias");
        if let Some(bn) = opt_child(m, "bn")? {
            let folded = fold_bn(bn, w, bias, &format!("{path}.bn"))?;
            (w, bias) = (folded.0, Some(folded.1));
        }
        let y = self.conv_node(conv, x, &cpath, w, bias)?;
        match opt_child(m, "act")? {
            None => Ok(y),
            Some(act) => self.run(act, &Input::One(y), &format!("{path}.act")),
        }
    }

    fn gelu(&mut self, m: &Object, x: &str, path: &str) -> Result<String> {
        let approx = m
            .get("approximate")
            .and_then(Value::as_str)
            .unwrap_or("none");
        if approx != "none" {
            return fail(format!(
                "GELU at {path}: approximate='{approx}' unsupported"
            ));
        }
        let k = self.scalar_f32((1.0 / 2f64.sqrt()) as f32);
        let xs = self.op("Mul", &[x, &k]);
        let erf = self.op("Erf", &[&xs]);
        let half = self.scalar_f32(0.5);
        let one = self.scalar_f32(1.0);
        let a = self.op("Mul", &[x, &half]);
        let b = self.op("Add", &[&erf, &one]);
        Ok(self.op("Mul", &[&a, &b]))
    }

    // ---- blocks ----------------------------------------------------------------------------

    /// C2f and C3k2: cv1 split in two halves, each block applied to the last output, cv2 of the
    /// concatenation.
    fn c2f(&mut self, m: &Object, x: &str, path: &str) -> Result<String> {
        let y = self.sub(m, "cv1", x, path)?;
        let c = int_req(m, "c", path)?;
        let mut ys = self.split(&y, &[c, c], 1);
        let blocks = child(m, "m", path)?;
        state(blocks)?;
        for (key, block) in children(blocks)? {
            let last = ys[ys.len() - 1].clone();
            ys.push(self.run(block, &Input::One(last), &format!("{path}.m.{key}"))?);
        }
        let refs: Vec<&str> = ys.iter().map(String::as_str).collect();
        let cat = self.concat(&refs, 1);
        self.sub(m, "cv2", &cat, path)
    }

    fn maxpool(&mut self, m: &Object, x: &str, path: &str) -> Result<String> {
        let k = match m.get("kernel_size") {
            Some(v) => pair(v, path)?,
            None => {
                return fail(format!(
                    "{} at {path}: attribute 'kernel_size' missing",
                    m.classname()
                ))
            }
        };
        let s = match m.get("stride") {
            None | Some(Value::None) => k,
            Some(v) if v.as_seq().is_some_and(<[Value]>::is_empty) => k,
            Some(v) => pair(v, path)?,
        };
        let p = pair_attr(m, "padding", 0, path)?;
        Ok(self.op_a(
            "MaxPool",
            &[x],
            vec![
                ("kernel_shape", Attr::Ints(k.to_vec())),
                ("strides", Attr::Ints(s.to_vec())),
                ("pads", Attr::Ints(vec![p[0], p[1], p[0], p[1]])),
                (
                    "dilations",
                    Attr::Ints(pair_attr(m, "dilation", 1, path)?.to_vec()),
                ),
                ("ceil_mode", Attr::Int(truthy(m.get("ceil_mode")) as i64)),
            ],
        ))
    }

    fn sppf(&mut self, m: &Object, x: &str, path: &str) -> Result<String> {
        let mut y = vec![self.sub(m, "cv1", x, path)?];
        let pool = child(m, "m", path)?;
        for _ in 0..int_attr(m, "n", 3, path)? {
            let last = y[y.len() - 1].clone();
            y.push(self.run(pool, &Input::One(last), &format!("{path}.m"))?);
        }
        let refs: Vec<&str> = y.iter().map(String::as_str).collect();
        let cat = self.concat(&refs, 1);
        let out = self.sub(m, "cv2", &cat, path)?;
        Ok(if truthy(m.get("add")) {
            self.op("Add", &[&out, x])
        } else {
            out
        })
    }

    /// ultralytics `Attention` (PSA): multi-head self-attention over the H*W positions.
    fn attention(&mut self, m: &Object, x: &str, path: &str) -> Result<String> {
        let nh = int_req(m, "num_heads", path)?;
        let kd = int_req(m, "key_dim", path)?;
        let hd = int_req(m, "head_dim", path)?;
        let scale = match m.get("scale").and_then(as_float) {
            Some(s) => s,
            None => {
                return fail(format!(
                    "{} at {path}: attribute 'scale' missing",
                    m.classname()
                ))
            }
        };
        let qkv = self.sub(m, "qkv", x, path)?;
        let shape4 = self.i64s(&[0, nh, 2 * kd + hd, -1]);
        let qkv = self.op("Reshape", &[&qkv, &shape4]);
        let parts = self.split(&qkv, &[kd, kd, hd], 2);
        let (q, k, v) = (&parts[0], &parts[1], &parts[2]);
        let sc = self.scalar_f32(scale as f32);
        let qs = self.op("Mul", &[q, &sc]);
        let perm = || vec![("perm", Attr::Ints(vec![0, 1, 3, 2]))];
        let qt = self.op_a("Transpose", &[&qs], perm());
        let logits = self.op("MatMul", &[&qt, k]);
        let attn = self.op_a("Softmax", &[&logits], vec![("axis", Attr::Int(-1))]);
        let at = self.op_a("Transpose", &[&attn], perm());
        let out = self.op("MatMul", &[v, &at]);
        let shape = self.op("Shape", &[x]);
        let out = self.op("Reshape", &[&out, &shape]);
        let vr = self.op("Reshape", &[v, &shape]);
        let pe = self.sub(m, "pe", &vr, path)?;
        let sum = self.op("Add", &[&out, &pe]);
        self.sub(m, "proj", &sum, path)
    }

    fn upsample(&mut self, m: &Object, x: &str, path: &str) -> Result<String> {
        let mode = m.get("mode").and_then(Value::as_str).unwrap_or("nearest");
        let sf = m.get("scale_factor").filter(|v| !matches!(v, Value::None));
        let size = m.get("size").filter(|v| !matches!(v, Value::None));
        let sf = match (size, sf) {
            (None, Some(sf)) => sf,
            _ => {
                return fail(format!(
                    "Upsample at {path}: only scale_factor upsampling is supported"
                ))
            }
        };
        if mode != "nearest" {
            return fail(format!(
                "Upsample at {path}: mode '{mode}' unsupported (nearest only)"
            ));
        }
        let mut s = float_list(sf, path)?;
        if s.len() == 1 {
            s.push(s[0]);
        }
        if s.iter().any(|v| v.fract() != 0.0) {
            return fail(format!(
                "Upsample at {path}: non-integer scale factor {s:?}"
            ));
        }
        let mut scales = vec![1.0f32, 1.0];
        scales.extend(s.iter().map(|&v| v as f32));
        let scales = self.f32s(&scales);
        Ok(self.op_a(
            "Resize",
            &[x, "", &scales],
            vec![
                ("mode", Attr::Str("nearest".into())),
                (
                    "coordinate_transformation_mode",
                    Attr::Str("asymmetric".into()),
                ),
                ("nearest_mode", Attr::Str("floor".into())),
            ],
        ))
    }

    // ---- detection heads -------------------------------------------------------------------

    /// Cell coordinates of a [b, c, h, w] feature map: x [h*w], y [h*w] (float, + offset) and
    /// h*w as a 1-D int64 tensor.
    fn grid(&mut self, feat: &str, offset: f32) -> (String, String, String) {
        let shape = self.op("Shape", &[feat]);
        let (two, three) = (self.scalar_i64(2), self.scalar_i64(3));
        let axis0 = || vec![("axis", Attr::Int(0))];
        let h = self.op_a("Gather", &[&shape, &two], axis0());
        let w = self.op_a("Gather", &[&shape, &three], axis0());
        let (zero, one) = (self.scalar_i64(0), self.scalar_i64(1));
        let off = self.scalar_f32(offset);
        let coords = |this: &mut Self, n: &str| {
            let r = this.op("Range", &[&zero, n, &one]);
            let c = this.op_a("Cast", &[&r], vec![("to", Attr::Int(1))]);
            this.op("Add", &[&c, &off])
        };
        let sx = coords(self, &w);
        let sy = coords(self, &h);
        let (h1, w1) = (self.unsqueeze(&h, 0), self.unsqueeze(&w, 0));
        let hw2 = self.concat(&[&h1, &w1], 0);
        let sx0 = self.unsqueeze(&sx, 0);
        let gx = self.op("Expand", &[&sx0, &hw2]);
        let sy1 = self.unsqueeze(&sy, 1);
        let gy = self.op("Expand", &[&sy1, &hw2]);
        let hw = self.op("Mul", &[&h, &w]);
        let n = self.unsqueeze(&hw, 0);
        let flat = self.i64s(&[-1]);
        let gx = self.op("Reshape", &[&gx, &flat]);
        let gy = self.op("Reshape", &[&gy, &flat]);
        (gx, gy, n)
    }

    fn detect_any(&mut self, m: &Object, xs: &[&str], path: &str) -> Result<String> {
        let mods = dict_keys(m.get("_modules"));
        let bufs = dict_keys(m.get("_buffers"));
        if mods.contains(&"cv2") && mods.contains(&"cv3") {
            return self.detect(m, xs, path);
        }
        if mods.contains(&"m") && bufs.contains(&"anchors") {
            return self.detect_v5(m, xs, path);
        }
        fail(format!(
            "{} at {path}: neither an ultralytics nor a YOLOv5 Detect head",
            m.classname()
        ))
    }

    /// ultralytics `Detect`: box distributions (DFL) and class scores per level, decoded against
    /// anchors made from the feature-map sizes; [b, 4 + nc, N].
    fn detect(&mut self, m: &Object, xs: &[&str], path: &str) -> Result<String> {
        if truthy(m.get("end2end")) || truthy(m.get("_end2end")) || opt_child(m, "cv2")?.is_none() {
            return fail(format!(
                "{} at {path}: end-to-end (NMS-free) heads are unsupported",
                m.classname()
            ));
        }
        let nc = int_req(m, "nc", path)?;
        let nl = int_attr(m, "nl", xs.len() as i64, path)? as usize;
        let reg_max = int_attr(m, "reg_max", 16, path)?;
        let stride = float_list(req(m, "stride", path)?, path)?;
        if xs.len() != nl || stride.len() != nl {
            return fail(format!(
                "Detect at {path}: {} inputs, nl={nl}, {} strides",
                xs.len(),
                stride.len()
            ));
        }
        if stride.iter().any(|&s| s <= 0.0) {
            return fail(format!(
                "Detect at {path}: strides {stride:?} were never computed"
            ));
        }
        let cv2: Vec<&Object> = children(child(m, "cv2", path)?)?
            .into_iter()
            .map(|c| c.1)
            .collect();
        let cv3: Vec<&Object> = children(child(m, "cv3", path)?)?
            .into_iter()
            .map(|c| c.1)
            .collect();
        if cv2.len() < nl || cv3.len() < nl {
            return fail(format!(
                "Detect at {path}: fewer cv2/cv3 branches than levels"
            ));
        }
        let (mut boxes, mut scores, mut ax, mut ay, mut st) =
            (vec![], vec![], vec![], vec![], vec![]);
        let box_shape = self.i64s(&[0, 4 * reg_max, -1]);
        let score_shape = self.i64s(&[0, nc, -1]);
        for (i, &x) in xs.iter().enumerate() {
            let bx = self.run(cv2[i], &Input::One(x.into()), &format!("{path}.cv2.{i}"))?;
            let cl = self.run(cv3[i], &Input::One(x.into()), &format!("{path}.cv3.{i}"))?;
            boxes.push(self.op("Reshape", &[&bx, &box_shape]));
            scores.push(self.op("Reshape", &[&cl, &score_shape]));
            let (gx, gy, n) = self.grid(x, 0.5);
            ax.push(gx);
            ay.push(gy);
            let s = self.f32s(&[stride[i] as f32]);
            st.push(self.op("Expand", &[&s, &n]));
        }
        let bx = self.cat_if_many(&boxes, 2);
        let score = self.cat_if_many(&scores, 2);
        let dist = match opt_child(m, "dfl")? {
            Some(dfl) if dfl.name() == "DFL" => {
                state(dfl)?;
                let conv = child(dfl, "conv", &format!("{path}.dfl"))?;
                state(conv)?;
                let w = tensor(conv, "weight", &format!("{path}.dfl.conv"))?;
                if w.len() != reg_max as usize {
                    return fail(format!(
                        "Detect at {path}: DFL weight of {} values, reg_max={reg_max}",
                        w.len()
                    ));
                }
                let w = w
                    .mapv(|v| v as f32)
                    .into_shape_with_order(IxDyn(&[1, reg_max as usize]));
                let w = w.map_err(|e| ConvertError::Build(format!("{path}.dfl: {e}")))?;
                let wname = self.g.init(&format!("{path}.dfl.conv.weight"), w);
                let s4 = self.i64s(&[0, 4, reg_max, -1]);
                let r = self.op("Reshape", &[&bx, &s4]);
                let p = self.op_a("Softmax", &[&r], vec![("axis", Attr::Int(2))]);
                let d = self.op("MatMul", &[&wname, &p]);
                let s3 = self.i64s(&[0, 4, -1]);
                self.op("Reshape", &[&d, &s3])
            }
            Some(dfl) if dfl.name() != "Identity" => {
                return fail(format!(
                    "unsupported module {} at {path}.dfl",
                    dfl.classname()
                ))
            }
            _ => {
                if reg_max != 1 {
                    return fail(format!(
                        "Detect at {path}: no DFL module but reg_max={reg_max}"
                    ));
                }
                bx
            }
        };
        let axc = self.cat_if_many(&ax, 0);
        let ayc = self.cat_if_many(&ay, 0);
        let (ax0, ay0) = (self.unsqueeze(&axc, 0), self.unsqueeze(&ayc, 0));
        let anchors = self.concat(&[&ax0, &ay0], 0); // [2, N]
        let stc = self.cat_if_many(&st, 0);
        let strides = self.unsqueeze(&stc, 0); // [1, N]
        let parts = self.split(&dist, &[2, 2], 1);
        let x1y1 = self.op("Sub", &[&anchors, &parts[0]]);
        let x2y2 = self.op("Add", &[&anchors, &parts[1]]);
        let xyxy = if truthy(m.get("xyxy")) {
            self.concat(&[&x1y1, &x2y2], 1)
        } else {
            let sum = self.op("Add", &[&x1y1, &x2y2]);
            let two = self.scalar_f32(2.0);
            let cxy = self.op("Div", &[&sum, &two]);
            let wh = self.op("Sub", &[&x2y2, &x1y1]);
            self.concat(&[&cxy, &wh], 1)
        };
        let dbox = self.op("Mul", &[&xyxy, &strides]);
        let sig = self.op("Sigmoid", &[&score]);
        Ok(self.concat(&[&dbox, &sig], 1))
    }

    fn cat_if_many(&mut self, xs: &[String], axis: i64) -> String {
        if xs.len() == 1 {
            return xs[0].clone();
        }
        let refs: Vec<&str> = xs.iter().map(String::as_str).collect();
        self.concat(&refs, axis)
    }

    /// YOLOv5 `Detect` (anchor based): per level conv, sigmoid, grid/anchor decoding;
    /// [b, N, 5 + nc] with N ordered (level, anchor, y, x) as YOLOv5 does.
    fn detect_v5(&mut self, m: &Object, xs: &[&str], path: &str) -> Result<String> {
        let nc = int_req(m, "nc", path)?;
        let no = int_attr(m, "no", nc + 5, path)?;
        let nl = int_attr(m, "nl", xs.len() as i64, path)? as usize;
        let na = int_req(m, "na", path)?;
        let stride = float_list(req(m, "stride", path)?, path)?;
        let anchors = tensor(m, "anchors", path)?;
        let convs: Vec<&Object> = children(child(m, "m", path)?)?
            .into_iter()
            .map(|c| c.1)
            .collect();
        if xs.len() != nl
            || stride.len() != nl
            || convs.len() != nl
            || no != nc + 5
            || na <= 0
            || anchors.len() != nl * na as usize * 2
        {
            return fail(format!(
                "Detect at {path}: inconsistent nl/na/no/stride attributes"
            ));
        }
        let anchors: Vec<f64> = anchors.iter().copied().collect();
        let na_u = na as usize;
        let mut outs = vec![];
        for (i, &x) in xs.iter().enumerate() {
            let y = self.run(convs[i], &Input::One(x.into()), &format!("{path}.m.{i}"))?;
            let shape = self.op("Shape", &[&y]);
            let (from, to) = (self.i64s(&[2]), self.i64s(&[4]));
            let hw = self.op("Slice", &[&shape, &from, &to]);
            let head = self.i64s(&[0, na, no]);
            let five = self.concat(&[&head, &hw], 0);
            let r = self.op("Reshape", &[&y, &five]);
            let t = self.op_a(
                "Transpose",
                &[&r],
                vec![("perm", Attr::Ints(vec![0, 1, 3, 4, 2]))],
            );
            let y = self.op("Sigmoid", &[&t]); // [b, na, h, w, no]
            let parts = self.split(&y, &[2, 2, nc + 1], 4);
            let (xy, wh, conf) = (&parts[0], &parts[1], &parts[2]);
            let (gx, gy, _) = self.grid(x, -0.5);
            let (two, three) = (self.scalar_i64(2), self.scalar_i64(3));
            let axis0 = || vec![("axis", Attr::Int(0))];
            let h = self.op_a("Gather", &[&shape, &two], axis0());
            let w = self.op_a("Gather", &[&shape, &three], axis0());
            let (h1, w1, one) = (
                self.unsqueeze(&h, 0),
                self.unsqueeze(&w, 0),
                self.i64s(&[1]),
            );
            let hw1 = self.concat(&[&h1, &w1, &one], 0);
            let gxr = self.op("Reshape", &[&gx, &hw1]);
            let gyr = self.op("Reshape", &[&gy, &hw1]);
            let grid = self.concat(&[&gxr, &gyr], 2); // [h, w, 2]
            let two_f = self.scalar_f32(2.0);
            let xy2 = self.op("Mul", &[xy, &two_f]);
            let xyg = self.op("Add", &[&xy2, &grid]);
            let s = self.scalar_f32(stride[i] as f32);
            let xy = self.op("Mul", &[&xyg, &s]);
            let s32 = stride[i] as f32;
            let ag: Vec<f32> = anchors[i * na_u * 2..(i + 1) * na_u * 2]
                .iter()
                .map(|&a| (a as f32) * s32)
                .collect();
            let ag = ArrayD::from_shape_vec(IxDyn(&[1, na_u, 1, 1, 2]), ag)
                .map_err(|e| ConvertError::Build(format!("{path}: {e}")))?;
            let agn = self.g.init(&format!("{path}.anchor_grid.{i}"), ag);
            let wh2 = self.op("Mul", &[wh, &two_f]);
            let sq = self.op("Mul", &[&wh2, &wh2]);
            let wh = self.op("Mul", &[&sq, &agn]);
            let y = self.concat(&[&xy, &wh, conf], 4);
            let flat = self.i64s(&[0, -1, no]);
            outs.push(self.op("Reshape", &[&y, &flat]));
        }
        Ok(self.cat_if_many(&outs, 1))
    }
}

// ---- reading the stand-ins ----------------------------------------------------------------

/// Checks that `m` has pickled attributes (an `nn.Module`'s `__dict__`).
fn state(m: &Object) -> Result<()> {
    match m.state.dict_items() {
        Some(_) => Ok(()),
        None => fail(format!(
            "{}: no pickled attributes to read (not an nn.Module?)",
            m.classname()
        )),
    }
}

fn req<'a>(m: &'a Object, key: &str, path: &str) -> Result<&'a Value> {
    match m.get(key) {
        Some(v) => Ok(v),
        None => fail(format!(
            "{} at {path}: attribute '{key}' missing",
            m.classname()
        )),
    }
}

/// Python's truth value of an attribute (absent: false).
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::None) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Int(i)) => *i != 0,
        Some(Value::Float(f)) => *f != 0.0,
        Some(Value::Str(s)) => !s.is_empty(),
        Some(Value::Bytes(b)) => !b.is_empty(),
        Some(Value::List(v) | Value::Tuple(v)) => !v.is_empty(),
        Some(Value::Dict(d)) => !d.is_empty(),
        Some(Value::Tensor(_) | Value::Object(_)) => true,
    }
}

/// An integer as Python's `int()` reads it (bools and integral floats included).
fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Bool(b) => Some(*b as i64),
        Value::Int(i) => Some(*i),
        Value::Float(f) if f.fract() == 0.0 => Some(*f as i64),
        Value::Tensor(t) if t.shape().iter().product::<usize>() == 1 => {
            t.to_i64().iter().next().copied()
        }
        _ => None,
    }
}

fn as_float(v: &Value) -> Option<f64> {
    match v {
        Value::Bool(b) => Some(*b as i64 as f64),
        Value::Tensor(t) if t.shape().iter().product::<usize>() == 1 => {
            t.to_f64().iter().next().copied()
        }
        _ => v.as_f64(),
    }
}

fn int_req(m: &Object, key: &str, path: &str) -> Result<i64> {
    let v = req(m, key, path)?;
    as_int(v).map_or_else(
        || {
            fail(format!(
                "{} at {path}: attribute '{key}' is not an integer",
                m.classname()
            ))
        },
        Ok,
    )
}

fn int_attr(m: &Object, key: &str, default: i64, path: &str) -> Result<i64> {
    match m.get(key) {
        None => Ok(default),
        Some(_) => int_req(m, key, path),
    }
}

fn float_attr(m: &Object, key: &str, default: f64) -> Result<f64> {
    match m.get(key) {
        None => Ok(default),
        Some(v) => as_float(v).map_or_else(
            || {
                fail(format!(
                    "{}: attribute '{key}' is not a number",
                    m.classname()
                ))
            },
            Ok,
        ),
    }
}

/// `(a, b)`, `(a,)` or `a` as `[a, b]`.
fn pair(v: &Value, path: &str) -> Result<[i64; 2]> {
    let bad = || ConvertError::Build(format!("{path}: expected an integer or a pair of them"));
    match v.as_seq() {
        Some([a]) => {
            let a = as_int(a).ok_or_else(bad)?;
            Ok([a, a])
        }
        Some([a, b]) => Ok([as_int(a).ok_or_else(bad)?, as_int(b).ok_or_else(bad)?]),
        Some(_) => Err(bad()),
        None => {
            let a = as_int(v).ok_or_else(bad)?;
            Ok([a, a])
        }
    }
}

fn pair_attr(m: &Object, key: &str, default: i64, path: &str) -> Result<[i64; 2]> {
    match m.get(key) {
        None => Ok([default, default]),
        Some(v) => pair(v, &format!("{path} ({key})")),
    }
}

fn float_list(v: &Value, path: &str) -> Result<Vec<f64>> {
    if let Some(t) = v.as_tensor() {
        return Ok(t.to_f64().iter().copied().collect());
    }
    let bad = || ConvertError::Build(format!("{path}: expected numbers"));
    match v.as_seq() {
        Some(items) => items.iter().map(|a| as_float(a).ok_or_else(bad)).collect(),
        None => Ok(vec![as_float(v).ok_or_else(bad)?]),
    }
}

/// The string keys of a dict value (absent or not a dict: none).
fn dict_keys(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::dict_items)
        .map(|d| d.iter().filter_map(|(k, _)| k.as_str()).collect())
        .unwrap_or_default()
}

/// The sub-modules of `m` (`_modules`, None entries left out), in order.
fn children(m: &Object) -> Result<Vec<(&str, &Object)>> {
    let Some(items) = m.get("_modules").and_then(Value::dict_items) else {
        return Ok(vec![]);
    };
    let mut out = vec![];
    for (k, v) in items {
        let key = k.as_str().unwrap_or("?");
        match v {
            Value::None => {}
            Value::Object(o) => out.push((key, o.as_ref())),
            _ => {
                return fail(format!(
                    "{}: sub-module '{key}' is a {}, not a module",
                    m.classname(),
                    type_name(v)
                ))
            }
        }
    }
    Ok(out)
}

fn opt_child<'a>(m: &'a Object, key: &str) -> Result<Option<&'a Object>> {
    Ok(children(m)?
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|c| c.1))
}

fn child<'a>(m: &'a Object, key: &str, path: &str) -> Result<&'a Object> {
    opt_child(m, key)?.map_or_else(
        || {
            fail(format!(
                "{} at {path}: sub-module '{key}' missing",
                m.classname()
            ))
        },
        Ok,
    )
}

/// A parameter or buffer (or tensor attribute) as float64, None when absent.
fn opt_tensor(m: &Object, key: &str) -> Option<ArrayD<f64>> {
    for group in ["_parameters", "_buffers"] {
        if let Some(t) = m
            .get(group)
            .and_then(|g| g.get(key))
            .and_then(Value::as_tensor)
        {
            return Some(t.to_f64());
        }
    }
    m.get(key).and_then(Value::as_tensor).map(|t| t.to_f64())
}

fn tensor(m: &Object, key: &str, path: &str) -> Result<ArrayD<f64>> {
    opt_tensor(m, key).map_or_else(
        || {
            fail(format!(
                "{} at {path}: tensor '{key}' missing",
                m.classname()
            ))
        },
        Ok,
    )
}

/// Python's type name of a value, for messages.
fn type_name(v: &Value) -> String {
    match v {
        Value::None => "NoneType".into(),
        Value::Bool(_) => "bool".into(),
        Value::Int(_) => "int".into(),
        Value::Float(_) => "float".into(),
        Value::Str(_) => "str".into(),
        Value::Bytes(_) => "bytes".into(),
        Value::List(_) => "list".into(),
        Value::Tuple(_) => "tuple".into(),
        Value::Dict(_) => "dict".into(),
        Value::Tensor(_) => "ndarray".into(),
        Value::Object(o) => o.name().to_string(),
    }
}

/// Python's `str()` of a dict key or a class name.
fn py_str(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Float(f) => f.to_string(),
        Value::None => "None".into(),
        other => format!("<{}>", type_name(other)),
    }
}

/// Folds BatchNorm `bn` into the convolution weight `w` and bias (see [`fold_batch_norm`]).
fn fold_bn(
    bn: &Object,
    w: ArrayD<f64>,
    bias: Option<ArrayD<f64>>,
    path: &str,
) -> Result<(ArrayD<f64>, ArrayD<f64>)> {
    if bn.name() != "BatchNorm2d" {
        return fail(format!(
            "{} at {path}: expected torch.nn.BatchNorm2d",
            bn.classname()
        ));
    }
    state(bn)?;
    let flat = |a: ArrayD<f64>| a.iter().copied().collect::<Vec<f64>>();
    let mean = flat(tensor(bn, "running_mean", path)?);
    let var = flat(tensor(bn, "running_var", path)?);
    let eps = float_attr(bn, "eps", 1e-5)?;
    let n = mean.len();
    let gamma = opt_tensor(bn, "weight").map_or_else(|| vec![1.0; n], flat);
    let beta = opt_tensor(bn, "bias").map_or_else(|| vec![0.0; n], flat);
    let b0 = bias.map_or_else(|| vec![0.0; n], flat);
    if [var.len(), gamma.len(), beta.len(), b0.len()]
        .iter()
        .any(|&l| l != n)
        || w.ndim() == 0
        || w.shape()[0] != n
    {
        return fail(format!(
            "BatchNorm2d at {path}: {n} channels, the convolution has others"
        ));
    }
    let (w, b) = fold_batch_norm(w, &b0, &mean, &var, &gamma, &beta, eps);
    Ok((w, ArrayD::from_shape_vec(IxDyn(&[n]), b).expect("n values")))
}

/// A BatchNorm folded into the convolution before it, in float64 as the Python converter did:
/// `w * s` and `beta + (bias - mean) * s` with `s = gamma / sqrt(var + eps)` per output
/// channel (axis 0 of `w`; every slice has `mean.len()` entries).
pub fn fold_batch_norm(
    mut w: ArrayD<f64>,
    bias: &[f64],
    mean: &[f64],
    var: &[f64],
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
) -> (ArrayD<f64>, Vec<f64>) {
    let scale: Vec<f64> = gamma
        .iter()
        .zip(var)
        .map(|(g, v)| g / (v + eps).sqrt())
        .collect();
    for (c, mut sub) in w.axis_iter_mut(Axis(0)).enumerate() {
        sub.mapv_inplace(|v| v * scale[c]);
    }
    let b = (0..scale.len())
        .map(|c| beta[c] + (bias[c] - mean[c]) * scale[c])
        .collect();
    (w, b)
}

// ---- the model ----------------------------------------------------------------------------

/// The pickled model of a checkpoint dict, preferring `ema` as ultralytics does.
fn pick_model(ckpt: &Value) -> Result<&Object> {
    if let Some(o) = ckpt.as_object() {
        return Ok(o);
    }
    let Some(items) = ckpt.dict_items() else {
        return fail(format!(
            "not a YOLO checkpoint: a {}, not a dict",
            type_name(ckpt)
        ));
    };
    for key in ["ema", "model"] {
        match ckpt.get(key) {
            None | Some(Value::None) => {}
            Some(Value::Dict(d)) if d.is_empty() => {}
            Some(Value::Object(o)) => return Ok(o),
            Some(other) => {
                return fail(format!(
                    "not a YOLO checkpoint: '{key}' holds a {}, not a pickled model (a bare \
                     state dict cannot be converted)",
                    type_name(other)
                ))
            }
        }
    }
    let keys: Vec<String> = items.iter().take(8).map(|(k, _)| py_str(k)).collect();
    fail(format!(
        "not a YOLO checkpoint: no 'model' or 'ema' entry (keys: {})",
        keys.join(", ")
    ))
}

fn layers(model: &Object) -> Result<Vec<&Object>> {
    state(model)?;
    let Some(seq) = opt_child(model, "model")? else {
        return fail(format!(
            "{}: no 'model' layer list (not a YOLO DetectionModel)",
            model.classname()
        ));
    };
    state(seq)?;
    let layers: Vec<&Object> = children(seq)?.into_iter().map(|c| c.1).collect();
    if layers.is_empty() {
        return fail(format!("{}: empty layer list", model.classname()));
    }
    Ok(layers)
}

/// Channels of the image input: the first convolution weight found depth-first.
fn in_channels(layer: &Object, path: &str) -> Result<i64> {
    let mut stack = vec![layer];
    while let Some(m) = stack.pop() {
        if m.name() == "Conv2d" {
            let w = m
                .get("_parameters")
                .and_then(|p| p.get("weight"))
                .and_then(Value::as_tensor);
            if let Some(w) = w {
                if w.shape().len() == 4 {
                    return Ok(w.shape()[1] as i64 * int_attr(m, "groups", 1, path)?);
                }
            }
        }
        let kids = children(m)?;
        stack.extend(kids.into_iter().rev().map(|c| c.1));
    }
    fail(format!(
        "{path}: no convolution to read the input channels from"
    ))
}

/// `"yolov8"` (ultralytics Detect: [b, 4 + nc, N]) or `"yolov5"` (anchor-based Detect:
/// [b, N, 5 + nc]).
pub fn detector_layout(ckpt: &Value) -> Result<&'static str> {
    let layers = layers(pick_model(ckpt)?)?;
    let head = layers[layers.len() - 1];
    Ok(if dict_keys(head.get("_modules")).contains(&"cv2") {
        "yolov8"
    } else {
        "yolov5"
    })
}

/// A negative `f` counts back from the current layer, as Python list indexing does.
fn index(j: i64, i: i64) -> i64 {
    if j < 0 {
        i + j
    } else {
        j
    }
}

/// A JSON string literal as Python's `json.dumps` writes it (non-ASCII escaped).
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The class names of the model (`names`: a list or a dict) as `json.dumps` of a
/// `{"0": "animal", ...}` dict, None when the model has none.
fn names_json(model: &Object) -> Option<String> {
    let pairs: Vec<(String, String)> = match model.get("names")? {
        Value::List(v) | Value::Tuple(v) => v
            .iter()
            .enumerate()
            .map(|(i, n)| (i.to_string(), py_str(n)))
            .collect(),
        Value::Dict(d) => d.iter().map(|(k, n)| (py_str(k), py_str(n))).collect(),
        _ => return None,
    };
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}: {}", json_str(k), json_str(v)))
        .collect();
    Some(format!("{{{}}}", body.join(", ")))
}

/// The ONNX graph of an ultralytics (YOLOv8, YOLO11) or YOLOv5 detection checkpoint, and the
/// metadata to stamp with it (`layout`, `stride`, `nc`, `names`): input `images`
/// [batch, 3, height, width] (float 0..1, height and width multiples of the largest stride),
/// output `output0` as the model returns it in eval mode.
pub fn build_detector(ckpt: &Value) -> Result<(Graph, Vec<(String, String)>)> {
    let model = pick_model(ckpt)?;
    let layers = layers(model)?;
    let head = layers[layers.len() - 1];
    if head.name() != "Detect" {
        return fail(format!(
            "last layer is {}, not a Detect head (classification, segmentation and pose models \
             are not detectors)",
            head.classname()
        ));
    }
    state(head)?;
    let layout = detector_layout(ckpt)?;
    let nc = int_req(head, "nc", "Detect")?;
    let mut b = Builder::new("yolo_detector");
    let channels = in_channels(layers[0], "model.0")?;
    let images = b.g.input(
        "images",
        Elem::Float,
        &[
            Dim::Named("batch".into()),
            Dim::Fixed(channels),
            Dim::Named("height".into()),
            Dim::Named("width".into()),
        ],
    );
    let mut outputs: HashMap<i64, String> = HashMap::new();
    let mut x = images;
    for (pos, layer) in layers.iter().enumerate() {
        let lpath = format!("model.{pos}");
        state(layer)?;
        let i = int_attr(layer, "i", pos as i64, &lpath)?;
        let take = |j: i64, x: &str| -> Result<String> {
            if j == -1 {
                return Ok(x.to_string());
            }
            outputs.get(&index(j, i)).cloned().map_or_else(
                || {
                    fail(format!(
                        "model.{i}: its input {j} is no earlier layer's output"
                    ))
                },
                Ok,
            )
        };
        let input = match layer.get("f") {
            None => Input::One(x.clone()),
            Some(f) => match f.as_seq() {
                Some(js) => Input::Many(
                    js.iter()
                        .map(|j| {
                            let j = as_int(j).ok_or_else(|| {
                                ConvertError::Build(format!(
                                    "model.{i}: 'f' is not a list of integers"
                                ))
                            })?;
                            take(j, &x)
                        })
                        .collect::<Result<_>>()?,
                ),
                None => {
                    let j = as_int(f)
                        .map_or_else(|| fail(format!("model.{i}: 'f' is not an integer")), Ok)?;
                    Input::One(take(j, &x)?)
                }
            },
        };
        x = b.run(layer, &input, &format!("model.{i}"))?;
        outputs.insert(i, x.clone());
    }
    let batch = Dim::Named("batch".into());
    let anchors = Dim::Named("anchors".into());
    let shape = if layout == "yolov8" {
        [batch, Dim::Fixed(4 + nc), anchors]
    } else {
        [batch, anchors, Dim::Fixed(5 + nc)]
    };
    b.g.output(&x, "output0", Elem::Float, &shape);
    let stride = float_list(req(head, "stride", "Detect")?, "Detect")?;
    let max_stride = stride.iter().copied().fold(f64::MIN, f64::max);
    let mut meta = vec![
        ("layout".to_string(), layout.to_string()),
        ("stride".to_string(), (max_stride as i64).to_string()),
        ("nc".to_string(), nc.to_string()),
    ];
    if let Some(names) = names_json(model) {
        meta.push(("names".to_string(), names));
    }
    Ok((b.g, meta))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::convert::pickle::load_checkpoint;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/convert")
            .join(name)
    }

    fn ckpt(name: &str) -> Value {
        load_checkpoint(&fixture(name)).expect("the fixture reads")
    }

    /// `v[key]` of a dict or of an object's state, for editing a checkpoint.
    fn at<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
        let v = match v {
            Value::Object(o) => &mut o.state,
            v => v,
        };
        let Value::Dict(items) = v else {
            panic!("not a dict")
        };
        &mut items
            .iter_mut()
            .find(|(k, _)| k.as_str() == Some(key))
            .expect("the key")
            .1
    }

    /// The layer list of a checkpoint's `model`.
    fn layer_list(c: &mut Value) -> &mut Vec<(Value, Value)> {
        let seq = at(at(at(c, "model"), "_modules"), "model");
        match at(seq, "_modules") {
            Value::Dict(items) => items,
            _ => panic!("not a dict"),
        }
    }

    fn rename(v: &mut Value, module: &str, qualname: &str) {
        let Value::Object(o) = v else {
            panic!("not an object")
        };
        o.module = module.into();
        o.qualname = qualname.into();
    }

    fn message(c: &Value) -> String {
        match build_detector(c) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("built"),
        }
    }

    #[test]
    fn batch_norm_folding_matches_a_hand_computation() {
        // s = gamma / sqrt(var + eps) = [4 / sqrt(3 + 1), 2 / sqrt(15 + 1)] = [2, 0.5]
        let w = ArrayD::from_shape_vec(IxDyn(&[2, 1, 1, 2]), vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        let (mean, var, gamma, beta) = ([1.0, -1.0], [3.0, 15.0], [4.0, 2.0], [0.5, -1.0]);
        let (fw, fb) = fold_batch_norm(w.clone(), &[0.0, 0.0], &mean, &var, &gamma, &beta, 1.0);
        assert_eq!(fw.iter().copied().collect::<Vec<_>>(), [2.0, 4.0, 1.5, 2.0]);
        // beta + (0 - mean) * s = [0.5 - 2, -1 + 0.5]
        assert_eq!(fb, [-1.5, -0.5]);
        // with a convolution bias [1, 3]: [0.5 + 0 * 2, -1 + 4 * 0.5]
        let (_, fb) = fold_batch_norm(w, &[1.0, 3.0], &mean, &var, &gamma, &beta, 1.0);
        assert_eq!(fb, [0.5, 1.0]);
    }

    #[test]
    fn unknown_module_names_its_class_its_path_and_the_known_ones() {
        let mut c = ckpt("yolo11_tiny.pt");
        let layers = layer_list(&mut c);
        let eight = layers
            .iter_mut()
            .find(|(k, _)| k.as_str() == Some("8"))
            .unwrap();
        rename(&mut eight.1, "ultralytics.nn.modules.block", "RepNCSPELAN4");
        let msg = message(&c);
        assert!(msg.starts_with("unsupported module ultralytics.nn.modules.block.RepNCSPELAN4 at model.8: this converter knows Attention, Bottleneck, C2PSA, C2f, C3, C3k, C3k2,"), "{msg}");
        assert!(msg.contains("Detect") && !msg.contains('\n'), "{msg}");
    }

    #[test]
    fn nested_unknown_module_names_its_path() {
        let mut c = ckpt("yolov8_tiny.pt");
        let zero = &mut layer_list(&mut c)[0].1;
        rename(at(at(zero, "_modules"), "act"), "torch.nn", "Softsign");
        assert!(message(&c).contains("torch.nn.Softsign at model.0.act"));
    }

    #[test]
    fn what_is_not_a_detector_is_refused_clearly() {
        let mut c = ckpt("yolov8_tiny.pt");
        let last = layer_list(&mut c).last_mut().unwrap();
        rename(&mut last.1, "ultralytics.nn.modules.head", "Classify");
        assert!(message(&c).contains("not a Detect head"));

        let empty = Value::Dict(vec![(Value::Str("state_dict".into()), Value::Dict(vec![]))]);
        assert_eq!(
            message(&empty),
            "not a YOLO checkpoint: no 'model' or 'ema' entry (keys: state_dict)"
        );
        let modules = at(
            &mut layer_list(&mut ckpt("yolov8_tiny.pt"))[0].1,
            "_modules",
        )
        .clone();
        let bare = Value::Dict(vec![(Value::Str("model".into()), modules)]);
        assert!(message(&bare).contains("'model' holds a dict"));
        assert!(message(&bare).contains("bare state dict"));
        assert!(message(&Value::List(vec![])).contains("a list, not a dict"));
    }

    #[test]
    fn end_to_end_heads_are_refused() {
        let mut c = ckpt("yolo11_tiny.pt");
        let head = &mut layer_list(&mut c).last_mut().unwrap().1;
        let Value::Object(o) = head else { panic!() };
        let Value::Dict(items) = &mut o.state else {
            panic!()
        };
        items.push((Value::Str("end2end".into()), Value::Bool(true)));
        assert!(message(&c).contains("end-to-end (NMS-free) heads are unsupported"));
    }

    #[test]
    fn ema_is_preferred_and_a_broken_model_beside_it_never_read() {
        let c = ckpt("yolov8_tiny.pt");
        let bytes = |c: &Value| {
            let (g, meta) = build_detector(c).unwrap();
            let meta: Vec<(&str, &str)> =
                meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            g.to_model_bytes(OPSET, &meta)
        };
        let plain = bytes(&c);
        let mut swapped = c.clone();
        let model = std::mem::replace(at(&mut swapped, "model"), Value::None);
        *at(&mut swapped, "ema") = model.clone();
        assert_eq!(bytes(&swapped), plain);
        let mut broken = model;
        *at(&mut broken, "_modules") = Value::Dict(vec![]);
        *at(&mut swapped, "model") = broken;
        assert_eq!(bytes(&swapped), plain);
    }

    #[test]
    fn layouts_and_metadata_come_from_the_checkpoint() {
        for (name, layout, stride) in [
            ("yolov8_tiny.pt", "yolov8", "32"),
            ("yolo11_tiny.pt", "yolov8", "32"),
            ("yolov5_p6_tiny.pt", "yolov5", "64"),
        ] {
            let c = ckpt(name);
            assert_eq!(detector_layout(&c).unwrap(), layout);
            let (_, meta) = build_detector(&c).unwrap();
            let get = |k: &str| {
                meta.iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(get("layout"), Some(layout));
            assert_eq!(get("stride"), Some(stride), "{name}");
            assert_eq!(get("nc"), Some("3"));
        }
        let (_, meta) = build_detector(&ckpt("yolov8_tiny.pt")).unwrap();
        assert_eq!(
            meta[3],
            (
                "names".into(),
                r#"{"0": "animal", "1": "person", "2": "vehicle"}"#.into()
            )
        );
        assert_eq!(json_str("é\"\n"), r#""\u00e9\"\n""#);
    }

    /// Runs a converted detector in ONNX Runtime on an input of `h` x `w`: the output's shape.
    fn run_shape(name: &str, h: usize, w: usize) -> Option<Vec<i64>> {
        let env = match crate::runtime::environment() {
            Ok(env) => env,
            Err(e) => {
                eprintln!("skipped: {e}");
                return None;
            }
        };
        let (g, _) = build_detector(&ckpt(name)).unwrap();
        let bytes = g.to_model_bytes(OPSET, &[]);
        let mut s = ort::session::Session::builder(env)
            .unwrap()
            .commit_from_memory(&bytes)
            .unwrap();
        let x: Vec<f32> = (0..3 * h * w).map(|i| (i % 255) as f32 / 255.0).collect();
        let x = ort::value::Tensor::from_array(([1usize, 3, h, w], x)).unwrap();
        let out = s.run(ort::inputs!["images" => x]).unwrap();
        let (shape, data) = out["output0"].try_extract_tensor::<f32>().unwrap();
        assert!(data.iter().all(|v| v.is_finite()));
        Some(shape.iter().copied().collect())
    }

    #[test]
    fn anchors_follow_the_input_size_at_run_time() {
        // N = sum over levels of (H / s) * (W / s): strides 8, 16, 32 for YOLOv8; 8 to 64 and
        // three anchors per cell for the YOLOv5 P6 head.
        if let Some(shape) = run_shape("yolov8_tiny.pt", 64, 96) {
            assert_eq!(shape, [1, 7, 8 * 12 + 4 * 6 + 2 * 3]);
        }
        if let Some(shape) = run_shape("yolov5_p6_tiny.pt", 128, 192) {
            assert_eq!(shape, [1, 3 * (16 * 24 + 8 * 12 + 4 * 6 + 2 * 3), 8]);
        }
    }

    fn module(module: &str, qualname: &str, attrs: Vec<(&str, Value)>) -> Object {
        let mut state: Vec<(Value, Value)> = ["_modules", "_parameters", "_buffers"]
            .iter()
            .map(|k| (Value::Str(k.to_string()), Value::Dict(vec![])))
            .collect();
        state.extend(attrs.into_iter().map(|(k, v)| (Value::Str(k.into()), v)));
        Object {
            module: module.into(),
            qualname: qualname.into(),
            args: vec![],
            state: Value::Dict(state),
            items: vec![],
        }
    }

    /// erfc by Numerical Recipes' Chebyshev fit (fractional error below 1.2e-7 everywhere).
    fn erfc(x: f64) -> f64 {
        let z = x.abs();
        let t = 1.0 / (1.0 + 0.5 * z);
        let poly = [
            -1.26551223,
            1.00002368,
            0.37409196,
            0.09678418,
            -0.18628806,
            0.27886807,
            -1.13520398,
            1.48851587,
            -0.82215223,
            0.17087277,
        ];
        let mut acc = 0.0;
        for c in poly.iter().skip(1).rev() {
            acc = t * (c + acc);
        }
        let ans = t * (-z * z + poly[0] + acc).exp();
        if x >= 0.0 {
            ans
        } else {
            2.0 - ans
        }
    }

    #[test]
    fn conv_activations_are_read_from_the_checkpoint() {
        // Each activation module against its PyTorch definition evaluated in float64.
        let Ok(env) = crate::runtime::environment() else {
            eprintln!("skipped: no ONNX Runtime");
            return;
        };
        type Case = (&'static str, Vec<(&'static str, Value)>, fn(f64) -> f64);
        let cases: [Case; 10] = [
            ("SiLU", vec![], |x| x / (1.0 + (-x).exp())),
            ("ReLU", vec![], |x| x.max(0.0)),
            (
                "LeakyReLU",
                vec![("negative_slope", Value::Float(0.1))],
                |x| {
                    if x > 0.0 {
                        x
                    } else {
                        0.1 * x
                    }
                },
            ),
            ("ReLU6", vec![], |x| x.clamp(0.0, 6.0)),
            ("Hardswish", vec![], |x| x * (x + 3.0).clamp(0.0, 6.0) / 6.0),
            (
                "GELU",
                vec![("approximate", Value::Str("none".into()))],
                |x| 0.5 * x * (2.0 - erfc(x / 2f64.sqrt())),
            ),
            ("Mish", vec![], |x| x * x.exp().ln_1p().tanh()),
            ("Sigmoid", vec![], |x| 1.0 / (1.0 + (-x).exp())),
            ("Tanh", vec![], f64::tanh),
            ("Identity", vec![], |x| x),
        ];
        let v: Vec<f32> = (0..24).map(|i| -8.0 + 16.0 * i as f32 / 23.0).collect();
        for (name, attrs, f) in cases {
            let m = module("torch.nn.modules.activation", name, attrs);
            let mut b = Builder::new("act");
            let dims = [1, 2, 3, 4].map(Dim::Fixed);
            let x = b.g.input("x", Elem::Float, &dims);
            let y = b.run(&m, &Input::One(x), "model.0.act").unwrap();
            b.g.output(&y, "y", Elem::Float, &dims);
            let bytes = b.g.to_model_bytes(OPSET, &[]);
            let mut s = ort::session::Session::builder(env)
                .unwrap()
                .commit_from_memory(&bytes)
                .unwrap();
            let input = ort::value::Tensor::from_array(([1usize, 2, 3, 4], v.clone())).unwrap();
            let out = s.run(ort::inputs!["x" => input]).unwrap();
            let (_, got) = out["y"].try_extract_tensor::<f32>().unwrap();
            for (&xi, &yi) in v.iter().zip(got) {
                let want = f(xi as f64);
                let err = (yi as f64 - want).abs();
                assert!(
                    err <= 1e-6 + 1e-5 * want.abs(),
                    "{name}({xi}) = {yi}, not {want}"
                );
            }
        }
    }
}
