"""Outputs that must not mislead (issue 15): each case was first seen failing."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def _cli(*args):
    cmd = [sys.executable, "-m", "deepfaune_rs.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_detect_on_one_file_names_the_file(testdata, tmp_path):
    """`detect FILE` wrote `"file": ""` (paths were made relative to the file itself)."""
    image = sorted((testdata / "buow").iterdir())[0]
    out = tmp_path / "one.json"
    p = _cli("detect", image, "-o", out, "--no-progress")
    assert p.returncode == 0, p.stderr
    files = [i["file"] for i in json.loads(out.read_text())["images"]]
    assert files == [str(image)]


def test_run_on_one_file_names_the_file_in_the_json(shared_models, testdata, tmp_path):
    image = sorted((testdata / "buow").iterdir())[0]
    out = tmp_path / "one.csv"
    p = _cli(
        "run", image, "-o", out, "--json", tmp_path / "one.json", "--no-progress",
        "--detector", "md-lite",
        "--classifier", shared_models / "pixel_classifier_182_c38.onnx",
        "--classifier-manifest", REPO / "models" / "tiny-pixel-c38.toml",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    files = [i["file"] for i in json.loads((tmp_path / "one.json").read_text())["images"]]
    assert files == [str(image)]
