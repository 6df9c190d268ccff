"""Classification and sequences against independent references: Pillow for the crops,
onnxruntime-python for the logits, tests/reference/deepfaune_sequence_ref.py for SPEC 2.4."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

import deepfaune_rs
from conftest import REPO, shared_dir
from reference.deepfaune_sequence_ref import predict as reference_predict
from reference_detect import load_rgb

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def crop_square_reference(box, width, height):
    """DeepFaune's cropSquareCVtoPIL on an xyxy float box, as pixel bounds."""
    x1, y1, x2, y2 = (float(v) for v in box)
    xsize, ysize = x2 - x1, y2 - y1
    if xsize > ysize:
        y1, y2 = y1 - int((xsize - ysize) / 2), y2 + int((xsize - ysize) / 2)
    if ysize > xsize:
        x1, x2 = x1 - int((ysize - xsize) / 2), x2 + int((ysize - xsize) / 2)
    return max(0, int(x1)), max(0, int(y1)), min(int(x2), width), min(int(y2), height)


def classifier_input_reference(img: Image.Image, box) -> np.ndarray:
    """torchvision Resize((182, 182), BICUBIC) + ToTensor + Normalize, written with Pillow/numpy."""
    crop = img.crop(box).resize((182, 182), Image.BICUBIC)
    x = np.asarray(crop, dtype=np.float32) / np.float32(255.0)
    x = (x - MEAN) / STD
    return x.transpose(2, 0, 1)[None].astype(np.float32)


@pytest.fixture(scope="module")
def pixel_model(shared_models):
    return shared_models / "pixel_classifier_182_c38.onnx"


@pytest.fixture(scope="module")
def pipeline(pixel_model):
    return deepfaune_rs.Pipeline(
        "md-lite", pixel_model, classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml"
    )


BURST = shared_dir() / "schemas" / "camtrap-dp-1.0.2" / "example" / "media"


@pytest.fixture(scope="module", params=["testdata", "burst"])
def run(request, pipeline, pixel_model, testdata):
    if request.param == "testdata":
        return pipeline.run(testdata, progress=False)
    if not BURST.is_dir():
        pytest.skip(f"{BURST} not found")
    # The embedded detector sees the burst's duck only at low confidence.
    sensitive = deepfaune_rs.Pipeline(
        deepfaune_rs.Detector(detection_threshold=0.05),
        pixel_model,
        classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
    )
    return sensitive.run(BURST, progress=False)


def test_crops_and_logits_match_pillow_and_onnxruntime(run, pixel_model):
    sess = ort.InferenceSession(str(pixel_model), providers=["CPUExecutionProvider"])
    det = run.detections
    crops, best, boxes, sizes = det.crop_boxes, det.best_detection, det.boxes, det.sizes
    checked = 0
    for i, path in enumerate(run.paths):
        if det.category[i] != 1:
            assert not run.classified[i]
            assert not run.logits[i].any()
            continue
        w, h = sizes[i]
        ref_box = crop_square_reference(boxes[best[i]], int(w), int(h))
        assert tuple(crops[i]) == ref_box, path
        img = load_rgb(path)
        ours_px = deepfaune_rs.resize_pil(np.asarray(img), (182, 182), box_=ref_box)
        ref_px = np.asarray(img.crop(ref_box).resize((182, 182), Image.BICUBIC))
        assert np.array_equal(ours_px, ref_px), path  # SPEC allows 1 level; we are exact
        ref_logits = sess.run(["logits"], {"input": classifier_input_reference(img, ref_box)})[0][0]
        assert np.abs(run.logits[i] - ref_logits).max() <= 1e-3, path
        checked += 1
    assert checked >= 3


def _label_names(class_names):
    return list(class_names) + ["human", "vehicle", "empty", "undefined"]


def test_sequences_match_the_independent_reference(run):
    det = run.detections
    names = _label_names(run.class_names)
    ref = reference_predict(
        run.paths,
        det.dates,
        [int(c) for c in det.category],
        np.asarray(run.logits),
        threshold=0.8,
        maxlag=10,
    )
    assert list(run.seqnum) == ref["seqnum"]
    assert run.predictionbase == [names[i] for i in ref["predictionbase"]]
    assert run.prediction == [names[i] for i in ref["prediction"]]
    assert run.top1 == [names[i] for i in ref["top1"]]
    assert np.allclose(run.scorebase, ref["scorebase"], atol=1e-6)
    assert np.allclose(run.score, ref["score"], atol=1e-6)


def test_burst_is_one_sequence_and_undated_images_are_alone(pipeline, testdata):
    if not BURST.is_dir():
        pytest.skip("camtrap-dp example media not found")
    burst = pipeline.run(BURST, progress=False)
    assert set(burst.seqnum) == {1} and len(burst) == 10
    ena = pipeline.run(testdata / "ena24", progress=False)
    undated = [i for i, d in enumerate(ena.dates) if d is None]
    assert undated
    for i in undated:
        assert (ena.seqnum == ena.seqnum[i]).sum() == 1


def test_disabled_classes_and_language(pixel_model, testdata):
    manifest = REPO / "models" / "tiny-pixel-c38.toml"
    base = deepfaune_rs.Pipeline("md-lite", pixel_model, classifier_manifest=manifest)
    r0 = base.run(testdata / "southwest", progress=False)
    top = sorted({p for p, c in zip(r0.predictionbase, r0.detections.category) if c == 1})
    fr = deepfaune_rs.Pipeline(
        "md-lite",
        pixel_model,
        classifier_manifest=manifest,
        language="fr",
        disabled_classes=["genet", "loup"],  # names in any language
        score_threshold=0.0,
    )
    r1 = fr.run(testdata / "southwest", progress=False)
    assert "genette" not in r1.predictionbase and "loup" not in r1.predictionbase
    assert "vide" in r1.predictionbase
    names = _label_names(r1.class_names)
    ref = reference_predict(
        r1.paths,
        r1.detections.dates,
        [int(c) for c in r1.detections.category],
        np.asarray(r1.logits),
        threshold=0.0,
        forbidden=[r1.class_names.index("genette"), r1.class_names.index("loup")],
    )
    names[-4:] = ["humain", "vehicule", "vide", "indéfini"]
    assert r1.predictionbase == [names[i] for i in ref["predictionbase"]]
    assert top  # the default run classified something
    with pytest.raises(deepfaune_rs.InvalidArgumentError):
        deepfaune_rs.Pipeline("md-lite", pixel_model, classifier_manifest=manifest, language="xx")
    with pytest.raises(deepfaune_rs.InvalidArgumentError):
        deepfaune_rs.Pipeline(
            "md-lite", pixel_model, classifier_manifest=manifest, disabled_classes=["unicorn"]
        )
