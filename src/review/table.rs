//! A results table reviewed without its run ([`ResultTable`]): DeepFaune's CSV/XLSX (its GUI's
//! export) or ours whose checkpoint is gone. Its rows are [`ReviewRows::of_table`]'s; the
//! corrections journal is applied to a copy of them; the corrected CSV is the table as read
//! with the relabelled rows' labels and scores replaced. A CSV is read here; an XLSX's cells
//! come from the caller (pandas reads them in the Python package).

use std::path::{Path, PathBuf};

use super::corrections::read_journal;
use super::labels::TableLabels;
use super::page::{ReviewRows, TableColumns};
use crate::error::Error;

/// Why a table cannot be re-decided.
pub const NO_REDECIDE: &str =
    "re-deciding: a table has no logits (review the run's .checkpoint: run --resume keeps it)";
/// Why a table shows no boxes (without a MegaDetector file).
pub const NO_BOXES: &str =
    "boxes: a table has none (give the run's MegaDetector JSON: --detections FILE)";
/// Columns written over by a relabel (`top1` only when the table has it), then the scores.
const RELABELLED: [&str; 3] = ["predictionbase", "prediction", "top1"];
const RESCORED: [&str; 2] = ["scorebase", "score"];

/// A results table as the review page's source.
#[derive(Debug, Clone)]
pub struct ResultTable {
    /// The table's file.
    pub path: PathBuf,
    /// A MegaDetector file of the same run, for the boxes.
    pub detections: Option<PathBuf>,
    /// Column names in the table's order, and each column's cells as text.
    columns: Vec<(String, Vec<String>)>,
    /// The rows as read, before any correction.
    rows: ReviewRows,
    /// The built-in classifier whose labels the table speaks, if one does.
    labels: Option<TableLabels>,
}

/// The cells of the CSV at `path` by column, in the file's order (every cell as text; a short
/// line's missing cells are empty).
pub fn read_csv_columns(path: &Path) -> Result<Vec<(String, Vec<String>)>, Error> {
    let cannot = |e: &dyn std::fmt::Display| {
        Error::InvalidArgument(format!("{}: cannot read the table ({e})", path.display()))
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| cannot(&e))?;
    let header = reader.headers().map_err(|e| cannot(&e))?.clone();
    let mut columns: Vec<(String, Vec<String>)> =
        header.iter().map(|h| (h.to_string(), Vec::new())).collect();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| cannot(&e))?;
        if record.len() > columns.len() {
            let msg = format!(
                "row {}: {} cells for {} columns",
                line + 1,
                record.len(),
                columns.len()
            );
            return Err(cannot(&msg));
        }
        for (k, (_, cells)) in columns.iter_mut().enumerate() {
            cells.push(record.get(k).unwrap_or("").to_string());
        }
    }
    Ok(columns)
}

impl ResultTable {
    /// The table at `path` whose cells are `columns` (in the table's order); `detections`: a
    /// MegaDetector file of the same run for the boxes.
    pub fn new(
        path: &Path,
        columns: Vec<(String, Vec<String>)>,
        detections: Option<&Path>,
    ) -> Result<Self, Error> {
        let by_name = TableColumns {
            columns: columns.iter().cloned().collect(),
        };
        let (rows, labels) = ReviewRows::of_table(path, &by_name, detections)?;
        Ok(ResultTable {
            path: path.to_path_buf(),
            detections: detections.map(Path::to_path_buf),
            columns,
            rows,
            labels,
        })
    }

    /// The CSV table at `path` ([`read_csv_columns`], then [`ResultTable::new`]).
    pub fn read_csv(path: &Path, detections: Option<&Path>) -> Result<Self, Error> {
        Self::new(path, read_csv_columns(path)?, detections)
    }

    /// The built-in classifier whose labels the table speaks (None: its own labels).
    pub fn table_labels(&self) -> Option<&TableLabels> {
        self.labels.as_ref()
    }

    /// The labels a change may give.
    pub fn labels(&self) -> &[String] {
        self.rows.labels()
    }

    /// What the page cannot do with a table: re-decide, and draw boxes without a MegaDetector
    /// file.
    pub fn unavailable(&self) -> Vec<String> {
        let mut out = vec![NO_REDECIDE.to_string()];
        if self.detections.is_none() {
            out.push(NO_BOXES.to_string());
        }
        out
    }

    /// The table's rows with the journal at `journal` applied line by line (a missing file:
    /// none).
    pub fn rows(&self, journal: &Path) -> Result<ReviewRows, Error> {
        let mut rows = self.rows.clone();
        for c in &read_journal(journal)? {
            rows.apply(c, 0)?;
        }
        Ok(rows)
    }

    /// The table as CSV with the rows `rows` relabelled having their labels and scores
    /// replaced (score 1.0, as the run's corrected CSV has them); every other cell as read.
    pub fn corrected_csv(&self, rows: &ReviewRows) -> Result<Vec<u8>, Error> {
        let mut columns = self.columns.clone();
        for (i, r) in rows.rows().iter().enumerate() {
            if r.reviewed.as_ref().is_none_or(|v| v.label.is_none()) {
                continue;
            }
            for (name, cells) in &mut columns {
                let new = match name.as_str() {
                    n if n == RELABELLED[0] => r.predictionbase.clone(),
                    n if n == RELABELLED[1] => r.prediction.clone(),
                    n if n == RELABELLED[2] => r.top1.clone(),
                    n if n == RESCORED[0] => format!("{:?}", r.scorebase),
                    n if n == RESCORED[1] => format!("{:?}", r.score),
                    _ => continue,
                };
                if let Some(cell) = cells.get_mut(i) {
                    *cell = new;
                }
            }
        }
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        let failed = |e: csv::Error| Error::Output {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        w.write_record(columns.iter().map(|c| c.0.as_str()))
            .map_err(failed)?;
        let n = columns.first().map_or(0, |c| c.1.len());
        for i in 0..n {
            w.write_record(columns.iter().map(|c| c.1[i].as_str()))
                .map_err(failed)?;
        }
        w.into_inner().map_err(|e| Error::Output {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::Correction;

    const TABLE: &str = "filename,extra,seqnum,predictionbase,scorebase,prediction,score\n\
                         a.jpg,\"x, y\",1,chamois,0.91,chamois,0.9\n\
                         b.jpg,,1,red deer,0.5,chamois,0.9\n\
                         c.jpg,z,2,empty,1.0,empty,1.0\n";

    #[test]
    fn reads_a_csv_in_order_and_exports_it_unchanged_without_corrections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, TABLE).unwrap();
        let cols = read_csv_columns(&path).unwrap();
        let names: Vec<&str> = cols.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(
            names,
            TABLE.lines().next().unwrap().split(',').collect::<Vec<_>>()
        );
        assert_eq!(cols[1].1, ["x, y", "", "z"]);
        let t = ResultTable::read_csv(&path, None).unwrap();
        assert_eq!(t.unavailable(), [NO_REDECIDE, NO_BOXES]);
        let rows = t.rows(&dir.path().join("none.jsonl")).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            String::from_utf8(t.corrected_csv(&rows).unwrap()).unwrap(),
            TABLE
        );
    }

    #[test]
    fn a_relabel_replaces_only_that_rows_labels_and_scores() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, TABLE).unwrap();
        let t = ResultTable::read_csv(&path, None).unwrap();
        let journal = dir.path().join("t.csv.corrections.jsonl");
        let c = Correction {
            time: "2026-01-01T00:00:00Z".into(),
            files: vec!["b.jpg".into()],
            scope: "image".into(),
            label: Some("lynx".into()),
            verified: true,
            by: None,
        };
        crate::review::append_correction(&journal, &c).unwrap();
        let rows = t.rows(&journal).unwrap();
        let got = String::from_utf8(t.corrected_csv(&rows).unwrap()).unwrap();
        let want: Vec<&str> = TABLE
            .lines()
            .enumerate()
            .map(|(k, l)| {
                if k == 2 {
                    "b.jpg,,1,lynx,1.0,lynx,1.0"
                } else {
                    l
                }
            })
            .collect();
        assert_eq!(got.lines().collect::<Vec<_>>(), want);
        // The rows as read are untouched: another load applies the journal again.
        assert_eq!(
            t.rows(&dir.path().join("none")).unwrap().rows()[1].prediction,
            "chamois"
        );
    }

    #[test]
    fn unreadable_tables_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "filename,seqnum\na.jpg,1,extra\n").unwrap();
        let e = ResultTable::read_csv(&path, None).unwrap_err().to_string();
        assert!(e.contains("cannot read the table"), "{e}");
        std::fs::write(&path, "filename,seqnum\na.jpg,1\n").unwrap();
        let e = ResultTable::read_csv(&path, None).unwrap_err().to_string();
        assert!(e.contains("missing columns"), "{e}");
        let e = ResultTable::read_csv(&dir.path().join("no.csv"), None).unwrap_err();
        assert!(e.to_string().contains("cannot read the table"), "{e}");
    }
}
