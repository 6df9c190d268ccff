"""Checks the Python reference of SPEC 2.4 (tests/reference/deepfaune_sequence_ref.py) against hand
computations, so that parity tests against it prove something. Needs numpy only."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).parent / "reference" / "deepfaune_sequence_ref.py"
_SPEC = importlib.util.spec_from_file_location("deepfaune_sequence_ref", _PATH)
ref = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = ref  # dataclasses look their module up while the file runs
_SPEC.loader.exec_module(ref)


def trunc2(p: float) -> float:
    return math.floor(p * 100) / 100


def test_rows_follow_deepfaune_layout():
    rows, layout = ref.build_rows(["empty", "animal", "human", "vehicle"], [[9, 9]] * 4)
    assert (layout.human, layout.vehicle, layout.empty, layout.undefined) == (2, 3, 4, 5)
    expected = [
        [0, 0, 0, 0, 15],  # empty: only the empty column
        [9, 9, 0, 0, 0],  # animal: logits, empty column cleared
        [0, 0, 15, 0, 0],
        [0, 0, 0, 15, 0],
    ]
    assert rows.dtype == np.float32
    assert rows.tolist() == expected


def test_sequences_by_folder_and_maxlag():
    names = ["x/3.jpg", "y/1.jpg", "x/1.jpg", "y/2.jpg", "x/2.jpg"]
    dates = [
        "2024:01:01 00:00:05",
        "2024:01:01 00:16:40",
        "2024:01:01 00:01:40",
        "2024:01:01 00:16:43",
        "2024:01:01 00:00:00",
    ]
    # x sorted: x/2 (0 s), x/3 (5 s), x/1 (100 s): gaps 5 (in) and 95 (out); then y: 1000 s, 1003 s.
    assert ref.find_sequences(names, dates, 10) == [1, 3, 2, 3, 1]
    # Gap equal to maxlag stays in; one second more splits.
    d = ["2024:01:01 00:00:00", "2024:01:01 00:00:20", "2024:01:01 00:00:41"]
    assert ref.find_sequences(["f/a", "f/b", "f/c"], d, 20) == [1, 1, 2]


def test_undated_images_are_alone_and_last():
    names = ["f/a", "f/b", "f/c", "f/d", "g/e"]
    dates = [None, "2024:01:01 00:00:10", None, "2024:01:01 00:00:12", None]
    assert ref.find_sequences(names, dates, 10) == [2, 1, 3, 1, 4]


def test_single_image_temperature_and_truncation():
    layout = ref.Layout(3)
    rows, _ = ref.build_rows(["animal"], [[1.1, 0.0, 0.0]])
    # /1.10 -> [1, 0, 0]; softmax = e / (e + 2) = 0.576117
    label, score, top1 = ref.average_logits(rows, layout, 0.5)
    assert (label, top1) == (0, 0)
    assert score == trunc2(math.e / (math.e + 2)) == 0.57
    label, score, top1 = ref.average_logits(rows, layout, 0.8)
    assert (label, score, top1) == (layout.undefined, 0.57, 0)
    # p = 0.996 would round to 1.0; truncation gives 0.99.
    x = math.log(0.996 / 0.004) * 1.1
    rows, _ = ref.build_rows(["animal"], [[x, 0.0]])
    assert ref.average_logits(rows, ref.Layout(2), 0.8)[1] == 0.99


def test_sequence_mean_over_animal_images_only():
    # Animal rows [3.12, 0] and [1.04, 0]; human and empty rows must not count.
    rows, layout = ref.build_rows(
        ["animal", "human", "animal", "empty"], [[3.12, 0], [99, -99], [1.04, 0], [7, 7]]
    )
    # mean [2.08, 0] / 1.04 = [2, 0]; softmax e^2 / (e^2 + 1) = 0.880797
    label, score, top1 = ref.average_logits(rows, layout, 0.8)
    assert (label, top1) == (0, 0)
    assert score == trunc2(math.exp(2) / (math.exp(2) + 1)) == 0.88


def test_empty_human_vehicle_rules():
    layout = ref.Layout(2)
    z = [[0, 0]] * 3
    rows, _ = ref.build_rows(["empty", "empty", "empty"], z)
    assert ref.average_logits(rows, layout, 1.0) == (layout.empty, 1.0, layout.empty)
    rows, _ = ref.build_rows(["human", "vehicle", "empty"], z)
    # one human, one vehicle: a tie goes to human
    assert ref.average_logits(rows, layout, 0.8) == (layout.human, 1.0, layout.human)
    rows, _ = ref.build_rows(["vehicle", "vehicle", "human"], z)
    assert ref.average_logits(rows, layout, 0.8) == (layout.vehicle, 1.0, layout.vehicle)


def test_forbidden_classes_are_dropped_before_the_softmax():
    rows, layout = ref.build_rows(["animal"], [[4.4, 2.2, 0.0]])
    # class 0 off: softmax over [2, 0] -> 0.8808 for class 1
    assert ref.average_logits(rows, layout, 0.8, forbidden=[0]) == (1, 0.88, 1)
    # class 0 on: [4, 2, 0] -> e^4 / (e^4 + e^2 + 1) = 0.8668
    p = math.exp(4) / (math.exp(4) + math.exp(2) + 1)
    assert ref.average_logits(rows, layout, 0.8) == (0, trunc2(p), 0)


def test_bird_head():
    # Class 1 is bird. [0, 3.3] / 1.1 = [0, 3]: p = e^3 / (e^3 + 1) = 0.9526.
    # Groups [0, 2.7, 0] / 0.9 = [0, 3, 0]: p = e^3 / (e^3 + 2) = 0.9094
    # -> group 1, label index 2 classes + 1 = 3.
    rows, layout = ref.build_rows(["animal"], [[0.0, 3.3]], bird_logits=[[0.0, 2.7, 0.0]])
    assert (layout.n_groups, layout.human) == (3, 5)
    label, score, top1 = ref.average_logits(rows, layout, 0.8, bird_index=1)
    assert (label, top1) == (3, 3)
    assert score == trunc2(math.exp(3) / (math.exp(3) + 2)) == 0.90
    # A weak group keeps "bird" (0.95).
    rows, layout = ref.build_rows(["animal"], [[0.0, 3.3]], bird_logits=[[0.0, 0.9, 0.0]])
    assert ref.average_logits(rows, layout, 0.8, bird_index=1) == (1, 0.95, 1)
    # Without bird_index the head is off.
    rows, layout = ref.build_rows(["animal"], [[0.0, 3.3]], bird_logits=[[0.0, 2.7, 0.0]])
    assert ref.average_logits(rows, layout, 0.8) == (1, 0.95, 1)


def test_predict_columns_in_input_order():
    names = ["a/0", "a/1", "b/2", "a/3", "a/4"]
    dates = [
        "2024:01:01 00:00:00",
        "2024:01:01 00:00:08",
        "2024:01:01 00:00:08",
        "2024:01:01 00:00:16",
        None,
    ]
    kinds = ["animal", "animal", "vehicle", "human", "animal"]
    logits = [[2.2, 0.0], [0.0, 1.1], [0.0, 0.0], [0.0, 0.0], [5.5, 0.0]]
    out = ref.predict(names, dates, kinds, logits, [1, 1, 0, 0, 2], [0, 0, 0, 1, 0])
    layout = ref.Layout(2)
    assert out["seqnum"] == [1, 1, 3, 1, 2]
    # base: image 0 [2, 0] -> 0.88; image 1 [0, 1] -> 0.73 undefined; image 3 human.
    assert out["predictionbase"][:2] == [0, layout.undefined]
    assert out["scorebase"][:2] == [0.88, 0.73]
    assert (out["predictionbase"][3], out["scorebase"][3]) == (layout.human, 1.0)
    # sequence 1 = images 0, 1, 3: mean [1.1, 0.55] / 1.04; p = 1 / (1 + e^-(0.55 / 1.04)) = 0.6292
    p = 1 / (1 + math.exp(-0.55 / 1.04))
    for i in (0, 1, 3):
        assert (out["prediction"][i], out["score"][i], out["top1"][i]) == (
            layout.undefined,
            trunc2(p),
            0,
        )
    assert out["prediction"][2] == layout.vehicle
    assert out["count"] == [1, 1, 0, 0, 2] and out["humancount"] == [0, 0, 0, 1, 0]
    assert ref.table_order(names, out["seqnum"]) == [0, 1, 3, 4, 2]


@pytest.mark.parametrize(
    "code, expected", [(0, 0), (1, 1), (2, 2), (3, 3), (255, 0), ("vehicle", 3)]
)
def test_kind_codes(code, expected):
    assert ref.kind_code(code) == expected


def test_deepfaune_15_temperatures():
    # One animal image: [1.12, 0, 0] / 1.12 = [1, 0, 0] -> e / (e + 2) = 0.576117 (1.4.1: 0.58).
    rows, layout = ref.build_rows(["animal"], [[1.12, 0.0, 0.0]])
    assert ref.average_logits(rows, layout, 0.5, rules=ref.DEEPFAUNE_15) == (0, 0.57, 0)
    assert ref.average_logits(rows, layout, 0.5) == (
        0,
        trunc2(1 / (1 + 2 * math.exp(-1.12 / 1.1))),
        0,
    )
    # Two animal images: mean [2.2, 0] / 1.10 = [2, 0] -> 0.880797 (1.4.1: / 1.04 -> 0.8924).
    rows, layout = ref.build_rows(["animal", "empty", "animal"], [[3.3, 0], [9, 9], [1.1, 0]])
    assert ref.average_logits(rows, layout, 0.8, rules=ref.DEEPFAUNE_15) == (0, 0.88, 0)
    assert ref.average_logits(rows, layout, 0.8) == (0, 0.89, 0)
    # Bird stage at 1.00: [0, 3.36] / 1.12 -> bird 0.9526; groups [0, 2, 0] raw ->
    # e^2 / (e^2 + 2) = 0.7870 < 0.8: "bird" stays. 1.4.1 (/ 0.9) gives 0.8219: the group.
    rows, layout = ref.build_rows(["animal"], [[0.0, 3.36]], bird_logits=[[0.0, 2.0, 0.0]])
    assert ref.average_logits(rows, layout, 0.8, bird_index=1, rules=ref.DEEPFAUNE_15) == (
        1,
        0.95,
        1,
    )
    assert ref.average_logits(rows, layout, 0.8, bird_index=1) == (3, 0.82, 3)


def test_deepfaune_15_label_tables():
    path = Path(__file__).parent / "reference" / "deepfaune_15_labels.py"
    spec = importlib.util.spec_from_file_location("deepfaune_15_labels", path)
    labels = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(labels)
    assert labels.BIRD_INDEX == 29
    for lang in ("fr", "en", "it", "de", "es", "no", "se", "pt"):
        classes = labels.TXT_ANIMALCLASSES[lang]
        assert len(classes) == 40 and len(set(classes)) == 40, lang
        assert len(labels.TXT_BIRDCLASSES[lang]) == 8, lang
    assert labels.TXT_ANIMALCLASSES["fr"] == sorted(labels.TXT_ANIMALCLASSES["fr"])
    names = labels.label_names("no", bird_head=True)
    assert len(names) == 40 + 8 + 4
    assert names[29] == "fugl udefinert" and names[40] == "fugl andefugler"
    assert names[48:] == ["menneske", "kjøretøy", "tom", "udefinert"]
    assert labels.label_names("pt", bird_head=False)[23] == "mangusto"
