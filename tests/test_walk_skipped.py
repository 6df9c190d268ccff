"""Issue 18, part 5: every file a walk meets is either processed or listed with the reason it was
skipped, in the results and in the CLI's summary, for detect and run."""

from __future__ import annotations

import os

import pytest
from PIL import Image

import deepfaune_rs
from conftest import REPO


@pytest.fixture()
def folder(testdata, tmp_path):
    jpg = sorted((testdata / "buow").glob("*.JPG"))[0]
    os.symlink(jpg, tmp_path / "a.JPG")
    Image.new("RGB", (64, 48), (10, 200, 30)).save(tmp_path / "b.webp")
    (tmp_path / "notes.txt").write_text("camera 3, battery low\n")
    return tmp_path


def _skipped(failures, root):
    return {
        os.path.relpath(f["path"], root): f
        for f in failures
        if f["stage"] == "walk" and f["kind"] == "unsupported"
    }


def test_detect_lists_what_it_skips(folder):
    res = deepfaune_rs.Detector().detect(folder, progress=False)
    assert [os.path.basename(p) for p in res.paths] == ["a.JPG"]
    skipped = _skipped(res.failures, folder)
    assert set(skipped) == {"b.webp", "notes.txt"}
    assert skipped["b.webp"]["reason"].startswith("unsupported file type .webp")
    assert all(f["index"] is None for f in skipped.values())
    assert len(res.failures) == 2


def test_run_lists_what_it_skips(folder, shared_models):
    pipe = deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
    )
    res = pipe.run(folder, progress=False)
    assert len(res) == 1
    assert set(_skipped(res.failures, folder)) == {"b.webp", "notes.txt"}


def test_cli_summary_counts_and_lists_them(folder, tmp_path_factory, capsys):
    from deepfaune_rs.cli import main

    out = tmp_path_factory.mktemp("out") / "md.json"
    status = main(["detect", str(folder), "-o", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert "1 images" in err and "2 file(s) skipped" in err
    assert "b.webp: unsupported file type .webp" in err
    assert "notes.txt: unsupported file type .txt" in err
    assert status == 3


def test_a_named_file_is_read_whatever_its_extension(folder):
    """The hint in the reason works: naming the file reads it as an image."""
    res = deepfaune_rs.Detector().detect(folder / "b.webp", progress=False)
    assert len(res) == 1 and res.failures == []
