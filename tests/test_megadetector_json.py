"""MegaDetector batch JSON 1.6: what we write passes the format's own checks and reads back
equal; files from other tools are read as DeepFaune's PredictorJSON reads them."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

import deepfaune_rs
from conftest import all_test_images


@pytest.fixture(scope="module")
def detected(testdata, tmp_path_factory):
    """Eight real images (symlinked, never copied) plus a broken one, detected and written."""
    root = tmp_path_factory.mktemp("md")
    for i, p in enumerate(all_test_images(testdata)[::10][:8]):
        os.symlink(p, root / f"img{i:02d}{p.suffix}")
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    det = deepfaune_rs.Detector()
    res = det.detect(root, progress=False)
    out = tmp_path_factory.mktemp("json") / "md.json"
    res.to_megadetector_json(out)
    return root, res, out, det.threshold


def test_written_file_follows_spec_3(detected):
    root, res, out, _ = detected
    doc = json.loads(out.read_text())
    assert doc["info"]["format_version"] == "1.6"
    assert doc["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}
    assert [im["file"] for im in doc["images"]] == [os.path.relpath(p, root) for p in res.paths]
    for im in doc["images"]:
        if "failure" in im:
            assert isinstance(im["failure"], str) and im["failure"]
            assert im["detections"] is None
            continue
        for d in im["detections"]:
            assert d["category"] in ("1", "2", "3")
            assert isinstance(d["conf"], float) and round(d["conf"], 3) == d["conf"]
            x, y, w, h = d["bbox"]
            assert all(round(v, 4) == v for v in d["bbox"])
            assert 0 <= x <= 1 and 0 <= y <= 1 and 0 <= x + w <= 1.0001 and 0 <= y + h <= 1.0001
    assert any(im.get("detections") for im in doc["images"]), "no boxes: the test proves little"


def test_megadetector_utils_validates_it(detected):
    vbr = pytest.importorskip("megadetector.postprocessing.validate_batch_results")
    _, _, out, _ = detected
    r = vbr.validate_batch_results(str(out), vbr.ValidateBatchResultsOptions())
    assert r["validation_results"]["errors"] == []
    assert r["validation_results"]["warnings"] == []


def test_reads_back_equal(detected):
    root, res, out, _ = detected
    # Every written box passed the detector's threshold already: read them all back.
    back = deepfaune_rs.read_megadetector_json(out, root=root, detection_threshold=0.0)
    assert back.paths == res.paths
    np.testing.assert_array_equal(back.category, res.category)
    np.testing.assert_array_equal(back.count, res.count)
    np.testing.assert_array_equal(back.humancount, res.humancount)
    np.testing.assert_array_equal(back.best_detection, res.best_detection)
    np.testing.assert_array_equal(back.sizes, res.sizes)
    np.testing.assert_array_equal(back.classes, res.classes)
    np.testing.assert_allclose(back.confidences, res.confidences, atol=5e-4)
    # 4-decimal rounding, then DeepFaune's int() of the corner and of the width: 0-2 px smaller.
    diff = res.boxes - back.boxes
    assert diff.min() >= -0.5 and diff.max() <= 2.5, (diff.min(), diff.max())
    assert [f["index"] for f in back.failures] == [f["index"] for f in res.failures]
    # Without root, the paths are relative to the JSON file's folder: not there.
    elsewhere = deepfaune_rs.read_megadetector_json(out, detection_threshold=0.0)
    assert {f["kind"] for f in elsewhere.failures} <= {"io", "upstream"}


def _expected_deepfaune_boxes(doc, root, threshold):
    """Independent conversion, from the JSON and Pillow's image sizes."""
    rows = []
    for im in doc["images"]:
        if im.get("detections") is None:
            rows.append(None)
            continue
        with Image.open(os.path.join(root, im["file"])) as pil:
            from PIL import ImageOps

            w, h = ImageOps.exif_transpose(pil).size
        boxes = []
        for d in im["detections"]:
            if d["conf"] > threshold:
                x, y, bw, bh = d["bbox"]
                x1, y1 = int(x * w), int(y * h)
                box = [x1, y1, x1 + int(bw * w), y1 + int(bh * h)]
                boxes.append((int(d["category"]) - 1, box, d["conf"]))
        rows.append(boxes)
    return rows


def test_threshold_04_keeps_the_boxes_deepfaune_keeps(detected):
    root, _, out, _ = detected
    doc = json.loads(out.read_text())
    res = deepfaune_rs.read_megadetector_json(out, root=root)
    expected = _expected_deepfaune_boxes(doc, root, 0.4)
    idx = res.image_index
    kept = 0
    for i, exp in enumerate(expected):
        if exp is None:
            assert res.category[i] == 255
            continue
        got = [(int(c), b.tolist()) for c, b in zip(res.classes[idx == i], res.boxes[idx == i])]
        assert got == [(c, b) for c, b, _ in exp]
        kept += len(exp)
        animals = [e for e in exp if e[0] == 0]
        assert res.count[i] == len(animals)
        # SPEC 2.2: any animal box makes an animal image; otherwise the most confident box.
        if animals:
            want = 1
        elif exp:
            want = {1: 2, 2: 3}[max(exp, key=lambda e: e[2])[0]]
        else:
            want = 0
        assert res.category[i] == want
    assert kept > 0, "no box above 0.4: the test proves little"


def test_other_tools_names_and_classifications_are_kept(tmp_path):
    img = tmp_path / "cam1" / "a.jpg"
    img.parent.mkdir()
    Image.new("RGB", (200, 100), (90, 120, 30)).save(img)
    shutil.copy(img, tmp_path / "cam1" / "b.jpg")
    doc = {
        "info": {"format_version": "1.5", "detector": "other-tool"},
        "detection_categories": {"0": "Animal", "1": "Human", "2": "Vehicle"},
        "classification_categories": {"0": "badger", "1": "fox"},
        "images": [
            {
                "file": "cam1/a.jpg",
                "detections": [
                    {
                        "category": "0",
                        "conf": 0.7,
                        "bbox": [0.1, 0.2, 0.3, 0.4],
                        "classifications": [["1", 0.8], ["0", 0.1]],
                    },
                    {"category": "1", "conf": 0.3, "bbox": [0.5, 0.5, 0.1, 0.1]},
                ],
            },
            {
                "file": "cam1/b.jpg",
                "detections": [{"category": "1", "conf": 0.9, "bbox": [0, 0, 1, 1]}],
            },
            {"file": "cam1/gone.jpg", "detections": []},
        ],
    }
    path = tmp_path / "other.json"
    path.write_text(json.dumps(doc))
    res = deepfaune_rs.read_megadetector_json(path)
    assert res.category_names == ["animal", "human", "failed"]
    assert res.boxes[0].tolist() == [20, 20, 20 + 60, 20 + 40]  # int(0.1*200), int(0.2*100), ...
    assert res.classification_categories == {"0": "badger", "1": "fox"}
    assert res.classifications[0] == [("1", pytest.approx(0.8)), ("0", pytest.approx(0.1))]
    assert res.failures[0]["kind"] == "io" and res.failures[0]["stage"] == "read"
    assert res.humancount.tolist() == [0, 1, 0]


def test_not_a_batch_file_raises(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"hello": 1}')
    with pytest.raises(deepfaune_rs.InvalidArgumentError, match="images"):
        deepfaune_rs.read_megadetector_json(p)
    with pytest.raises(deepfaune_rs.InvalidArgumentError):
        deepfaune_rs.read_megadetector_json(tmp_path / "missing.json")


def test_coordinates_and_confidences_stay_float64(tmp_path):
    """Issue 18: DeepFaune computes int(x * W) and conf > 0.4 on Python floats (float64)."""
    Image.new("RGB", (800, 600), (40, 80, 120)).save(tmp_path / "a.jpg")
    doc = {
        "images": [
            {
                "file": "a.jpg",
                "detections": [
                    {"category": "1", "conf": 0.40000001, "bbox": [0.4775, 0.1, 0.2, 0.3]}
                ],
            }
        ]
    }
    (tmp_path / "md.json").write_text(json.dumps(doc))
    res = deepfaune_rs.read_megadetector_json(tmp_path / "md.json")
    assert 0.40000001 > 0.4 and np.float32(0.40000001) == np.float32(0.4)
    assert len(res.confidences) == 1, "a confidence just above 0.4 must be kept"
    # Parsed as float32 first, the coordinate is 0.47749999...: 381.99999 px, truncated to 381.
    assert int(0.4775 * 800) == 382 and int(float(np.float32(0.4775)) * 800) == 381
    assert res.boxes[0].tolist() == [382, 60, 382 + int(0.2 * 800), 60 + int(0.3 * 600)]
