//! Test helpers: the fixtures of tests/fixtures/convert and a reader of numpy's `.npz` files
//! (a zip of `.npy` arrays) for their expected values.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::archive::{Archive, FileBytes};

/// A file of tests/fixtures/convert.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/convert")
        .join(name)
}

/// A `.npy` array: numpy's dtype string, shape and raw little-endian bytes.
pub struct Npy {
    pub descr: String,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

pub fn read_npz(path: &Path) -> HashMap<String, Npy> {
    let archive = Archive::new(Arc::new(FileBytes::open(path).unwrap()))
        .unwrap()
        .unwrap();
    let mut out = HashMap::new();
    for m in archive.members() {
        let b = archive.read(m).unwrap().to_vec();
        assert_eq!(&b[..6], b"\x93NUMPY");
        let hlen = usize::from(u16::from_le_bytes([b[8], b[9]]));
        let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        let descr = header.split("'descr': '").nth(1).unwrap();
        let descr = descr[..descr.find('\'').unwrap()].to_string();
        let shape = header.split("'shape': (").nth(1).unwrap();
        let shape: Vec<usize> = shape[..shape.find(')').unwrap()]
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse().unwrap())
            .collect();
        let mut data = b[10 + hlen..].to_vec();
        if header.contains("'fortran_order': True") {
            // Column-major (a transposed array): reordered to row-major, 2-D only here.
            let [rows, cols] = shape[..] else {
                panic!("{header}")
            };
            let n = data.len() / (rows * cols);
            let f = data.clone();
            for (i, j) in (0..rows).flat_map(|i| (0..cols).map(move |j| (i, j))) {
                let (c, fo) = ((i * cols + j) * n, (j * rows + i) * n);
                data[c..c + n].copy_from_slice(&f[fo..fo + n]);
            }
        }
        let name = m.name.trim_end_matches(".npy").to_string();
        out.insert(name, Npy { descr, shape, data });
    }
    out
}

impl Npy {
    /// The values as float32 (from `<f4` or `<f2`), row-major.
    pub fn f32(&self) -> Vec<f32> {
        match self.descr.as_str() {
            "<f4" => self
                .data
                .chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            "<f2" => self
                .data
                .chunks(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => panic!("not a float array: {other}"),
        }
    }
}
