//! The review page's state ([`ReviewState`]): what the page's server holds and its handler
//! calls. A source of rows ([`ReviewSource`]: a run, which the bindings provide, or a
//! [`ResultTable`] read without its run), the corrections journal, and the rows the page shows
//! with the journal applied. Loading and re-deciding apply the whole journal; a change appends
//! one line and applies it alone. The page's requests (`/api/change`, `/api/redecide` bodies,
//! `/api/sequences` queries) are read here, so the server only routes and sends bytes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::corrections::Correction;
use super::page::ReviewRows;
use super::presets::{list_presets, load_preset, save_preset};
use super::table::ResultTable;
use crate::error::Error;

/// Settings to decide a run's images again with (None keeps the run's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Redecision {
    /// The score threshold (the page's "threshold").
    pub score_threshold: Option<f32>,
    /// Per-class thresholds, replacing the run's.
    pub class_thresholds: Option<BTreeMap<String, f32>>,
    /// Classes to switch off, replacing the run's list.
    pub disabled_classes: Option<Vec<String>>,
    /// The sequences' longest gap, in seconds.
    pub maxlag_s: Option<f64>,
}

/// Where the page's rows come from.
pub trait ReviewSource: Send {
    /// The rows with the journal at `journal` applied (a missing file: none).
    fn rows(&self, journal: &Path) -> Result<ReviewRows, Error>;
    /// The labels a change may give.
    fn labels(&self) -> Result<Vec<String>, Error>;
    /// The settings the page shows (an object).
    fn settings(&self) -> Result<Value, Error>;
    /// What the page cannot do with this source, one sentence each (re-deciding first).
    fn unavailable(&self) -> Vec<String>;
    /// The source decided again from the rows as loaded (None: it cannot be).
    fn redecide(&self, r: &Redecision) -> Result<Option<Box<dyn ReviewSource>>, Error>;
    /// The corrected results as CSV (`rows`: those shown, the journal applied).
    fn export_csv(&self, journal: &Path, rows: &ReviewRows) -> Result<Vec<u8>, Error>;
}

impl ReviewSource for ResultTable {
    fn rows(&self, journal: &Path) -> Result<ReviewRows, Error> {
        ResultTable::rows(self, journal)
    }
    fn labels(&self) -> Result<Vec<String>, Error> {
        Ok(ResultTable::labels(self).to_vec())
    }
    fn settings(&self) -> Result<Value, Error> {
        let t = self.table_labels();
        Ok(json!({
            "classifier": t.map(|t| &t.classifier),
            "language": t.map(|t| &t.language),
            "bird_head": t.map(|t| t.bird_head),
            "threshold": "",
            "maxlag_s": "",
            "table": self.path.to_string_lossy(),
        }))
    }
    fn unavailable(&self) -> Vec<String> {
        ResultTable::unavailable(self)
    }
    fn redecide(&self, _: &Redecision) -> Result<Option<Box<dyn ReviewSource>>, Error> {
        Ok(None)
    }
    fn export_csv(&self, _journal: &Path, rows: &ReviewRows) -> Result<Vec<u8>, Error> {
        self.corrected_csv(rows)
    }
}

/// What the review server holds.
pub struct ReviewState {
    source: Box<dyn ReviewSource>,
    /// The corrections journal.
    pub journal: PathBuf,
    /// Who makes the changes (the journal's `by`).
    pub by: Option<String>,
    /// Why video rows have no picture here (None: they have one).
    no_video_picture: Option<String>,
    rows: ReviewRows,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

/// Python's truth value of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A number given as a number or as text (a form field); `what` names it in the error.
fn number(v: &Value, what: &str) -> Result<f64, Error> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        _ => None,
    }
    .ok_or_else(|| bad(format!("{what}: {v} is not a number")))
}

/// A value as text (strings as they are).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

impl Redecision {
    /// The settings of a `/api/redecide` body: `threshold` and `maxlag_s` (numbers or text,
    /// empty: keep), `preset` (a saved list of classes to switch off, in `presets`) or
    /// `disabled_classes`, `class_thresholds`; `save_preset` saves the classes switched off
    /// under that name first.
    pub fn of_body(body: &Value, presets: &Path) -> Result<Redecision, Error> {
        let field = |k: &str| body.get(k).filter(|v| !v.is_null());
        let given = |k: &str| field(k).filter(|v| v.as_str() != Some(""));
        let mut r = Redecision {
            score_threshold: given("threshold")
                .map(|v| number(v, "threshold").map(|x| x as f32))
                .transpose()?,
            maxlag_s: given("maxlag_s")
                .map(|v| number(v, "maxlag_s"))
                .transpose()?,
            ..Redecision::default()
        };
        if let Some(p) = field("preset").filter(|v| truthy(v)) {
            r.disabled_classes = Some(load_preset(presets, &text(p))?);
        } else if let Some(d) = field("disabled_classes") {
            let list = d
                .as_array()
                .ok_or_else(|| bad("disabled_classes: give a list of class names"))?;
            r.disabled_classes = Some(list.iter().map(text).collect());
        }
        if let Some(t) = field("class_thresholds") {
            let map = t
                .as_object()
                .ok_or_else(|| bad("class_thresholds: give {class: threshold}"))?;
            let mut out = BTreeMap::new();
            for (k, v) in map {
                out.insert(k.clone(), number(v, k)? as f32);
            }
            r.class_thresholds = Some(out);
        }
        if let Some(name) = field("save_preset").filter(|v| truthy(v)) {
            let classes = r.disabled_classes.clone().unwrap_or_default();
            save_preset(presets, &text(name), &classes)?;
        }
        Ok(r)
    }
}

impl ReviewState {
    /// The state of `source` with the journal at `journal` applied; `by`: who makes the
    /// changes; `no_video_picture`: why video rows have no picture (None: they have one).
    pub fn new(
        source: Box<dyn ReviewSource>,
        journal: PathBuf,
        by: Option<String>,
        no_video_picture: Option<String>,
    ) -> Result<Self, Error> {
        let rows = source.rows(&journal)?;
        let mut state = ReviewState {
            source,
            journal,
            by,
            no_video_picture,
            rows,
        };
        state
            .rows
            .set_no_video_picture(state.no_video_picture.clone());
        Ok(state)
    }

    /// The whole journal applied again to the source (load, reload, re-decide).
    pub fn refresh(&mut self) -> Result<(), Error> {
        self.rows = self.source.rows(&self.journal)?;
        self.rows
            .set_no_video_picture(self.no_video_picture.clone());
        Ok(())
    }

    /// The rows the page shows.
    pub fn rows(&self) -> &ReviewRows {
        &self.rows
    }

    /// `/api/info`: counts, labels, predictions, folders, settings, presets (in `presets`),
    /// the journal and what is unavailable.
    pub fn info(&self, presets: &Path) -> Result<Value, Error> {
        Ok(json!({
            "images": self.rows.len(),
            "sequences": self.rows.sequences().len(),
            "labels": self.source.labels()?,
            "predictions": self.rows.predictions(),
            "folders": self.rows.folders(),
            "settings": self.source.settings()?,
            "presets": list_presets(presets),
            "journal": self.journal.to_string_lossy(),
            "unavailable": self.source.unavailable(),
        }))
    }

    /// `/api/sequences`: a page of the sequences the query's filter keeps.
    pub fn page(&mut self, query: &HashMap<String, String>) -> Result<Value, Error> {
        self.rows.page(query)
    }

    /// `/api/change`: rows `ids` relabelled (`label`; null: verified only) and/or `verified`
    /// (default: when relabelled), one `scope` (`image` or `sequence`): one journal line
    /// appended and synced, then applied to the rows shown. Returns the line.
    pub fn change(&mut self, body: &Value) -> Result<Correction, Error> {
        let label = match body.get("label") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => return Err(bad(format!("label: {v} is not a text"))),
        };
        let ids = match body.get("ids") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| number(v, "ids").map(|x| x as i64))
                .collect::<Result<_, _>>()?,
            Some(v) => return Err(bad(format!("ids: {v} is not a list of rows"))),
        };
        let verified = body.get("verified").map_or(label.is_some(), truthy);
        let scope = body.get("scope").map_or_else(|| "image".into(), text);
        self.rows.change(
            &self.journal,
            &ids,
            label,
            verified,
            &scope,
            self.by.clone(),
        )
    }

    /// `/api/redecide`: the run decided again with the body's settings ([`Redecision`]; presets
    /// in `presets`), then the whole journal applied again; returns `/api/info`.
    pub fn redecide(&mut self, body: &Value, presets: &Path) -> Result<Value, Error> {
        let r = Redecision::of_body(body, presets)?;
        let Some(source) = self.source.redecide(&r)? else {
            let why = self.source.unavailable().into_iter().next();
            return Err(bad(
                why.unwrap_or_else(|| "re-deciding: not available".into())
            ));
        };
        self.source = source;
        self.refresh()?;
        self.info(presets)
    }

    /// `/api/export.csv`: the corrected results.
    pub fn export_csv(&self) -> Result<Vec<u8>, Error> {
        self.source.export_csv(&self.journal, &self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "filename,seqnum,predictionbase,scorebase,prediction,score\n\
                         a.jpg,1,chamois,0.91,chamois,0.9\n\
                         b.jpg,1,red deer,0.5,chamois,0.9\n\
                         c.jpg,2,empty,1.0,empty,1.0\n";

    fn state(dir: &Path) -> ReviewState {
        let path = dir.join("t.csv");
        std::fs::write(&path, TABLE).unwrap();
        let table = ResultTable::read_csv(&path, None).unwrap();
        let journal = dir.join("t.csv.corrections.jsonl");
        ReviewState::new(Box::new(table), journal, Some("ann".into()), None).unwrap()
    }

    #[test]
    fn info_change_and_reload_of_a_table() {
        let dir = tempfile::tempdir().unwrap();
        let presets = dir.path().join("presets");
        let mut st = state(dir.path());
        let info = st.info(&presets).unwrap();
        assert_eq!(
            (info["images"].clone(), info["sequences"].clone()),
            (json!(3), json!(2))
        );
        assert_eq!(info["settings"]["classifier"], "deepfaune-v15");
        assert_eq!(info["presets"], json!([]));
        // A form's text ids, a label: verified by default; by from the state.
        let c = st.change(&json!({"ids": ["1"], "label": "lynx"})).unwrap();
        assert_eq!(
            (c.files.clone(), c.verified, c.by.clone()),
            (vec!["b.jpg".to_string()], true, Some("ann".into()))
        );
        assert_eq!(st.rows().rows()[1].prediction, "lynx");
        let c = st
            .change(&json!({"ids": [2], "label": null, "verified": 1, "scope": "sequence"}))
            .unwrap();
        assert_eq!(
            (c.label, c.verified, c.scope.as_str()),
            (None, true, "sequence")
        );
        // Reloaded from the journal: the same rows.
        let again = state(dir.path());
        assert_eq!(again.rows().rows(), st.rows().rows());
        for bad_body in [
            json!({"ids": [0], "label": 3}),
            json!({"ids": "0"}),
            json!({"ids": ["x"]}),
        ] {
            assert!(st.change(&bad_body).is_err(), "{bad_body}");
        }
    }

    #[test]
    fn a_table_cannot_be_redecided_but_the_preset_is_saved_first() {
        let dir = tempfile::tempdir().unwrap();
        let presets = dir.path().join("presets");
        let mut st = state(dir.path());
        let body = json!({"threshold": "0.3", "disabled_classes": ["fox"], "save_preset": "south"});
        let e = st.redecide(&body, &presets).unwrap_err().to_string();
        assert!(e.contains("re-deciding: a table has no logits"), "{e}");
        assert_eq!(load_preset(&presets, "south").unwrap(), ["fox"]);
    }

    #[test]
    fn redecide_bodies_as_the_page_sends_them() {
        let dir = tempfile::tempdir().unwrap();
        save_preset(dir.path(), "alps", &["moose".into()]).unwrap();
        let r = Redecision::of_body(
            &json!({"threshold": "", "maxlag_s": 20, "preset": "alps",
            "disabled_classes": ["fox"], "class_thresholds": {"fox": "0.5"}}),
            dir.path(),
        )
        .unwrap();
        let want = Redecision {
            score_threshold: None,
            class_thresholds: Some(BTreeMap::from([("fox".to_string(), 0.5)])),
            disabled_classes: Some(vec!["moose".into()]),
            maxlag_s: Some(20.0),
        };
        assert_eq!(r, want);
        assert_eq!(
            Redecision::of_body(&json!({}), dir.path()).unwrap(),
            Redecision::default()
        );
        assert!(Redecision::of_body(&json!({"threshold": "high"}), dir.path()).is_err());
        assert!(Redecision::of_body(&json!({"preset": "nope"}), dir.path()).is_err());
        assert!(Redecision::of_body(&json!({"save_preset": "../x"}), dir.path()).is_err());
    }
}
