"""Execution providers: ``device="cpu" | "cuda" | "directml" | "coreml" | "auto"`` picks from
what the installed ONNX Runtime build has (compared with onnxruntime-python's own list); one it
lacks is a one-line error naming those it has. Also the on-disk cache of optimised graphs."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

import deepfaune_rs
from conftest import REPO
from deepfaune_rs import Detector, DeviceUnavailableError, Pipeline

# onnxruntime-python's provider names for the devices deepfaune-rs knows.
PROVIDERS = {
    "CUDAExecutionProvider": "cuda",
    "DmlExecutionProvider": "directml",
    "CoreMLExecutionProvider": "coreml",
}
HAVE = {"cpu"} | {PROVIDERS[p] for p in ort.get_available_providers() if p in PROVIDERS}
MISSING = [d for d in ("cuda", "directml", "coreml") if d not in HAVE]


def test_available_devices_are_the_builds_providers():
    assert set(deepfaune_rs.available_devices()) == HAVE
    assert deepfaune_rs.available_devices()[0] == "cpu"


def test_cpu_and_auto_run_and_agree(testdata):
    img = str(next(p for p in sorted(testdata.rglob("*.JPG"))))
    cpu = Detector("md-lite", device="cpu").detect([img], progress=False)
    auto = Detector("md-lite", device="AUTO").detect([img], progress=False)
    if HAVE == {"cpu"}:  # auto is the CPU here: the same session, the same numbers
        np.testing.assert_array_equal(cpu.boxes, auto.boxes)
    assert list(cpu.category) == list(auto.category)


def _tiny_pipeline(shared_models, tmp_path, **kw):
    man = tmp_path / "tiny-vit-c38.toml"
    shutil.copy(REPO / "models" / "tiny-vit-c38.toml", man)
    shutil.copy(shared_models / "tiny_vit_dinov2_layout_182_c38.onnx", tmp_path)
    return Pipeline("md-lite", str(man), **kw)


@pytest.mark.skipif(not MISSING, reason="this build has every accelerator")
@pytest.mark.parametrize("what", ["detector", "pipeline"])
def test_unavailable_device_is_one_line_naming_the_available(what, shared_models, tmp_path):
    with pytest.raises(DeviceUnavailableError) as e:
        if what == "detector":
            Detector(device=MISSING[0])
        else:
            _tiny_pipeline(shared_models, tmp_path, device=MISSING[0])
    msg = str(e.value)
    assert "\n" not in msg
    assert f"device '{MISSING[0]}' is not available" in msg
    assert "available: " + ", ".join(deepfaune_rs.available_devices()) in msg
    assert isinstance(e.value, ValueError)


def test_unknown_device_lists_the_names():
    with pytest.raises(DeviceUnavailableError, match="cpu, cuda, directml, coreml, auto"):
        Detector(device="tpu")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deepfaune_rs.cli", *args], capture_output=True, text=True
    )


@pytest.mark.skipif(not MISSING, reason="this build has every accelerator")
def test_cli_device_error_is_usage(tmp_path, testdata):
    p = _cli(
        "detect", str(testdata / "buow"), "-o", str(tmp_path / "o.json"), "--device", MISSING[0]
    )
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "available: cpu" in lines[0] and "Traceback" not in p.stderr
    assert not (tmp_path / "o.json").exists()


def test_cli_devices_lists_them():
    p = _cli("devices")
    assert p.returncode == 0
    assert p.stdout.strip().split(", ") == deepfaune_rs.available_devices()


def test_optimised_graph_cache(tmp_path, testdata):
    """The first session writes ONNX Runtime's optimised graph; the next reads it; the boxes are
    those of an uncached session."""
    onnx_path = tmp_path / "md_lite_yolox_tiny_640.onnx"
    shutil.copy(REPO / "models" / "md_lite_yolox_tiny_640.onnx", onnx_path)
    imgs = [str(p) for p in sorted(testdata.rglob("*.jpg"))[:3]]
    plain = Detector(str(onnx_path)).detect(imgs, progress=False)
    cache = tmp_path / "cache"
    first = Detector(str(onnx_path), cache_dir=cache).detect(imgs, progress=False)
    written = sorted(cache.glob("*.onnx"))
    assert len(written) == 1 and written[0].stat().st_size > 0
    assert not [p for p in cache.iterdir() if "tmp" in p.suffix]
    again = Detector(str(onnx_path), cache_dir=cache).detect(imgs, progress=False)
    assert sorted(cache.glob("*.onnx")) == written
    for r in (first, again):
        np.testing.assert_allclose(r.boxes, plain.boxes, atol=1e-3)
        assert list(r.category) == list(plain.category)
