//! The knowledge base: known pictures of known individuals.
//!
//! Rows of (filepath, individual id, date, location) aligned with an `[N, D]` float32 embeddings
//! matrix. On disk it is lynx-id's pair of files, so existing lynx-id bases work unchanged:
//! `informations.csv` (columns `filepath,lynx_id,date,location`, any extra columns kept) and
//! `embeddings.safetensors` (one tensor, key `"embeddings"`).
//!
//! Saves are atomic per file (temporary file, fsync, rename). The embeddings file also records,
//! in its safetensors metadata, the row count and a hash of the filepaths in order, so a pair
//! left inconsistent by a crash between the two renames is refused at load instead of silently
//! mismatching rows and vectors. Files without that metadata (written by lynx-id) are accepted.
//!
//! ```
//! use deepfaune_rs::reid::kb::{KnowledgeBase, Record};
//! let mut kb = KnowledgeBase::new(2);
//! kb.add(vec![Record::new("a.jpg", "lynx1")], &[1.0, 0.0]).unwrap();
//! let (updated, added) = kb.update(vec![Record::new("a.jpg", "lynx2"), Record::new("b.jpg", "lynx2")], &[0.0, 1.0, 1.0, 1.0]).unwrap();
//! assert_eq!((updated, added), (1, 1));
//! assert_eq!(kb.count_individual("lynx2"), 2);
//! ```

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use sha2::{Digest, Sha256};

use super::search::inverse_norms;
use super::ReidError;
use crate::export::atomic::write_atomic;

/// File name of the rows, as lynx-id names it.
pub const INFORMATIONS_CSV: &str = "informations.csv";
/// File name of the embeddings, as lynx-id names it.
pub const EMBEDDINGS_SAFETENSORS: &str = "embeddings.safetensors";
/// The tensor key in the safetensors file.
pub const EMBEDDINGS_KEY: &str = "embeddings";
/// lynx-id's column names, in its order.
pub const COLUMNS: [&str; 4] = ["filepath", "lynx_id", "date", "location"];

/// One known picture.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The picture (the row's key: unique in a base).
    pub filepath: String,
    /// The individual (`lynx_id` in lynx-id's CSV).
    pub individual_id: String,
    /// When it was taken, as written (ISO 8601 in lynx-id); `None` when unknown.
    pub date: Option<String>,
    /// Where it was taken; `None` when unknown.
    pub location: Option<String>,
    /// Values of extra CSV columns, aligned with [`KnowledgeBase::extra_columns`].
    pub extra: Vec<String>,
}

impl Record {
    /// A record with no date, location or extra values.
    pub fn new(filepath: &str, individual_id: &str) -> Record {
        Record {
            filepath: filepath.into(),
            individual_id: individual_id.into(),
            ..Default::default()
        }
    }
}

/// Rows and embeddings, kept aligned.
#[derive(Debug, Clone, Default)]
pub struct KnowledgeBase {
    dim: usize,
    records: Vec<Record>,
    embeddings: Vec<f32>,
    inv_norms: Vec<f32>,
    by_path: HashMap<String, usize>,
    extra_columns: Vec<String>,
}

fn nonempty(s: &str) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s.to_string())
    }
}

impl KnowledgeBase {
    /// An empty base for embeddings of dimension `dim`.
    pub fn new(dim: usize) -> KnowledgeBase {
        KnowledgeBase {
            dim,
            ..Default::default()
        }
    }

    /// A base from rows and a row-major `[rows, dim]` matrix; checks sizes, values and unique
    /// filepaths.
    pub fn from_parts(
        records: Vec<Record>,
        embeddings: Vec<f32>,
        dim: usize,
    ) -> Result<KnowledgeBase, ReidError> {
        let mut kb = KnowledgeBase::new(dim);
        kb.add(records, &embeddings)?;
        Ok(kb)
    }

    /// Embedding dimension (0 for an empty base loaded without a matrix).
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.records.len()
    }
    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
    /// The rows, in matrix order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }
    /// The row-major `[len, dim]` matrix.
    pub fn embeddings(&self) -> &[f32] {
        &self.embeddings
    }
    /// `1 / ||row||` per row, kept up to date for [`crate::reid::search::knn_cosine`].
    pub fn inv_norms(&self) -> &[f32] {
        &self.inv_norms
    }
    /// Names of CSV columns beyond lynx-id's four, kept through load and save.
    pub fn extra_columns(&self) -> &[String] {
        &self.extra_columns
    }
    /// The row holding `filepath`, if any.
    pub fn position(&self, filepath: &str) -> Option<usize> {
        self.by_path.get(filepath).copied()
    }
    /// How many rows show `individual_id`.
    pub fn count_individual(&self, individual_id: &str) -> usize {
        self.records
            .iter()
            .filter(|r| r.individual_id == individual_id)
            .count()
    }
    /// The distinct individuals, in order of first appearance.
    pub fn individuals(&self) -> Vec<&str> {
        let mut seen = std::collections::HashSet::new();
        self.records
            .iter()
            .map(|r| r.individual_id.as_str())
            .filter(|id| seen.insert(*id))
            .collect()
    }

    fn check_batch(
        &self,
        records: &mut [Record],
        embeddings: &[f32],
    ) -> Result<Vec<f32>, ReidError> {
        if self.dim == 0 {
            return Err(ReidError::Shape(
                "the base has no embedding dimension".into(),
            ));
        }
        if embeddings.len() != records.len() * self.dim {
            return Err(ReidError::Shape(format!(
                "{} rows but {} values (expected {} x {})",
                records.len(),
                embeddings.len(),
                records.len(),
                self.dim
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for r in records.iter_mut() {
            if r.filepath.is_empty() {
                return Err(ReidError::Argument("empty filepath".into()));
            }
            if r.individual_id.is_empty() {
                return Err(ReidError::Argument(format!(
                    "{}: empty individual id",
                    r.filepath
                )));
            }
            if !seen.insert(r.filepath.as_str()) {
                return Err(ReidError::Argument(format!(
                    "{}: filepath given twice",
                    r.filepath
                )));
            }
            r.extra.resize(self.extra_columns.len(), String::new());
        }
        inverse_norms(embeddings, self.dim)
    }

    /// Appends rows; fails (changing nothing) if a filepath is already in the base.
    pub fn add(&mut self, mut records: Vec<Record>, embeddings: &[f32]) -> Result<(), ReidError> {
        let inv = self.check_batch(&mut records, embeddings)?;
        if let Some(r) = records
            .iter()
            .find(|r| self.by_path.contains_key(&r.filepath))
        {
            return Err(ReidError::Argument(format!(
                "{}: already in the knowledge base (use update)",
                r.filepath
            )));
        }
        for r in records {
            self.by_path.insert(r.filepath.clone(), self.records.len());
            self.records.push(r);
        }
        self.embeddings.extend_from_slice(embeddings);
        self.inv_norms.extend(inv);
        Ok(())
    }

    /// lynx-id's knowledge-base update: rows whose filepath is known replace that row's
    /// individual and embedding (and its date and location when given); the others are
    /// appended. Returns (updated, added).
    pub fn update(
        &mut self,
        mut records: Vec<Record>,
        embeddings: &[f32],
    ) -> Result<(usize, usize), ReidError> {
        let inv = self.check_batch(&mut records, embeddings)?;
        let d = self.dim;
        let (mut updated, mut added) = (0, 0);
        for (i, r) in records.into_iter().enumerate() {
            let row = &embeddings[i * d..(i + 1) * d];
            match self.by_path.get(&r.filepath) {
                Some(&pos) => {
                    let old = &mut self.records[pos];
                    old.individual_id = r.individual_id;
                    if r.date.is_some() {
                        old.date = r.date;
                    }
                    if r.location.is_some() {
                        old.location = r.location;
                    }
                    self.embeddings[pos * d..(pos + 1) * d].copy_from_slice(row);
                    self.inv_norms[pos] = inv[i];
                    updated += 1;
                }
                None => {
                    self.by_path.insert(r.filepath.clone(), self.records.len());
                    self.records.push(r);
                    self.embeddings.extend_from_slice(row);
                    self.inv_norms.push(inv[i]);
                    added += 1;
                }
            }
        }
        Ok((updated, added))
    }

    /// Removes the rows of these filepaths (unknown ones are ignored); returns how many went.
    pub fn remove(&mut self, filepaths: &[String]) -> usize {
        let gone: std::collections::HashSet<usize> =
            filepaths.iter().filter_map(|p| self.position(p)).collect();
        if gone.is_empty() {
            return 0;
        }
        let d = self.dim;
        let mut keep = 0;
        for i in 0..self.records.len() {
            if gone.contains(&i) {
                continue;
            }
            if keep != i {
                self.records.swap(keep, i);
                self.embeddings.copy_within(i * d..(i + 1) * d, keep * d);
                self.inv_norms[keep] = self.inv_norms[i];
            }
            keep += 1;
        }
        self.records.truncate(keep);
        self.embeddings.truncate(keep * d);
        self.inv_norms.truncate(keep);
        self.reindex();
        gone.len()
    }

    fn reindex(&mut self) {
        self.by_path = self
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.filepath.clone(), i))
            .collect();
    }

    /// Renames an individual; fails if `new` already names another individual (use
    /// [`merge_individuals`](Self::merge_individuals)) or `old` is unknown. Returns the rows changed.
    pub fn rename_individual(&mut self, old: &str, new: &str) -> Result<usize, ReidError> {
        if new.is_empty() {
            return Err(ReidError::Argument("empty individual id".into()));
        }
        if old != new && self.count_individual(new) > 0 {
            return Err(ReidError::Argument(format!(
                "'{new}' already exists: merge the individuals instead"
            )));
        }
        let n = self.relabel(&[old], new);
        if n == 0 {
            return Err(ReidError::Argument(format!("no individual '{old}'")));
        }
        Ok(n)
    }

    /// Gives the rows of all `sources` the id `into` (which may be new or one of them); fails if
    /// a source is unknown. Returns the rows changed.
    pub fn merge_individuals(&mut self, sources: &[&str], into: &str) -> Result<usize, ReidError> {
        if into.is_empty() {
            return Err(ReidError::Argument("empty individual id".into()));
        }
        if let Some(s) = sources.iter().find(|s| self.count_individual(s) == 0) {
            return Err(ReidError::Argument(format!("no individual '{s}'")));
        }
        Ok(self.relabel(sources, into))
    }

    fn relabel(&mut self, sources: &[&str], into: &str) -> usize {
        let mut n = 0;
        for r in &mut self.records {
            if sources.contains(&r.individual_id.as_str()) && r.individual_id != into {
                r.individual_id = into.to_string();
                n += 1;
            }
        }
        n
    }

    /// Reads `informations.csv` and `embeddings.safetensors` from a folder.
    pub fn load(folder: &Path) -> Result<KnowledgeBase, ReidError> {
        Self::load_files(
            &folder.join(INFORMATIONS_CSV),
            &folder.join(EMBEDDINGS_SAFETENSORS),
        )
    }

    /// Reads a lynx-id pair of files.
    pub fn load_files(csv_path: &Path, embeddings_path: &Path) -> Result<KnowledgeBase, ReidError> {
        let csv = std::fs::read(csv_path).map_err(|e| ReidError::io(csv_path, e))?;
        let bytes =
            std::fs::read(embeddings_path).map_err(|e| ReidError::io(embeddings_path, e))?;
        Self::from_bytes(
            &csv,
            &csv_path.display().to_string(),
            &bytes,
            &embeddings_path.display().to_string(),
        )
    }

    /// Reads a lynx-id pair held in memory: the CSV text and the safetensors bytes, each with
    /// the name that errors give it.
    pub fn from_bytes(
        csv: &[u8],
        csv_name: &str,
        embeddings: &[u8],
        embeddings_name: &str,
    ) -> Result<KnowledgeBase, ReidError> {
        let (records, extra_columns) = read_csv(csv, csv_name)?;
        let (embeddings, rows, dim, fingerprint) = read_embeddings(embeddings, embeddings_name)?;
        let bad = |reason: String| ReidError::Format {
            path: embeddings_name.to_string(),
            reason,
        };
        if rows != records.len() {
            return Err(bad(format!(
                "{rows} embeddings but {} rows in {csv_name}",
                records.len(),
            )));
        }
        if let Some(f) = fingerprint {
            if f != filepaths_fingerprint(&records) {
                return Err(bad(format!(
                    "was saved with other filepaths than {csv_name} (an interrupted save?)",
                )));
            }
        }
        let mut kb = KnowledgeBase::new(dim);
        kb.extra_columns = extra_columns;
        if dim > 0 {
            kb.add(records, &embeddings)
                .map_err(|e| bad(e.to_string()))?;
        }
        Ok(kb)
    }

    /// Writes `informations.csv` and `embeddings.safetensors` into a folder (created if needed).
    pub fn save(&self, folder: &Path) -> Result<(), ReidError> {
        std::fs::create_dir_all(folder).map_err(|e| ReidError::Io {
            path: folder.display().to_string(),
            reason: e.to_string(),
        })?;
        self.save_files(
            &folder.join(INFORMATIONS_CSV),
            &folder.join(EMBEDDINGS_SAFETENSORS),
        )
    }

    /// Writes the pair of files, each atomically; embeddings first.
    pub fn save_files(&self, csv_path: &Path, embeddings_path: &Path) -> Result<(), ReidError> {
        let csv = self.csv_bytes()?;
        let st = self.safetensors_bytes()?;
        let io = |p: &Path, e: crate::Error| ReidError::Io {
            path: p.display().to_string(),
            reason: e.to_string(),
        };
        write_atomic(embeddings_path, &st).map_err(|e| io(embeddings_path, e))?;
        write_atomic(csv_path, &csv).map_err(|e| io(csv_path, e))?;
        Ok(())
    }

    /// The CSV text lynx-id reads.
    pub fn csv_bytes(&self) -> Result<Vec<u8>, ReidError> {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        let err = |e: csv::Error| ReidError::Argument(format!("CSV: {e}"));
        let header: Vec<&str> = COLUMNS
            .iter()
            .copied()
            .chain(self.extra_columns.iter().map(String::as_str))
            .collect();
        w.write_record(&header).map_err(err)?;
        for r in &self.records {
            let mut row = vec![
                r.filepath.as_str(),
                r.individual_id.as_str(),
                r.date.as_deref().unwrap_or(""),
                r.location.as_deref().unwrap_or(""),
            ];
            row.extend(r.extra.iter().map(String::as_str));
            w.write_record(&row).map_err(err)?;
        }
        w.into_inner()
            .map_err(|e| ReidError::Argument(format!("CSV: {e}")))
    }

    /// The safetensors bytes: `embeddings` as F32 `[len, dim]`, plus consistency metadata.
    pub fn safetensors_bytes(&self) -> Result<Vec<u8>, ReidError> {
        let data: &[u8] = bytemuck_f32(&self.embeddings);
        let view = TensorView::new(Dtype::F32, vec![self.len(), self.dim], data)
            .map_err(|e| ReidError::Shape(e.to_string()))?;
        let meta: HashMap<String, String> = [
            ("format".to_string(), "pt".to_string()),
            ("rows".to_string(), self.len().to_string()),
            (
                "filepaths_sha256".to_string(),
                filepaths_fingerprint(&self.records),
            ),
            ("writer".to_string(), "deepfaune-rs".to_string()),
        ]
        .into();
        safetensors::serialize([(EMBEDDINGS_KEY, view)], Some(meta))
            .map_err(|e| ReidError::Shape(e.to_string()))
    }
}

/// The bytes of an `f32` slice, native (little-endian on every supported target) order.
fn bytemuck_f32(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any byte pattern is a valid u8; the length is exact.
    unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
}

fn filepaths_fingerprint(records: &[Record]) -> String {
    let mut h = Sha256::new();
    for r in records {
        h.update(r.filepath.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Rows and extra column names of a lynx-id CSV.
fn read_csv(text: &[u8], origin: &str) -> Result<(Vec<Record>, Vec<String>), ReidError> {
    let bad = |reason: String| ReidError::Format {
        path: origin.to_string(),
        reason,
    };
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(text);
    let headers: Vec<String> = rd
        .headers()
        .map_err(|e| bad(e.to_string()))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_string())
        .collect();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let fp = col("filepath").ok_or_else(|| bad("no 'filepath' column".into()))?;
    let id = col("lynx_id")
        .or_else(|| col("individual_id"))
        .ok_or_else(|| bad("no 'lynx_id' column".into()))?;
    let (date, loc) = (col("date"), col("location"));
    let known = [Some(fp), Some(id), date, loc];
    let extra_idx: Vec<usize> = (0..headers.len())
        .filter(|i| !known.contains(&Some(*i)))
        .collect();
    // pandas writes an unnamed index column when saved with index=True: drop it, it is not data.
    let extra_idx: Vec<usize> = extra_idx
        .into_iter()
        .filter(|&i| !headers[i].is_empty())
        .collect();
    let extra_columns = extra_idx.iter().map(|&i| headers[i].clone()).collect();
    let mut records = Vec::new();
    for (line, row) in rd.records().enumerate() {
        let row = row.map_err(|e| bad(e.to_string()))?;
        let get = |i: usize| row.get(i).unwrap_or("");
        let filepath = get(fp).to_string();
        let individual_id = get(id).to_string();
        if filepath.is_empty() || individual_id.is_empty() {
            return Err(bad(format!(
                "row {} has an empty filepath or lynx_id",
                line + 1
            )));
        }
        records.push(Record {
            filepath,
            individual_id,
            date: date.and_then(|i| nonempty(get(i))),
            location: loc.and_then(|i| nonempty(get(i))),
            extra: extra_idx.iter().map(|&i| get(i).to_string()).collect(),
        });
    }
    Ok((records, extra_columns))
}

/// (matrix as f32, rows, dim, filepaths fingerprint if written by us).
fn read_embeddings(
    bytes: &[u8],
    origin: &str,
) -> Result<(Vec<f32>, usize, usize, Option<String>), ReidError> {
    let bad = |reason: String| ReidError::Format {
        path: origin.to_string(),
        reason,
    };
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    let t = st
        .tensor(EMBEDDINGS_KEY)
        .map_err(|_| bad(format!("no tensor named '{EMBEDDINGS_KEY}'")))?;
    let (rows, dim) = match t.shape() {
        [r, d] => (*r, *d),
        [0] => (0, 0),
        s => {
            return Err(bad(format!(
                "embeddings have shape {s:?}, expected [rows, dim]"
            )))
        }
    };
    let data = t.data();
    let values: Vec<f32> = match t.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
            .collect(),
        other => {
            return Err(bad(format!(
                "embeddings dtype {other:?} is not a float type"
            )))
        }
    };
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(e.to_string()))?;
    let fingerprint = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("filepaths_sha256").cloned());
    Ok((values, rows, dim, fingerprint))
}

/// IEEE half to single precision.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value = m * 2^-24.
            let v = m as f32 * f32::powi(2.0, -24);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kb3() -> KnowledgeBase {
        let mut r = vec![
            Record::new("x/1.jpg", "A"),
            Record::new("x/2, quoted \"name\".jpg", "B"),
            Record::new("3.jpg", "A"),
        ];
        r[0].date = Some("2020-01-02".into());
        r[1].location = Some("Forêt".into());
        KnowledgeBase::from_parts(r, vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5], 2).unwrap()
    }

    #[test]
    fn save_load_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let kb = kb3();
        kb.save(t.path()).unwrap();
        let back = KnowledgeBase::load(t.path()).unwrap();
        assert_eq!(back.records(), kb.records());
        assert_eq!(back.embeddings(), kb.embeddings());
        assert_eq!(back.inv_norms(), kb.inv_norms());
        let names: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
    }

    #[test]
    fn interrupted_save_is_detected() {
        let t = tempfile::tempdir().unwrap();
        let mut kb = kb3();
        kb.save(t.path()).unwrap();
        // Simulate a crash after the embeddings rename: new embeddings, old CSV.
        kb.remove(&["3.jpg".into()]);
        kb.add(vec![Record::new("4.jpg", "C")], &[0.3, 0.3])
            .unwrap();
        std::fs::write(
            t.path().join(EMBEDDINGS_SAFETENSORS),
            kb.safetensors_bytes().unwrap(),
        )
        .unwrap();
        let err = KnowledgeBase::load(t.path()).unwrap_err().to_string();
        assert!(err.contains("interrupted save"), "{err}");
    }

    #[test]
    fn update_remove_rename_merge() {
        let mut kb = kb3();
        let mut r = Record::new("3.jpg", "B");
        r.location = Some("here".into());
        assert_eq!(
            kb.update(vec![r, Record::new("5.jpg", "C")], &[0.0, 2.0, 3.0, 4.0])
                .unwrap(),
            (1, 1)
        );
        assert_eq!(kb.records()[2].individual_id, "B");
        assert_eq!(kb.records()[2].location.as_deref(), Some("here"));
        assert_eq!(&kb.embeddings()[4..6], &[0.0, 2.0]);
        assert_eq!(kb.inv_norms()[2], 0.5);
        assert!(kb
            .add(vec![Record::new("5.jpg", "C")], &[1.0, 1.0])
            .is_err());
        assert_eq!(kb.remove(&["x/1.jpg".into(), "nope".into()]), 1);
        assert_eq!(kb.len(), 3);
        assert_eq!(kb.position("5.jpg"), Some(2));
        assert_eq!(&kb.embeddings()[4..6], &[3.0, 4.0]);
        assert!(kb.rename_individual("B", "C").is_err());
        assert_eq!(kb.rename_individual("B", "Bob").unwrap(), 2);
        assert_eq!(kb.merge_individuals(&["Bob", "C"], "C").unwrap(), 2);
        assert_eq!(kb.individuals(), vec!["C"]);
        assert!(kb.merge_individuals(&["zzz"], "C").is_err());
    }

    #[test]
    fn bad_input_is_refused() {
        let mut kb = KnowledgeBase::new(2);
        assert!(kb.add(vec![Record::new("a", "A")], &[1.0]).is_err());
        assert!(kb
            .add(vec![Record::new("a", "A")], &[f32::NAN, 1.0])
            .is_err());
        assert!(kb
            .add(
                vec![Record::new("a", "A"), Record::new("a", "B")],
                &[1.0; 4]
            )
            .is_err());
        assert!(kb.is_empty());
        let t = tempfile::tempdir().unwrap();
        assert!(matches!(
            KnowledgeBase::load(t.path()),
            Err(ReidError::NotFound(_))
        ));
        std::fs::write(t.path().join(INFORMATIONS_CSV), "filepath,lynx_id\na,A\n").unwrap();
        std::fs::write(t.path().join(EMBEDDINGS_SAFETENSORS), b"garbage").unwrap();
        assert!(matches!(
            KnowledgeBase::load(t.path()),
            Err(ReidError::Format { .. })
        ));
    }

    #[test]
    fn half_precision() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), f32::powi(2.0, -24));
    }
}
