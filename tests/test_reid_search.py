"""Exact k-NN: deepfaune-rs against a numpy brute force computed independently (float64)."""

from __future__ import annotations

import numpy as np
import pytest

from deepfaune_rs import errors
from deepfaune_rs.reid import CosineIndex, KnowledgeBase, knn_cosine


def brute_force(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distances in float64, stable sort (ties by row index)."""
    b = base.astype(np.float64)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    out_d, out_i = [], []
    for q0 in range(0, len(queries), 100):
        q = queries[q0 : q0 + 100].astype(np.float64)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        dist = 1.0 - q @ b.T
        idx = np.argsort(dist, axis=1, kind="stable")[:, :k]
        out_i.append(idx)
        out_d.append(np.take_along_axis(dist, idx, axis=1))
    return np.concatenate(out_d), np.concatenate(out_i)


def check_exact(base, queries, d, i, k, tol=2e-5):
    ref_d, ref_i = brute_force(base, queries, k)
    assert d.shape == i.shape == (len(queries), k)
    assert d.dtype == np.float32 and i.dtype == np.int64
    # Same distances, rank by rank.
    np.testing.assert_allclose(d, ref_d, atol=tol, rtol=0)
    # Each returned row really is at the distance we report (ties aside, the same rows).
    b = base.astype(np.float64)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    q = queries.astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    true_d = 1.0 - np.einsum("qd,qkd->qk", q, b[i])
    np.testing.assert_allclose(d, true_d, atol=tol, rtol=0)
    # So rows can differ from the reference only at (near-)ties; count them.
    return int((i != ref_i).sum())


def test_random_100k_x_256_matches_numpy():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((100_000, 256), dtype=np.float32)
    queries = rng.standard_normal((200, 256), dtype=np.float32)
    d, i = knn_cosine(base, queries, k=5)
    n_differ = check_exact(base, queries, d, i, 5)
    assert n_differ <= 5  # random data: ties are rare


def test_index_with_duplicates_near_queries_and_odd_sizes():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((3_001, 37)).astype(np.float32)
    base[100] = base[7] * 3.0  # same direction: equal distance, lower row first
    queries = np.concatenate([base[[7, 2_999]] + 1e-3, rng.standard_normal((50, 37))]).astype(
        np.float32
    )
    index = CosineIndex(base)
    assert len(index) == 3_001 and index.dim == 37
    d, i = index.search(queries, k=7, query_batch=16, base_block=100)
    check_exact(base, queries, d, i, 7)
    assert i[0, 0] == 7 and i[0, 1] == 100
    assert i[1, 0] == 2_999


def test_k_larger_than_base_and_kb_query_agree():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((4, 8)).astype(np.float32)
    q = rng.standard_normal((3, 8)).astype(np.float32)
    d, i = knn_cosine(base, q, k=10)
    assert d.shape == (3, 4)
    kb = KnowledgeBase(8)
    kb.add([f"{j}.jpg" for j in range(4)], ["A", "B", "C", "D"], base)
    r = kb.query(q, k=10)
    np.testing.assert_array_equal(r.indices, i)
    np.testing.assert_array_equal(r.distances, d)


@pytest.mark.parametrize(
    "base, queries",
    [
        (np.full((3, 4), np.nan, dtype=np.float32), np.ones((1, 4), dtype=np.float32)),
        (np.ones((3, 4), dtype=np.float32), np.array([[np.inf, 0, 0, 0]], dtype=np.float32)),
        (np.ones((3, 4), dtype=np.float32), np.ones((1, 5), dtype=np.float32)),
    ],
)
def test_bad_inputs_raise_clear_errors(base, queries):
    with pytest.raises(errors.InvalidArgumentError):
        knn_cosine(base, queries)


def test_k_zero_and_bad_rank():
    with pytest.raises(errors.InvalidArgumentError):
        knn_cosine(np.ones((2, 2), np.float32), np.ones((1, 2), np.float32), k=0)
    with pytest.raises(errors.InvalidArgumentError):
        knn_cosine(np.ones((2, 2, 2), np.float32), np.ones((1, 2), np.float32))
