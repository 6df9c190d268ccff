//! lynx-id's workflow on tables of pictures, as the `reid` commands run it: reading the table of
//! pictures (a CSV, or a folder of images), the crop of each row, and the four steps
//! ([`build`], [`query_to_files`], [`update_from_files`], [`evaluate_rows`]), each on plain
//! inputs with its files written atomically.
//!
//! A table is read as pandas' `read_csv` reads it for these columns: every cell as written, an
//! empty cell or one of pandas' missing-value words (`NA`, `NaN`, `None`, ...) as missing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::boxes::ImageBoxes;
use super::embed::{BoxFormat, CropBox};
use super::evaluate::{evaluate, Evaluation, ThresholdChoice};
use super::kb::{read_embeddings_file, KnowledgeBase, Record, EMBEDDINGS_KEY};
use super::query::{query, NewIdGenerator, OpenSet, QueryOutcome};
use super::search::SearchOptions;
use super::ReidError;
use crate::fsio::write_atomic;

/// The extensions of the images a folder given as a table lists.
pub const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "bmp", "tif", "tiff"];
/// MegaDetector-style box columns (normalised `x, y, w, h`).
pub const BBOX_COLUMNS: [&str; 4] = ["bbox_x", "bbox_y", "bbox_w", "bbox_h"];
/// The columns an individual is read from, the first present.
pub const ID_COLUMNS: [&str; 3] = ["lynx_id", "individual_id", "individual_predicted"];

/// pandas' default missing-value words (`read_csv`'s `na_values`).
const MISSING: [&str; 19] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

/// A table of pictures: named columns of optional cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    headers: Vec<String>,
    columns: Vec<Vec<Option<String>>>,
    rows: usize,
}

impl Table {
    /// A table from its columns (all of the same length).
    pub fn new(columns: Vec<(String, Vec<Option<String>>)>) -> Result<Table, ReidError> {
        let rows = columns.first().map_or(0, |(_, c)| c.len());
        if let Some((name, c)) = columns.iter().find(|(_, c)| c.len() != rows) {
            return Err(ReidError::Shape(format!(
                "column {name} has {} rows, not {rows}",
                c.len()
            )));
        }
        let (headers, columns) = columns.into_iter().unzip();
        Ok(Table {
            headers,
            columns,
            rows,
        })
    }

    /// The pictures of `path`: a folder's images (recursively, sorted by path), or a CSV with a
    /// `filepath` column whose relative paths that do not exist from the working folder are
    /// taken from the CSV's folder.
    pub fn read(path: &Path) -> Result<Table, ReidError> {
        if path.is_dir() {
            return Table::of_folder(path);
        }
        let mut t = Table::read_csv(path)?;
        let base = path.parent().unwrap_or(Path::new(""));
        let fp = t.position("filepath").ok_or_else(|| {
            ReidError::Argument(format!("{} has no 'filepath' column", path.display()))
        })?;
        for cell in t.columns[fp].iter_mut().flatten() {
            let p = Path::new(cell.as_str());
            if !(p.is_absolute() || p.exists()) {
                *cell = base.join(p).to_string_lossy().into_owned();
            }
        }
        Ok(t)
    }

    /// A CSV file as it is (see the module documentation for missing cells).
    pub fn read_csv(path: &Path) -> Result<Table, ReidError> {
        let bytes = std::fs::read(path).map_err(|e| ReidError::io(path, e))?;
        Table::parse_csv(&bytes).map_err(|reason| ReidError::Format {
            path: path.display().to_string(),
            reason,
        })
    }

    /// CSV bytes with a header line.
    pub fn parse_csv(bytes: &[u8]) -> Result<Table, String> {
        let mut rd = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(bytes);
        let headers: Vec<String> = rd
            .headers()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_string())
            .collect();
        let mut columns = vec![Vec::new(); headers.len()];
        for row in rd.records() {
            let row = row.map_err(|e| e.to_string())?;
            for (i, col) in columns.iter_mut().enumerate() {
                let cell = row.get(i).unwrap_or("");
                col.push((!MISSING.contains(&cell)).then(|| cell.to_string()));
            }
        }
        Table::new(headers.into_iter().zip(columns).collect()).map_err(|e| e.to_string())
    }

    /// The images under `folder`, recursively, sorted by path, as a `filepath` column.
    pub fn of_folder(folder: &Path) -> Result<Table, ReidError> {
        let mut files = Vec::new();
        let mut stack = vec![folder.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).map_err(|e| ReidError::io(&dir, e))? {
                let p = entry.map_err(|e| ReidError::io(&dir, e))?.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| {
                    IMAGE_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str())
                }) {
                    files.push(p.to_string_lossy().into_owned());
                }
            }
        }
        files.sort();
        Table::new(vec![(
            "filepath".into(),
            files.into_iter().map(Some).collect(),
        )])
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The column names.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// A column's cells.
    pub fn column(&self, name: &str) -> Option<&[Option<String>]> {
        self.position(name).map(|i| self.columns[i].as_slice())
    }

    /// The `filepath` column (a missing cell is an empty path).
    pub fn filepaths(&self) -> Result<Vec<String>, ReidError> {
        let c = self
            .column("filepath")
            .ok_or_else(|| ReidError::Argument("no 'filepath' column".into()))?;
        Ok(c.iter().map(|s| s.clone().unwrap_or_default()).collect())
    }

    /// Each row's individual, from the first of [`ID_COLUMNS`] present.
    pub fn individual_ids(&self) -> Result<&[Option<String>], ReidError> {
        ID_COLUMNS
            .iter()
            .find_map(|c| self.column(c))
            .ok_or_else(|| ReidError::Argument("no lynx_id / individual_predicted column".into()))
    }

    /// Each row's crop: the table's [`BBOX_COLUMNS`] when it has them all, else the boxes of a
    /// MegaDetector file (matched on the normalised path, then on the file name; no box: the
    /// row fails), else `None` (the caller decides: a detector, or whole images).
    pub fn crops(
        &self,
        megadetector: Option<&ImageBoxes>,
    ) -> Result<Option<Vec<CropBox>>, ReidError> {
        let boxed = |coords: [f64; 4]| CropBox::Box {
            coords,
            format: BoxFormat::NormalizedXywh,
            square: false,
        };
        let bbox: Vec<&[Option<String>]> =
            BBOX_COLUMNS.iter().filter_map(|c| self.column(c)).collect();
        if bbox.len() == 4 {
            let number = |cell: &Option<String>, col: &str| -> Result<f64, ReidError> {
                match cell {
                    None => Ok(f64::NAN),
                    Some(s) => s
                        .trim()
                        .parse()
                        .map_err(|_| ReidError::Argument(format!("{col} '{s}' is not a number"))),
                }
            };
            return (0..self.rows)
                .map(|r| {
                    let mut c = [0.0; 4];
                    for (j, v) in c.iter_mut().enumerate() {
                        *v = number(&bbox[j][r], BBOX_COLUMNS[j])?;
                    }
                    Ok(boxed(c))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some);
        }
        let Some(md) = megadetector else {
            return Ok(None);
        };
        let by_name: HashMap<String, [f64; 4]> = md
            .iter()
            .map(|(f, b)| (normpath(f), b.unwrap_or([f64::NAN; 4])))
            .collect();
        let crops = self
            .filepaths()?
            .iter()
            .map(|p| {
                let name = Path::new(p)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let b = by_name
                    .get(&normpath(p))
                    .or_else(|| by_name.get(&name))
                    .copied()
                    .unwrap_or([f64::NAN; 4]);
                boxed(b)
            })
            .collect();
        Ok(Some(crops))
    }
}

/// Python's `posixpath.normpath`: `.` and empty parts dropped, `..` folded, `//` kept at the
/// start only when exactly two.
pub fn normpath(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let lead = p.len() - p.trim_start_matches('/').len();
    let root = match lead {
        0 => "",
        2 => "//",
        _ => "/",
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            ".." if !root.is_empty() => {}
            c => parts.push(c),
        }
    }
    let joined = format!("{root}{}", parts.join("/"));
    if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

/// Rows whose embedding has only finite values.
pub fn embedded_rows(embeddings: &[f32], dim: usize) -> Vec<bool> {
    embeddings
        .chunks(dim.max(1))
        .map(|r| r.iter().all(|v| v.is_finite()))
        .collect()
}

fn pick<T: Clone>(values: &[T], keep: &[bool]) -> Vec<T> {
    values
        .iter()
        .zip(keep)
        .filter(|(_, &k)| k)
        .map(|(v, _)| v.clone())
        .collect()
}

fn pick_rows(embeddings: &[f32], dim: usize, keep: &[bool]) -> Vec<f32> {
    embeddings
        .chunks(dim.max(1))
        .zip(keep)
        .filter(|(_, &k)| k)
        .flat_map(|(r, _)| r.iter().copied())
        .collect()
}

fn records(table: &Table, keep: &[bool]) -> Result<Vec<Record>, ReidError> {
    let paths = table.filepaths()?;
    let ids = table.individual_ids()?;
    let cell = |c: Option<&[Option<String>]>, r: usize| c.and_then(|c| c[r].clone());
    Ok((0..table.len())
        .filter(|&r| keep[r])
        .map(|r| Record {
            filepath: paths[r].clone(),
            individual_id: ids[r].clone().unwrap_or_else(|| "None".into()),
            date: cell(table.column("date"), r),
            location: cell(table.column("location"), r),
            extra: Vec::new(),
        })
        .collect())
}

fn check_rows(table: &Table, embeddings: &[f32], dim: usize) -> Result<(), ReidError> {
    let n = embeddings.len() / dim.max(1);
    if n != table.len() {
        return Err(ReidError::Shape(format!(
            "{n} embeddings for {} table rows",
            table.len()
        )));
    }
    Ok(())
}

/// A knowledge base of the labelled `table`'s rows that were embedded (`embeddings`: one row
/// of `dim` per table row, NaN for a failed one).
pub fn build(table: &Table, embeddings: &[f32], dim: usize) -> Result<KnowledgeBase, ReidError> {
    check_rows(table, embeddings, dim)?;
    let keep = embedded_rows(embeddings, dim);
    let mut kb = KnowledgeBase::new(dim);
    kb.add(records(table, &keep)?, &pick_rows(embeddings, dim, &keep))?;
    Ok(kb)
}

/// What [`query_to_files`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuerySummary {
    /// Queries answered (the table's embedded rows).
    pub queries: usize,
    /// Of which new individuals.
    pub new: usize,
}

/// lynx-id's answer table for the answered rows: `filepath`, `individual_predicted`, `is_new`,
/// `latest_picture_individual_predicted`, `location_closest_individual`,
/// `neighbor_1..k`, then the input's `date` and `location` when it has them; as pandas'
/// `to_csv` writes it.
pub fn results_csv(
    filepaths: &[String],
    out: &QueryOutcome,
    extra: &[(&str, Vec<Option<String>>)],
) -> Result<Vec<u8>, ReidError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let k = out.neighbours.k;
    let mut header: Vec<String> = [
        "filepath",
        "individual_predicted",
        "is_new",
        "latest_picture_individual_predicted",
        "location_closest_individual",
    ]
    .map(String::from)
    .to_vec();
    header.extend((1..=k).map(|j| format!("neighbor_{j}")));
    header.extend(extra.iter().map(|(n, _)| n.to_string()));
    let err = |e: csv::Error| ReidError::Argument(e.to_string());
    w.write_record(&header).map_err(err)?;
    for (q, path) in filepaths.iter().enumerate() {
        let mut row: Vec<&str> = vec![
            path.as_str(),
            out.individual_predicted[q].as_str(),
            if out.is_new[q] { "True" } else { "False" },
            out.latest_picture[q].as_deref().unwrap_or(""),
            out.location_closest[q].as_deref().unwrap_or(""),
        ];
        row.extend(out.neighbor_ids[q].iter().map(String::as_str));
        row.extend(extra.iter().map(|(_, c)| c[q].as_deref().unwrap_or("")));
        w.write_record(&row).map_err(err)?;
    }
    w.into_inner()
        .map_err(|e| ReidError::Argument(e.to_string()))
}

/// A safetensors file of one F32 tensor `embeddings` `[rows, dim]`, as `safetensors.numpy`'s
/// `save_file` writes it.
pub fn embeddings_safetensors(embeddings: &[f32], dim: usize) -> Result<Vec<u8>, ReidError> {
    let bytes: Vec<u8> = embeddings.iter().flat_map(|v| v.to_le_bytes()).collect();
    let rows = embeddings.len() / dim.max(1);
    let view = safetensors::tensor::TensorView::new(
        safetensors::tensor::Dtype::F32,
        vec![rows, dim],
        &bytes,
    )
    .map_err(|e| ReidError::Argument(e.to_string()))?;
    safetensors::serialize([(EMBEDDINGS_KEY, view)], None)
        .map_err(|e| ReidError::Argument(e.to_string()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ReidError> {
    write_atomic(path, bytes).map_err(|e| ReidError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Where [`query_to_files`] writes.
#[derive(Debug, Clone)]
pub struct QueryOutputs {
    /// The results CSV.
    pub results: PathBuf,
    /// The answered rows' embeddings (safetensors), if wanted.
    pub embeddings: Option<PathBuf>,
}

/// lynx-id's `infer`: answers the embedded rows of `table` and writes the results table (and
/// their embeddings), each file atomically.
#[allow(clippy::too_many_arguments)]
pub fn query_to_files(
    kb: &KnowledgeBase,
    table: &Table,
    embeddings: &[f32],
    k: usize,
    open_set: &OpenSet,
    seed: Option<u64>,
    outputs: &QueryOutputs,
) -> Result<QuerySummary, ReidError> {
    let dim = kb.dim();
    check_rows(table, embeddings, dim)?;
    let keep = embedded_rows(embeddings, dim);
    let rows = pick_rows(embeddings, dim, &keep);
    let opts = SearchOptions {
        k,
        ..SearchOptions::default()
    };
    let mut ids = NewIdGenerator::new(kb, seed);
    let out = query(kb, &rows, &opts, open_set, &mut ids)?;
    let paths = pick(&table.filepaths()?, &keep);
    let extra: Vec<(&str, Vec<Option<String>>)> = ["date", "location"]
        .into_iter()
        .filter_map(|c| table.column(c).map(|v| (c, pick(v, &keep))))
        .collect();
    write(&outputs.results, &results_csv(&paths, &out, &extra)?)?;
    if let Some(p) = &outputs.embeddings {
        write(p, &embeddings_safetensors(&rows, dim)?)?;
    }
    Ok(QuerySummary {
        queries: paths.len(),
        new: out.is_new.iter().filter(|&&n| n).count(),
    })
}

/// lynx-id's `knowledge_base` update: the rows of a (checked) results CSV and their embeddings
/// (a safetensors file, key `embeddings`) merged into `kb` on `filepath`. Returns
/// `(updated, added)`.
pub fn update_from_files(
    kb: &mut KnowledgeBase,
    results: &Path,
    embeddings: &Path,
) -> Result<(usize, usize), ReidError> {
    let table = Table::read_csv(results)?;
    let (values, rows, dim) = read_embeddings_file(embeddings)?;
    if rows != table.len() {
        return Err(ReidError::Argument(format!(
            "{rows} embeddings for {} result rows",
            table.len()
        )));
    }
    if dim != kb.dim() {
        return Err(ReidError::Shape(format!(
            "embeddings of dimension {dim} for a knowledge base of dimension {}",
            kb.dim()
        )));
    }
    let keep = vec![true; rows];
    kb.update(records(&table, &keep)?, &values)
}

/// lynx-id's figures for the labelled `table`'s rows that have a finite embedding (a sweep's
/// validation indices count those rows only: see [`embedded_rows`]).
pub fn evaluate_rows(
    kb: &KnowledgeBase,
    table: &Table,
    embeddings: &[f32],
    k: usize,
    choice: &ThresholdChoice,
) -> Result<Evaluation, ReidError> {
    let dim = kb.dim();
    check_rows(table, embeddings, dim)?;
    let keep = embedded_rows(embeddings, dim);
    let truth = pick(table.individual_ids()?, &keep);
    let rows = pick_rows(embeddings, dim, &keep);
    evaluate(kb, &rows, &truth, k, choice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reid::search::Neighbours;

    fn cells(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|s| s.map(String::from)).collect()
    }

    #[test]
    fn normpath_is_python_s() {
        // Expected values from Python's posixpath.normpath.
        for (p, want) in [
            ("a/./b//c/", "a/b/c"),
            ("/../x", "/x"),
            ("//a/b", "//a/b"),
            ("///a/../b", "/b"),
            ("../a/../../b", "../../b"),
            ("", "."),
            (".", "."),
            ("a/..", "."),
            ("img/../x.jpg", "x.jpg"),
        ] {
            assert_eq!(normpath(p), want, "{p}");
        }
    }

    #[test]
    fn csv_cells_missing_as_pandas_reads_them() {
        let t = Table::parse_csv(b"\xef\xbb\xbffilepath,lynx_id,date\na.jpg,007,NA\nb.jpg,,2021\n")
            .unwrap();
        assert_eq!(t.headers(), ["filepath", "lynx_id", "date"]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.individual_ids().unwrap(), cells(&[Some("007"), None]));
        assert_eq!(t.column("date").unwrap(), cells(&[None, Some("2021")]));
        assert!(t.column("location").is_none());
        let no_ids = Table::parse_csv(b"filepath\na\n").unwrap();
        assert!(matches!(
            no_ids.individual_ids(),
            Err(ReidError::Argument(_))
        ));
    }

    #[test]
    fn relative_paths_are_taken_from_the_table_s_folder() {
        let dir = std::env::temp_dir().join(format!("df-reid-table-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/b.PNG"), b"").unwrap();
        std::fs::write(dir.join("a.jpg"), b"").unwrap();
        std::fs::write(dir.join("notes.txt"), b"").unwrap();
        std::fs::write(dir.join("t.csv"), "filepath\nx.jpg\n/abs/y.jpg\n").unwrap();
        let t = Table::read(&dir.join("t.csv")).unwrap();
        let x = dir.join("x.jpg").to_string_lossy().into_owned();
        assert_eq!(t.filepaths().unwrap(), [x.as_str(), "/abs/y.jpg"]);
        let f = Table::read(&dir).unwrap();
        let want: Vec<String> = ["a.jpg", "sub/b.PNG"]
            .iter()
            .map(|n| dir.join(n).to_string_lossy().into_owned())
            .collect();
        assert_eq!(f.filepaths().unwrap(), want);
        std::fs::write(dir.join("bad.csv"), "path\nx\n").unwrap();
        assert!(matches!(
            Table::read(&dir.join("bad.csv")),
            Err(ReidError::Argument(m)) if m.contains("no 'filepath' column")
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn crops_from_columns_then_megadetector_then_none() {
        let md = |c: [f64; 4]| CropBox::Box {
            coords: c,
            format: BoxFormat::NormalizedXywh,
            square: false,
        };
        let t = Table::parse_csv(
            b"filepath,bbox_x,bbox_y,bbox_w,bbox_h\na.jpg,0.1,0.2,0.3,0.4\nb.jpg,,0,0,0\n",
        )
        .unwrap();
        let got = t.crops(None).unwrap().unwrap();
        assert_eq!(got[0], md([0.1, 0.2, 0.3, 0.4]));
        assert!(matches!(got[1], CropBox::Box { coords, .. } if coords[0].is_nan()));

        let t = Table::parse_csv(b"filepath\ncam/./x.jpg\n/other/y.jpg\nz.jpg\n").unwrap();
        assert_eq!(t.crops(None).unwrap(), None);
        let boxes: ImageBoxes = vec![
            ("cam/x.jpg".into(), Some([0.5; 4])),
            ("y.jpg".into(), Some([0.25; 4])),
            ("z.jpg".into(), None),
        ];
        let got = t.crops(Some(&boxes)).unwrap().unwrap();
        assert_eq!(got[0], md([0.5; 4])); // normalised path
        assert_eq!(got[1], md([0.25; 4])); // file name
        assert!(matches!(got[2], CropBox::Box { coords, .. } if coords[0].is_nan()));
    }

    #[test]
    fn results_csv_is_pandas_to_csv() {
        let out = QueryOutcome {
            neighbours: Neighbours {
                k: 1,
                distances: vec![0.0, 0.5],
                indices: vec![0, 0],
            },
            individual_predicted: vec!["X".into(), "Y".into()],
            is_new: vec![false, true],
            latest_picture: vec![Some("2021".into()), None],
            location_closest: vec![Some("say \"hi\"".into()), None],
            neighbor_ids: vec![vec!["X".into()], vec!["New".into()]],
        };
        let paths = ["a, b.jpg".to_string(), "c.jpg".into()];
        let bytes = results_csv(&paths, &out, &[("date", cells(&[None, Some("d")]))]).unwrap();
        // Expected: pandas' DataFrame(...).to_csv(index=False) of the same columns.
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "filepath,individual_predicted,is_new,latest_picture_individual_predicted,\
             location_closest_individual,neighbor_1,date\n\"a, b.jpg\",X,False,2021,\
             \"say \"\"hi\"\"\",X,\nc.jpg,Y,True,,,New,d\n"
        );
    }

    #[test]
    fn build_keeps_the_embedded_rows_and_update_merges_files() {
        let t = Table::parse_csv(b"filepath,lynx_id,location\na,A,north\nb,B,\nc,A,\n").unwrap();
        let e = [1.0, 0.0, f32::NAN, 0.0, 0.0, 1.0];
        let kb = build(&t, &e, 2).unwrap();
        assert_eq!(kb.len(), 2);
        assert_eq!(kb.records()[0].location.as_deref(), Some("north"));
        assert_eq!(kb.records()[1].filepath, "c");
        assert_eq!(kb.embeddings(), [1.0, 0.0, 0.0, 1.0]);
        assert!(matches!(build(&t, &e[..4], 2), Err(ReidError::Shape(_))));

        let dir = std::env::temp_dir().join(format!("df-reid-update-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut kb = kb;
        // A query's results, as query_to_files writes them: "c" relabelled, "d" new.
        let outputs = QueryOutputs {
            results: dir.join("r.csv"),
            embeddings: Some(dir.join("r.safetensors")),
        };
        let q = Table::parse_csv(b"filepath\nc\nd\nbroken\n").unwrap();
        let qe = [0.0, 1.0, 0.6, 0.8, f32::NAN, 0.0];
        let s =
            query_to_files(&kb, &q, &qe, 1, &OpenSet::Threshold(0.1), Some(1), &outputs).unwrap();
        assert_eq!((s.queries, s.new), (2, 1));
        let r = Table::read_csv(&outputs.results).unwrap();
        assert_eq!(
            r.column("individual_predicted").unwrap()[0].as_deref(),
            Some("A")
        );
        assert_eq!(
            r.column("is_new").unwrap(),
            cells(&[Some("False"), Some("True")])
        );
        let (v, rows, dim) = read_embeddings_file(outputs.embeddings.as_ref().unwrap()).unwrap();
        assert_eq!((v.as_slice(), rows, dim), (&qe[..4], 2, 2));
        let (updated, added) = update_from_files(
            &mut kb,
            &outputs.results,
            outputs.embeddings.as_ref().unwrap(),
        )
        .unwrap();
        assert_eq!((updated, added), (1, 1));
        assert_eq!(kb.len(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
