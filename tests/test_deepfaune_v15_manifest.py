"""The built-in DeepFaune 1.5 manifest against ../shared/deepfaune-1.5.md (its tables parsed here),
and what ``_core.builtin_models()`` says about every model's download (for the downloader)."""

from __future__ import annotations

import re

import pytest

from conftest import REPO, shared_dir
from deepfaune_rs import _core

LANGS = ["fr", "en", "it", "de", "es", "no", "se", "pt"]


def _toml(path):
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    with open(path, "rb") as f:
        return tomllib.load(f)


def _doc_table(doc: str, heading: str) -> list[list[str]]:
    rows = []
    for line in doc[doc.index(heading) :].splitlines()[1:]:
        if re.match(r"\| \d+ \|", line):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")][1:])
        elif rows and not line.startswith("|"):
            break
    return rows


def test_classes_groups_and_labels_are_deepfaune_15s():
    path = shared_dir() / "deepfaune-1.5.md"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    doc = path.read_text(encoding="utf-8")
    m = _toml(REPO / "models" / "deepfaune-v15.toml")
    classes = _doc_table(doc, "### 1.7 Class list")
    groups = _doc_table(doc, "Bird groups (8; bird-head logit index)")
    assert (len(classes), len(groups)) == (40, 8)
    for j, lang in enumerate(LANGS):
        assert m["classes"][lang] == [r[j] for r in classes], lang
        assert m["bird_head"]["groups"][lang] == [r[j] for r in groups], lang
    # predictTools.py's txt_noanimalclasses, txt_empty, txt_undefined as section 3.3 quotes them.
    quoted = doc[doc.index("txt_noanimalclasses =  {") :]
    for lang in LANGS:
        human, vehicle = re.search(rf"'{lang}': \[\"([^\"]+)\", ?\"([^\"]+)\"\]", quoted).groups()
        empty = re.search(rf"txt_empty = {{[^}}]*'{lang}': ?\"([^\"]+)\"", quoted).group(1)
        undefined = re.search(rf"txt_undefined = {{[^}}]*'{lang}': ?\"([^\"]+)\"", quoted).group(1)
        assert m["labels"][lang] == [human, vehicle, empty, undefined], lang
    assert m["input"]["size"] == 224 and m["architecture"] == "vit_large_patch16_dinov3.lvd1689m"
    assert m["scientific_names"]["mongoose"] == "Herpestes ichneumon"
    assert m["scientific_names"]["arctic fox"] == "Vulpes lagopus"


def test_builtin_models_rows_carry_the_download_facts():
    rows = _core.builtin_models()
    by_id = {r["id"]: r for r in rows}
    classifiers = [r["id"] for r in rows if r["kind"] == "classifier"]
    assert classifiers[0] == "deepfaune-v15", "newest first"
    keys = {"version", "mirrors", "url_size", "url_md5", "url_sha256", "bird_head", "url"}
    assert all(keys <= set(r) for r in rows)
    v15 = by_id["deepfaune-v15"]
    assert v15["version"] == "1.5" and v15["input_size"] == 224
    assert v15["url"] == (
        "https://pbil.univ-lyon1.fr/software/download/deepfaune/v1.5/"
        "deepfaune-vit_large_patch16_dinov3.lvd1689m.pt"
    )
    assert v15["url_size"] == 1_212_611_300
    assert v15["mirrors"] == [
        "https://huggingface.co/Addax-Data-Science/EUR-DF-v1-5/resolve/"
        "e5c04750c44cb2ecbfa4f86624c37ae438f0b3dd/deepfaune-vit_large_patch16_dinov3.lvd1689m.pt"
    ]
    assert v15["url_md5"] == "" and v15["url_sha256"] == ""  # nothing published or fully known
    head = v15["bird_head"]
    assert set(head) == {
        "file", "url", "url_format", "mirrors", "url_size", "url_md5", "url_sha256",
        "expected_path", "available",
    }  # fmt: skip
    assert head["file"] == "deepfaune-vit_large_patch16_dinov3.lvd1689m-bird_head.onnx"
    assert head["url"].endswith("/v1.5/deepfaune-vit_large_patch16_dinov3.lvd1689m-bird_head.pt")
    assert head["expected_path"].endswith(head["file"]) and head["available"] in (True, False)
    assert by_id["deepfaune-v13"]["bird_head"] is None  # 1.3 had none
    assert by_id["mds"]["url_md5"] == "4339a2c8af7a381f18ded7ac2a4df03e"
    assert by_id["df"]["url"].endswith("/v1.4/deepfaune-yolov8s_960.pt")
    assert by_id["df"]["mirrors"] == [
        "https://pbil.univ-lyon1.fr/software/download/deepfaune/v1.5/deepfaune-yolov8s_960.pt"
    ]
    for r in rows:
        if r["kind"] == "detector":
            assert r["version"] is None and r["bird_head"] is None
