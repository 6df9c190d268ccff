//! DeepFaune's results table (SPEC 2.6): one row per image, the columns of DeepFaune's CSV/XLSX
//! export, sorted by sequence number then file name, and its CSV writer.
//!
//! DeepFaune writes the table with `pandas.DataFrame.to_csv(index=False)`; the CSV here matches
//! that text: a header line, comma-separated, fields quoted only when they hold a comma, a quote
//! or a line break (quotes doubled), the date as the camera wrote it (`2021:05:28 13:45:07`) or
//! `NA` when the image has none, scores as Python prints floats (`0.97`, `1.0`), `\n` line ends,
//! UTF-8. XLSX is left to pandas/openpyxl on the Python side, fed with the same [`ResultRow`]s.
//!
//! One column is added after DeepFaune's: [`STATUS_COLUMN`], `ok` or `failed: <reason>`. A file
//! that could not be read keeps DeepFaune's values (it says `empty`, 1.0), so without this
//! column a failed file would read as an empty picture that can be deleted.
//!
//! A run's videos ([`VideoRecord`]) are rows after the images' ([`with_video_rows`]): each video
//! is a sequence of its own, numbered after the images' sequences, its prediction in both the
//! base and the sequence columns. A table with videos has two more columns, [`VIDEO_COLUMNS`]:
//! `media_type` (`image` / `video`) and `keyframe` (the video's frame number, empty for images).

use std::path::Path;

use crate::error::Error;
use crate::fsio::write_atomic;
use crate::manifest::classifier::LabelNames;
use crate::results::VideoRecord;
use crate::sequence::{table_order, SequencePredictions};

/// The columns, in DeepFaune's order.
pub const COLUMNS: [&str; 10] = [
    "filename",
    "date",
    "seqnum",
    "predictionbase",
    "scorebase",
    "prediction",
    "score",
    "top1",
    "count",
    "humancount",
];

/// The column added after DeepFaune's: `ok`, or `failed: <reason>` for a file that could not
/// be processed (its other columns are DeepFaune's, which says `empty`).
pub const STATUS_COLUMN: &str = "status";

/// [`STATUS_COLUMN`] of a processed file.
pub const STATUS_OK: &str = "ok";

/// [`STATUS_COLUMN`] of a file that could not be processed.
pub fn status_failed(reason: &str) -> String {
    format!("failed: {reason}")
}

/// What DeepFaune writes for an image without a date.
pub const MISSING_DATE: &str = "NA";

/// The columns a table with videos has after [`STATUS_COLUMN`].
pub const VIDEO_COLUMNS: [&str; 2] = ["media_type", "keyframe"];

/// What a row of the table stands for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Media {
    /// An image (`media_type` `image`, no keyframe).
    #[default]
    Image,
    /// A video, with the frame number that shows its prediction best (`None`: nothing seen).
    Video {
        /// The `keyframe` column.
        keyframe: Option<u64>,
    },
}

impl Media {
    /// The `media_type` column.
    pub fn media_type(&self) -> &'static str {
        match self {
            Media::Image => "image",
            Media::Video { .. } => "video",
        }
    }

    /// The `keyframe` column.
    pub fn keyframe(&self) -> Option<u64> {
        match self {
            Media::Image => None,
            Media::Video { keyframe } => *keyframe,
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    /// The image path as given to the run.
    pub filename: String,
    /// EXIF DateTimeOriginal as written by the camera, `None` when absent.
    pub date: Option<String>,
    /// Sequence number.
    pub seqnum: u32,
    /// The image's own prediction.
    pub predictionbase: String,
    /// Its score (two decimals).
    pub scorebase: f64,
    /// The sequence's prediction.
    pub prediction: String,
    /// Its score.
    pub score: f64,
    /// The sequence's best label whatever the threshold.
    pub top1: String,
    /// Animal boxes in the image.
    pub count: u32,
    /// Person boxes in the image.
    pub humancount: u32,
    /// [`STATUS_COLUMN`]: `ok` or `failed: <reason>`.
    pub status: String,
    /// An image or a video ([`VIDEO_COLUMNS`]).
    pub media: Media,
}

/// Builds the table from a run's columns (all in input order) and sorts it like DeepFaune: by
/// sequence number, then by file name (string order). `failed[i]` is the reason row `i` could
/// not be processed, `None` when it was.
///
/// ```
/// use deepfaune_rs::detect::decision::ImageKind;
/// use deepfaune_rs::export::table::results_table;
/// use deepfaune_rs::manifest::classifier::builtin_classifier;
/// use deepfaune_rs::sequence::{predict_all, AggregateOptions, ImageRows, LogitTable};
/// let m = builtin_classifier("deepfaune-v14").unwrap();
/// let paths = ["cam/b.jpg", "cam/a.jpg"];
/// let kinds = [ImageKind::Empty, ImageKind::Human];
/// let logits = vec![0.0; 2 * 38];
/// let rows = ImageRows::new(&kinds, LogitTable::new(&logits, 38).unwrap(), None).unwrap();
/// let p = predict_all(&paths, &[None, None], &rows, 10.0, &AggregateOptions::for_manifest(&m)).unwrap();
/// let dates: [Option<&str>; 2] = [None, None];
/// let failed = [Some("corrupt JPEG"), None];
/// let t = results_table(&paths, &dates, &p, &[0, 0], &[0, 2], &failed, &m.names("en").unwrap(), false).unwrap();
/// assert_eq!((t[0].filename.as_str(), t[0].seqnum, t[0].prediction.as_str()), ("cam/b.jpg", 1, "empty"));
/// assert_eq!(t[0].status, "failed: corrupt JPEG");
/// assert_eq!((t[1].prediction.as_str(), t[1].humancount, t[1].status.as_str()), ("human", 2, "ok"));
/// ```
// The run's columns, one argument each (all the same length): a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn results_table<P: AsRef<Path>, D: AsRef<str>>(
    paths: &[P],
    dates: &[Option<D>],
    predictions: &SequencePredictions,
    count: &[u32],
    humancount: &[u32],
    failed: &[Option<&str>],
    names: &LabelNames<'_>,
    bird_head: bool,
) -> Result<Vec<ResultRow>, Error> {
    let n = paths.len();
    let lengths = [
        dates.len(),
        predictions.seqnum.len(),
        predictions.base.len(),
        count.len(),
        humancount.len(),
        failed.len(),
    ];
    if lengths.iter().any(|&l| l != n) || predictions.sequence.len() != n {
        return Err(Error::InvalidArgument(format!(
            "{n} paths but columns of lengths {lengths:?}"
        )));
    }
    // DeepFaune's order, the one every array of the results follows (`table_order`).
    let rows: Vec<ResultRow> = table_order(paths, &predictions.seqnum)
        .into_iter()
        .map(|i| {
            let (b, s) = (predictions.base[i], predictions.sequence[i]);
            ResultRow {
                filename: paths[i].as_ref().to_string_lossy().into_owned(),
                date: dates[i].as_ref().map(|d| d.as_ref().to_string()),
                seqnum: predictions.seqnum[i],
                predictionbase: b.label.text(names, bird_head),
                scorebase: b.score,
                prediction: s.label.text(names, bird_head),
                score: s.score,
                top1: s.top1.text(names, bird_head),
                count: count[i],
                humancount: humancount[i],
                status: failed[i].map_or_else(|| STATUS_OK.to_string(), status_failed),
                media: Media::Image,
            }
        })
        .collect();
    Ok(rows)
}

/// `images` (the table of a run's images) followed by one row per video, in the run's order:
/// each video is a sequence of its own numbered after the images' last sequence, with its
/// prediction and score in both the base and the sequence columns, its counts (most boxes in
/// one sampled frame), its status and its keyframe.
///
/// ```
/// use deepfaune_rs::export::table::{with_video_rows, Media};
/// use deepfaune_rs::results::VideoRecord;
/// let fox: VideoRecord = serde_json::from_str(r#"{"path": "cam/fox.mp4", "prediction": "fox",
///     "score": 0.93, "top1": "fox", "label_index": 12, "top1_index": 12, "count": 2,
///     "keyframe": 40}"#).unwrap();
/// let rows = with_video_rows(Vec::new(), &[fox]);
/// let r = &rows[0];
/// assert_eq!((r.filename.as_str(), r.seqnum, r.predictionbase.as_str(), r.scorebase), ("cam/fox.mp4", 1, "fox", 0.93));
/// assert_eq!((r.count, r.status.as_str(), r.media), (2, "ok", Media::Video { keyframe: Some(40) }));
/// ```
pub fn with_video_rows(mut images: Vec<ResultRow>, videos: &[VideoRecord]) -> Vec<ResultRow> {
    let first = images.iter().map(|r| r.seqnum).max().unwrap_or(0) + 1;
    images.extend(videos.iter().zip(first..).map(|(v, seqnum)| ResultRow {
        filename: v.path.to_string_lossy().into_owned(),
        date: v.date.clone(),
        seqnum,
        predictionbase: v.prediction.clone(),
        scorebase: v.score,
        prediction: v.prediction.clone(),
        score: v.score,
        top1: v.top1.clone(),
        count: v.count,
        humancount: v.humancount,
        status: v.status(),
        media: Media::Video {
            keyframe: v.keyframe,
        },
    }));
    images
}

/// The table as CSV text (header included).
///
/// ```
/// use deepfaune_rs::export::table::{results_csv, ResultRow};
/// let row = ResultRow {
///     filename: "cam 1/a,b.jpg".into(), date: None, seqnum: 1, predictionbase: "chevreuil".into(),
///     scorebase: 0.97, prediction: "chevreuil".into(), score: 1.0, top1: "chevreuil".into(),
///     count: 1, humancount: 0, status: "ok".into(), media: Default::default(),
/// };
/// let csv = results_csv(&[row]);
/// assert_eq!(csv.lines().nth(1), Some("\"cam 1/a,b.jpg\",NA,1,chevreuil,0.97,chevreuil,1.0,chevreuil,1,0,ok"));
/// ```
pub fn results_csv(rows: &[ResultRow]) -> String {
    results_csv_with(rows, false)
}

/// The first characters that make a spreadsheet (Excel, LibreOffice) run a cell as a formula
/// when it opens a CSV: `=`, `+`, `-`, `@`, tab, carriage return.
pub const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `s` with a single quote in front when a spreadsheet would run it as a formula (the quote
/// makes it text); otherwise unchanged.
///
/// ```
/// use deepfaune_rs::export::table::formula_safe;
/// assert_eq!(formula_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
/// assert_eq!(formula_safe("cam1/a.jpg"), "cam1/a.jpg");
/// ```
pub fn formula_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(FORMULA_STARTS) {
        format!("'{s}").into()
    } else {
        s.into()
    }
}

/// [`results_csv`]; with `csv_safe`, text cells a spreadsheet would run as formulas get a single
/// quote in front ([`formula_safe`]). DeepFaune writes names unchanged, hence off by default.
/// With a video row, every row has the [`VIDEO_COLUMNS`] too.
pub fn results_csv_with(rows: &[ResultRow], csv_safe: bool) -> String {
    let videos = rows.iter().any(|r| r.media != Media::Image);
    let text = |s: &str| {
        if csv_safe {
            field(&formula_safe(s))
        } else {
            field(s)
        }
    };
    let mut out = String::with_capacity(64 * (rows.len() + 1));
    out.push_str(&COLUMNS.join(","));
    out.push(',');
    out.push_str(STATUS_COLUMN);
    if videos {
        for c in VIDEO_COLUMNS {
            out.push(',');
            out.push_str(c);
        }
    }
    out.push('\n');
    for r in rows {
        let mut fields = vec![
            text(&r.filename),
            text(r.date.as_deref().unwrap_or(MISSING_DATE)),
            r.seqnum.to_string(),
            text(&r.predictionbase),
            python_float(r.scorebase),
            text(&r.prediction),
            python_float(r.score),
            text(&r.top1),
            r.count.to_string(),
            r.humancount.to_string(),
            text(&r.status),
        ];
        if videos {
            fields.push(text(r.media.media_type()));
            fields.push(
                r.media
                    .keyframe()
                    .map_or_else(String::new, |k| k.to_string()),
            );
        }
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// Writes [`results_csv`] to `path` atomically (a crash never leaves half a file).
/// With `csv_safe`, see [`results_csv_with`].
pub fn write_results_csv(path: &Path, rows: &[ResultRow], csv_safe: bool) -> Result<(), Error> {
    write_atomic(path, results_csv_with(rows, csv_safe).as_bytes())
}

/// Python's `csv.QUOTE_MINIMAL`: quoted when the field holds the delimiter, the quote or a line
/// break; quotes doubled.
pub(crate) fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A two-decimal score printed like Python's `repr(float)`: `0.97`, `0.5`, `1.0`, `0.0`.
fn python_float(score: f64) -> String {
    if !score.is_finite() {
        return String::new(); // pandas writes NaN as an empty field
    }
    let hundredths = (score * 100.0).round();
    // Rust's `{:?}` is the shortest round-trip form with a trailing `.0`, like Python's repr.
    format!("{:?}", hundredths / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::classifier::builtin_classifier;
    use crate::sequence::{Label, Prediction};

    fn p(label: Label, score: f64) -> Prediction {
        Prediction {
            label,
            score,
            top1: if label == Label::Undefined {
                Label::Class(0)
            } else {
                label
            },
        }
    }

    #[test]
    fn rows_are_sorted_by_seqnum_then_filename_with_localised_labels() {
        let m = builtin_classifier("deepfaune-v14").unwrap();
        let fr = m.names("fr").unwrap();
        let paths = ["d/z.jpg", "d/b.jpg", "c/a.jpg", "d/a.jpg"];
        let preds = SequencePredictions {
            seqnum: vec![1, 2, 2, 1],
            base: vec![
                p(Label::Class(9), 0.97),
                p(Label::Empty, 1.0),
                p(Label::Undefined, 0.41),
                p(Label::Human, 1.0),
            ],
            sequence: vec![
                p(Label::Class(9), 0.95),
                p(Label::Undefined, 0.41),
                p(Label::Undefined, 0.41),
                p(Label::Class(9), 0.95),
            ],
        };
        let dates = [
            Some("2021:05:28 13:45:07"),
            None,
            None,
            Some("2021:05:28 13:45:09"),
        ];
        let rows = results_table(
            &paths,
            &dates,
            &preds,
            &[1, 0, 2, 0],
            &[0, 0, 0, 3],
            &[None, Some("truncated JPEG"), None, None],
            &fr,
            false,
        )
        .unwrap();
        let order: Vec<&str> = rows.iter().map(|r| r.filename.as_str()).collect();
        assert_eq!(order, ["d/a.jpg", "d/z.jpg", "c/a.jpg", "d/b.jpg"]);
        assert_eq!(rows[0].predictionbase, "humain");
        assert_eq!(rows[0].prediction, "chevreuil");
        assert_eq!(
            (rows[2].prediction.as_str(), rows[2].top1.as_str()),
            ("indéfini", "bison")
        );
        let csv = results_csv(&rows);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "filename,date,seqnum,predictionbase,scorebase,prediction,score,top1,count,humancount,status"
        );
        assert_eq!(
            lines[1],
            "d/a.jpg,2021:05:28 13:45:09,1,humain,1.0,chevreuil,0.95,chevreuil,0,3,ok"
        );
        // The file that could not be read keeps DeepFaune's values, and says it failed.
        assert_eq!(
            lines[4],
            "d/b.jpg,NA,2,vide,1.0,indéfini,0.41,bison,0,0,failed: truncated JPEG"
        );
        assert!(csv.ends_with('\n') && !csv.contains('\r'));
    }

    #[test]
    fn quoting_and_float_text() {
        assert_eq!(field("plain name.jpg"), "plain name.jpg");
        assert_eq!(field("a\"b"), "\"a\"\"b\"");
        assert_eq!(field("line\nbreak"), "\"line\nbreak\"");
        // Python: repr(0.07) == '0.07', repr(1.0) == '1.0', repr(0.0) == '0.0', repr(0.1) == '0.1'
        for (x, text) in [
            (0.07f64, "0.07"),
            (1.0, "1.0"),
            (0.0, "0.0"),
            (0.1, "0.1"),
            (0.29, "0.29"),
            (0.57, "0.57"),
        ] {
            assert_eq!(python_float(x), text);
        }
        assert_eq!(python_float(f64::NAN), "");
    }

    #[test]
    fn csv_safe_quotes_only_formula_starts_in_text_cells() {
        let row = |name: &str| ResultRow {
            filename: name.into(),
            date: None,
            seqnum: 1,
            predictionbase: "-x".into(),
            scorebase: 0.5,
            prediction: "deer".into(),
            score: 0.5,
            top1: "deer".into(),
            count: 1,
            humancount: 0,
            status: "ok".into(),
            media: Media::Image,
        };
        let names = [
            "=1+1.jpg", "+a.jpg", "-b.jpg", "@c.jpg", "\td.jpg", "\re.jpg", "f,=g.jpg", "h.jpg",
        ];
        let rows: Vec<ResultRow> = names.iter().map(|n| row(n)).collect();
        let plain = results_csv_with(&rows, false);
        assert_eq!(plain, results_csv(&rows));
        assert!(plain.contains("\n=1+1.jpg,NA,1,-x,0.5,"));
        let safe = results_csv_with(&rows, true);
        let firsts: Vec<&str> = safe
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap())
            .collect();
        assert_eq!(
            firsts,
            [
                "'=1+1.jpg",
                "'+a.jpg",
                "'-b.jpg",
                "'@c.jpg",
                "'\td.jpg",
                "\"'\re.jpg\"",
                "\"f",
                "h.jpg"
            ]
        );
        // Numbers are never quoted; the prediction column is text.
        assert!(safe
            .lines()
            .nth(1)
            .unwrap()
            .ends_with(",NA,1,'-x,0.5,deer,0.5,deer,1,0,ok"));
    }

    #[test]
    fn videos_follow_the_images_each_its_own_sequence_with_two_more_columns() {
        let image = ResultRow {
            filename: "cam/a.jpg".into(),
            date: Some("2021:05:28 13:45:07".into()),
            seqnum: 3,
            predictionbase: "fox".into(),
            scorebase: 0.97,
            prediction: "fox".into(),
            score: 0.95,
            top1: "fox".into(),
            count: 1,
            humancount: 0,
            status: "ok".into(),
            media: Media::Image,
        };
        let video = |line: &str| serde_json::from_str::<VideoRecord>(line).unwrap();
        let videos = [
            video(
                r#"{"path": "=b, \"c\".mp4", "prediction": "red deer", "score": 0.5,
                    "top1": "red deer", "label_index": 1, "top1_index": 1, "count": 2,
                    "humancount": 1, "date": "2022:06:04 23:59:58", "keyframe": 40}"#,
            ),
            video(
                r#"{"path": "cam/z.mp4", "prediction": "empty", "score": 1.0, "top1": "empty",
                    "label_index": 40, "top1_index": 40,
                    "failure": {"stage": "read", "kind": "empty", "reason": "0-byte file"}}"#,
            ),
        ];
        let rows = with_video_rows(vec![image.clone()], &videos);
        assert_eq!(rows[0], image);
        assert_eq!(rows.iter().map(|r| r.seqnum).collect::<Vec<_>>(), [3, 4, 5]);
        // By hand: Python's csv module quotes the comma and the doubled quotes; NA for no date.
        let expected = "filename,date,seqnum,predictionbase,scorebase,prediction,score,top1,count,humancount,status,media_type,keyframe\n\
            cam/a.jpg,2021:05:28 13:45:07,3,fox,0.97,fox,0.95,fox,1,0,ok,image,\n\
            \"=b, \"\"c\"\".mp4\",2022:06:04 23:59:58,4,red deer,0.5,red deer,0.5,red deer,2,1,ok,video,40\n\
            cam/z.mp4,NA,5,empty,1.0,empty,1.0,empty,0,0,failed: 0-byte file,video,\n";
        assert_eq!(results_csv(&rows), expected);
        // csv_safe: the name starting with '=' gets its quote inside the CSV quoting.
        let safe = results_csv_with(&rows, true);
        assert!(safe.contains("\n\"'=b, \"\"c\"\".mp4\",2022"), "{safe}");
        // No video, no video columns; videos alone start at sequence 1.
        assert!(!results_csv(&rows[..1]).contains("media_type"));
        assert_eq!(with_video_rows(Vec::new(), &videos)[0].seqnum, 1);
    }

    #[test]
    fn written_atomically_and_length_checked() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("deepfaune.csv");
        write_results_csv(&path, &[], false).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{},{STATUS_COLUMN}\n", COLUMNS.join(","))
        );
        let m = builtin_classifier("deepfaune-v14").unwrap();
        let preds = SequencePredictions {
            seqnum: vec![1],
            base: vec![p(Label::Empty, 1.0)],
            sequence: vec![],
        };
        let r = results_table(
            &["a"],
            &[None::<&str>],
            &preds,
            &[0],
            &[0],
            &[None],
            &m.names("en").unwrap(),
            false,
        );
        assert!(r.is_err());
    }
}
