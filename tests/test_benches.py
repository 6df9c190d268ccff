"""The benchmarks still run (tiny sizes): they are not tests of speed, only a guard against a
benchmark that no longer starts (a renamed helper, a changed API). Timings are not checked."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO

BENCHES = REPO / "benches"


def _run(*args: str) -> str:
    p = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=600
    )
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def test_bench_memory_runs():
    out = _run(str(BENCHES / "bench_memory.py"), "--n", "4", "8")
    assert "N=      4" in out and "N=      8" in out and "peak RSS ratio" in out


def test_bench_video_runs():
    pytest.importorskip("av")
    out = _run(str(BENCHES / "bench_video.py"), "--videos", "1", "--seconds", "1", "--fps", "6")
    assert "video" in out


@pytest.mark.parametrize(
    "name",
    [
        "bench_detect.py",
        "bench_pipeline.py",
        "bench_reid.py",
        "bench_classifier_versions.py",
        "bench_season.py",
    ],
)
def test_other_benches_start(name):
    assert "usage" in _run(str(BENCHES / name), "--help")


def test_bench_fetch_hash_runs():
    out = _run(str(BENCHES / "bench_fetch_hash.py"), "--mb", "2", "--repeat", "1")
    for case in ("check ", "check+md5", "status"):
        assert case in out and "core/hashlib time ratio" in out


def test_bench_fetch_transfer_runs():
    out = _run(str(BENCHES / "bench_fetch_transfer.py"), "--mb", "2", "--repeat", "1")
    assert "core/urllib time ratio" in out


def test_bench_convert_runs_on_a_small_checkpoint():
    fixture = REPO / "tests" / "fixtures" / "convert" / "vit_dinov2.pt"
    out = _run(str(BENCHES / "bench_convert.py"), "--checkpoint", str(fixture), "--no-check")
    assert "peak" in out.lower()


def test_bench_classifier_versions_runs_on_small_models(shared_models, tmp_path):
    from deepfaune_v15_models import CLASSIFIER_FILE, build

    v15 = build(tmp_path) / CLASSIFIER_FILE
    v14 = shared_models / "tiny_vit_dinov2_layout_182_c38.onnx"
    out = _run(
        str(BENCHES / "bench_classifier_versions.py"),
        *("--v14", str(v14), "--v15", str(v15), "--rounds", "1", "--crops", "2"),
    )
    assert "batch 1:" in out and "batch 8:" in out and "ratio 1.5 / 1.4" in out


def test_bench_review_runs():
    out = _run(str(BENCHES / "bench_review.py"), "--n", "30")
    assert "30 images" in out and "first page" in out and "x baseline" in out


def test_bench_distributed_runs_tiny(shared_models):
    pytest.importorskip("ray.data")
    out = _run(
        str(BENCHES / "bench_distributed.py"),
        *("--copies", "1", "--folders", "1", "--images", "2", "--actors", "1"),
    )
    assert "local" in out and "ray x1" in out and "CSV same bytes: True" in out
    assert "median time / local" in out
    assert "peak RSS" in out


def test_bench_classifier_runs(shared_models):
    out = _run(str(BENCHES / "bench_classifier.py"), "--rounds", "1", "--crops", "2")
    assert "ms/crop" in out and "ratio baseline / ours" in out
