//! Reading an ONNX model's graph: its inputs and nodes (names, op types, tensors in and out),
//! from the protobuf bytes, without the `onnx` package. Used to plan a static int8
//! quantisation ([`static_plan`]): which convolutions stay in float.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::error::Error;

/// One node of a graph.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    /// The node's name (may be empty).
    pub name: String,
    /// Its operator (`Conv`, `Relu`, ...).
    pub op_type: String,
    /// The tensors it reads.
    pub inputs: Vec<String>,
    /// The tensors it writes.
    pub outputs: Vec<String>,
}

/// A graph's input names (`graph.input`, in order) and nodes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Graph {
    /// The names of `graph.input`.
    pub inputs: Vec<String>,
    /// The nodes, in the file's order.
    pub nodes: Vec<Node>,
}

/// A field's payload: a number (varint) or bytes (length-delimited); fixed-size fields are
/// skipped.
enum Value<'a> {
    Number,
    Bytes(&'a [u8]),
}

fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The fields of one protobuf message, in order; `None` for bytes that are not a message.
fn fields(mut b: &[u8]) -> Option<Vec<(u64, Value<'_>)>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b)?;
        let value = match key & 7 {
            0 => {
                varint(&mut b)?;
                Value::Number
            }
            1 | 5 => {
                let n = if key & 7 == 1 { 8 } else { 4 };
                b = b.get(n..)?;
                Value::Number
            }
            2 => {
                let n = usize::try_from(varint(&mut b)?).ok()?;
                let (payload, rest) = (b.get(..n)?, b.get(n..)?);
                b = rest;
                Value::Bytes(payload)
            }
            _ => return None,
        };
        out.push((key >> 3, value));
    }
    Some(out)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The graph of a serialised `ModelProto` (`ModelProto.graph` = 7; `GraphProto.node` = 1,
/// `.input` = 11; `NodeProto.input` = 1, `.output` = 2, `.name` = 3, `.op_type` = 4;
/// `ValueInfoProto.name` = 1).
pub fn read_graph(model: &[u8]) -> Option<Graph> {
    let mut graph = Graph::default();
    for (field, value) in fields(model)? {
        let (7, Value::Bytes(g)) = (field, value) else {
            continue;
        };
        for (field, value) in fields(g)? {
            let Value::Bytes(b) = value else { continue };
            match field {
                1 => {
                    let mut node = Node::default();
                    for (f, v) in fields(b)? {
                        let Value::Bytes(s) = v else { continue };
                        match f {
                            1 => node.inputs.push(text(s)),
                            2 => node.outputs.push(text(s)),
                            3 => node.name = text(s),
                            4 => node.op_type = text(s),
                            _ => {}
                        }
                    }
                    graph.nodes.push(node);
                }
                11 => {
                    let name = fields(b)?.into_iter().find_map(|(f, v)| match (f, v) {
                        (1, Value::Bytes(s)) => Some(text(s)),
                        _ => None,
                    });
                    graph.inputs.push(name.unwrap_or_default());
                }
                _ => {}
            }
        }
    }
    Some(graph)
}

/// What a static quantisation of a detector needs from its graph: the input that calibration
/// images feed, and the convolutions left in float.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticPlan {
    /// The graph's first input.
    pub input: String,
    /// The convolutions not quantised (see [`float_convs`]).
    pub float_convs: Vec<String>,
}

/// [`StaticPlan`] of the ONNX file at `path`.
pub fn static_plan(path: &Path) -> Result<StaticPlan, Error> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::InvalidArgument(format!("{}: {e}", path.display())))?;
    let graph = read_graph(&bytes)
        .ok_or_else(|| Error::InvalidArgument(format!("{}: not an ONNX model", path.display())))?;
    let input = graph.inputs.first().cloned().ok_or_else(|| {
        Error::InvalidArgument(format!("{}: the graph has no input", path.display()))
    })?;
    Ok(StaticPlan {
        input,
        float_convs: float_convs(&graph.nodes),
    })
}

/// The convolutions a static quantisation leaves in float: the first (raw pixels), and the
/// detection head's: the module of the last convolution (`/head/` in YOLOX, `/model.22/` in
/// ultralytics' exports) or, for unnamed graphs, the convolutions no other convolution follows.
pub fn float_convs(nodes: &[Node]) -> Vec<String> {
    let convs: Vec<&str> = nodes
        .iter()
        .filter(|n| n.op_type == "Conv")
        .map(|n| n.name.as_str())
        .collect();
    let Some(&last) = convs.last() else {
        return Vec::new();
    };
    let parts: Vec<&str> = last.split('/').collect();
    let head: Vec<&str> = if last.starts_with('/') && parts.len() > 2 {
        let prefix = format!("/{}/", parts[1]);
        convs
            .iter()
            .copied()
            .filter(|c| c.starts_with(&prefix))
            .collect()
    } else {
        let mut consumers: HashMap<&str, Vec<&Node>> = HashMap::new();
        for n in nodes {
            for i in &n.inputs {
                consumers.entry(i.as_str()).or_default().push(n);
            }
        }
        // By name, the last of a name winning (as a dict built in order).
        let by_name: HashMap<&str, &Node> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        let feeds_conv = |name: &str| -> bool {
            let mut seen: HashSet<&str> = HashSet::new();
            let mut todo: Vec<&str> = by_name[name].outputs.iter().map(String::as_str).collect();
            while let Some(t) = todo.pop() {
                for c in consumers.get(t).into_iter().flatten() {
                    if c.op_type == "Conv" {
                        return true;
                    }
                    if seen.insert(c.name.as_str()) {
                        todo.extend(c.outputs.iter().map(String::as_str));
                    }
                }
            }
            false
        };
        convs.iter().copied().filter(|c| !feeds_conv(c)).collect()
    };
    let mut out: Vec<String> = Vec::new();
    for c in std::iter::once(convs[0]).chain(head) {
        if !out.iter().any(|o| o == c) {
            out.push(c.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn put_bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
        put_varint(out, (field << 3) | 2);
        put_varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }

    fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> Vec<u8> {
        let mut b = Vec::new();
        for i in inputs {
            put_bytes(&mut b, 1, i.as_bytes());
        }
        for o in outputs {
            put_bytes(&mut b, 2, o.as_bytes());
        }
        put_bytes(&mut b, 3, name.as_bytes());
        put_bytes(&mut b, 4, op.as_bytes());
        // A varint attribute-like field the reader skips (NodeProto.doc_string is 6; 9 unused).
        put_varint(&mut b, 9 << 3);
        put_varint(&mut b, 300);
        b
    }

    fn model(nodes: &[Vec<u8>], input: &str) -> Vec<u8> {
        let mut g = Vec::new();
        for n in nodes {
            put_bytes(&mut g, 1, n);
        }
        let mut vi = Vec::new();
        put_bytes(&mut vi, 1, input.as_bytes());
        put_bytes(&mut g, 11, &vi);
        let mut m = Vec::new();
        put_varint(&mut m, 1 << 3); // ir_version
        put_varint(&mut m, 8);
        put_bytes(&mut m, 7, &g);
        m
    }

    #[test]
    fn unnamed_graphs_keep_the_convolutions_no_convolution_follows() {
        // x -> conv_a -> relu -> conv_c -> {conv_d, conv_e}: conv_a feeds conv_c (through the
        // Relu), conv_c feeds both; conv_d and conv_e feed nothing. Float: the first and those.
        let nodes = [
            node("conv_a", "Conv", &["x", "w1"], &["a"]),
            node("relu", "Relu", &["a"], &["b"]),
            node("conv_c", "Conv", &["b", "w2"], &["c"]),
            node("conv_d", "Conv", &["c", "w3"], &["d"]),
            node("conv_e", "Conv", &["c", "w4"], &["e"]),
        ];
        let g = read_graph(&model(&nodes, "x")).unwrap();
        assert_eq!(g.inputs, ["x"]);
        assert_eq!(g.nodes.len(), 5);
        assert_eq!(g.nodes[1].inputs, ["a"]);
        assert_eq!(float_convs(&g.nodes), ["conv_a", "conv_d", "conv_e"]);
    }

    #[test]
    fn named_graphs_keep_the_last_convolutions_module() {
        let nodes = [
            node("/backbone/stem/Conv", "Conv", &["x"], &["a"]),
            node("/backbone/dark2/Conv", "Conv", &["a"], &["b"]),
            node("/head/stems.0/Conv", "Conv", &["b"], &["c"]),
            node("/head/preds.0/Conv", "Conv", &["c"], &["d"]),
        ];
        let g = read_graph(&model(&nodes, "images")).unwrap();
        assert_eq!(
            float_convs(&g.nodes),
            [
                "/backbone/stem/Conv",
                "/head/stems.0/Conv",
                "/head/preds.0/Conv"
            ]
        );
        assert!(read_graph(b"\xff\xff").is_none());
        assert!(float_convs(&[]).is_empty());
    }

    #[test]
    fn md_lite_as_the_onnx_package_reads_it() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/models/md_lite_yolox_tiny_640.onnx");
        if !path.is_file() {
            eprintln!("skipped: {} missing", path.display());
            return;
        }
        // onnx.load + quantize.py's _float_convs (before it moved here): input "images", 83
        // Conv nodes, 25 kept in float: the stem's and the 24 of /head/.
        let plan = static_plan(&path).unwrap();
        assert_eq!(plan.input, "images");
        let g = read_graph(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(g.nodes.iter().filter(|n| n.op_type == "Conv").count(), 83);
        assert_eq!(plan.float_convs.len(), 25);
        assert_eq!(
            plan.float_convs[0],
            "/backbone/backbone/stem/conv/conv/Conv"
        );
        assert_eq!(plan.float_convs[1], "/head/stems.0/conv/Conv");
        assert_eq!(plan.float_convs[24], "/head/obj_preds.2/Conv");
    }
}
