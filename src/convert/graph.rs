//! A small ONNX graph builder that writes the protobuf itself: unique names, float32
//! initializers, one call per node. The converters write networks with it instead of tracing
//! them through torch.
//!
//! The encoding follows `onnx.proto` (proto2: repeated scalars unpacked, as `onnx.helper`
//! writes them). The initializers' bytes are written once, straight into the model's buffer.

use std::collections::HashSet;

use ndarray::ArrayD;

/// A tensor element type (`TensorProto.DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// float32 (1).
    Float,
    /// int64 (7).
    Int64,
}

impl Elem {
    fn code(self) -> u64 {
        match self {
            Elem::Float => 1,
            Elem::Int64 => 7,
        }
    }
}

/// One dimension of an input's or output's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(i64),
    /// A symbolic size (`batch`, `height`).
    Named(String),
}

/// A node attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// `INT`.
    Int(i64),
    /// `FLOAT`.
    Float(f32),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `FLOATS`.
    Floats(Vec<f32>),
    /// `STRING`.
    Str(String),
}

struct Node {
    op_type: String,
    name: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    attrs: Vec<(String, Attr)>,
}

struct Initializer {
    name: String,
    elem: Elem,
    dims: Vec<i64>,
    /// Little-endian element bytes.
    raw: Vec<u8>,
}

struct ValueInfo {
    name: String,
    elem: Elem,
    shape: Vec<Dim>,
}

/// Collects nodes, initializers, inputs and outputs; [`Graph::to_model_bytes`] writes the
/// serialized `ModelProto`.
pub struct Graph {
    name: String,
    nodes: Vec<Node>,
    initializers: Vec<Initializer>,
    inputs: Vec<ValueInfo>,
    outputs: Vec<ValueInfo>,
    names: HashSet<String>,
    counter: usize,
}

impl Graph {
    /// An empty graph called `name`.
    pub fn new(name: &str) -> Graph {
        Graph {
            name: name.to_string(),
            nodes: Vec::new(),
            initializers: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            names: HashSet::new(),
            counter: 0,
        }
    }

    /// A name not used yet: `hint`, else `hint_<n>` with a counter shared by the whole graph.
    fn unique(&mut self, hint: &str) -> String {
        let base = if hint.is_empty() { "t" } else { hint };
        let mut name = base.to_string();
        while self.names.contains(&name) {
            self.counter += 1;
            name = format!("{base}_{}", self.counter);
        }
        self.names.insert(name.clone());
        name
    }

    /// Claims `name` exactly (a graph input or output).
    ///
    /// # Panics
    /// When `name` is already used: a builder's own mistake.
    fn claim(&mut self, name: &str) {
        assert!(
            self.names.insert(name.to_string()),
            "name {name} already used"
        );
    }

    /// A graph input.
    pub fn input(&mut self, name: &str, elem: Elem, shape: &[Dim]) -> String {
        self.claim(name);
        self.inputs.push(ValueInfo {
            name: name.to_string(),
            elem,
            shape: shape.to_vec(),
        });
        name.to_string()
    }

    fn add_tensor(&mut self, hint: &str, elem: Elem, dims: Vec<i64>, raw: Vec<u8>) -> String {
        let name = self.unique(hint);
        self.initializers.push(Initializer {
            name: name.clone(),
            elem,
            dims,
            raw,
        });
        name
    }

    /// A float32 initializer; its name is made unique from `hint`.
    pub fn init(&mut self, hint: &str, array: ArrayD<f32>) -> String {
        let dims = array.shape().iter().map(|&d| d as i64).collect();
        let raw = array.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add_tensor(hint, Elem::Float, dims, raw)
    }

    /// An int64 constant (shapes, axes, indices).
    pub fn const_i64(&mut self, values: &[i64], shape: &[usize]) -> String {
        assert_eq!(
            values.len(),
            shape.iter().product::<usize>(),
            "const_i64 shape"
        );
        let dims = shape.iter().map(|&d| d as i64).collect();
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add_tensor("const", Elem::Int64, dims, raw)
    }

    /// A float32 constant.
    pub fn const_f32(&mut self, values: &[f32], shape: &[usize]) -> String {
        assert_eq!(
            values.len(),
            shape.iter().product::<usize>(),
            "const_f32 shape"
        );
        let dims = shape.iter().map(|&d| d as i64).collect();
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add_tensor("const", Elem::Float, dims, raw)
    }

    /// Adds a node; returns its output's name (made from the lower-case op type).
    pub fn op(&mut self, op_type: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        let hint = op_type.to_lowercase();
        self.op_named(op_type, inputs, &hint, attrs)
    }

    /// Adds a node whose output's name is made from `hint`.
    pub fn op_named(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        hint: &str,
        attrs: Vec<(&str, Attr)>,
    ) -> String {
        let out = self.unique(hint);
        self.push_node(op_type, inputs, vec![out.clone()], hint, attrs);
        out
    }

    /// Adds a node with `n_out` outputs (`<op>_out<i>`).
    pub fn op_n(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        n_out: usize,
        attrs: Vec<(&str, Attr)>,
    ) -> Vec<String> {
        let hint = op_type.to_lowercase();
        let outs: Vec<String> = (0..n_out)
            .map(|i| self.unique(&format!("{hint}_out{i}")))
            .collect();
        self.push_node(op_type, inputs, outs.clone(), &hint, attrs);
        outs
    }

    fn push_node(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        outputs: Vec<String>,
        hint: &str,
        attrs: Vec<(&str, Attr)>,
    ) {
        let name = self.unique(&format!("{hint}_node"));
        // Sorted by name, as onnx.helper.make_node writes them.
        let mut attrs: Vec<(String, Attr)> =
            attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        attrs.sort_by(|a, b| a.0.cmp(&b.0));
        self.nodes.push(Node {
            op_type: op_type.to_string(),
            name,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs,
            attrs,
        });
    }

    /// Exposes `value` as the graph output `name` (through an Identity when renamed).
    pub fn output(&mut self, value: &str, name: &str, elem: Elem, shape: &[Dim]) -> String {
        if value != name {
            self.claim(name);
            self.nodes.push(Node {
                op_type: "Identity".into(),
                name: String::new(),
                inputs: vec![value.to_string()],
                outputs: vec![name.to_string()],
                attrs: Vec::new(),
            });
        }
        self.outputs.push(ValueInfo {
            name: name.to_string(),
            elem,
            shape: shape.to_vec(),
        });
        name.to_string()
    }

    /// The number of bytes of the initializers' data.
    pub fn weight_bytes(&self) -> usize {
        self.initializers.iter().map(|t| t.raw.len()).sum()
    }

    /// The serialized `ModelProto`: IR version 8 (9 past opset 17), opset `opset` of the default
    /// domain, producer `deepfaune-rs`, and `metadata` as its `metadata_props`.
    pub fn to_model_bytes(&self, opset: i64, metadata: &[(&str, &str)]) -> Vec<u8> {
        // Everything but the initializers' data is small: encoded first, then the model is
        // written in one buffer of the exact size.
        let mut head = Vec::new();
        for n in &self.nodes {
            put_msg(&mut head, 1, &node_bytes(n));
        }
        put_str(&mut head, 2, &self.name);
        let inits: Vec<Vec<u8>> = self.initializers.iter().map(tensor_head).collect();
        let mut tail = Vec::new();
        for v in &self.inputs {
            put_msg(&mut tail, 11, &value_info_bytes(v));
        }
        for v in &self.outputs {
            put_msg(&mut tail, 12, &value_info_bytes(v));
        }
        let init_len = |h: &Vec<u8>, t: &Initializer| {
            h.len() + 1 + varint_len(t.raw.len() as u64) + t.raw.len()
        };
        let graph_len = head.len()
            + inits
                .iter()
                .zip(&self.initializers)
                .map(|(h, t)| {
                    let l = init_len(h, t);
                    1 + varint_len(l as u64) + l
                })
                .sum::<usize>()
            + tail.len();

        let mut model = Vec::new();
        put_varint_field(&mut model, 1, if opset <= 17 { 8 } else { 9 });
        put_str(&mut model, 2, "deepfaune-rs");
        let mut out = Vec::with_capacity(model.len() + graph_len + 256);
        out.extend_from_slice(&model);
        put_tag(&mut out, 7, 2);
        put_varint(&mut out, graph_len as u64);
        out.extend_from_slice(&head);
        for (h, t) in inits.iter().zip(&self.initializers) {
            put_tag(&mut out, 5, 2);
            put_varint(&mut out, init_len(h, t) as u64);
            out.extend_from_slice(h);
            put_tag(&mut out, 9, 2);
            put_varint(&mut out, t.raw.len() as u64);
            out.extend_from_slice(&t.raw);
        }
        out.extend_from_slice(&tail);
        let mut opset_id = Vec::new();
        put_str(&mut opset_id, 1, "");
        put_varint_field(&mut opset_id, 2, opset as u64);
        put_msg(&mut out, 8, &opset_id);
        for (k, v) in metadata {
            let mut entry = Vec::new();
            put_str(&mut entry, 1, k);
            put_str(&mut entry, 2, v);
            put_msg(&mut out, 14, &entry);
        }
        out
    }
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u32, wire: u32) {
    put_varint(out, u64::from(field << 3 | wire));
}

fn put_varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    put_tag(out, field, 0);
    put_varint(out, v);
}

fn put_bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    put_tag(out, field, 2);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_str(out: &mut Vec<u8>, field: u32, s: &str) {
    put_bytes(out, field, s.as_bytes());
}

fn put_msg(out: &mut Vec<u8>, field: u32, msg: &[u8]) {
    put_bytes(out, field, msg);
}

fn put_f32(out: &mut Vec<u8>, field: u32, v: f32) {
    put_tag(out, field, 5);
    out.extend_from_slice(&v.to_le_bytes());
}

fn attr_bytes(name: &str, a: &Attr) -> Vec<u8> {
    let mut b = Vec::new();
    put_str(&mut b, 1, name);
    // AttributeProto.type: FLOAT 1, INT 2, STRING 3, FLOATS 6, INTS 7.
    let kind = match a {
        Attr::Float(f) => {
            put_f32(&mut b, 2, *f);
            1
        }
        // int64 fields: negative values are their two's complement (ten bytes).
        Attr::Int(i) => {
            put_varint_field(&mut b, 3, *i as u64);
            2
        }
        Attr::Str(s) => {
            put_str(&mut b, 4, s);
            3
        }
        Attr::Floats(fs) => {
            for f in fs {
                put_f32(&mut b, 7, *f);
            }
            6
        }
        Attr::Ints(is) => {
            for i in is {
                put_varint_field(&mut b, 8, *i as u64);
            }
            7
        }
    };
    put_varint_field(&mut b, 20, kind);
    b
}

fn node_bytes(n: &Node) -> Vec<u8> {
    let mut b = Vec::new();
    for i in &n.inputs {
        put_str(&mut b, 1, i);
    }
    for o in &n.outputs {
        put_str(&mut b, 2, o);
    }
    if !n.name.is_empty() {
        put_str(&mut b, 3, &n.name);
    }
    put_str(&mut b, 4, &n.op_type);
    for (k, a) in &n.attrs {
        put_msg(&mut b, 5, &attr_bytes(k, a));
    }
    b
}

/// A TensorProto without its `raw_data` (field 9, written after it).
fn tensor_head(t: &Initializer) -> Vec<u8> {
    let mut b = Vec::new();
    for d in &t.dims {
        put_varint_field(&mut b, 1, *d as u64);
    }
    put_varint_field(&mut b, 2, t.elem.code());
    put_str(&mut b, 8, &t.name);
    b
}

fn value_info_bytes(v: &ValueInfo) -> Vec<u8> {
    let mut shape = Vec::new();
    for d in &v.shape {
        let mut dim = Vec::new();
        match d {
            Dim::Fixed(n) => put_varint_field(&mut dim, 1, *n as u64),
            Dim::Named(s) => put_str(&mut dim, 2, s),
        }
        put_msg(&mut shape, 1, &dim);
    }
    let mut tensor = Vec::new();
    put_varint_field(&mut tensor, 1, v.elem.code());
    put_msg(&mut tensor, 2, &shape);
    let mut ty = Vec::new();
    put_msg(&mut ty, 1, &tensor);
    let mut b = Vec::new();
    put_str(&mut b, 1, &v.name);
    put_msg(&mut b, 2, &ty);
    b
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
