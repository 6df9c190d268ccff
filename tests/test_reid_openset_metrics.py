"""Open-set rules and metrics against hand computations (expectations never use our code)."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from deepfaune_rs import _core
from deepfaune_rs.reid import KnowledgeBase


def small_kb():
    kb = KnowledgeBase(2)
    kb.add(
        ["a1", "a2", "b1"],
        ["A", "A", "B"],
        np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], np.float32),
        dates=["2021-05-01 10:00:00", "2021-12-24", "2019-01-01"],
        locations=["ridge", "valley", None],
    )
    return kb


def test_threshold_rule_and_lynx_id_columns():
    kb = small_kb()
    q = np.array([[1.0, 0.05], [-1.0, -0.2], [0.0, 1.0]], np.float32)
    # cosine distances to a1: 1 - 1/sqrt(1.0025); query 1 points away from everything.
    res = kb.query(q, k=3, distance_threshold=0.2, seed=3, filepaths=["q0", "q1", "q2"])
    d0 = 1 - 1 / math.sqrt(1.0025)
    assert res.distances[0, 0] == pytest.approx(d0, abs=1e-6)
    assert res.is_new.tolist() == [False, True, False]
    df = res.to_pandas()
    assert list(df.columns) == [
        "filepath",
        "individual_predicted",
        "is_new",
        "latest_picture_individual_predicted",
        "location_closest_individual",
        "neighbor_1",
        "neighbor_2",
        "neighbor_3",
    ]
    assert df.loc[0, "individual_predicted"] == "A"
    assert df.loc[0, "latest_picture_individual_predicted"] == "2021-12-24"
    assert df.loc[0, "location_closest_individual"] == "ridge"
    assert df.loc[0, ["neighbor_1", "neighbor_2", "neighbor_3"]].tolist() == ["A", "A", "B"]
    new_id = df.loc[1, "individual_predicted"]
    assert len(new_id) == 10 and new_id.isalnum() and new_id not in {"A", "B"}
    assert df.loc[1, "neighbor_1"] == "New"
    assert pd.isna(df.loc[1, "latest_picture_individual_predicted"])
    assert df.loc[2, "individual_predicted"] == "B"
    # Exactly at the threshold is not new (strictly above is).
    at = kb.query(q[:1], k=1, distance_threshold=float(res.distances[0, 0]))
    assert not at.is_new[0]


def test_gaussian_rule_by_hand():
    kb = KnowledgeBase(2)
    emb = np.array([[1.0, 0.0], [1.0, 0.4], [1.2, 0.2], [-1.0, 0.0]], np.float32)
    kb.add(["1", "2", "3", "4"], ["A", "A", "A", "B"], emb)
    a = emb[:3].astype(np.float64)
    mean, sd = a.mean(0), a.std(0, ddof=1)
    z = NormalDist().inv_cdf(0.5 + 0.9 / 2)
    hi = mean + z * sd
    # All three queries point right, so their nearest picture is an "A" one.
    q = np.array([mean, [hi[0] - 0.01, mean[1]], [hi[0] + 0.01, mean[1]]], np.float32)
    res = kb.query(q, k=1, gaussian=True, confidence=0.9)
    assert [kb.columns()["individual_id"][i] for i in res.indices[:, 0]] == ["A"] * 3
    assert res.is_new.tolist() == [False, False, True]
    half = kb.query(q, k=1, gaussian=True, confidence=0.9, success_percentage=50)
    assert half.is_new.tolist() == [False, False, False]
    # "B" has a single picture: no variance, so a query predicted as B is new (as in lynx-id).
    assert kb.query([[-1.0, 0.01]], k=1, gaussian=True).is_new.tolist() == [True]


def hand_metrics():
    # Base: A x2, B x1. Neighbour lists as a search would give them.
    truth = ["A", "B", None, "A"]
    neighbours = [["A", "B", "A"], ["A", "A", "B"], ["B", "A", "A"], ["B", "B", "A"]]
    counts = {"A": 2, "B": 1}
    return truth, neighbours, counts


def test_cmc_map_by_hand():
    truth, neighbours, counts = hand_metrics()
    cmc, mapk = _core.reid_cmc_map(truth, neighbours, counts, 3)
    # Known queries 0, 1, 3; first right neighbour at ranks 1, 3, 3.
    assert cmc == pytest.approx([1 / 3, 1 / 3, 1.0])
    ap1 = [1.0, 0.0, 0.0]
    ap2 = [1 / 2, 0.0, 0.0]  # q0: one hit among 2, min(k=2, n_rel=2) = 2
    ap3 = [(1 + 2 / 3) / 2, (1 / 3) / 1, (1 / 3) / 2]
    assert mapk == pytest.approx([np.mean(ap1), np.mean(ap2), np.mean(ap3)])


def test_accuracy_new_precision_recall_and_sweep_by_hand():
    truth = ["A", None, "B", None]
    assert _core.reid_top1_accuracy(truth, ["A", None, "A", "B"]) == 0.5
    p, r = _core.reid_new_precision_recall([False, True, False, True], [False, True, True, False])
    assert (p, r) == (0.5, 0.5)
    p, r = _core.reid_new_precision_recall([False], [False])
    assert math.isnan(p) and math.isnan(r)
    sw = _core.reid_threshold_sweep(
        truth, [0.1, 0.5, 0.3, 0.2], ["A", "A", "B", "B"], [0.0, 0.25, 0.4]
    )
    # t=0: all new -> 2/4; t=0.25: A, new, new, B -> 2/4; t=0.4: A, new, B, B -> 3/4.
    assert sw["accuracy"] == pytest.approx([0.5, 0.5, 0.75])
    assert sw["best_threshold"] == pytest.approx(0.4)


def test_evaluate_picks_threshold_on_validation():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, 32)).astype(np.float32)
    kb = KnowledgeBase(32)
    ids = [f"ind{i}" for i in range(10) for _ in range(3)]
    emb = np.repeat(centres[:10], 3, axis=0) + 0.05 * rng.standard_normal((30, 32)).astype(
        np.float32
    )
    kb.add([f"{j}.jpg" for j in range(30)], ids, emb)
    # Known queries near centres 0..9, new ones at centres 10..19.
    q = centres + 0.05 * rng.standard_normal((20, 32)).astype(np.float32)
    truth = [f"ind{i}" for i in range(10)] + ["New"] * 10
    ev = kb.evaluate(q, truth, k=3, validation_fraction=0.5, seed=1)
    assert ev.n_validation == 10 and ev.n_test == 10
    assert ev.top1_accuracy == 1.0 and ev.cmc[1] == 1.0
    assert ev.new_precision == 1.0 and ev.new_recall == 1.0
    assert 0.0 < ev.threshold < 1.0
    fixed = kb.evaluate(q, truth, k=3, distance_threshold=2.0)  # nothing is ever new
    assert fixed.top1_accuracy == 0.5 and math.isnan(fixed.new_precision)
    assert fixed.new_recall == 0.0
