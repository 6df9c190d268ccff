"""The Python API of detection: modes, thresholds, MegaDetector JSON, errors, cancellation."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import deepfaune_rs
from conftest import REPO


@pytest.fixture(scope="module")
def southwest(testdata):
    return testdata / "southwest"


@pytest.fixture(scope="module")
def base(southwest):
    return deepfaune_rs.Detector().detect(southwest, progress=False)


def test_torch_is_not_needed():
    assert importlib.util.find_spec("torch") is None or "torch" not in deepfaune_rs.__dict__


def test_threshold_override_only_removes_boxes(southwest, base):
    strict = deepfaune_rs.Detector(detection_threshold=0.8).detect(southwest, progress=False)
    assert strict.confidences.min() >= 0.8
    kept = base.confidences[base.confidences >= 0.8]
    assert np.allclose(np.sort(strict.confidences), np.sort(kept))


def test_backstop_with_strict_primary(southwest, base, shared_models, tmp_path):
    # Same model file, a manifest copy with threshold 0.85 as primary.
    text = REPO / "models" / "md-lite.toml"
    manifest = tmp_path / "strict.toml"
    manifest.write_text(text.read_text().replace("threshold = 0.25", "threshold = 0.85"))
    shutil.copy(shared_models / "md_lite_yolox_tiny_640.onnx", tmp_path)
    det = deepfaune_rs.Detector(str(manifest), secondary="md-lite", mode="backstop")
    res = det.detect(southwest, progress=False)
    for i in range(len(res)):
        if res.category[i] == 255:
            continue
        base_conf = base.confidences[base.image_index == i]
        mine = res.confidences[res.image_index == i]
        if (base_conf >= 0.85).any():
            assert np.allclose(np.sort(mine), np.sort(base_conf[base_conf >= 0.85]))
        else:
            assert np.allclose(np.sort(mine), np.sort(base_conf))


def test_ensemble_merges_duplicates(southwest, base):
    det = deepfaune_rs.Detector("md-lite", secondary="md-lite", mode="ensemble")
    res = det.detect(southwest, progress=False)
    # The same boxes twice: NMS at 0.7 removes every duplicate.
    assert len(res.confidences) == len(base.confidences)
    assert np.array_equal(res.category, base.category)


def test_megadetector_json_follows_format_1_6(southwest, base, tmp_path):
    out = tmp_path / "md.json"
    base.to_megadetector_json(out)
    doc = json.loads(out.read_text())
    assert doc["info"]["format_version"] == "1.6"
    assert doc["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}
    assert len(doc["images"]) == len(base)
    for im, path, cat in zip(doc["images"], base.paths, base.category):
        assert (southwest / im["file"]) == Path(path)
        if cat == 255:
            assert im["detections"] is None and im["failure"]
            continue
        for d in im["detections"]:
            assert d["category"] in {"1", "2", "3"}
            assert 0 <= d["conf"] <= 1 and round(d["conf"], 3) == d["conf"]
            x, y, w, h = d["bbox"]
            assert 0 <= x <= 1 and 0 <= y <= 1 and 0 <= w <= 1 and 0 <= h <= 1
            assert x + w <= 1.0001 and y + h <= 1.0001
            assert all(round(v, 4) == v for v in d["bbox"])
    # Independent check of one box: normalise our pixel box by hand.
    i = int(base.image_index[0])
    w, h = base.sizes[i]
    x1, y1, x2, y2 = base.boxes[0]
    first = doc["images"][i]["detections"][0]
    assert first["bbox"] == pytest.approx([x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h], abs=6e-5)


def test_output_is_atomic_on_error(base, tmp_path):
    target = tmp_path / "missing" / "out.json"
    with pytest.raises(deepfaune_rs.OutputError):
        base.to_megadetector_json(target)
    assert not target.parent.exists()


def test_progress_callback_and_cancellation(southwest):
    seen = []

    def progress(done, total):
        seen.append((done, total))

    deepfaune_rs.Detector().detect(southwest, progress=progress)
    assert seen[-1][0] == seen[-1][1] == 16
    assert [d for d, _ in seen] == list(range(1, 17))

    class Stop(Exception):
        pass

    def stop_at_3(done, total):
        if done == 3:
            raise Stop

    with pytest.raises(Stop):
        deepfaune_rs.Detector().detect(southwest, progress=stop_at_3)


def test_model_errors_are_typed(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAUNE_RS_MODELS", str(tmp_path))
    with pytest.raises(deepfaune_rs.WeightsNotFoundError) as e:
        deepfaune_rs.Detector("DFbsMDS")
    assert isinstance(e.value, FileNotFoundError)
    assert "deepfaune-rs models fetch df mds`" in str(e.value)
    with pytest.raises(deepfaune_rs.UnknownModelError):
        deepfaune_rs.Detector("no-such-model")
    with pytest.raises(deepfaune_rs.InvalidArgumentError):
        deepfaune_rs.Detector("md-lite", secondary="md-lite")
    bad = tmp_path / "bad.toml"
    bad.write_text("kind = 'detector'\n")
    with pytest.raises(deepfaune_rs.ManifestError):
        deepfaune_rs.Detector(str(bad))


def test_wrong_layout_manifest_is_a_mismatch(shared_models, southwest, tmp_path):
    src = REPO / "models" / "md-lite.toml"
    m = tmp_path / "wrong.toml"
    m.write_text(src.read_text().replace('layout = "yolox"', 'layout = "yolov8"'))
    shutil.copy(shared_models / "md_lite_yolox_tiny_640.onnx", tmp_path)
    det = deepfaune_rs.Detector(str(m))
    with pytest.raises(deepfaune_rs.ModelMismatchError):
        det.detect(southwest / "IMAG0031_wolf.JPG", progress=False)


def test_models_listing():
    ids = {m["id"]: m for m in deepfaune_rs.list_models()}
    assert ids["md-lite"]["embedded"] and ids["md-lite"]["available"]
    assert ids["df"]["url"].endswith(".pt")
    assert ids["mdr"]["input_size"] == 1280
    assert ids["deepfaune-v14"]["kind"] == "classifier" and not ids["deepfaune-v14"]["embedded"]
    assert ids["deepfaune-v14"]["expected_path"].endswith(".onnx")
