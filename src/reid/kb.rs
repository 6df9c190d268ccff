//! The knowledge base: known pictures of known individuals.
//!
//! Rows of (filepath, individual id, date, location) aligned with an `[N, D]` float32 embeddings
//! matrix. On disk it is lynx-id's pair of files, so existing lynx-id bases work unchanged:
//! `informations.csv` (columns `filepath,lynx_id,date,location`, any extra columns kept) and
//! `embeddings.safetensors` (one tensor, key `"embeddings"`).
//!
//! A save replaces the pair as one step, so a crash at any point leaves the old base or the new
//! one, never a mix ([`KnowledgeBase::save_files`]):
//! 1. the new CSV and embeddings are written in full beside their destinations, under names of
//!    their own (`.informations.csv.<generation>.pending`), created exclusively and synced;
//! 2. the commit point: a small marker `.informations.csv.commit` (beside the CSV), written
//!    atomically, names the pending files and their SHA-256;
//! 3. the pending files are renamed over the destinations, then the marker is removed.
//!
//! A load that finds the marker with a pending file still there takes the pending file (the
//! commit is complete from step 2 on) and checks both files against the marker's hashes; the
//! next save finishes the renames. Without the marker, pending files are leftovers of a save
//! that died before its commit point: ignored, and removed by the next save. The embeddings
//! file also records, in its safetensors metadata, the row count, the generation and a hash of
//! the filepaths in order, so a pair put together by hand from different saves is refused
//! instead of silently mismatching rows and vectors. Files without that metadata (written by
//! lynx-id) are accepted; so is a CSV edited by hand with the same filepaths. Concurrent saves
//! of one base are not supported.
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
use crate::fsio::{random_token, sync_dir, write_atomic};

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

    /// Reads a lynx-id pair of files (taking the pending files of a save that was interrupted
    /// after its commit point: see the module documentation).
    pub fn load_files(csv_path: &Path, embeddings_path: &Path) -> Result<KnowledgeBase, ReidError> {
        let (csv, bytes) = read_pair(csv_path, embeddings_path)?;
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
        if dim == 0 && rows > 0 {
            // Would load as a base without rows, and saving it would wipe them.
            return Err(bad(format!(
                "embeddings of shape [{rows}, 0]: {rows} rows without values"
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

    /// Writes the pair of files as one atomic step (see the module documentation): killed at
    /// any point, the pair loads as the old base or the new one.
    pub fn save_files(&self, csv_path: &Path, embeddings_path: &Path) -> Result<(), ReidError> {
        self.save_files_with(csv_path, embeddings_path, &mut |_| Ok(()))
    }

    /// [`Self::save_files`], calling `step` before each step that changes the disk ([`SaveStep`]);
    /// an `Err` from it stops the save on the spot, as a kill would (nothing is cleaned up).
    /// For fault-injection tests.
    #[doc(hidden)]
    pub fn save_files_with(
        &self,
        csv_path: &Path,
        embeddings_path: &Path,
        step: &mut dyn FnMut(SaveStep) -> Result<(), String>,
    ) -> Result<(), ReidError> {
        let generation = format!("{:016x}", random_token());
        let csv = self.csv_bytes()?;
        let st = self.safetensors_bytes_of(&generation)?;
        let killed = |reason: String| ReidError::Io {
            path: csv_path.display().to_string(),
            reason,
        };
        let pair = Pair::new(csv_path, embeddings_path)?;
        step(SaveStep::FinishPrevious).map_err(killed)?;
        pair.finish_interrupted()?;
        let pending_csv = pair.pending(Which::Csv, &generation);
        let pending_st = pair.pending(Which::Embeddings, &generation);
        step(SaveStep::WriteCsv).map_err(killed)?;
        write_new(&pending_csv, &csv)?;
        step(SaveStep::WriteEmbeddings).map_err(killed)?;
        write_new(&pending_st, &st).inspect_err(|_| {
            let _ = std::fs::remove_file(&pending_csv);
        })?;
        let marker = Marker {
            format: MARKER_FORMAT.into(),
            generation: generation.clone(),
            csv: file_name(&pending_csv),
            embeddings: file_name(&pending_st),
            csv_sha256: sha256_hex(&csv),
            embeddings_sha256: sha256_hex(&st),
        };
        let text = serde_json::to_vec(&marker).map_err(|e| killed(e.to_string()))?;
        // The pending files' names are durable before the marker points at them (the marker's
        // own write syncs the CSV's folder).
        sync_dir(&pair.embeddings_dir);
        step(SaveStep::Commit).map_err(killed)?;
        if let Err(e) = write_atomic(&pair.marker, &text) {
            let _ = std::fs::remove_file(&pending_csv);
            let _ = std::fs::remove_file(&pending_st);
            return Err(io_of(&pair.marker, e.to_string()));
        }
        step(SaveStep::PlaceEmbeddings).map_err(killed)?;
        rename(&pending_st, &pair.embeddings)?;
        step(SaveStep::PlaceCsv).map_err(killed)?;
        rename(&pending_csv, &pair.csv)?;
        sync_dir(&pair.embeddings_dir);
        sync_dir(&pair.csv_dir);
        step(SaveStep::RemoveMarker).map_err(killed)?;
        std::fs::remove_file(&pair.marker).map_err(|e| io_of(&pair.marker, e.to_string()))?;
        sync_dir(&pair.csv_dir);
        step(SaveStep::RemoveLeftovers).map_err(killed)?;
        pair.remove_leftovers();
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
        self.safetensors_bytes_of(&format!("{:016x}", random_token()))
    }

    fn safetensors_bytes_of(&self, generation: &str) -> Result<Vec<u8>, ReidError> {
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
            ("generation".to_string(), generation.to_string()),
        ]
        .into();
        safetensors::serialize([(EMBEDDINGS_KEY, view)], Some(meta))
            .map_err(|e| ReidError::Shape(e.to_string()))
    }
}

/// The steps of a save that change the disk, in order (see [`KnowledgeBase::save_files_with`]).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveStep {
    /// Finishing the renames of an earlier save interrupted after its commit point.
    FinishPrevious,
    /// Writing the pending CSV.
    WriteCsv,
    /// Writing the pending embeddings.
    WriteEmbeddings,
    /// Writing the commit marker (the commit point).
    Commit,
    /// Renaming the pending embeddings into place.
    PlaceEmbeddings,
    /// Renaming the pending CSV into place.
    PlaceCsv,
    /// Removing the marker.
    RemoveMarker,
    /// Removing pending files of saves that died before their commit point.
    RemoveLeftovers,
}

impl SaveStep {
    /// Every step, in order.
    pub const ALL: [SaveStep; 8] = [
        SaveStep::FinishPrevious,
        SaveStep::WriteCsv,
        SaveStep::WriteEmbeddings,
        SaveStep::Commit,
        SaveStep::PlaceEmbeddings,
        SaveStep::PlaceCsv,
        SaveStep::RemoveMarker,
        SaveStep::RemoveLeftovers,
    ];
}

const MARKER_FORMAT: &str = "deepfaune-rs-kb-commit/1";

/// The commit marker: the pending pair of one save and what its files hold.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Marker {
    format: String,
    generation: String,
    /// File name of the pending CSV, in the CSV's folder.
    csv: String,
    /// File name of the pending embeddings, in the embeddings' folder.
    embeddings: String,
    csv_sha256: String,
    embeddings_sha256: String,
}

#[derive(Clone, Copy)]
enum Which {
    Csv,
    Embeddings,
}

/// The paths of one base on disk: its two files, their folders, the commit marker.
struct Pair {
    csv: std::path::PathBuf,
    embeddings: std::path::PathBuf,
    csv_dir: std::path::PathBuf,
    embeddings_dir: std::path::PathBuf,
    marker: std::path::PathBuf,
}

fn folder(p: &Path) -> std::path::PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn io_of(p: &Path, reason: String) -> ReidError {
    ReidError::Io {
        path: p.display().to_string(),
        reason,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Creates `path` (it must not exist; never through a link), writes `bytes`, syncs. A failed
/// write removes the file.
fn write_new(path: &Path, bytes: &[u8]) -> Result<(), ReidError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o666)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    }
    let result = opts.open(path).and_then(|mut f| {
        let r = f.write_all(bytes).and_then(|_| f.sync_all());
        if r.is_err() {
            let _ = std::fs::remove_file(path);
        }
        r
    });
    result.map_err(|e| io_of(path, e.to_string()))
}

fn rename(from: &Path, to: &Path) -> Result<(), ReidError> {
    std::fs::rename(from, to).map_err(|e| io_of(to, e.to_string()))
}

impl Pair {
    fn new(csv: &Path, embeddings: &Path) -> Result<Pair, ReidError> {
        if csv.file_name().is_none() || embeddings.file_name().is_none() {
            return Err(ReidError::Argument(format!(
                "{} / {}: not file paths",
                csv.display(),
                embeddings.display()
            )));
        }
        let csv_dir = folder(csv);
        Ok(Pair {
            marker: csv_dir.join(format!(".{}.commit", file_name(csv))),
            csv: csv.to_path_buf(),
            embeddings: embeddings.to_path_buf(),
            embeddings_dir: folder(embeddings),
            csv_dir,
        })
    }

    fn pending(&self, which: Which, generation: &str) -> std::path::PathBuf {
        let (dir, target) = match which {
            Which::Csv => (&self.csv_dir, &self.csv),
            Which::Embeddings => (&self.embeddings_dir, &self.embeddings),
        };
        dir.join(format!(".{}.{generation}.pending", file_name(target)))
    }

    /// The marker, if there is a readable one.
    fn marker(&self) -> Option<Marker> {
        let text = std::fs::read(&self.marker).ok()?;
        serde_json::from_slice::<Marker>(&text)
            .ok()
            .filter(|m| m.format == MARKER_FORMAT)
    }

    /// Finishes the renames of a save interrupted after its commit point, then removes the
    /// marker and any pending leftovers.
    fn finish_interrupted(&self) -> Result<(), ReidError> {
        if let Some(m) = self.marker() {
            let st = self.embeddings_dir.join(&m.embeddings);
            let csv = self.csv_dir.join(&m.csv);
            if st.exists() {
                rename(&st, &self.embeddings)?;
            }
            if csv.exists() {
                rename(&csv, &self.csv)?;
            }
            sync_dir(&self.embeddings_dir);
            sync_dir(&self.csv_dir);
        }
        match std::fs::remove_file(&self.marker) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_of(&self.marker, e.to_string()))
            }
            _ => {}
        }
        self.remove_leftovers();
        Ok(())
    }

    /// Removes pending files of this base's two names (best effort). Called when no save is
    /// under way: they are leftovers of saves that died before their commit point.
    fn remove_leftovers(&self) {
        for (dir, target) in [
            (&self.csv_dir, &self.csv),
            (&self.embeddings_dir, &self.embeddings),
        ] {
            let prefix = format!(".{}.", file_name(target));
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(middle) = name
                    .strip_prefix(&prefix)
                    .and_then(|r| r.strip_suffix(".pending"))
                else {
                    continue;
                };
                if !middle.is_empty() && middle.bytes().all(|b| b.is_ascii_hexdigit()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// The bytes of the pair as a load sees them: the pending files of a committed save whose
/// renames were interrupted, checked against the marker's hashes; otherwise the files in place.
fn read_pair(csv_path: &Path, embeddings_path: &Path) -> Result<(Vec<u8>, Vec<u8>), ReidError> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| ReidError::io(p, e));
    let pair = Pair::new(csv_path, embeddings_path)?;
    if let Some(m) = pair.marker() {
        let pending_csv = pair.csv_dir.join(&m.csv);
        let pending_st = pair.embeddings_dir.join(&m.embeddings);
        let (csv_pending, st_pending) = (pending_csv.exists(), pending_st.exists());
        if csv_pending || st_pending {
            let csv = read(if csv_pending { &pending_csv } else { csv_path })?;
            let st = read(if st_pending {
                &pending_st
            } else {
                embeddings_path
            })?;
            if sha256_hex(&csv) != m.csv_sha256 || sha256_hex(&st) != m.embeddings_sha256 {
                return Err(ReidError::Format {
                    path: pair.marker.display().to_string(),
                    reason: "an interrupted save left files that do not match its commit marker"
                        .into(),
                });
            }
            return Ok((csv, st));
        }
    }
    Ok((read(csv_path)?, read(embeddings_path)?))
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

/// The `embeddings` tensor of a safetensors file (any float type) as f32: (values, rows, dim).
pub fn read_embeddings_file(path: &Path) -> Result<(Vec<f32>, usize, usize), ReidError> {
    let bytes = std::fs::read(path).map_err(|e| ReidError::io(path, e))?;
    let (values, rows, dim, _) = read_embeddings(&bytes, &path.display().to_string())?;
    Ok((values, rows, dim))
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

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn same(a: &KnowledgeBase, b: &KnowledgeBase) -> bool {
        a.records() == b.records() && a.embeddings() == b.embeddings()
    }

    /// A save killed before each of its steps loads as the old base or the new one, never a
    /// mix; a later save puts everything in order.
    #[test]
    fn a_save_killed_at_any_step_leaves_the_old_or_the_new_base() {
        let old = kb3();
        // The new base changes an individual and its embedding (the update that must never be
        // seen half-applied) and adds a row.
        let mut new = kb3();
        let mut r = Record::new("3.jpg", "C");
        r.location = Some("elsewhere".into());
        new.update(vec![r, Record::new("4.jpg", "C")], &[0.0, 3.0, 1.0, 1.0])
            .unwrap();
        let mut newer = new.clone();
        newer.remove(&["x/1.jpg".into()]);
        for (k, kill_at) in SaveStep::ALL.iter().enumerate() {
            let t = tempfile::tempdir().unwrap();
            old.save(t.path()).unwrap();
            let e = new
                .save_files_with(
                    &t.path().join(INFORMATIONS_CSV),
                    &t.path().join(EMBEDDINGS_SAFETENSORS),
                    &mut |s| {
                        if s == *kill_at {
                            Err("killed".into())
                        } else {
                            Ok(())
                        }
                    },
                )
                .unwrap_err();
            assert!(e.to_string().contains("killed"), "{e}");
            let back = KnowledgeBase::load(t.path()).unwrap();
            // Killed before the commit point: the old base; from it on: the new one.
            let committed = k > 3;
            let want = if committed { &new } else { &old };
            assert!(
                same(&back, want),
                "killed before {kill_at:?}: loaded {:?}",
                back.records()
            );
            // The next save finishes or discards the interrupted one and leaves only the pair.
            newer.save(t.path()).unwrap();
            assert!(same(&KnowledgeBase::load(t.path()).unwrap(), &newer));
            assert_eq!(
                entries(t.path()),
                [EMBEDDINGS_SAFETENSORS, INFORMATIONS_CSV],
                "killed before {kill_at:?}"
            );
        }
    }

    #[test]
    fn a_pending_file_that_does_not_match_the_marker_is_refused() {
        let t = tempfile::tempdir().unwrap();
        kb3().save(t.path()).unwrap();
        let mut new = kb3();
        new.add(vec![Record::new("9.jpg", "Z")], &[1.0, 2.0])
            .unwrap();
        let _ = new.save_files_with(
            &t.path().join(INFORMATIONS_CSV),
            &t.path().join(EMBEDDINGS_SAFETENSORS),
            &mut |s| {
                if s == SaveStep::PlaceEmbeddings {
                    Err("killed".into())
                } else {
                    Ok(())
                }
            },
        );
        let pending = entries(t.path())
            .into_iter()
            .find(|n| n.starts_with(".informations.csv.") && n.ends_with(".pending"))
            .unwrap();
        std::fs::write(t.path().join(pending), "filepath,lynx_id\nx,Y\n").unwrap();
        let e = KnowledgeBase::load(t.path()).unwrap_err().to_string();
        assert!(e.contains("do not match its commit marker"), "{e}");
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
    fn embeddings_without_width_are_refused() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join(INFORMATIONS_CSV),
            "filepath,lynx_id\na,A\nb,B\nc,C\n",
        )
        .unwrap();
        let view = TensorView::new(Dtype::F32, vec![3, 0], &[]).unwrap();
        let st = safetensors::serialize([(EMBEDDINGS_KEY, view)], None).unwrap();
        std::fs::write(t.path().join(EMBEDDINGS_SAFETENSORS), st).unwrap();
        let e = KnowledgeBase::load(t.path()).unwrap_err().to_string();
        assert!(e.contains("[3, 0]"), "{e}");
    }

    #[test]
    fn half_precision() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), f32::powi(2.0, -24));
    }
}
