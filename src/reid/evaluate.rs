//! How well a knowledge base re-identifies labelled queries: lynx-id's figures for one set of
//! queries, the open-set threshold either given or chosen on a validation part of them.
//!
//! Each query's truth is its individual, or "new" when it has none, is lynx-id's `"New"`, or is
//! an individual the base does not hold ([`truths`]). The closed-set neighbours of every query
//! are searched once; the threshold rule (nearest distance above it, or NaN: new) then gives
//! the predictions. With [`ThresholdChoice::Sweep`] the threshold is the sweep's best on the
//! validation queries and the figures are computed on the others; with
//! [`ThresholdChoice::Fixed`] every query is a test query.

use super::kb::KnowledgeBase;
use super::metrics::{self, ThresholdSweep};
use super::query::{query, NewIdGenerator, OpenSet, NEW_LABEL};
use super::search::SearchOptions;
use super::ReidError;

/// Where the open-set threshold comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ThresholdChoice {
    /// This cosine distance; every query is a test query.
    Fixed(f64),
    /// The best of `thresholds` on the queries `validation` (indices, ascending); the figures
    /// are computed on the other queries.
    Sweep {
        /// Candidate thresholds.
        thresholds: Vec<f32>,
        /// The validation queries.
        validation: Vec<usize>,
    },
}

/// The figures of [`evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Share of test queries answered right ("new" counts when both say new).
    pub top1_accuracy: f64,
    /// CMC@1..=k over the test queries whose individual is in the base.
    pub cmc: Vec<f64>,
    /// mAP@1..=k over the same queries.
    pub map: Vec<f64>,
    /// Precision of "new" on the test queries (NaN when nothing was predicted new).
    pub new_precision: f64,
    /// Recall of "new" on the test queries (NaN when nothing is truly new).
    pub new_recall: f64,
    /// The threshold used.
    pub threshold: f64,
    /// Number of test queries.
    pub n_test: usize,
    /// Number of validation queries (0 with a fixed threshold).
    pub n_validation: usize,
    /// The validation sweep, when the threshold was swept.
    pub sweep: Option<ThresholdSweep>,
}

/// Each query's truth as the metrics take it: `None` ("new") for no id, lynx-id's `"New"`, or an
/// individual absent from the base.
pub fn truths<'a>(kb: &KnowledgeBase, ids: &'a [Option<String>]) -> Vec<Option<&'a str>> {
    let known: std::collections::HashSet<&str> = kb.individuals().into_iter().collect();
    ids.iter()
        .map(|t| {
            t.as_deref()
                .filter(|s| *s != NEW_LABEL && known.contains(s))
        })
        .collect()
}

/// The validation queries of a sweep: `round(n * fraction)` of them (Python's `round`, ties to
/// even), the first ones of `permutation`, sorted. Errors when the fraction is outside (0, 1) or
/// leaves one side empty.
pub fn validation_split(permutation: &[usize], fraction: f64) -> Result<Vec<usize>, ReidError> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(ReidError::Argument(
            "validation_fraction must be within (0, 1) to sweep thresholds".into(),
        ));
    }
    let n = permutation.len();
    let n_val = (n as f64 * fraction).round_ties_even() as usize;
    if n_val == 0 || n_val == n {
        return Err(ReidError::Argument(format!(
            "{n} queries are too few to split for a threshold sweep"
        )));
    }
    let mut val = permutation[..n_val].to_vec();
    val.sort_unstable();
    Ok(val)
}

/// The default sweep grid: 0 to 2 by 0.01.
pub fn default_thresholds() -> Vec<f32> {
    (0..=200).map(|i| (i as f64 / 100.0) as f32).collect()
}

/// lynx-id's figures for `queries` (row-major `[n, kb.dim()]`) whose individuals are `ids`.
pub fn evaluate(
    kb: &KnowledgeBase,
    queries: &[f32],
    ids: &[Option<String>],
    k: usize,
    choice: &ThresholdChoice,
) -> Result<Evaluation, ReidError> {
    let n = queries.len() / kb.dim().max(1);
    if ids.len() != n {
        return Err(ReidError::Argument(format!(
            "{} true ids for {n} embeddings",
            ids.len()
        )));
    }
    let truth = truths(kb, ids);
    let opts = SearchOptions {
        k,
        ..SearchOptions::default()
    };
    let mut new_ids = NewIdGenerator::new(kb, Some(0));
    let closed = query(kb, queries, &opts, &OpenSet::Closed, &mut new_ids)?;
    let kk = closed.neighbours.k;
    let nearest_d: Vec<f32> = (0..n)
        .map(|q| closed.neighbours.distances[q * kk])
        .collect();
    let nearest_id: Vec<&str> = closed.neighbor_ids.iter().map(|r| r[0].as_str()).collect();

    let (threshold, validation, sweep) = match choice {
        ThresholdChoice::Fixed(t) => (*t, Vec::new(), None),
        ThresholdChoice::Sweep {
            thresholds,
            validation,
        } => {
            if let Some(&bad) = validation.iter().find(|&&i| i >= n) {
                return Err(ReidError::Argument(format!(
                    "validation query {bad} of {n} queries"
                )));
            }
            let sw = metrics::threshold_sweep(
                &pick_at(&truth, validation),
                &pick_at(&nearest_d, validation),
                &pick_at(&nearest_id, validation),
                thresholds,
            )?;
            (f64::from(sw.best_threshold()), validation.clone(), Some(sw))
        }
    };
    let is_val = {
        let mut v = vec![false; n];
        validation.iter().for_each(|&i| v[i] = true);
        v
    };
    let test: Vec<usize> = (0..n).filter(|&i| !is_val[i]).collect();
    let t_truth: Vec<Option<&str>> = test.iter().map(|&i| truth[i]).collect();
    let pred_new: Vec<bool> = test
        .iter()
        .map(|&i| nearest_d[i].is_nan() || f64::from(nearest_d[i]) > threshold)
        .collect();
    let pred: Vec<Option<&str>> = test
        .iter()
        .zip(&pred_new)
        .map(|(&i, &new)| (!new).then_some(nearest_id[i]))
        .collect();
    let neighbours: Vec<Vec<String>> = test
        .iter()
        .map(|&i| closed.neighbor_ids[i].clone())
        .collect();
    let count = |id: &str| kb.count_individual(id);
    let (cmc, map) = metrics::cmc_map(&t_truth, &neighbours, &count, k);
    let truth_new: Vec<bool> = t_truth.iter().map(Option::is_none).collect();
    let (new_precision, new_recall) = metrics::new_precision_recall(&truth_new, &pred_new)?;
    Ok(Evaluation {
        top1_accuracy: metrics::top1_accuracy(&t_truth, &pred)?,
        cmc,
        map,
        new_precision,
        new_recall,
        threshold,
        n_test: test.len(),
        n_validation: validation.len(),
        sweep,
    })
}

fn pick_at<T: Copy>(values: &[T], at: &[usize]) -> Vec<T> {
    at.iter().map(|&i| values[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reid::kb::Record;

    /// A base of three pictures: A at (1, 0), A at (0.8, 0.6), B at (0, 1).
    fn kb() -> KnowledgeBase {
        let r = vec![
            Record::new("a1", "A"),
            Record::new("a2", "A"),
            Record::new("b1", "B"),
        ];
        KnowledgeBase::from_parts(r, vec![1.0, 0.0, 0.8, 0.6, 0.0, 1.0], 2).unwrap()
    }

    fn ids(v: &[Option<&str>]) -> Vec<Option<String>> {
        v.iter().map(|s| s.map(String::from)).collect()
    }

    #[test]
    fn truths_are_new_for_none_new_and_unknown() {
        let t = ids(&[Some("A"), None, Some("New"), Some("Z"), Some("B")]);
        assert_eq!(
            truths(&kb(), &t),
            vec![Some("A"), None, None, None, Some("B")]
        );
    }

    #[test]
    fn fixed_threshold_by_hand() {
        // Query 0 = (1, 0): distances a1 0, a2 0.2, b1 1 -> A, known.
        // Query 1 = (0, 1): b1 0, a2 0.4, a1 1 -> B, known.
        // Query 2 = (-1, 0) ("New"): a1 2 (cos -1), a2 1.8, b1 1 -> nearest b1 at 1 -> new at 0.5.
        let q = [1.0, 0.0, 0.0, 1.0, -1.0, 0.0];
        let t = ids(&[Some("A"), Some("A"), None]);
        let ev = evaluate(&kb(), &q, &t, 2, &ThresholdChoice::Fixed(0.5)).unwrap();
        // Predictions A, B, new against A, A, new: 2 of 3 right.
        assert!((ev.top1_accuracy - 2.0 / 3.0).abs() < 1e-12);
        // CMC over the two known queries: query 0 hits at 1; query 1's neighbours B, A hit at 2.
        assert_eq!(ev.cmc, vec![0.5, 1.0]);
        // AP@1: 1 and 0; AP@2: (1 + 1) / 2 = 1 and (1/2) / 2 = 0.25.
        assert_eq!(ev.map, vec![0.5, 0.625]);
        // One predicted new, truly new: precision 1, recall 1.
        assert_eq!((ev.new_precision, ev.new_recall), (1.0, 1.0));
        assert_eq!((ev.n_test, ev.n_validation, ev.threshold), (3, 0, 0.5));
        assert!(ev.sweep.is_none());
    }

    #[test]
    fn sweep_chooses_on_validation_and_reports_on_the_rest() {
        let q = [1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 0.6, 0.8];
        let t = ids(&[Some("A"), Some("B"), None, Some("B")]);
        // Validation = queries 1 and 2: nearest distances 0 (B, right) and 1 (b1, should be new).
        // Thresholds 0.5 (both right) and 2.0 (query 2 wrong): 0.5 is chosen.
        let choice = ThresholdChoice::Sweep {
            thresholds: vec![2.0, 0.5],
            validation: vec![1, 2],
        };
        let ev = evaluate(&kb(), &q, &t, 1, &choice).unwrap();
        assert_eq!(ev.threshold, 0.5);
        assert_eq!((ev.n_test, ev.n_validation), (2, 2));
        let sw = ev.sweep.unwrap();
        assert_eq!(sw.accuracy, vec![0.5, 1.0]);
        // Test = queries 0 (A at 0) and 3 ((0.6, 0.8): b1 at 0.2, a2 at 0.04 -> A, wrong).
        assert_eq!(ev.top1_accuracy, 0.5);
        assert_eq!(ev.cmc, vec![0.5]);
        assert!(ev.new_precision.is_nan() && ev.new_recall.is_nan());
    }

    #[test]
    fn split_rounds_half_to_even_and_refuses_empty_sides() {
        assert_eq!(validation_split(&[4, 0, 3, 1, 2], 0.5).unwrap(), vec![0, 4]);
        assert_eq!(validation_split(&[2, 1, 0], 0.5).unwrap(), vec![1, 2]);
        assert!(validation_split(&[0, 1], 0.1).is_err());
        assert!(validation_split(&[0, 1], 1.0).is_err());
        assert!(validation_split(&[0, 1], f64::NAN).is_err());
    }

    #[test]
    fn default_grid_is_python_s_round_arange() {
        let g = default_thresholds();
        assert_eq!(g.len(), 201);
        assert_eq!((g[0], g[35], g[200]), (0.0, 0.35, 2.0));
    }

    #[test]
    fn wrong_count_of_ids_is_an_argument_error() {
        let e = evaluate(&kb(), &[1.0, 0.0], &[], 1, &ThresholdChoice::Fixed(0.1));
        assert!(matches!(e, Err(ReidError::Argument(_))));
    }
}
