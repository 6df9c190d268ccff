//! Exact k-nearest-neighbour search by cosine distance.
//!
//! The base is scanned block by block: a blocked matrix product (the `gemm` crate, SIMD
//! micro-kernels) gives the dot products of a batch of queries with a block of base rows, then
//! each query keeps its best `k` in a small sorted buffer. Blocks are spread over the rayon pool
//! and the per-thread buffers merged at the end, so the result does not depend on the thread
//! count. Base rows are not copied or normalised: their inverse norms are computed once
//! ([`inverse_norms`]) and applied while scanning, so a caller can search a borrowed matrix.
//!
//! Distance is `1 - cos(q, b)`, as scikit-learn's `metric="cosine"`; a zero vector has
//! similarity 0 with everything (distance 1). Equal distances are ordered by row index.
//!
//! ```
//! use deepfaune_rs::reid::search::{knn_cosine, inverse_norms, SearchOptions};
//! let base = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0]; // three rows of dimension 2
//! let inv = inverse_norms(&base, 2).unwrap();
//! let nn = knn_cosine(&base, &inv, 2, &[2.0, 0.1], &SearchOptions { k: 2, ..Default::default() }).unwrap();
//! assert_eq!(nn.indices, vec![0, 2]);
//! assert!(nn.distances[0] < nn.distances[1]);
//! ```

use rayon::prelude::*;

use super::ReidError;

/// How a search is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchOptions {
    /// Neighbours per query (clamped to the number of base rows).
    pub k: usize,
    /// Queries multiplied at once against a base block.
    pub query_batch: usize,
    /// Base rows per block (the unit of parallel work).
    pub base_block: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            k: 5,
            query_batch: 1024,
            base_block: 1024,
        }
    }
}

/// The neighbours of each query, nearest first, row-major `[n_queries, k]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    /// Neighbours per query.
    pub k: usize,
    /// Cosine distances, `n_queries * k`.
    pub distances: Vec<f32>,
    /// Base row indices, `n_queries * k`.
    pub indices: Vec<i64>,
}

impl Neighbours {
    /// Number of queries.
    pub fn n_queries(&self) -> usize {
        self.indices.len().checked_div(self.k).unwrap_or(0)
    }
}

/// `1 / ||row||` for each row of a row-major `[n, dim]` matrix (0 for a zero row).
///
/// Fails on a non-finite value, naming the row.
pub fn inverse_norms(matrix: &[f32], dim: usize) -> Result<Vec<f32>, ReidError> {
    check_shape(matrix, dim, "matrix")?;
    let norms: Vec<Result<f32, usize>> = matrix
        .par_chunks(dim)
        .enumerate()
        .map(|(i, row)| {
            let mut s = 0f64;
            for &x in row {
                if !x.is_finite() {
                    return Err(i);
                }
                s += (x as f64) * (x as f64);
            }
            Ok(if s > 0.0 {
                (1.0 / s.sqrt()) as f32
            } else {
                0.0
            })
        })
        .collect();
    norms
        .into_iter()
        .map(|r| {
            r.map_err(|i| ReidError::NonFinite(format!("row {i} has a NaN or infinite value")))
        })
        .collect()
}

fn check_shape(matrix: &[f32], dim: usize, what: &str) -> Result<(), ReidError> {
    if dim == 0 {
        return Err(ReidError::Shape(format!(
            "{what}: dimension must be positive"
        )));
    }
    if !matrix.len().is_multiple_of(dim) {
        return Err(ReidError::Shape(format!(
            "{what}: {} values is not a multiple of dimension {dim}",
            matrix.len()
        )));
    }
    Ok(())
}

/// The best `k` (similarity, row) pairs seen so far, best first.
#[derive(Debug, Clone)]
struct TopK {
    k: usize,
    items: Vec<(f32, i64)>,
}

/// Higher similarity first; equal similarities by lower row index.
#[inline]
fn better(a: (f32, i64), b: (f32, i64)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            items: Vec::with_capacity(k + 1),
        }
    }

    /// The similarity a candidate must reach to enter (NEG_INFINITY while not full).
    #[inline]
    fn floor(&self) -> f32 {
        if self.items.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.items[self.k - 1].0
        }
    }

    #[inline]
    fn push(&mut self, cand: (f32, i64)) {
        if self.items.len() == self.k {
            if !better(cand, self.items[self.k - 1]) {
                return;
            }
            self.items.pop();
        }
        let pos = self
            .items
            .iter()
            .position(|&it| better(cand, it))
            .unwrap_or(self.items.len());
        self.items.insert(pos, cand);
    }

    fn merge(&mut self, other: &TopK) {
        for &c in &other.items {
            self.push(c);
        }
    }
}

/// Scores of one query row against a block: keep the best into `top`.
#[inline]
fn scan_row(scores: &[f32], inv_norms: &[f32], q_inv: f32, first_row: usize, top: &mut TopK) {
    let mut floor = top.floor();
    for (j, (&dot, &inv)) in scores.iter().zip(inv_norms).enumerate() {
        let s = dot * inv * q_inv;
        // `>=` lets equal similarities reach `push`, which orders them by row index.
        if s >= floor {
            top.push((s, (first_row + j) as i64));
            floor = top.floor();
        }
    }
}

/// Exact k nearest rows of `base` (row-major `[n, dim]`) for each query (row-major
/// `[n_queries, dim]`) by cosine distance.
///
/// `base_inv_norms` comes from [`inverse_norms`] on the same base. The result has
/// `min(k, n)` neighbours per query.
pub fn knn_cosine(
    base: &[f32],
    base_inv_norms: &[f32],
    dim: usize,
    queries: &[f32],
    opts: &SearchOptions,
) -> Result<Neighbours, ReidError> {
    check_shape(base, dim, "base")?;
    check_shape(queries, dim, "queries")?;
    let n = base.len() / dim;
    if base_inv_norms.len() != n {
        return Err(ReidError::Shape(format!(
            "{} inverse norms for {n} base rows",
            base_inv_norms.len()
        )));
    }
    if opts.k == 0 || opts.query_batch == 0 || opts.base_block == 0 {
        return Err(ReidError::Argument(
            "k, query_batch and base_block must be positive".into(),
        ));
    }
    let q_inv = inverse_norms(queries, dim).map_err(|e| match e {
        ReidError::NonFinite(m) => ReidError::NonFinite(format!("query {m}")),
        other => other,
    })?;
    let nq = queries.len() / dim;
    let k = opts.k.min(n);
    let mut out = Neighbours {
        k,
        distances: Vec::with_capacity(nq * k),
        indices: Vec::with_capacity(nq * k),
    };
    if k == 0 || nq == 0 {
        return Ok(out);
    }
    for q0 in (0..nq).step_by(opts.query_batch) {
        let qb = opts.query_batch.min(nq - q0);
        let q = &queries[q0 * dim..(q0 + qb) * dim];
        let tops = search_batch(
            base,
            base_inv_norms,
            dim,
            q,
            &q_inv[q0..q0 + qb],
            k,
            opts.base_block,
        );
        for t in tops {
            for (s, i) in t.items {
                out.distances.push(1.0 - s);
                out.indices.push(i);
            }
        }
    }
    Ok(out)
}

fn search_batch(
    base: &[f32],
    inv: &[f32],
    dim: usize,
    q: &[f32],
    q_inv: &[f32],
    k: usize,
    block: usize,
) -> Vec<TopK> {
    let qb = q_inv.len();
    let n = inv.len();
    let n_blocks = n.div_ceil(block);
    let empty = || (vec![TopK::new(k); qb], Vec::<f32>::new());
    let (tops, _) = (0..n_blocks)
        .into_par_iter()
        .fold(empty, |(mut tops, mut scores), b| {
            let r0 = b * block;
            let nb = block.min(n - r0);
            scores.resize(qb * nb, 0.0);
            block_dots(
                &base[r0 * dim..(r0 + nb) * dim],
                dim,
                q,
                qb,
                nb,
                &mut scores,
            );
            for (qi, top) in tops.iter_mut().enumerate() {
                scan_row(
                    &scores[qi * nb..(qi + 1) * nb],
                    &inv[r0..r0 + nb],
                    q_inv[qi],
                    r0,
                    top,
                );
            }
            (tops, scores)
        })
        .reduce(empty, |(mut a, s), (b, _)| {
            for (ta, tb) in a.iter_mut().zip(&b) {
                ta.merge(tb);
            }
            (a, s)
        });
    tops
}

/// `scores[qi * nb + j] = q[qi] . rows[j]` for a block of `nb` rows.
fn block_dots(rows: &[f32], dim: usize, q: &[f32], qb: usize, nb: usize, scores: &mut [f32]) {
    debug_assert_eq!(rows.len(), nb * dim);
    debug_assert_eq!(q.len(), qb * dim);
    debug_assert_eq!(scores.len(), qb * nb);
    // SAFETY: the three buffers have exactly the extents described by the strides (checked
    // above): dst is qb x nb row-major, lhs is qb x dim row-major, rhs is the transpose of the
    // nb x dim row-major block, i.e. dim x nb with row stride 1 and column stride dim.
    unsafe {
        gemm::gemm(
            qb,
            nb,
            dim,
            scores.as_mut_ptr(),
            1,
            nb as isize,
            false,
            q.as_ptr(),
            1,
            dim as isize,
            rows.as_ptr(),
            dim as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

    /// Straightforward reference: every distance in f64, full sort.
    fn brute(base: &[f32], dim: usize, q: &[f32], k: usize) -> Vec<(f64, i64)> {
        let norm = |v: &[f32]| v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
        let qn = norm(q);
        let mut all: Vec<(f64, i64)> = base
            .chunks(dim)
            .enumerate()
            .map(|(i, r)| {
                let dot: f64 = r.iter().zip(q).map(|(&a, &b)| a as f64 * b as f64).sum();
                (1.0 - dot / (norm(r) * qn), i as i64)
            })
            .collect();
        all.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
        all.truncate(k);
        all
    }

    #[test]
    fn matches_brute_force_across_blocks_and_batches() {
        let (n, dim, nq, k) = (1000, 37, 23, 7);
        let mut seed = 42;
        let base: Vec<f32> = (0..n * dim).map(|_| lcg(&mut seed)).collect();
        let queries: Vec<f32> = (0..nq * dim).map(|_| lcg(&mut seed)).collect();
        let inv = inverse_norms(&base, dim).unwrap();
        let opts = SearchOptions {
            k,
            query_batch: 5,
            base_block: 64,
        };
        let nn = knn_cosine(&base, &inv, dim, &queries, &opts).unwrap();
        assert_eq!(nn.n_queries(), nq);
        for qi in 0..nq {
            let want = brute(&base, dim, &queries[qi * dim..(qi + 1) * dim], k);
            for (j, (d, i)) in want.iter().enumerate() {
                assert_eq!(nn.indices[qi * k + j], *i, "query {qi} rank {j}");
                assert!((nn.distances[qi * k + j] as f64 - d).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn ties_by_index_zero_rows_and_small_bases() {
        // Rows 1 and 3 are identical: the lower index comes first. Row 2 is zero: distance 1.
        let base = [0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 2.0, 0.0];
        let inv = inverse_norms(&base, 2).unwrap();
        let nn = knn_cosine(
            &base,
            &inv,
            2,
            &[1.0, 0.0],
            &SearchOptions {
                k: 10,
                base_block: 1,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(nn.k, 4);
        assert_eq!(nn.indices, vec![1, 3, 0, 2]);
        assert_eq!(nn.distances[3], 1.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            inverse_norms(&[1.0, f32::NAN], 2),
            Err(ReidError::NonFinite(_))
        ));
        assert!(matches!(
            inverse_norms(&[1.0, 2.0, 3.0], 2),
            Err(ReidError::Shape(_))
        ));
        let base = [1.0, 0.0];
        let inv = inverse_norms(&base, 2).unwrap();
        assert!(knn_cosine(
            &base,
            &inv,
            2,
            &[f32::INFINITY, 0.0],
            &SearchOptions::default()
        )
        .is_err());
        assert!(knn_cosine(
            &base,
            &inv,
            2,
            &[1.0, 0.0],
            &SearchOptions {
                k: 0,
                ..Default::default()
            }
        )
        .is_err());
    }
}
