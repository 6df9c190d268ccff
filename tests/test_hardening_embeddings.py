"""Embeddings unfit for cosine distance are refused, naming the row; every query gets
min(k, n) neighbours (issue 17, part 5). Expected neighbours come from numpy in float64."""

from __future__ import annotations

import numpy as np
import pytest

from deepfaune_rs.errors import InvalidArgumentError
from deepfaune_rs.reid import KnowledgeBase, knn_cosine

DIM = 8


def _tiny(value: float) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[0] = value
    return v


BAD_ROWS = {
    "zero": np.zeros(DIM, dtype=np.float32),
    "subnormal": _tiny(1e-40),
    "infinite": _tiny(np.inf),
    "nan": _tiny(np.nan),
}


def _base(n: int = 20, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def _numpy_knn(base: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    b = base.astype(np.float64)
    q = queries.astype(np.float64)
    d = (
        1
        - (q / np.linalg.norm(q, axis=1, keepdims=True))
        @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    )
    return np.argsort(d, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("kind", BAD_ROWS)
def test_bad_base_row_is_refused_naming_it(kind):
    kb = KnowledgeBase(DIM)
    rows = _base(3)
    rows[1] = BAD_ROWS[kind]
    with pytest.raises(InvalidArgumentError, match="row 1"):
        kb.add(["a.jpg", "b.jpg", "c.jpg"], ["A", "B", "C"], rows)
    assert len(kb) == 0
    kb.add(["a.jpg"], ["A"], _base(1))
    with pytest.raises(InvalidArgumentError, match="row 0"):
        kb.update(["a.jpg"], ["A"], BAD_ROWS[kind][None])
    with pytest.raises(InvalidArgumentError, match="row 1"):
        knn_cosine(rows, _base(1), k=2)


@pytest.mark.parametrize("kind", BAD_ROWS)
def test_bad_query_row_is_refused_naming_it(kind):
    kb = KnowledgeBase(DIM)
    kb.add([f"{i}.jpg" for i in range(5)], ["A"] * 5, _base(5))
    q = _base(4, seed=9)
    q[2] = BAD_ROWS[kind]
    with pytest.raises(InvalidArgumentError, match="query row 2"):
        kb.query(q, k=3)
    with pytest.raises(InvalidArgumentError, match="query row 2"):
        knn_cosine(_base(5), q, k=3)


@pytest.mark.parametrize("k", [1, 3, 20, 50])
def test_every_query_gets_min_k_n_neighbours(k):
    base = _base(20)
    # Rows far apart in scale (but each fit for cosine distance) and repeated rows.
    base[4] *= 1e-12
    base[5] *= 1e12
    base[7] = base[6]
    queries = np.concatenate([_base(30, seed=11), base[[4, 5, 6]]])
    kb = KnowledgeBase(DIM)
    kb.add([f"{i}.jpg" for i in range(20)], [f"id{i % 4}" for i in range(20)], base)
    res = kb.query(queries, k=k)
    want = min(k, 20)
    assert res.indices.shape == (len(queries), want)
    assert np.isfinite(res.distances).all()
    for row in res.indices:
        assert len(set(row.tolist())) == want
    expected = _numpy_knn(base, queries, want)
    np.testing.assert_array_equal(res.indices[:, 0], expected[:, 0])
    d, i = knn_cosine(base, queries, k=k)
    assert i.shape == (len(queries), want)
    np.testing.assert_array_equal(i[:, 0], expected[:, 0])
