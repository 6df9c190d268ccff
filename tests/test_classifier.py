"""The stand-alone ``Classifier`` (issue 15): boxes found elsewhere to logits and embeddings,
checked against onnxruntime-python on crops cut and squashed with Pillow."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image
from test_pipeline_parity import classifier_input_reference, crop_square_reference

import deepfaune_rs
from conftest import REPO
from reference_detect import load_rgb

MANIFEST = REPO / "models" / "tiny-pixel-c38.toml"
# (file, box [x1, y1, x2, y2] in pixels of the upright image): any box will do.
ITEMS = [
    ("buow/IMG_0708.JPG", (400.5, 80.0, 980.2, 660.0)),
    ("southwest/IMAG0031_wolf.JPG", (100.0, 300.0, 900.0, 500.0)),  # wide: grown to a square
    ("ena24/49.jpg", (10.0, 20.0, 60.0, 200.0)),  # tall, near the edge: clipped
]


@pytest.fixture(scope="module")
def model(shared_models):
    return shared_models / "pixel_classifier_182_c38.onnx"


@pytest.fixture(scope="module")
def clf(model):
    return deepfaune_rs.Classifier(model, classifier_manifest=MANIFEST, batch_size=2)


@pytest.fixture(scope="module")
def session(model):
    return ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])


def _reference(session, img: Image.Image, rect) -> tuple[np.ndarray, np.ndarray]:
    logits, emb = session.run(
        ["logits", "embedding"], {"input": classifier_input_reference(img, rect)}
    )
    return logits[0], emb[0]


def test_files_and_arrays_against_onnxruntime(clf, session, testdata):
    paths = [testdata / f for f, _ in ITEMS]
    boxes = [b for _, b in ITEMS]
    images = [load_rgb(p) for p in paths]
    from_files = clf.classify(paths, boxes)
    from_arrays = clf.classify([np.asarray(im) for im in images], boxes)
    assert len(from_files) == 3 and from_files.failures == []
    assert from_files.class_names == clf.class_names and len(clf.class_names) == 38
    for i, (img, box) in enumerate(zip(images, boxes)):
        rect = crop_square_reference(box, img.width, img.height)
        logits, emb = _reference(session, img, rect)
        for got in (from_files, from_arrays):
            np.testing.assert_allclose(got.logits[i], logits, atol=1e-3, err_msg=str(paths[i]))
            np.testing.assert_allclose(got.embeddings[i], emb, atol=1e-3, err_msg=str(paths[i]))
    np.testing.assert_array_equal(from_files.logits, from_arrays.logits)
    assert from_files.bird_logits.shape == (3, 0)


def test_exact_boxes_whole_images_and_megadetector_boxes(clf, session, testdata):
    img = load_rgb(testdata / ITEMS[1][0])
    x1, y1, x2, y2 = ITEMS[1][1]
    exact = clf.classify([np.asarray(img)], [ITEMS[1][1]], square=False)
    np.testing.assert_allclose(
        exact.logits[0], _reference(session, img, (100, 300, 900, 500))[0], atol=1e-3
    )
    whole = clf.classify([np.asarray(img)], keep_embeddings=False)
    assert whole.embeddings.shape == (1, 0)
    np.testing.assert_allclose(
        whole.logits[0], _reference(session, img, (0, 0, img.width, img.height))[0], atol=1e-3
    )
    w, h = img.width, img.height
    md = (x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h)
    as_md = clf.classify([np.asarray(img)], [md], box_format="megadetector", square=False)
    # DeepFaune's int(x * W) on Python floats.
    rect = (int(md[0] * w), int(md[1] * h), int((md[0] + md[2]) * w), int((md[1] + md[3]) * h))
    np.testing.assert_allclose(as_md.logits[0], _reference(session, img, rect)[0], atol=1e-3)


def test_bad_inputs_are_failure_rows(clf, testdata, tmp_path):
    good = testdata / ITEMS[0][0]
    res = clf.classify(
        [good, tmp_path / "missing.jpg", good],
        [ITEMS[0][1], None, (5000.0, 5000.0, 6000.0, 6000.0)],
    )
    assert [i for i, _ in res.failures] == [1, 2]
    assert "no pixel" in res.failures[1][1]
    assert not np.isnan(res.logits[0]).any()
    assert np.isnan(res.logits[1:]).all() and np.isnan(res.embeddings[1:]).all()
    with pytest.raises(deepfaune_rs.InvalidArgumentError, match="box_format"):
        clf.classify([good], [None], box_format="xywh")
    with pytest.raises(deepfaune_rs.InvalidArgumentError, match="2 boxes for 1"):
        clf.classify([good], [None, None])


def test_the_pipelines_crop_gives_the_pipelines_logits(clf, model, testdata):
    """A run's deciding box, given back, is the run's classification."""
    pipe = deepfaune_rs.Pipeline("md-lite", model, classifier_manifest=MANIFEST)
    res = pipe.run([testdata / f for f, _ in ITEMS], progress=False)
    det = res.detections
    rows = [i for i in range(len(res)) if res.classified[i]]
    assert rows
    boxes = [tuple(det.boxes[det.best_detection[i]]) for i in rows]
    again = clf.classify([res.paths[i] for i in rows], boxes)
    np.testing.assert_array_equal(again.logits, res.logits[rows])
