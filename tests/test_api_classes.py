"""The public classes are the compiled core's classes (no Python wrapper): the same names,
parameters, defaults and documentation as the Python classes they replaced, and the module
names other code imports keep resolving."""

from __future__ import annotations

import inspect

import pytest

import deepfaune_rs
from deepfaune_rs import _core

P = inspect.Parameter
POS, KW = P.POSITIONAL_OR_KEYWORD, P.KEYWORD_ONLY

# The signatures of the Python classes before they moved to the core (git history of
# python/deepfaune_rs/{pipeline,detect,classifier,megadetector}.py), written out by hand.
SIGNATURES = {
    "Pipeline": [
        ("detector", POS, None),
        ("classifier", POS, "deepfaune-v15"),
        ("detector_mode", KW, "DFbsMDS"),
        ("classifier_manifest", KW, None),
        ("score_threshold", KW, None),
        ("maxlag_s", KW, 10),
        ("language", KW, "en"),
        ("disabled_classes", KW, ()),
        ("bird_head", KW, False),
        ("batch_size", KW, 1),
        ("fetch", KW, False),
        ("class_thresholds", KW, None),
        ("device", KW, "cpu"),
        ("precision", KW, "fp32"),
        ("intra_threads", KW, 0),
        ("cache_dir", KW, None),
        ("threshold", KW, None),
    ],
    "Detector": [
        ("model", POS, "md-lite"),
        ("detection_threshold", KW, None),
        ("device", KW, "cpu"),
        ("secondary", KW, None),
        ("mode", KW, None),
        ("manifest", KW, None),
        ("weights", KW, None),
        ("intra_threads", KW, 0),
        ("threads", KW, 0),
        ("batch_size", KW, 1),
        ("fetch", KW, False),
        ("precision", KW, "fp32"),
        ("cache_dir", KW, None),
        ("threshold", KW, None),
    ],
    "Classifier": [
        ("classifier", POS, "deepfaune-v15"),
        ("classifier_manifest", KW, None),
        ("language", KW, "en"),
        ("bird_head", KW, False),
        ("batch_size", KW, 8),
        ("intra_threads", KW, 0),
        ("device", KW, "cpu"),
        ("precision", KW, "fp32"),
        ("cache_dir", KW, None),
        ("fetch", KW, False),
    ],
    "read_megadetector_json": [
        ("path", POS, P.empty),
        ("root", POS, None),
        ("detection_threshold", POS, None),
        ("rules", POS, "corrected"),
        ("threshold", KW, None),
    ],
}

METHODS = {
    ("Pipeline", "run"): [
        "inputs",
        "progress",
        "keep_embeddings",
        "checkpoint",
        "detections",
        "json_rules",
        "outputs",
    ],
    ("Detector", "detect"): ["inputs", "progress", "max_pixels", "outputs"],
    ("Classifier", "classify"): ["images", "boxes", "box_format", "square", "keep_embeddings"],
    ("PipelineResult", "redecide"): [
        "score_threshold",
        "class_thresholds",
        "disabled_classes",
        "maxlag_s",
        "preset",
        "threshold",
    ],
    ("PipelineResult", "to_camtrap_dp"): [
        "folder",
        "deployments",
        "deployment_of",
        "timezone",
        "undated",
        "metadata",
        "root",
    ],
    ("PipelineResult", "sort_into"): ["dest", "mode", "blur_humans"],
    ("PipelineResult", "to_excel"): ["path", "csv_safe"],
    ("PipelineResult", "show"): ["which", "width"],
}


def _default(value: object) -> object:
    # The core's signatures show a sequence default as a list, a float default as a float.
    return tuple(value) if isinstance(value, list) else value


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_signatures_keep_their_names_kinds_and_defaults(name):
    params = list(inspect.signature(getattr(deepfaune_rs, name)).parameters.values())
    got = [(p.name, p.kind, _default(p.default)) for p in params]
    # Keyword-only parameters the core adds after the old ones (Detector's ``spinning``) are new.
    assert got[: len(SIGNATURES[name])] == SIGNATURES[name]


@pytest.mark.parametrize(("cls", "method"), sorted(METHODS))
def test_method_parameters_keep_their_names(cls, method):
    names = list(inspect.signature(getattr(getattr(deepfaune_rs, cls), method)).parameters)
    assert [n for n in names if n != "self"][: len(METHODS[cls, method])] == METHODS[cls, method]


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("Pipeline", "group images into"),
        ("PipelineResult", "One row order for everything"),
        ("Detector", "One detector, or two combined"),
        ("DetectionResult", "Detection results as columns"),
        ("Classifier", "The classifier of a :class:`Pipeline` without its detector"),
        ("Classification", "One row per input, in order"),
        ("read_megadetector_json", "DeepFaune 1.4.1's ``PredictorJSON`` exactly"),
    ],
)
def test_the_core_classes_are_the_public_ones_with_their_docs(name, phrase):
    obj = getattr(deepfaune_rs, name)
    assert obj is getattr(_core, name)
    assert phrase in obj.__doc__


def test_module_level_names_keep_resolving():
    from deepfaune_rs.classifier import Classification, Classifier
    from deepfaune_rs.detect import CATEGORY_NAMES, CLASS_NAMES, DetectionResult, Detector
    from deepfaune_rs.megadetector import JSON_RULES, read_megadetector_json
    from deepfaune_rs.pipeline import (
        DEFAULT_CLASSIFIER,
        DEFAULT_DETECTOR_MODE,
        LANGUAGE_ALIASES,
        LANGUAGES,
        Pipeline,
        PipelineResult,
    )
    from deepfaune_rs.videos import VideoRecord

    assert (Pipeline, PipelineResult, Detector, DetectionResult) == (
        deepfaune_rs.Pipeline,
        deepfaune_rs.PipelineResult,
        deepfaune_rs.Detector,
        deepfaune_rs.DetectionResult,
    )
    assert (Classifier, Classification, read_megadetector_json, VideoRecord) == (
        deepfaune_rs.Classifier,
        deepfaune_rs.Classification,
        deepfaune_rs.read_megadetector_json,
        _core.VideoRecord,
    )
    assert DEFAULT_CLASSIFIER == "deepfaune-v15" and DEFAULT_DETECTOR_MODE == "DFbsMDS"
    assert LANGUAGES == ("en", "fr", "it", "de", "es", "no", "se", "pt")
    assert LANGUAGE_ALIASES == {"sv": "se"}
    assert JSON_RULES == ("corrected", "deepfaune")
    assert CATEGORY_NAMES[255] == "failed" and CLASS_NAMES[1] == "person"


def test_an_unknown_language_is_refused_before_anything_loads():
    with pytest.raises(deepfaune_rs.InvalidArgumentError) as e:
        deepfaune_rs.Pipeline("md-lite", language="xx")
    assert str(e.value) == (
        "unknown language 'xx': use one of en, fr, it, de, es, no, se, pt (sv for se)"
    )


def test_a_path_like_is_accepted_wherever_a_path_is(tmp_path):
    import pathlib

    res = deepfaune_rs.Detector().detect(pathlib.Path(tmp_path), progress=False)
    assert len(res) == 0 and res.root == str(tmp_path)
    assert deepfaune_rs.Detector(pathlib.Path("md-lite")).models == ["md-lite"]
