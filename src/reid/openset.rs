//! Open set: is the query one of the known individuals, or a new one?
//!
//! Two rules, as lynx-id has them:
//!
//! - **Threshold**: new when the nearest neighbour's cosine distance is strictly above a
//!   threshold ([`threshold_rule`]).
//! - **Gaussian** ([`ClusterStats`]): for the predicted individual, each embedding dimension is
//!   modelled as a normal law (mean and unbiased variance over that individual's rows); the query
//!   is known when at least `success_percentage`% of its dimensions (rounded down) fall inside the
//!   central `confidence` interval `mean ± z·sd`, `z = Φ⁻¹((1 + confidence) / 2)`. An individual
//!   with a single picture has no variance, so nothing falls inside its interval: a query
//!   predicted as that individual is new unless the required count is 0 (lynx-id behaves the same,
//!   through NaN variances). A query predicted as an individual the base does not know is not new.
//!
//! ```
//! use deepfaune_rs::reid::openset::threshold_rule;
//! assert_eq!(threshold_rule(&[0.1, 0.5, 0.3], 0.3), vec![false, true, false]);
//! ```

use std::collections::HashMap;

use super::kb::KnowledgeBase;
use super::ReidError;

/// New when the nearest distance is strictly above `threshold` (NaN distances count as new).
pub fn threshold_rule(nearest_distances: &[f32], threshold: f32) -> Vec<bool> {
    nearest_distances
        .iter()
        .map(|&d| d > threshold || d.is_nan())
        .collect()
}

/// Parameters of lynx-id's Gaussian test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaussianTest {
    /// Mass of the central interval per dimension (lynx-id: 0.997).
    pub confidence: f64,
    /// Percentage of dimensions that must fall inside (lynx-id: 100).
    pub success_percentage: f64,
}

impl Default for GaussianTest {
    fn default() -> Self {
        GaussianTest {
            confidence: 0.997,
            success_percentage: 100.0,
        }
    }
}

impl GaussianTest {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), ReidError> {
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return Err(ReidError::Argument(format!(
                "confidence {} must be within (0, 1)",
                self.confidence
            )));
        }
        if !(0.0..=100.0).contains(&self.success_percentage) {
            return Err(ReidError::Argument(format!(
                "success_percentage {} must be within 0..100",
                self.success_percentage
            )));
        }
        Ok(())
    }
}

/// Per-individual mean and standard deviation of each embedding dimension.
#[derive(Debug, Clone)]
pub struct ClusterStats {
    dim: usize,
    index: HashMap<String, usize>,
    mean: Vec<f64>,
    /// NaN for an individual with a single row (unbiased variance undefined).
    sd: Vec<f64>,
}

impl ClusterStats {
    /// Statistics of every individual in the base.
    pub fn from_kb(kb: &KnowledgeBase) -> ClusterStats {
        let d = kb.dim();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut rows: Vec<Vec<usize>> = Vec::new();
        for (i, r) in kb.records().iter().enumerate() {
            let next = index.len();
            let c = *index.entry(r.individual_id.clone()).or_insert(next);
            if c == rows.len() {
                rows.push(Vec::new());
            }
            rows[c].push(i);
        }
        let emb = kb.embeddings();
        let mut mean = vec![0f64; rows.len() * d];
        let mut sd = vec![0f64; rows.len() * d];
        for (c, members) in rows.iter().enumerate() {
            let m = &mut mean[c * d..(c + 1) * d];
            for &i in members {
                for (acc, &x) in m.iter_mut().zip(&emb[i * d..(i + 1) * d]) {
                    *acc += x as f64;
                }
            }
            let n = members.len() as f64;
            m.iter_mut().for_each(|v| *v /= n);
            let s = &mut sd[c * d..(c + 1) * d];
            for &i in members {
                for ((acc, &x), &mu) in s.iter_mut().zip(&emb[i * d..(i + 1) * d]).zip(m.iter()) {
                    *acc += (x as f64 - mu).powi(2);
                }
            }
            s.iter_mut().for_each(|v| {
                *v = if n > 1.0 {
                    (*v / (n - 1.0)).sqrt()
                } else {
                    f64::NAN
                }
            });
        }
        ClusterStats {
            dim: d,
            index,
            mean,
            sd,
        }
    }

    /// The mean vector of an individual.
    pub fn mean(&self, individual_id: &str) -> Option<&[f64]> {
        self.index
            .get(individual_id)
            .map(|&c| &self.mean[c * self.dim..(c + 1) * self.dim])
    }

    /// The per-dimension standard deviations of an individual (NaN for a single picture).
    pub fn sd(&self, individual_id: &str) -> Option<&[f64]> {
        self.index
            .get(individual_id)
            .map(|&c| &self.sd[c * self.dim..(c + 1) * self.dim])
    }

    /// Whether `embedding`, predicted as `individual_id`, is a new individual.
    pub fn is_new(
        &self,
        embedding: &[f32],
        individual_id: &str,
        test: &GaussianTest,
    ) -> Result<bool, ReidError> {
        if embedding.len() != self.dim {
            return Err(ReidError::Shape(format!(
                "embedding of dimension {} for a base of dimension {}",
                embedding.len(),
                self.dim
            )));
        }
        let (Some(mean), Some(sd)) = (self.mean(individual_id), self.sd(individual_id)) else {
            return Ok(false);
        };
        let z = normal_quantile(0.5 + test.confidence / 2.0);
        let inside = embedding
            .iter()
            .zip(mean.iter().zip(sd))
            .filter(|(&x, (&mu, &s))| {
                let x = x as f64;
                // NaN bounds compare false, as in lynx-id.
                mu - z * s <= x && x <= mu + z * s
            })
            .count();
        let required = (self.dim as f64 * test.success_percentage / 100.0).floor() as usize;
        Ok(inside < required)
    }
}

/// Φ⁻¹(p), the standard normal quantile (Acklam's rational approximation, relative error below
/// 1.2e-9). `p` must be within (0, 1).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    const P_LOW: f64 = 0.02425;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - P_LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reid::kb::Record;

    #[test]
    fn quantiles() {
        // Python: statistics.NormalDist().inv_cdf(p)
        for (p, want) in [
            (0.9985, 2.9677379253417944),
            (0.975, 1.9599639845400536),
            (0.01, -2.3263478740408408),
            (0.5, 0.0),
        ] {
            assert!((normal_quantile(p) - want).abs() < 1e-8, "{p}");
        }
    }

    #[test]
    fn gaussian_rule_by_hand() {
        // Individual A: rows (1, 1) and (3, 3): mean (2, 2), unbiased sd sqrt(2) per dimension.
        // B has one row: no variance. z(0.95) = 1.959964 -> A's interval is 2 ± 2.7718.
        // (No zero row: a knowledge base refuses vectors without a direction.)
        let recs = vec![
            Record::new("1", "A"),
            Record::new("2", "A"),
            Record::new("3", "B"),
        ];
        let kb = KnowledgeBase::from_parts(recs, vec![1.0, 1.0, 3.0, 3.0, 5.0, 5.0], 2).unwrap();
        let st = ClusterStats::from_kb(&kb);
        assert_eq!(st.sd("A").unwrap()[0], 2f64.sqrt());
        let t = GaussianTest {
            confidence: 0.95,
            success_percentage: 100.0,
        };
        assert!(!st.is_new(&[4.7, -0.7], "A", &t).unwrap());
        assert!(st.is_new(&[4.8, 2.0], "A", &t).unwrap());
        let half = GaussianTest {
            success_percentage: 50.0,
            ..t
        };
        assert!(!st.is_new(&[4.8, 2.0], "A", &half).unwrap());
        assert!(
            st.is_new(&[5.0, 5.0], "B", &t).unwrap(),
            "single picture: NaN interval"
        );
        assert!(!st
            .is_new(
                &[5.0, 5.0],
                "B",
                &GaussianTest {
                    success_percentage: 0.0,
                    ..t
                }
            )
            .unwrap());
        assert!(!st.is_new(&[5.0, 5.0], "unknown", &t).unwrap());
        assert!(st.is_new(&[5.0], "A", &t).is_err());
    }

    #[test]
    fn threshold_is_strict() {
        assert_eq!(
            threshold_rule(&[0.5, 0.5000001, f32::NAN], 0.5),
            vec![false, true, true]
        );
    }
}
