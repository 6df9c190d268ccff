//! The reader on real `torch.save` files (made with torch by
//! scripts/fixtures/make_checkpoint_fixtures.py; the expected arrays are numpy's, in
//! reader_ref.npz) and on hand-written hostile or damaged files.

use std::path::{Path, PathBuf};

use super::*;
use crate::convert::testdata::{fixture, read_npz};

#[test]
fn reads_a_torch_made_file_with_every_storage_kind() {
    let obj = load_checkpoint(&fixture("reader_mixed.pt")).unwrap();
    let refs = read_npz(&fixture("reader_ref.npz"));
    let sd = obj.get("state_dict").unwrap().dict_items().unwrap();
    let keys: Vec<&str> = sd.iter().map(|(k, _)| k.as_str().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "f32",
            "f16",
            "bf16",
            "i64_transposed",
            "scalar",
            "param",
            "sliced"
        ]
    );
    for (k, v) in sd {
        let name = k.as_str().unwrap();
        let r = &refs[name];
        let t = v.as_tensor().unwrap();
        assert_eq!(t.shape(), r.shape.as_slice(), "{name}");
        assert_eq!(t.dtype().numpy_name(), numpy_name(&r.descr), "{name}");
        let got = match t.dtype() {
            // bf16 is widened to float32 as numpy's reference holds it.
            DType::BF16 => t.to_f32().iter().flat_map(|v| v.to_le_bytes()).collect(),
            _ => t.to_le_bytes(),
        };
        assert_eq!(got, r.data, "{name}");
    }
    // The same values through the typed conversions: the transposed int64 (strided view)...
    let t = obj
        .get("state_dict")
        .unwrap()
        .get("i64_transposed")
        .unwrap();
    let t = t.as_tensor().unwrap();
    assert_eq!(
        t.to_i64().iter().copied().collect::<Vec<_>>(),
        [0, 3, 1, 4, 2, 5]
    );
    assert_eq!(
        t.to_f64().iter().copied().collect::<Vec<_>>(),
        [0., 3., 1., 4., 2., 5.]
    );
    // ... and the f16 widened to float32, compared to numpy's float16 bits decoded by hand.
    let f16 = sd[1].1.as_tensor().unwrap().to_f32();
    let bits = &refs["f16"].data;
    for (i, v) in f16.iter().enumerate() {
        let h = u16::from_le_bytes([bits[2 * i], bits[2 * i + 1]]);
        let (sign, exp, frac) = (h >> 15, (h >> 10) & 0x1F, h & 0x3FF);
        let mag = 2f64.powi(i32::from(exp) - 15) * (1.0 + f64::from(frac) / 1024.0);
        let expect = if sign == 1 { -mag } else { mag };
        assert_eq!(f64::from(*v), expect);
    }
    let args = obj.get("args").unwrap();
    assert_eq!(args.get("backbone").unwrap().as_str(), Some("vit_test"));
    assert_eq!(args.get("num_classes").unwrap().as_i64(), Some(40));
    assert_eq!(args.dict_items().unwrap().len(), 2);
}

fn numpy_name(descr: &str) -> &'static str {
    match descr {
        "<f4" => "float32",
        "<f2" => "float16",
        "<i8" => "int64",
        other => panic!("unexpected dtype {other}"),
    }
}

#[test]
fn torchvision_transform_is_a_stand_in() {
    let obj = load_checkpoint(&fixture("reader_mixed.pt")).unwrap();
    let t = obj.get("transform").unwrap().as_object().unwrap();
    assert_eq!(t.classname(), "torchvision.transforms.transforms.Compose");
    let steps = t.get("transforms").unwrap().as_seq().unwrap();
    let names: Vec<&str> = steps
        .iter()
        .map(|s| s.as_object().unwrap().name())
        .collect();
    assert_eq!(names, ["Resize", "ToTensor", "Normalize"]);
    let size = steps[0].get("size").unwrap().as_seq().unwrap();
    assert_eq!(
        size.iter().map(|v| v.as_i64().unwrap()).collect::<Vec<_>>(),
        [224, 224]
    );
    // torchvision keeps Normalize's mean as given: here a tensor.
    let mean = steps[2].get("mean").unwrap().as_tensor().unwrap().to_f64();
    for (m, e) in mean.iter().zip([0.485, 0.456, 0.406]) {
        assert!((m - e).abs() <= 1e-6 * e);
    }
}

#[test]
fn tensors_view_the_memory_mapped_file() {
    let obj = load_checkpoint(&fixture("reader_mixed.pt")).unwrap();
    let sd = obj.get("state_dict").unwrap();
    assert!(sd.get("f32").unwrap().as_tensor().unwrap().is_mapped());
}

#[test]
fn hostile_pickle_made_by_torch_is_refused_unrun() {
    let marker = Path::new("/tmp/deepfaune-rs-pwned");
    let _ = std::fs::remove_file(marker);
    let e = load_checkpoint(&fixture("reader_evil.pt"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("posix.system") || e.contains("os.system"), "{e}");
    assert!(!e.contains('\n'));
    assert!(!marker.exists());
}

/// A zip archive of stored members (CRCs left 0: the reader does not check them).
fn write_zip(path: &Path, members: &[(&str, &[u8])]) {
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, data) in members {
        let offset = out.len() as u32;
        let (n, len) = (name.len() as u16, data.len() as u32);
        out.extend_from_slice(b"PK\x03\x04\x14\x00\x00\x00\x00\x00\x00\x00\x00\x00");
        out.extend_from_slice(&[0; 4]); // crc
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(b"PK\x01\x02\x14\x00\x14\x00\x00\x00\x00\x00\x00\x00\x00\x00");
        central.extend_from_slice(&[0; 4]);
        central.extend_from_slice(&len.to_le_bytes());
        central.extend_from_slice(&len.to_le_bytes());
        central.extend_from_slice(&n.to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00");
    let count = members.len() as u16;
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    std::fs::write(path, out).unwrap();
}

/// A protocol-2 pickle of `{"w": tensor(FloatStorage "0", size, stride)}` followed by `extra`
/// opcodes that leave one more value to store under "x".
fn tensor_pickle(numel: u8, size: u8, extra: &[u8]) -> Vec<u8> {
    let mut p = b"\x80\x02}(X\x01\x00\x00\x00w".to_vec();
    p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n(");
    p.extend_from_slice(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\n");
    p.extend_from_slice(b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK");
    p.extend_from_slice(&[numel, b't', b'Q', b'K', 0, b'K', size, 0x85, b'K', 1, 0x85]);
    p.extend_from_slice(b"\x89ccollections\nOrderedDict\n)RtR");
    if !extra.is_empty() {
        p.extend_from_slice(b"X\x01\x00\x00\x00x");
        p.extend_from_slice(extra);
    }
    p.extend_from_slice(b"u.");
    p
}

fn checkpoint(dir: &Path, pickle: &[u8], storage: &[u8]) -> PathBuf {
    let p = dir.join("c.pt");
    write_zip(
        &p,
        &[
            ("archive/data.pkl", pickle),
            ("archive/byteorder", b"little"),
            ("archive/data/0", storage),
        ],
    );
    p
}

fn floats(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn hand_written_checkpoint_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let p = checkpoint(
        dir.path(),
        &tensor_pickle(3, 3, b""),
        &floats(&[1.5, -2.0, 0.25]),
    );
    let obj = load_checkpoint(&p).unwrap();
    let w = obj.get("w").unwrap().as_tensor().unwrap();
    assert_eq!(w.shape(), [3]);
    assert_eq!(w.to_f32().into_raw_vec_and_offset().0, [1.5, -2.0, 0.25]);
}

#[test]
fn hostile_calls_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    for (module, name) in [
        ("os", "system"),
        ("builtins", "eval"),
        ("builtins", "getattr"),
        ("subprocess", "Popen"),
        ("__builtin__", "eval"),
    ] {
        let mut call = format!("c{module}\n{name}\nX\x02\x00\x00\x00id").into_bytes();
        call.extend_from_slice(&[0x85, b'R']); // TUPLE1, REDUCE
        let p = checkpoint(dir.path(), &tensor_pickle(3, 3, &call), &floats(&[0.; 3]));
        let e = load_checkpoint(&p).unwrap_err().to_string();
        let shown = module.replace("__builtin__", "builtins");
        assert!(e.contains(&format!("{shown}.{name}")), "{e}");
        assert!(e.contains("refused without running anything"), "{e}");
    }
}

#[test]
fn stand_ins_take_state_slots_and_items() {
    let dir = tempfile::tempdir().unwrap();
    // A stand-in built with NEWOBJ, BUILD with a (dict, slots) pair, then APPENDS and SETITEMS.
    let obj = b"cultralytics.nn.tasks\nDetectionModel\n)\x81\
}X\x02\x00\x00\x00ncK\x03s}X\x01\x00\x00\x00fJ\xff\xff\xff\xffs\x86b\
(K\x01K\x02e(X\x01\x00\x00\x00kK\x09u";
    let p = checkpoint(dir.path(), &tensor_pickle(3, 3, obj), &floats(&[0.; 3]));
    let v = load_checkpoint(&p).unwrap();
    let o = v.get("x").unwrap().as_object().unwrap();
    assert_eq!(o.classname(), "ultralytics.nn.tasks.DetectionModel");
    assert_eq!(o.name(), "DetectionModel");
    assert_eq!(o.get("nc").unwrap().as_i64(), Some(3));
    assert_eq!(o.get("f").unwrap().as_i64(), Some(-1));
    let items: Vec<String> = o.items.iter().map(|i| format!("{i:?}")).collect();
    assert_eq!(items.len(), 3);
    assert!(items[2].contains("Str(\"k\")") && items[2].contains("Int(9)"));
}

#[test]
fn tensor_past_its_storage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // size 4 over a storage of 3 elements
    let p = checkpoint(dir.path(), &tensor_pickle(3, 4, b""), &floats(&[0.; 3]));
    let e = load_checkpoint(&p).unwrap_err().to_string();
    assert!(e.contains("does not fit its storage"), "{e}");
    // a storage that claims more elements than its member holds
    let p = checkpoint(dir.path(), &tensor_pickle(9, 3, b""), &floats(&[0.; 3]));
    let e = load_checkpoint(&p).unwrap_err().to_string();
    assert!(e.contains("storage 0 holds 12 bytes, 36 needed"), "{e}");
}

#[test]
fn damaged_files_give_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.pt");
    let good = std::fs::read(fixture("reader_mixed.pt")).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not_zip", b"<html>404</html>".to_vec(), "not a zip archive"),
        ("empty", Vec::new(), "not a zip archive"),
        (
            "legacy",
            b"\x80\x02\x8a\x0alz\xfc\x9cF\xf9 j\xa8P\x19.".to_vec(),
            "legacy",
        ),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "not a zip archive",
        ),
    ];
    for (what, bytes, expect) in cases {
        std::fs::write(&p, bytes).unwrap();
        let e = load_checkpoint(&p).unwrap_err().to_string();
        assert!(e.contains(expect) && !e.contains('\n'), "{what}: {e}");
    }
    write_zip(&p, &[("archive/version", b"3\n")]);
    let e = load_checkpoint(&p).unwrap_err().to_string();
    assert!(e.contains("no data.pkl"), "{e}");
    for (pickle, expect) in [
        (&b"\x80\x02garbage"[..], "damaged checkpoint pickle"),
        (&b"\x80\x02}(X\x01\x00\x00"[..], "truncated"),
        (&b"\x80\x02h\x05."[..], "memo"),
    ] {
        let p = checkpoint(dir.path(), pickle, b"");
        let e = load_checkpoint(&p).unwrap_err().to_string();
        assert!(e.contains(expect) && !e.contains('\n'), "{e}");
    }
    let e = load_checkpoint(&dir.path().join("missing.pt"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot read"), "{e}");
}

#[test]
fn self_referencing_pickle_is_refused_not_overflowed() {
    let dir = tempfile::tempdir().unwrap();
    // a list that contains itself: ] q\x00 h\x00 a .
    let p = checkpoint(dir.path(), b"\x80\x02]q\x00h\x00a.", b"");
    let e = load_checkpoint(&p).unwrap_err().to_string();
    assert!(e.contains("nested too deeply"), "{e}");
}
