"""Opt-in: the torch-free converter on full-size random-weight DeepFaune classifiers.

Needs a Python with torch, torchvision and timm >= 1.0.20 (never this package's environment): set
DEEPFAUNE_TORCH_PYTHON to it. In temporary files, that Python writes a ViT-L/14 DINOv2 checkpoint
with 38 classes (DeepFaune 1.4's layout, 1.2 GB) and a ViT-L/16 DINOv3 one with 40 classes and the
pickled transform (DeepFaune 1.5's), with scripts/fixtures/make_vit_fixtures.py, and computes
timm's outputs the way DeepFaune runs the models. Here they are converted with
``deepfaune_rs.convert.convert`` (no torch) and compared; the DINOv2 graph is also compared, for
outputs and speed, with the ONNX of the torch exporter (tests/torch_export.py).

Takes several minutes and about 6 GB of memory.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

TORCH_PY = os.environ.get("DEEPFAUNE_TORCH_PYTHON")
pytestmark = pytest.mark.skipif(
    not TORCH_PY, reason="opt-in: set DEEPFAUNE_TORCH_PYTHON to a Python with torch and timm"
)
ort = pytest.importorskip("onnxruntime")

SCRIPT = REPO / "scripts" / "fixtures" / "make_vit_fixtures.py"
EXPORT = REPO / "tests" / "torch_export.py"
# Full size, fp32, the same tolerance as the small fixtures: measured max |ours - timm| on
# 2026-12-01 (timm 1.0.31, onnxruntime 1.32), DINOv2 logits 1.4e-6 / embedding 1.7e-6, DINOv3
# 1.9e-6 / 2.9e-6; ours against the torch exporter's ONNX 1.1e-6 / 1.4e-6.
TOL = 1e-4
FAMILIES = {"dinov2": (182, 38, 1024), "dinov3": (224, 40, 1024)}


def _torch(*args: str) -> None:
    p = subprocess.run([TORCH_PY, *args], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def _session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def fullsize(request, tmp_path_factory) -> dict:
    """A full-size checkpoint of one family, its conversion and timm's outputs."""
    from deepfaune_rs.convert import convert

    family = request.param
    size, classes, width = FAMILIES[family]
    d = tmp_path_factory.mktemp(family)
    ckpt = d / f"deepfaune-{family}.pt"
    _torch(str(SCRIPT), "checkpoint", family, str(ckpt), "--seed", "7")
    rng = np.random.default_rng(21)
    x = (rng.standard_normal((2, 3, size, size)) * 1.2).astype(np.float16)
    np.savez(d / "inputs.npz", input=x)
    _torch(str(SCRIPT), "reference", str(ckpt), str(d / "inputs.npz"), str(d / "ref.npz"))
    t0 = time.perf_counter()
    info = convert(ckpt, d / "ours.onnx")
    seconds = time.perf_counter() - t0
    print(f"\n{family}: converted {ckpt.stat().st_size / 1e9:.2f} GB in {seconds:.1f} s")
    return dict(
        family=family, dir=d, ckpt=ckpt, info=info, x=x.astype(np.float32),
        ref=dict(np.load(d / "ref.npz")), classes=classes, width=width, size=size,
    )  # fmt: skip


def test_fullsize_matches_timm(fullsize):
    ref = fullsize["ref"]
    assert fullsize["info"]["kind"] == "classifier"
    sess = _session(fullsize["dir"] / "ours.onnx")
    logits, emb = sess.run(["logits", "embedding"], {"input": fullsize["x"]})
    assert logits.shape == (2, fullsize["classes"]) and emb.shape == (2, fullsize["width"])
    dl = float(np.abs(logits - ref["logits"]).max())
    de = float(np.abs(emb - ref["embedding"]).max())
    print(f"\n{fullsize['family']}: max |ours - timm| logits {dl:.2e}, embedding {de:.2e}")
    assert dl < TOL and de < TOL
    assert np.abs(ref["logits"][0] - ref["logits"][1]).max() > 1000 * TOL
    if "logits_avg" in ref:  # DINOv3: timm's default pooling gives other logits
        assert np.abs(logits - ref["logits_avg"]).max() > 100 * TOL


def _best_of(sess: ort.InferenceSession, x: np.ndarray) -> float:
    t0 = time.perf_counter()
    sess.run(None, {"input": x})
    return time.perf_counter() - t0


def test_fullsize_dinov2_against_the_torch_exporter(fullsize):
    if fullsize["family"] != "dinov2":
        pytest.skip("torch_export.py exports the DINOv2 classifiers")
    d = fullsize["dir"]
    _torch(str(EXPORT), "classifier", str(fullsize["ckpt"]), "-o", str(d / "torch.onnx"))
    ours, theirs = _session(d / "ours.onnx"), _session(d / "torch.onnx")
    x = fullsize["x"]
    lo, eo = ours.run(["logits", "embedding"], {"input": x})
    lt, et = theirs.run(["logits", "embedding"], {"input": x})
    print(
        f"\nmax |ours - torch export| logits {np.abs(lo - lt).max():.2e}, "
        f"embedding {np.abs(eo - et).max():.2e}"
    )
    assert np.abs(lo - lt).max() < TOL and np.abs(eo - et).max() < TOL
    # Speed: interleaved runs on the same batch, the best of each (the machine may be busy).
    batch = np.repeat(x, 4, axis=0)  # 8 crops, DeepFaune's batch
    t_ours, t_torch = [], []
    for _ in range(5):
        t_ours.append(_best_of(ours, batch))
        t_torch.append(_best_of(theirs, batch))
    print(
        f"batch of 8 at 182 px, best of 5: ours {min(t_ours):.3f} s, "
        f"torch export {min(t_torch):.3f} s (medians {np.median(t_ours):.3f} / "
        f"{np.median(t_torch):.3f})"
    )
    # Reported, never asserted: timings belong to benchmarks (benches/bench_convert.py), not tests.
