//! Re-identification metrics, as lynx-id reports them.
//!
//! Ground truth per query is `Some(individual)` or `None` for an individual the base does not
//! hold (lynx-id writes `"New"`); a prediction is `None` when the open-set rule said new.
//!
//! - **Top-1 accuracy**: share of queries whose prediction equals the truth (`None == None`
//!   counts as right, as lynx-id's `compute_accuracy`).
//! - **CMC@k**: over queries whose individual has pictures in the base, the share with a
//!   right individual among the first `k` neighbours.
//! - **mAP@k**: over the same queries, the mean of
//!   `AP@k = sum_{i<=k} rel_i * P@i / min(k, n_relevant)`, where `n_relevant` is the number of
//!   the individual's pictures in the base and `P@i` the share of right neighbours among the
//!   first `i`.
//! - **Precision / recall of "new"**: `TP / predicted new` and `TP / truly new`; NaN when the
//!   denominator is 0.
//! - **Threshold sweep**: top-1 accuracy of the threshold rule for each candidate threshold; the
//!   best is the first reaching the maximum.
//!
//! ```
//! use deepfaune_rs::reid::metrics::cmc_map;
//! let truth = [Some("A")];
//! let neighbours = [vec!["B", "A", "A"]];
//! let (cmc, map) = cmc_map(&truth, &neighbours, &|id| if id == "A" { 2 } else { 1 }, 3);
//! assert_eq!(cmc, vec![0.0, 1.0, 1.0]);
//! // AP@3 = (1/2 + 2/3) / min(3, 2)
//! assert!((map[2] - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
//! ```

use super::ReidError;

/// Share of queries predicted right (`None` = new individual).
pub fn top1_accuracy(truth: &[Option<&str>], predicted: &[Option<&str>]) -> Result<f64, ReidError> {
    same_len(truth.len(), predicted.len())?;
    if truth.is_empty() {
        return Ok(f64::NAN);
    }
    Ok(truth.iter().zip(predicted).filter(|(t, p)| t == p).count() as f64 / truth.len() as f64)
}

fn same_len(a: usize, b: usize) -> Result<(), ReidError> {
    if a != b {
        return Err(ReidError::Shape(format!("{a} truths for {b} predictions")));
    }
    Ok(())
}

/// CMC@1..=k and mAP@1..=k over the queries with pictures in the base.
///
/// `neighbours[q]` lists the individuals of query `q`'s neighbours, nearest first;
/// `n_relevant(id)` is how many pictures of `id` the base holds. Queries with no truth or no
/// picture in the base are left out; with none left, every value is NaN.
pub fn cmc_map<S: AsRef<str>>(
    truth: &[Option<&str>],
    neighbours: &[Vec<S>],
    n_relevant: &dyn Fn(&str) -> usize,
    k: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut cmc = vec![0f64; k];
    let mut map = vec![0f64; k];
    let mut counted = 0usize;
    for (t, row) in truth.iter().zip(neighbours) {
        let Some(t) = t else { continue };
        let n_rel = n_relevant(t);
        if n_rel == 0 {
            continue;
        }
        counted += 1;
        let mut hits = 0usize;
        let mut ap_sum = 0f64;
        let mut first_hit: Option<usize> = None;
        for kk in 0..k {
            if let Some(id) = row.get(kk) {
                if id.as_ref() == *t {
                    hits += 1;
                    ap_sum += hits as f64 / (kk + 1) as f64;
                    first_hit.get_or_insert(kk);
                }
            }
            if first_hit.is_some() {
                cmc[kk] += 1.0;
            }
            map[kk] += ap_sum / n_rel.min(kk + 1) as f64;
        }
    }
    let n = counted as f64;
    cmc.iter_mut()
        .chain(map.iter_mut())
        .for_each(|v| *v = if counted > 0 { *v / n } else { f64::NAN });
    (cmc, map)
}

/// Precision and recall of the "new individual" answer.
pub fn new_precision_recall(
    truth_new: &[bool],
    predicted_new: &[bool],
) -> Result<(f64, f64), ReidError> {
    same_len(truth_new.len(), predicted_new.len())?;
    let tp = truth_new
        .iter()
        .zip(predicted_new)
        .filter(|(&t, &p)| t && p)
        .count() as f64;
    let pred = predicted_new.iter().filter(|&&p| p).count() as f64;
    let real = truth_new.iter().filter(|&&t| t).count() as f64;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    Ok((ratio(tp, pred), ratio(tp, real)))
}

/// Accuracy of the threshold rule at each threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdSweep {
    /// Candidate thresholds, as given.
    pub thresholds: Vec<f32>,
    /// Top-1 accuracy at each.
    pub accuracy: Vec<f64>,
    /// Precision of "new" at each.
    pub new_precision: Vec<f64>,
    /// Recall of "new" at each.
    pub new_recall: Vec<f64>,
    /// Index of the best threshold (first maximum of accuracy).
    pub best: usize,
}

impl ThresholdSweep {
    /// The best threshold.
    pub fn best_threshold(&self) -> f32 {
        self.thresholds[self.best]
    }
}

/// Sweeps thresholds over the nearest distance and nearest individual of each query.
pub fn threshold_sweep(
    truth: &[Option<&str>],
    nearest_distance: &[f32],
    nearest_individual: &[&str],
    thresholds: &[f32],
) -> Result<ThresholdSweep, ReidError> {
    same_len(truth.len(), nearest_distance.len())?;
    same_len(truth.len(), nearest_individual.len())?;
    if thresholds.is_empty() {
        return Err(ReidError::Argument("no thresholds to sweep".into()));
    }
    if let Some(t) = thresholds.iter().find(|t| !t.is_finite()) {
        return Err(ReidError::NonFinite(format!("threshold {t}")));
    }
    let truth_new: Vec<bool> = truth.iter().map(Option::is_none).collect();
    let mut s = ThresholdSweep {
        thresholds: thresholds.to_vec(),
        accuracy: vec![],
        new_precision: vec![],
        new_recall: vec![],
        best: 0,
    };
    for &t in thresholds {
        let new = super::openset::threshold_rule(nearest_distance, t);
        let pred: Vec<Option<&str>> = new
            .iter()
            .zip(nearest_individual)
            .map(|(&n, &id)| if n { None } else { Some(id) })
            .collect();
        let acc = top1_accuracy(truth, &pred)?;
        let (p, r) = new_precision_recall(&truth_new, &new)?;
        if s.accuracy.is_empty() || acc > s.accuracy[s.best] {
            s.best = s.accuracy.len();
        }
        s.accuracy.push(acc);
        s.new_precision.push(p);
        s.new_recall.push(r);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_hand() {
        // Base: A has 2 pictures, B has 1.
        let n_rel = |id: &str| match id {
            "A" => 2,
            "B" => 1,
            _ => 0,
        };
        let truth = [Some("A"), Some("B"), None, Some("A")];
        let nb = [
            vec!["A", "B", "A"],
            vec!["A", "A", "B"],
            vec!["B", "A", "A"],
            vec!["B", "B", "A"],
        ];
        let (cmc, map) = cmc_map(&truth, &nb, &n_rel, 3);
        // Known queries 0, 1, 3: first hits at ranks 1, 3, 3.
        assert_eq!(cmc, vec![1.0 / 3.0, 1.0 / 3.0, 1.0]);
        // AP@1: q0 1/1, q1 0, q3 0.  AP@2: q0 1/min(2,2)=0.5... (1 hit: 1/1) / 2 = 0.5.
        // AP@3: q0 (1 + 2/3)/2, q1 (1/3)/1, q3 (1/3)/2.
        let want = [
            1.0 / 3.0,
            0.5 / 3.0,
            ((1.0 + 2.0 / 3.0) / 2.0 + 1.0 / 3.0 + 1.0 / 6.0) / 3.0,
        ];
        for (m, w) in map.iter().zip(want) {
            assert!((m - w).abs() < 1e-12, "{map:?}");
        }
        let pred = [Some("A"), Some("A"), None, None];
        assert_eq!(top1_accuracy(&truth, &pred).unwrap(), 0.5);
        let (p, r) =
            new_precision_recall(&[false, false, true, false], &[false, false, true, true])
                .unwrap();
        assert_eq!((p, r), (0.5, 1.0));
        assert!(new_precision_recall(&[false], &[false]).unwrap().0.is_nan());
    }

    #[test]
    fn sweep_picks_first_best() {
        let truth = [Some("A"), None, Some("B")];
        let d = [0.1, 0.5, 0.3];
        let nearest = ["A", "A", "B"];
        let s = threshold_sweep(&truth, &d, &nearest, &[0.0, 0.2, 0.4, 0.6]).unwrap();
        // t=0: all new -> 1/3; t=0.2: A, new, new -> 2/3; t=0.4: A, new, B -> 1; t=0.6: 2/3.
        assert_eq!(s.accuracy, vec![1.0 / 3.0, 2.0 / 3.0, 1.0, 2.0 / 3.0]);
        assert_eq!(s.best_threshold(), 0.4);
        assert_eq!(s.new_recall[0], 1.0);
        assert!(threshold_sweep(&truth, &d[..2], &nearest, &[0.1]).is_err());
    }
}
