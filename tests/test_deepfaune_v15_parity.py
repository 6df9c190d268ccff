"""DeepFaune 1.5 end to end against independent references, on the test images: Pillow and
onnxruntime-python for the 224 px crops and the logits, tests/reference/ for 1.5's sequences
(temperatures 1.12 / 1.10 / bird 1.00) and its 40 classes and labels in eight languages (written
out from ../shared/deepfaune-1.5.md, never read from our manifest).

The classifier is the built-in ``deepfaune-v15`` manifest itself, run on pixel-sensitive random
models built at test time (tests/deepfaune_v15_models.py) under its file names.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from deepfaune_v15_models import BIRD_HEAD_FILE, CLASSIFIER_FILE, build
from PIL import Image
from test_pipeline_parity import crop_square_reference

import deepfaune_rs
from conftest import REPO, shared_dir
from reference.deepfaune_15_labels import BIRD_INDEX, TXT_ANIMALCLASSES, label_names
from reference.deepfaune_sequence_ref import DEEPFAUNE_15, DEEPFAUNE_141
from reference.deepfaune_sequence_ref import predict as reference_predict
from reference_detect import load_rgb

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = build(tmp_path_factory.mktemp("v15-models"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEEPFAUNE_RS_MODELS", str(folder))
        yield folder


def _pipeline(models, **kw):
    return deepfaune_rs.Pipeline("md-lite", "deepfaune-v15", **kw)


# The test images' dates are days apart: a month-long maxlag makes sequences of several dated
# images per folder, so that the several-image temperature (1.10) is exercised too.
MONTH = 30 * 24 * 3600.0
BURST = shared_dir() / "schemas" / "camtrap-dp-1.0.2" / "example" / "media"


@pytest.fixture(scope="module")
def run(models, testdata):
    return _pipeline(models, bird_head=True, maxlag_s=MONTH).run(testdata, progress=False)


def _reference(res, threshold=0.8, forbidden=(), bird_head=True, rules=DEEPFAUNE_15, maxlag=MONTH):
    det = res.detections
    return reference_predict(
        res.paths,
        det.dates,
        [int(c) for c in det.category],
        np.asarray(res.logits),
        threshold=threshold,
        maxlag=maxlag,
        forbidden=list(forbidden),
        bird_logits=np.asarray(res.bird_logits) if bird_head else None,
        bird_index=BIRD_INDEX if bird_head else None,
        rules=rules,
    )


def _assert_same(res, ref, names):
    assert list(res.seqnum) == ref["seqnum"]
    assert res.predictionbase == [names[i] for i in ref["predictionbase"]]
    assert res.prediction == [names[i] for i in ref["prediction"]]
    assert res.top1 == [names[i] for i in ref["top1"]]
    assert np.allclose(res.scorebase, ref["scorebase"], atol=1e-6)
    assert np.allclose(res.score, ref["score"], atol=1e-6)


def test_crops_logits_and_bird_logits_match_pillow_and_onnxruntime(run, models):
    sess = ort.InferenceSession(str(models / CLASSIFIER_FILE), providers=["CPUExecutionProvider"])
    head = ort.InferenceSession(str(models / BIRD_HEAD_FILE), providers=["CPUExecutionProvider"])
    det = run.detections
    assert run.logits.shape == (len(run), 40) and run.bird_logits.shape == (len(run), 8)
    checked = 0
    for i, path in enumerate(run.paths):
        if det.category[i] != 1:
            assert not run.classified[i]
            continue
        w, h = det.sizes[i]
        box = crop_square_reference(det.boxes[det.best_detection[i]], int(w), int(h))
        assert tuple(det.crop_boxes[i]) == box, path
        # torchvision Resize((224, 224), BICUBIC) on a PIL image + ToTensor + Normalize.
        crop = load_rgb(path).crop(box).resize((224, 224), Image.BICUBIC)
        x = ((np.asarray(crop, dtype=np.float32) / np.float32(255.0) - MEAN) / STD).astype(
            np.float32
        )
        logits, emb = sess.run(["logits", "embedding"], {"input": x.transpose(2, 0, 1)[None]})
        (birds,) = head.run(["logits"], {"embedding": emb})
        assert np.abs(run.logits[i] - logits[0]).max() <= 1e-3, path
        assert np.abs(run.bird_logits[i] - birds[0]).max() <= 1e-3, path
        checked += 1
    assert checked >= 3


def test_sequences_bird_stage_and_labels_match_deepfaune_15(run):
    ref = _reference(run)
    names = label_names("en", bird_head=True)
    _assert_same(run, ref, names)
    # The run exercises what it claims to: species, `undefined`, the bird stage both ways
    # ("bird <group>" and "bird undefined"), empty images, sequences with several animal images.
    seen = set(run.predictionbase) | set(run.prediction)
    assert "undefined" in seen and "empty" in seen
    assert any(p.startswith("bird ") and p != "bird undefined" for p in seen), seen
    assert "bird undefined" in seen, seen
    assert any(n in seen for n in TXT_ANIMALCLASSES["en"] if n != "bird"), seen
    animals = [s for s, c in zip(run.seqnum, run.detections.category) if c == 1]
    assert max(animals.count(s) for s in set(animals)) >= 2
    # 1.4.1's temperatures would give other scores on the same logits: the test tells them apart.
    old = _reference(run, rules=DEEPFAUNE_141)
    assert old["scorebase"] != ref["scorebase"] and old["score"] != ref["score"]


def test_a_real_burst_is_one_sequence_judged_like_deepfaune_15(models):
    if not BURST.is_dir():
        pytest.skip(f"{BURST} not found")
    # The embedded detector sees the burst's duck only at low confidence.
    pipe = deepfaune_rs.Pipeline(
        deepfaune_rs.Detector(threshold=0.05), "deepfaune-v15", bird_head=True, language="pt"
    )
    res = pipe.run(BURST, progress=False)
    assert set(res.seqnum) == {1} and len(res) == 10
    ref = _reference(res, maxlag=10)
    _assert_same(res, ref, label_names("pt", bird_head=True))


@pytest.mark.parametrize(
    "lang, code, disabled",
    [
        ("no", "no", ["rev", "ulv"]),
        ("se", "se", ["räv", "varg"]),
        ("sv", "se", ["räv", "varg"]),
        ("pt", "pt", ["raposa", "lobo"]),
        ("fr", "fr", ["renard arctique", "mangouste"]),
    ],
)
def test_languages_and_disabled_classes_match_deepfaune_15(models, testdata, lang, code, disabled):
    folder = testdata / "southwest"
    pipe = _pipeline(
        models,
        language=lang,
        disabled_classes=disabled,
        bird_head=True,
        threshold=0.5,
        maxlag_s=MONTH,
    )
    res = pipe.run(folder, progress=False)
    assert res.class_names == TXT_ANIMALCLASSES[code]
    forbidden = [TXT_ANIMALCLASSES[code].index(n) for n in disabled]
    ref = _reference(res, threshold=0.5, forbidden=forbidden)
    _assert_same(res, ref, label_names(code, bird_head=True))
    assert not set(disabled) & (set(res.predictionbase) | set(res.top1))
    # The empty label of the language shows, and some species (not only undefined).
    assert label_names(code, bird_head=False)[-2] in res.predictionbase


def test_unknown_language_lists_the_valid_ones(models, shared_models):
    with pytest.raises(deepfaune_rs.InvalidArgumentError) as e:
        _pipeline(models, language="sw")
    for code in ("en", "fr", "it", "de", "es", "no", "se", "pt", "sv"):
        assert code in str(e.value)
    # A 1.4 manifest has no Norwegian list: the core says which languages it has.
    with pytest.raises(deepfaune_rs.InvalidArgumentError, match="en, fr, it, de, es"):
        deepfaune_rs.Pipeline(
            "md-lite",
            shared_models / "pixel_classifier_182_c38.onnx",
            classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
            language="no",
        )


def test_weights_of_another_version_are_refused_at_load(models):
    # The v1.5 ONNX (40 classes, 224 px) with the v1.4 manifest (38 classes, 182 px).
    with pytest.raises(deepfaune_rs.ModelMismatchError, match="manifest .deepfaune-v14."):
        deepfaune_rs.Pipeline(
            "md-lite", models / CLASSIFIER_FILE, classifier_manifest="deepfaune-v14"
        )
