//! The ONNX writer: the bytes decoded back field by field, and a small graph run in ONNX Runtime
//! against values computed by hand.

use super::*;

/// A protobuf message's fields: (field number, wire type, varint value or bytes).
fn fields(mut b: &[u8]) -> Vec<(u32, u8, u64, Vec<u8>)> {
    fn varint(b: &mut &[u8]) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let c = b[0];
            *b = &b[1..];
            v |= u64::from(c & 0x7F) << shift;
            if c < 0x80 {
                return v;
            }
            shift += 7;
        }
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let tag = varint(&mut b);
        let (field, wire) = ((tag >> 3) as u32, (tag & 7) as u8);
        match wire {
            0 => out.push((field, 0, varint(&mut b), Vec::new())),
            2 => {
                let n = varint(&mut b) as usize;
                out.push((field, 2, 0, b[..n].to_vec()));
                b = &b[n..];
            }
            5 => {
                out.push((field, 5, 0, b[..4].to_vec()));
                b = &b[4..];
            }
            w => panic!("wire type {w}"),
        }
    }
    out
}

fn strings(msg: &[u8], field: u32) -> Vec<String> {
    fields(msg)
        .into_iter()
        .filter(|f| f.0 == field)
        .map(|f| String::from_utf8(f.3).unwrap())
        .collect()
}

fn small_graph() -> Graph {
    let mut g = Graph::new("tiny");
    let x = g.input(
        "x",
        Elem::Float,
        &[Dim::Named("batch".into()), Dim::Fixed(2)],
    );
    let w = g.init(
        "w",
        ndarray::arr2(&[[1.0f32, 2.0, 3.0], [-1.0, 0.5, 0.0]]).into_dyn(),
    );
    let w2 = g.init("w", ndarray::arr1(&[1.0f32, 1.0, 1.0]).into_dyn());
    let y = g.op("MatMul", &[&x, &w], vec![]);
    let y = g.op("Add", &[&y, &w2], vec![]);
    let y = g.op_named("LeakyRelu", &[&y], "act", vec![("alpha", Attr::Float(0.5))]);
    let split = g.const_i64(&[1, 2], &[2]);
    let parts = g.op_n("Split", &[&y, &split], 2, vec![("axis", Attr::Int(-1))]);
    let scale = g.const_f32(&[10.0], &[]);
    let a = g.op("Mul", &[&parts[0], &scale], vec![]);
    let cat = g.op("Concat", &[&parts[1], &a], vec![("axis", Attr::Int(1))]);
    // An optional input left out (Clip's min) and a renamed output.
    let max = g.const_f32(&[6.0], &[]);
    let clipped = g.op("Clip", &[&cat, "", &max], vec![]);
    g.output(
        &clipped,
        "out",
        Elem::Float,
        &[Dim::Named("batch".into()), Dim::Fixed(3)],
    );
    g
}

#[test]
fn model_bytes_decode_to_the_graph_built() {
    let g = small_graph();
    let bytes = g.to_model_bytes(17, &[("kind", "test"), ("converter", "deepfaune-rs")]);
    let model = fields(&bytes);
    assert_eq!((model[0].0, model[0].2), (1, 8)); // ir_version
    assert_eq!(strings(&bytes, 2), ["deepfaune-rs"]);
    let opset = model.iter().find(|f| f.0 == 8).unwrap();
    assert_eq!(fields(&opset.3).iter().find(|f| f.0 == 2).unwrap().2, 17);
    let meta: Vec<Vec<String>> = model
        .iter()
        .filter(|f| f.0 == 14)
        .map(|f| vec![strings(&f.3, 1)[0].clone(), strings(&f.3, 2)[0].clone()])
        .collect();
    assert_eq!(meta, [["kind", "test"], ["converter", "deepfaune-rs"]]);
    let graph = &model.iter().find(|f| f.0 == 7).unwrap().3;
    assert_eq!(strings(graph, 2), ["tiny"]);
    let nodes: Vec<Vec<u8>> = fields(graph)
        .into_iter()
        .filter(|f| f.0 == 1)
        .map(|f| f.3)
        .collect();
    let ops: Vec<String> = nodes.iter().map(|n| strings(n, 4)[0].clone()).collect();
    assert_eq!(
        ops,
        [
            "MatMul",
            "Add",
            "LeakyRelu",
            "Split",
            "Mul",
            "Concat",
            "Clip",
            "Identity"
        ]
    );
    // Unique names: the second "w" initializer, the Split outputs, the optional input kept empty.
    let inits: Vec<Vec<u8>> = fields(graph)
        .into_iter()
        .filter(|f| f.0 == 5)
        .map(|f| f.3)
        .collect();
    let names: Vec<String> = inits.iter().map(|t| strings(t, 8)[0].clone()).collect();
    assert_eq!(names, ["w", "w_1", "const", "const_2", "const_3"]);
    assert_eq!(strings(&nodes[3], 2), ["split_out0", "split_out1"]);
    assert_eq!(strings(&nodes[2], 2), ["act"]);
    assert_eq!(strings(&nodes[2], 3), ["act_node"]);
    assert_eq!(strings(&nodes[6], 1)[1], "");
    // The first initializer: dims [2, 3], FLOAT, raw little-endian data.
    let t = fields(&inits[0]);
    assert_eq!(
        t.iter()
            .filter(|f| f.0 == 1)
            .map(|f| f.2)
            .collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(t.iter().find(|f| f.0 == 2).unwrap().2, 1);
    let raw = &t.iter().find(|f| f.0 == 9).unwrap().3;
    assert_eq!(raw[4..8], 2.0f32.to_le_bytes());
    // LeakyRelu's alpha: a FLOAT attribute (type 1) holding 0.5; Split's axis -1 as an INT.
    let attr = &fields(&nodes[2]).into_iter().find(|f| f.0 == 5).unwrap().3;
    let attr = fields(attr);
    assert_eq!(
        attr.iter().find(|f| f.0 == 2).unwrap().3,
        0.5f32.to_le_bytes()
    );
    assert_eq!(attr.iter().find(|f| f.0 == 20).unwrap().2, 1);
    let attr = &fields(&nodes[3]).into_iter().find(|f| f.0 == 5).unwrap().3;
    assert_eq!(fields(attr).iter().find(|f| f.0 == 3).unwrap().2 as i64, -1);
    // The input's shape: a named and a fixed dimension.
    let input = &fields(graph).into_iter().find(|f| f.0 == 11).unwrap().3;
    assert_eq!(strings(input, 1), ["x"]);
    assert!(String::from_utf8_lossy(input).contains("batch"));
}

#[test]
fn model_runs_in_onnx_runtime() {
    if let Err(e) = crate::runtime::environment() {
        eprintln!("skipped: {e}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.onnx");
    std::fs::write(&path, small_graph().to_model_bytes(17, &[])).unwrap();
    let source = crate::runtime::ModelSource::File(path);
    let mut session =
        crate::runtime::new_session(&source, crate::runtime::SessionOptions::default()).unwrap();
    let x = ndarray::arr2(&[[1.0f32, 2.0], [0.0, -4.0]]);
    let input = ort::value::TensorRef::from_array_view(x.view()).unwrap();
    let outputs = session.run(ort::inputs!["x" => input]).unwrap();
    let (shape, got) = outputs["out"].try_extract_tensor::<f32>().unwrap();
    assert_eq!(shape.iter().copied().collect::<Vec<_>>(), [2, 3]);
    // By hand: x @ w + 1 = [[0, 4, 4], [5, -1, 1]]; LeakyRelu(0.5) -> [[0, 4, 4], [5, -0.5, 1]];
    // split [1, 2]: a = [[0], [5]] * 10, b = [[4, 4], [-0.5, 1]]; concat(b, a), clipped at 6.
    assert_eq!(got, [4.0, 4.0, 0.0, -0.5, 1.0, 6.0]);
}
