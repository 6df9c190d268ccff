"""int8 variants: ``deepfaune-rs models quantize ID`` writes a separate model and manifest;
``precision="int8"`` / ``--int8`` loads them; ``deepfaune-rs agreement`` compares the two.

The int8 detector's results are checked against the independent reference detector
(reference_detect.py: Pillow letterbox + onnxruntime-python + numpy NMS) run on the same int8
file; the manifest against the fp32 one read with tomllib; the graphs with onnx."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
import tomllib

from conftest import REPO, all_test_images, find_testdata
from deepfaune_rs import Detector, Pipeline, WeightsNotFoundError
from deepfaune_rs.agreement import agreement, box_iou
from deepfaune_rs.quantize import quantize
from reference_detect import ReferenceYolox, iou

SAMPLE = 8


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    old = os.environ.get("DEEPFAUNE_RS_MODELS")
    os.environ["DEEPFAUNE_RS_MODELS"] = str(d)
    yield d
    if old is None:
        del os.environ["DEEPFAUNE_RS_MODELS"]
    else:
        os.environ["DEEPFAUNE_RS_MODELS"] = old


@pytest.fixture(scope="module")
def md_lite_int8(model_dir, testdata):
    return quantize("md-lite", [testdata], sample=SAMPLE)


def test_quantize_writes_a_model_and_its_manifest(md_lite_int8, model_dir):
    info = md_lite_int8
    assert info["id"] == "md-lite-int8" and info["method"] == "static"
    assert info["calibration_images"] == SAMPLE
    out = model_dir / "md_lite_yolox_tiny_640.int8.onnx"
    assert info["output"] == str(out) and info["manifest"] == str(model_dir / "md-lite-int8.toml")
    assert not [p for p in model_dir.iterdir() if p.name.startswith(".quantize-")]
    with open(info["manifest"], "rb") as f:
        m = tomllib.load(f)
    with open(REPO / "models" / "md-lite.toml", "rb") as f:
        base = tomllib.load(f)
    assert m["id"] == "md-lite-int8" and m["file"] == out.name
    assert m["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert "url" not in m
    for section in ("input", "output", "postprocess"):
        assert m[section] == base[section]
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert info["int8_mb"] < info["fp32_mb"]


def test_int8_detector_equals_the_reference_on_the_int8_file(md_lite_int8, testdata):
    det = Detector("md-lite", precision="int8")
    assert det.models == ["md-lite-int8"]
    paths = [p for p in all_test_images(testdata) if p.stat().st_size > 0][::8]
    ours = det.detect([str(p) for p in paths], progress=False)
    ref = ReferenceYolox(md_lite_int8["output"], threshold=0.25, nms_iou=0.45)
    boxes, conf, idx = ours.boxes, ours.confidences, ours.image_index
    for i, p in enumerate(ours.paths):
        if ours.category[i] == 255:
            continue
        ref_boxes, ref_scores, _ = ref.detect(p)
        mine = np.nonzero(idx == i)[0]
        assert len(mine) == len(ref_boxes), p
        if len(mine):
            best = mine[np.argmax(conf[mine])]
            assert iou(boxes[best], ref_boxes[0]) >= 0.99
            assert abs(conf[best] - ref_scores[0]) < 1e-3


def test_agreement_on_md_lite(md_lite_int8, testdata):
    """The report against the two precisions' detections computed here, image by image."""
    from deepfaune_rs.quantize import image_files

    files = [str(p) for p in image_files([testdata], 10)]
    r = agreement([testdata], sample=10, detector="md-lite", classifier=None)
    fp = Detector("md-lite").detect(files, progress=False)
    q = Detector("md-lite", precision="int8").detect(files, progress=False)
    ok = (fp.category != 255) & (q.category != 255)
    assert r["images"] == int(ok.sum()) >= 9
    assert r["decision_agreement"] == pytest.approx(np.mean(fp.category[ok] == q.category[ok]))
    ious = [
        iou(fp.boxes[fp.best_detection[i]], q.boxes[q.best_detection[i]])
        for i in np.nonzero(ok & (fp.best_detection >= 0) & (q.best_detection >= 0))[0]
    ]
    assert r["boxes_compared"] == len(ious) > 0
    assert r["best_box_iou_mean"] == pytest.approx(np.mean(ious))
    assert r["best_box_iou_min"] == pytest.approx(min(ious))
    # Far from random: the head stays in float (measured on all 75 images: README).
    assert r["decision_agreement"] >= 0.85 and r["best_box_iou_mean"] >= 0.9


def test_box_iou_by_hand():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 2, 2]])
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [3, 3, 4, 4]])
    np.testing.assert_allclose(box_iou(a, b), [50 / 150, 1.0, 0.0])


def test_classifier_dynamic_int8(tmp_path, md_lite_int8, shared_models, testdata):
    man = tmp_path / "tiny-vit-c38.toml"
    shutil.copy(REPO / "models" / "tiny-vit-c38.toml", man)
    shutil.copy(shared_models / "tiny_vit_dinov2_layout_182_c38.onnx", tmp_path)
    info = quantize(str(man))
    assert info["method"] == "dynamic" and info["id"] == "tiny-vit-c38-int8"
    assert info["manifest"] == str(tmp_path / "tiny-vit-c38-int8.toml")
    ops = {n.op_type for n in onnx.load(info["output"]).graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeLinear" in ops
    imgs = [str(p) for p in all_test_images(testdata)[:12]]
    det = Detector("md-lite")
    fp = Pipeline(det, str(man)).run(imgs, progress=False)
    q = Pipeline(det, str(man), precision="int8").run(imgs, progress=False)
    cl = np.asarray(fp.classified)
    assert cl.any() and list(cl) == list(q.classified)
    a, b = np.asarray(fp.logits)[cl], np.asarray(q.logits)[cl]
    assert not np.array_equal(a, b)  # the int8 weights ran
    assert np.abs(a - b).max() < 0.25 * np.abs(a).max()


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deepfaune_rs.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_cli_quantize_errors_are_usage(tmp_path):
    env = {"DEEPFAUNE_RS_MODELS": str(tmp_path)}
    for args in (["nope"], ["md-lite"], ["md-lite", "--images", str(tmp_path / "none")]):
        p = _cli("models", "quantize", *args, env=env)
        assert p.returncode == 2, (args, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_int8_variant_says_how_to_make_it(tmp_path):
    env = {"DEEPFAUNE_RS_MODELS": str(tmp_path)}
    img = str(all_test_images(find_testdata())[0])
    p = _cli("detect", img, "-o", str(tmp_path / "o.json"), "--int8", env=env)
    assert p.returncode == 1 and "deepfaune-rs models quantize md-lite" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    old = os.environ.get("DEEPFAUNE_RS_MODELS")
    os.environ["DEEPFAUNE_RS_MODELS"] = str(tmp_path)
    try:
        with pytest.raises(WeightsNotFoundError, match="models quantize md-lite"):
            Detector("md-lite", precision="int8")
    finally:
        if old is None:
            del os.environ["DEEPFAUNE_RS_MODELS"]
        else:
            os.environ["DEEPFAUNE_RS_MODELS"] = old


def test_cli_agreement(md_lite_int8, model_dir, testdata, tmp_path):
    out = tmp_path / "agreement.json"
    p = _cli(
        "agreement",
        str(testdata / "buow"),
        "--sample",
        "4",
        "--detector",
        "md-lite",
        "--no-classifier",
        "--json",
        str(out),
        env={"DEEPFAUNE_RS_MODELS": str(model_dir)},
    )
    assert p.returncode == 0, p.stderr
    assert "decision agreement" in p.stdout and "best-box IoU" in p.stdout
    import json

    assert json.loads(out.read_text())["images"] == 4


def test_calibration_reader_rewinds_to_the_same_inputs(testdata):
    """onnxruntime may read the calibration images twice: after ``rewind`` the reader gives the
    same tensors again, each the core's detector input of that file, skipping unreadable ones."""
    from deepfaune_rs import _core
    from deepfaune_rs.quantize import _Calibration

    files = [p for p in all_test_images(testdata) if p.stat().st_size > 0][:3]
    broken = testdata / "southwest" / "error_img.JPG"  # 0 bytes
    assert broken.stat().st_size == 0
    reader = _Calibration("md-lite", "images", [files[0], broken, *files[1:]])

    def read_all():
        out = []
        while (item := reader.get_next()) is not None:
            out.append(item["images"])
        return out

    first = read_all()
    assert reader.used == 3 and reader.get_next() is None
    reader.rewind()
    second = read_all()
    assert reader.used == 3
    for f, a, b in zip(files, first, second):
        expected = _core.detector_input("md-lite", str(f))
        np.testing.assert_array_equal(a, expected)
        np.testing.assert_array_equal(b, expected)
