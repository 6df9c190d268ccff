//! A query against the knowledge base, answered the way lynx-id's `infer` answers it.
//!
//! Per query: `individual_predicted` (the nearest neighbour's individual, or a fresh random
//! 10-character id when the open-set rule says new), `is_new`,
//! `latest_picture_individual_predicted` (the latest date among the base's pictures of that
//! individual; none for a new one), `location_closest_individual` (the nearest picture's
//! location; none for a new one) and the individuals of the `k` nearest pictures. As in lynx-id,
//! a new individual's neighbour list starts with `"New"` followed by the first `k - 1`
//! neighbours.

use std::collections::{HashMap, HashSet};

use super::kb::KnowledgeBase;
use super::openset::{threshold_rule, ClusterStats, GaussianTest};
use super::search::{knn_cosine, Neighbours, SearchOptions};
use super::ReidError;

/// The label lynx-id puts in the neighbour list of a new individual.
pub const NEW_LABEL: &str = "New";

/// How to decide that a query is a new individual.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OpenSet {
    /// Closed set: always the nearest neighbour's individual.
    Closed,
    /// New when the nearest distance is above this cosine distance.
    Threshold(f32),
    /// lynx-id's per-dimension Gaussian test.
    Gaussian(GaussianTest),
}

/// Answers for a batch of queries.
#[derive(Debug, Clone)]
pub struct QueryOutcome {
    /// Raw neighbours (distances and base rows).
    pub neighbours: Neighbours,
    /// Predicted individual per query.
    pub individual_predicted: Vec<String>,
    /// Whether each query is a new individual.
    pub is_new: Vec<bool>,
    /// Latest picture date of the predicted individual.
    pub latest_picture: Vec<Option<String>>,
    /// Location of the nearest picture.
    pub location_closest: Vec<Option<String>>,
    /// Individuals of the neighbours, `[n_queries][k]`, lynx-id's `neighbor_1..k`.
    pub neighbor_ids: Vec<Vec<String>>,
}

/// Fresh ids for new individuals: 10 characters from `[A-Za-z0-9]`, never one already used.
#[derive(Debug, Clone)]
pub struct NewIdGenerator {
    state: u64,
    used: HashSet<String>,
}

impl NewIdGenerator {
    /// A generator that avoids the base's ids; `seed` makes the ids reproducible.
    pub fn new(kb: &KnowledgeBase, seed: Option<u64>) -> NewIdGenerator {
        let state = seed.unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            t ^ ((std::process::id() as u64) << 32)
        });
        NewIdGenerator {
            state,
            used: kb.individuals().into_iter().map(String::from).collect(),
        }
    }

    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next unused id.
    pub fn next_id(&mut self) -> String {
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        loop {
            let id: String = (0..10)
                .map(|_| CHARS[(self.next_u64() % CHARS.len() as u64) as usize] as char)
                .collect();
            if self.used.insert(id.clone()) {
                return id;
            }
        }
    }
}

/// A sortable form of a date string: the numbers of `YYYY-MM-DD[ T]HH:MM:SS` (any separators,
/// so EXIF's `YYYY:MM:DD` works too); `None` if it does not start with a year.
pub fn date_key(s: &str) -> Option<Vec<u32>> {
    let parts: Vec<u32> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .take(7)
        .map(|p| p.parse().unwrap_or(u32::MAX))
        .collect();
    match parts.first() {
        Some(y) if (1000..=9999).contains(y) => Some(parts),
        _ => None,
    }
}

/// The latest date of each individual's pictures (the original text of the latest one).
pub fn latest_dates(kb: &KnowledgeBase) -> HashMap<&str, &str> {
    let mut best: HashMap<&str, (Vec<u32>, &str)> = HashMap::new();
    for r in kb.records() {
        let Some(d) = r.date.as_deref() else { continue };
        let Some(key) = date_key(d) else { continue };
        match best.get(r.individual_id.as_str()) {
            Some((k, _)) if *k >= key => {}
            _ => {
                best.insert(r.individual_id.as_str(), (key, d));
            }
        }
    }
    best.into_iter().map(|(id, (_, d))| (id, d)).collect()
}

/// Searches the base and applies the open-set rule; `queries` is row-major `[n, kb.dim()]`.
pub fn query(
    kb: &KnowledgeBase,
    queries: &[f32],
    opts: &SearchOptions,
    open_set: &OpenSet,
    ids: &mut NewIdGenerator,
) -> Result<QueryOutcome, ReidError> {
    if kb.is_empty() {
        return Err(ReidError::Argument("the knowledge base is empty".into()));
    }
    if let OpenSet::Threshold(t) = open_set {
        // NaN would make no distance "above" it: every query silently known.
        if !t.is_finite() {
            return Err(ReidError::Argument(format!(
                "threshold {t}: a finite cosine distance is needed"
            )));
        }
    }
    let d = kb.dim();
    let nn = knn_cosine(kb.embeddings(), kb.inv_norms(), d, queries, opts)?;
    let nq = nn.n_queries();
    let k = nn.k;
    let recs = kb.records();
    let nearest: Vec<&str> = (0..nq)
        .map(|q| recs[nn.indices[q * k] as usize].individual_id.as_str())
        .collect();
    let is_new = match open_set {
        OpenSet::Closed => vec![false; nq],
        OpenSet::Threshold(t) => {
            let d1: Vec<f32> = (0..nq).map(|q| nn.distances[q * k]).collect();
            threshold_rule(&d1, *t)
        }
        OpenSet::Gaussian(test) => {
            test.validate()?;
            let stats = ClusterStats::from_kb(kb);
            (0..nq)
                .map(|q| stats.is_new(&queries[q * d..(q + 1) * d], nearest[q], test))
                .collect::<Result<_, _>>()?
        }
    };
    let latest = latest_dates(kb);
    let mut out = QueryOutcome {
        neighbours: nn.clone(),
        individual_predicted: Vec::with_capacity(nq),
        is_new: is_new.clone(),
        latest_picture: Vec::with_capacity(nq),
        location_closest: Vec::with_capacity(nq),
        neighbor_ids: Vec::with_capacity(nq),
    };
    for q in 0..nq {
        let row = &nn.indices[q * k..(q + 1) * k];
        let mut names: Vec<String> = row
            .iter()
            .map(|&i| recs[i as usize].individual_id.clone())
            .collect();
        if is_new[q] {
            out.individual_predicted.push(ids.next_id());
            out.latest_picture.push(None);
            out.location_closest.push(None);
            names.pop();
            names.insert(0, NEW_LABEL.to_string());
        } else {
            out.individual_predicted.push(nearest[q].to_string());
            out.latest_picture
                .push(latest.get(nearest[q]).map(|s| s.to_string()));
            out.location_closest
                .push(recs[row[0] as usize].location.clone());
        }
        out.neighbor_ids.push(names);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reid::kb::Record;

    fn kb() -> KnowledgeBase {
        let mut r = vec![
            Record::new("a1", "A"),
            Record::new("a2", "A"),
            Record::new("b1", "B"),
        ];
        r[0].date = Some("2021-05-01 10:00:00".into());
        r[1].date = Some("2021-12-24".into());
        r[0].location = Some("ridge".into());
        r[2].date = Some("2019-01-01".into());
        KnowledgeBase::from_parts(r, vec![1.0, 0.0, 0.9, 0.1, 0.0, 1.0], 2).unwrap()
    }

    #[test]
    fn lynx_id_columns() {
        let kb = kb();
        let mut ids = NewIdGenerator::new(&kb, Some(7));
        let opts = SearchOptions {
            k: 3,
            ..Default::default()
        };
        // Query 0 is on row a1 (distance 0), query 1 at 45 degrees from everything known.
        let out = query(
            &kb,
            &[1.0, 0.0, -1.0, -1.0],
            &opts,
            &OpenSet::Threshold(0.5),
            &mut ids,
        )
        .unwrap();
        assert_eq!(out.is_new, vec![false, true]);
        assert_eq!(out.individual_predicted[0], "A");
        assert_eq!(out.latest_picture[0].as_deref(), Some("2021-12-24"));
        assert_eq!(out.location_closest[0].as_deref(), Some("ridge"));
        assert_eq!(out.neighbor_ids[0], vec!["A", "A", "B"]);
        assert_eq!(out.individual_predicted[1].len(), 10);
        assert_ne!(out.individual_predicted[1], "A");
        assert_eq!(out.neighbor_ids[1][0], NEW_LABEL);
        assert_eq!(out.neighbor_ids[1].len(), 3);
        assert_eq!(out.latest_picture[1], None);
        let closed = query(&kb, &[-1.0, -1.0], &opts, &OpenSet::Closed, &mut ids).unwrap();
        assert_eq!(closed.is_new, vec![false]);
    }

    #[test]
    fn new_ids_are_unique() {
        let kb = kb();
        let mut g = NewIdGenerator::new(&kb, Some(1));
        let ids: HashSet<String> = (0..1000).map(|_| g.next_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids
            .iter()
            .all(|s| s.len() == 10 && s.chars().all(|c| c.is_ascii_alphanumeric())));
    }

    #[test]
    fn dates_compare_as_dates() {
        assert!(date_key("2021-12-24") > date_key("2021-05-01 10:00:00"));
        assert!(date_key("2021:05:01 10:00:01") > date_key("2021-05-01 10:00:00"));
        assert_eq!(date_key("yesterday"), None);
    }
}
