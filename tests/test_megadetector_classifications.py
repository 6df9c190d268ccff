"""MegaDetector batch JSON 1.6 with species: `classification_categories` and, on each classified
box, the top 3 classes by softmax of the image's logits at temperature 1.10 (numpy reference),
disabled classes left out. Checked with megadetector-utils' validator when it is installed and
always against the SPEC 3 layout."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import deepfaune_rs
from conftest import REPO

DISABLED = ["fox", "wolf"]


def load_toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    with open(path, "rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def manifest():
    return REPO / "models" / "tiny-pixel-c38.toml"


@pytest.fixture(scope="module")
def result(shared_models, manifest, testdata):
    pipe = deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=manifest,
        disabled_classes=DISABLED,
        language="fr",
    )
    return pipe.run([testdata / "southwest", testdata / "jaguar"], progress=False)


@pytest.fixture(scope="module")
def doc(result, tmp_path_factory, testdata):
    path = tmp_path_factory.mktemp("md") / "md.json"
    result.to_megadetector_json(path, root=testdata)
    return path, json.loads(path.read_text(encoding="utf-8"))


def reference_top3(logits: np.ndarray, disabled: list[int]) -> list[tuple[str, float]]:
    z = logits.astype(np.float64) / 1.10
    keep = [c for c in range(len(z)) if c not in disabled]
    e = np.exp(z[keep] - z[keep].max())
    p = e / e.sum()
    order = sorted(range(len(keep)), key=lambda j: (-p[j], keep[j]))[:3]
    return [(str(keep[j]), float(p[j])) for j in order]


def test_categories_are_the_english_classes(doc, manifest):
    _, d = doc
    english = load_toml(manifest)["classes"]["en"]
    assert d["classification_categories"] == {str(i): n for i, n in enumerate(english)}
    assert d["info"]["format_version"] == "1.6"
    assert d["detection_categories"] == {"1": "animal", "2": "person", "3": "vehicle"}


def test_top3_on_the_classified_box_only(result, doc, manifest, testdata):
    _, d = doc
    english = load_toml(manifest)["classes"]["en"]
    disabled = [english.index(n) for n in DISABLED]
    det = result.detections
    by_file = {im["file"]: im for im in d["images"]}
    assert len(by_file) == len(result) + len(result.videos)  # southwest/ holds a video
    seen = 0
    for i, p in enumerate(result.paths):
        im = by_file[Path(p).relative_to(testdata).as_posix()]
        if det.category[i] == 255:
            assert im["detections"] is None and im["failure"]
            continue
        boxes = [k for k in range(len(det.image_index)) if det.image_index[k] == i]
        assert len(im["detections"]) == len(boxes)
        best = int(det.best_detection[i])
        for entry, k in zip(im["detections"], boxes):
            if result.classified[i] and k == best:
                got = entry["classifications"]
                want = reference_top3(np.asarray(result.logits[i]), disabled)
                assert [c for c, _ in got] == [c for c, _ in want]
                for (_, pg), (_, pw) in zip(got, want):
                    assert abs(pg - pw) <= 5e-4 + 1e-9 and round(pg, 3) == pg
                assert not {c for c, _ in got} & {str(j) for j in disabled}
                seen += 1
            else:
                assert "classifications" not in entry
    assert seen == sum(result.classified) and seen > 3


def test_spec3_layout(doc):
    _, d = doc
    assert set(d) == {"info", "detection_categories", "classification_categories", "images"}
    for im in d["images"]:
        assert isinstance(im["file"], str) and not im["file"].startswith("/")
        if "failure" in im:
            assert im["detections"] is None
            continue
        for det in im["detections"]:
            assert det["category"] in d["detection_categories"]
            assert isinstance(det["conf"], float) and round(det["conf"], 3) == det["conf"]
            assert len(det["bbox"]) == 4 and all(0 <= v <= 1 for v in det["bbox"])
            for cid, prob in det.get("classifications", []):
                assert cid in d["classification_categories"] and 0 <= prob <= 1
            total = sum(p for _, p in det.get("classifications", []))
            assert total <= 1 + 2e-3 and not math.isnan(total)


def test_megadetector_utils_validator(doc):
    pytest.importorskip("megadetector")
    from megadetector.postprocessing.validate_batch_results import (
        ValidateBatchResultsOptions,
        validate_batch_results,
    )

    path, _ = doc
    report = validate_batch_results(str(path), ValidateBatchResultsOptions())
    assert report["validation_results"]["errors"] == []
    assert report["validation_results"]["warnings"] == []


def test_validator_catches_a_broken_file(doc, tmp_path):
    pytest.importorskip("megadetector")
    from megadetector.postprocessing.validate_batch_results import (
        ValidateBatchResultsOptions,
        validate_batch_results,
    )

    _, d = doc
    broken = json.loads(json.dumps(d))
    det = next(
        x for im in broken["images"] for x in im["detections"] or [] if "classifications" in x
    )
    det["classifications"][0][0] = "999"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    report = validate_batch_results(str(path), ValidateBatchResultsOptions())
    assert report["validation_results"]["errors"]
