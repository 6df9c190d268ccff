"""Parameter names that say what they are (issue 15): ``score_threshold`` (a class score),
``detection_threshold`` (a detector confidence), ``distance_threshold`` (a re-ID distance).
``threshold`` meant each of them in a different place; it is accepted for one release with a
DeprecationWarning (a notice on stderr in the CLI). The score threshold's default is the
classifier manifest's, no longer a 0.8 written in the code."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

import deepfaune_rs
from conftest import REPO
from deepfaune_rs.errors import InvalidArgumentError
from deepfaune_rs.reid import KnowledgeBase

MANIFEST = REPO / "models" / "tiny-pixel-c38.toml"
NAMES = ["IMG_0708.JPG", "IMG_0827.JPG", "IMG_0919.JPG", "IMG_1160.JPG", "RCNX0712.JPG"]


@pytest.fixture(scope="module")
def folder(testdata, tmp_path_factory):
    """Small copies of dated images (one sequence each)."""
    root = tmp_path_factory.mktemp("names")
    for name in NAMES:
        with Image.open(testdata / "buow" / name) as img:
            exif = img.getexif()
            small = img.resize((img.width // 6, img.height // 6), Image.BILINEAR)
        small.save(root / name, quality=90, exif=exif)
    return root


@pytest.fixture(scope="module")
def model(shared_models):
    return shared_models / "pixel_classifier_182_c38.onnx"


def _pipe(model, manifest=MANIFEST, **kw):
    return deepfaune_rs.Pipeline("md-lite", model, classifier_manifest=manifest, **kw)


def _no_warning(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn()


def test_score_threshold_and_its_old_name(model, folder):
    new = _no_warning(lambda: _pipe(model, score_threshold=0.3).run(folder, progress=False))
    with pytest.warns(DeprecationWarning, match="use score_threshold"):
        old = _pipe(model, threshold=0.3).run(folder, progress=False)
    assert new.to_pandas().equals(old.to_pandas())
    assert new.settings["score_threshold"] == pytest.approx(0.3)
    with pytest.raises(InvalidArgumentError, match="not both"):
        _pipe(model, threshold=0.3, score_threshold=0.3)
    again = _no_warning(lambda: new.redecide(score_threshold=0.5))
    with pytest.warns(DeprecationWarning, match="use score_threshold"):
        old_again = new.redecide(threshold=0.5)
    assert again.to_pandas().equals(old_again.to_pandas())
    with pytest.raises(InvalidArgumentError, match="not both"):
        new.redecide(threshold=0.5, score_threshold=0.5)


def test_the_default_score_threshold_is_the_manifests(model, folder, tmp_path):
    """A manifest saying 0.3 changes the decision: per image, the class when the softmax of its
    logits at the image temperature (1.10) reaches 0.3, computed here with numpy."""
    text = MANIFEST.read_text()
    assert "threshold = 0.8" in text
    low = tmp_path / "low.toml"
    low.write_text(text.replace("threshold = 0.8", "threshold = 0.3", 1))
    (tmp_path / model.name).symlink_to(model)
    res = _pipe(model, manifest=low).run(folder, progress=False)
    default = _pipe(model).run(folder, progress=False)
    assert res.settings["score_threshold"] == pytest.approx(0.3)
    assert default.settings["score_threshold"] == pytest.approx(0.8)
    changed = 0
    for i in range(len(res)):
        if not res.classified[i]:
            assert res.predictionbase[i] == default.predictionbase[i]
            continue
        z = res.logits[i].astype(np.float64) / 1.10
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        best = int(p.argmax())
        assert min(abs(p[best] - 0.3), abs(p[best] - 0.8)) > 1e-4  # no rounding case
        expect_low = res.class_names[best] if p[best] >= 0.3 else "undefined"
        expect_default = res.class_names[best] if p[best] >= 0.8 else "undefined"
        assert res.predictionbase[i] == expect_low
        assert default.predictionbase[i] == expect_default
        changed += expect_low != expect_default
    assert changed >= 1


def test_detection_threshold_and_its_old_name():
    assert _no_warning(lambda: deepfaune_rs.Detector(detection_threshold=0.3)).threshold == (
        pytest.approx(0.3)
    )
    with pytest.warns(DeprecationWarning, match="use detection_threshold"):
        assert deepfaune_rs.Detector(threshold=0.3).threshold == pytest.approx(0.3)
    with pytest.raises(InvalidArgumentError, match="not both"):
        deepfaune_rs.Detector(threshold=0.3, detection_threshold=0.3)


def test_read_megadetector_json_detection_threshold_and_its_old_name(tmp_path):
    # Two boxes on one image, conf 0.3 and 0.6: 0.2 keeps both, DeepFaune's 0.4 one.
    image = tmp_path / "a.jpg"
    Image.new("RGB", (100, 80), "gray").save(image)
    md = tmp_path / "md.json"
    md.write_text(
        '{"info": {"format_version": "1.4"}, "detection_categories": {"1": "animal"}, '
        '"images": [{"file": "a.jpg", "detections": ['
        '{"category": "1", "conf": 0.3, "bbox": [0.1, 0.1, 0.2, 0.2]}, '
        '{"category": "1", "conf": 0.6, "bbox": [0.5, 0.5, 0.2, 0.2]}]}]}'
    )
    read = deepfaune_rs.read_megadetector_json
    new = _no_warning(lambda: read(md, detection_threshold=0.2))
    assert list(new.count) == [2]
    with pytest.warns(DeprecationWarning, match="use detection_threshold"):
        old = read(md, threshold=0.2)
    assert list(old.count) == [2]
    assert list(_no_warning(lambda: read(md)).count) == [1]
    with pytest.raises(InvalidArgumentError, match="not both"):
        read(md, threshold=0.5, detection_threshold=0.5)


def test_distance_threshold_and_its_old_name():
    kb = KnowledgeBase(2)
    kb.add(["a.jpg", "b.jpg"], ["A", "B"], np.array([[1, 0], [0, 1]], dtype=np.float32))
    q = np.array([[1, 0.2], [1, 1]], dtype=np.float32)  # distances 0.019 (A) and 0.29 (A, B)
    new = _no_warning(lambda: kb.query(q, k=1, distance_threshold=0.1, seed=1))
    with pytest.warns(DeprecationWarning, match="use distance_threshold"):
        old = kb.query(q, k=1, threshold=0.1, seed=1)
    assert list(new.is_new) == list(old.is_new) == [False, True]
    with pytest.raises(InvalidArgumentError, match="not both"):
        kb.query(q, threshold=0.1, distance_threshold=0.1)
    truth = ["A", None]
    ev = _no_warning(lambda: kb.evaluate(q, truth, k=1, distance_threshold=0.1))
    with pytest.warns(DeprecationWarning, match="use distance_threshold"):
        ev_old = kb.evaluate(q, truth, k=1, threshold=0.1)
    assert str(ev.summary()) == str(ev_old.summary())


def _cli(*args):
    cmd = [sys.executable, "-m", "deepfaune_rs.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_cli_flags_and_their_old_name(model, folder, tmp_path):
    run = ("run", folder, "--no-progress", "--detector", "md-lite", "--classifier", model,
           "--classifier-manifest", MANIFEST)  # fmt: skip
    new = _cli(*run, "-o", tmp_path / "new.csv", "--score-threshold", "0.3")
    assert new.returncode == 0 and "deprecated" not in new.stderr, new.stderr
    old = _cli(*run, "-o", tmp_path / "old.csv", "--threshold", "0.3")
    assert old.returncode == 0, old.stderr
    notice = [line for line in old.stderr.splitlines() if "deprecated" in line]
    assert notice == ["deepfaune-rs: warning: --threshold is deprecated, use --score-threshold"]
    assert (tmp_path / "new.csv").read_bytes() == (tmp_path / "old.csv").read_bytes()
    both = _cli(*run, "-o", tmp_path / "both.csv", "--threshold", "0.3", "--score-threshold", "0.3")
    assert both.returncode == 2 and "not both" in both.stderr, both.stderr

    image = folder / NAMES[0]
    det = _cli("detect", image, "-o", tmp_path / "d.json", "--no-progress", "--threshold", "0.3")
    assert det.returncode == 0, det.stderr
    assert "--threshold is deprecated, use --detection-threshold" in det.stderr
    det_new = _cli("detect", image, "-o", tmp_path / "n.json", "--no-progress",
                   "--detection-threshold", "0.3")  # fmt: skip
    assert det_new.returncode == 0 and "deprecated" not in det_new.stderr, det_new.stderr
    run_new = _cli(*run, "-o", tmp_path / "dn.csv", "--detection-threshold", "0.3")
    assert run_new.returncode == 0 and "deprecated" not in run_new.stderr, run_new.stderr
    run_old = _cli(*run, "-o", tmp_path / "do.csv", "--detector-threshold", "0.3")
    assert run_old.returncode == 0, run_old.stderr
    assert "--detector-threshold is deprecated, use --detection-threshold" in run_old.stderr
    assert (tmp_path / "dn.csv").read_bytes() == (tmp_path / "do.csv").read_bytes()
    both = _cli("reid", "query", tmp_path, folder, "-o", tmp_path / "q.csv",
                "--threshold", "0.3", "--distance-threshold", "0.3")  # fmt: skip
    # One line, status 2 naming both (clap's words: the option is exclusive with --gaussian too).
    assert both.returncode == 2 and len(both.stderr.strip().splitlines()) == 1, both.stderr
    assert "'--distance-threshold" in both.stderr and "'--threshold" in both.stderr, both.stderr
    assert "cannot be used with" in both.stderr, both.stderr
