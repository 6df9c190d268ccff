"""Checkpoint and resume: a run killed part-way and resumed writes the same bytes as one run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import deepfaune_rs
from conftest import REPO, all_test_images


def _cmd(shared_models, inputs, out, *extra):
    return [
        sys.executable, "-m", "deepfaune_rs.cli", "run", str(inputs), "-o", str(out),
        "--detector", "md-lite",
        "--classifier", str(shared_models / "pixel_classifier_182_c38.onnx"),
        "--classifier-manifest", str(REPO / "models" / "tiny-pixel-c38.toml"),
        "--no-progress", *extra,
    ]  # fmt: skip


def _records(path) -> int:
    try:
        with open(path, "rb") as f:
            return max(0, f.read().count(b"\n") - 1)  # minus the header line
    except FileNotFoundError:
        return 0


def test_killed_then_resumed_run_equals_an_uninterrupted_one(shared_models, testdata, tmp_path):
    whole = tmp_path / "whole.csv"
    p = subprocess.run(_cmd(shared_models, testdata, whole), capture_output=True, text=True)
    assert p.returncode == 3, p.stderr  # the 0-byte test images are failures

    out = tmp_path / "resumed.csv"
    ckpt = tmp_path / "resumed.csv.checkpoint"
    proc = subprocess.Popen(
        _cmd(shared_models, testdata, out, "--resume"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while _records(ckpt) < 12 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = _records(ckpt)
    total = len(all_test_images(testdata))
    assert 12 <= done < total and not out.exists()

    p = subprocess.run(
        _cmd(shared_models, testdata, out, "--resume"), capture_output=True, text=True
    )
    assert p.returncode == 3, p.stderr
    assert out.read_bytes() == whole.read_bytes()
    assert _records(ckpt) == total  # every image once: nothing done twice

    # Other settings: refused, with what differs.
    p = subprocess.run(
        _cmd(shared_models, testdata, out, "--resume", "--threshold", "0.5"),
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1
    assert "another model or other settings" in p.stderr and "threshold" in p.stderr


def test_python_checkpoint_reuses_finished_work(shared_models, testdata, tmp_path):
    pipe = deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
    )
    ckpt = tmp_path / "run.checkpoint"
    folder = tmp_path / "buow"
    folder.mkdir()
    for src in sorted((testdata / "buow").iterdir()):
        (folder / src.name).symlink_to(src)
    first = pipe.run(folder, progress=False, checkpoint=ckpt)
    # Every image is now unreadable: a run that opened any of them again would list it as a
    # failure. The resumed run must take them all from the checkpoint.
    for f in folder.iterdir():
        f.unlink()
        f.write_bytes(b"")
    size = ckpt.stat().st_size
    calls = []
    second = pipe.run(folder, progress=lambda d, t: calls.append((d, t)), checkpoint=ckpt)
    assert ckpt.stat().st_size == size  # nothing appended: nothing was processed
    assert calls[-1] == (len(first), len(first))
    assert first.to_pandas().equals(second.to_pandas())
    assert (first.logits == second.logits).all() and (first.embeddings == second.embeddings).all()
    assert first.detections.failures == second.detections.failures
    with pytest.raises(deepfaune_rs.InvalidArgumentError):
        other = deepfaune_rs.Pipeline(
            "md-lite",
            shared_models / "pixel_classifier_182_c38.onnx",
            classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
            maxlag_s=20,
        )
        other.run(testdata / "buow", progress=False, checkpoint=ckpt)
