"""The torch-free YOLO converter against ultralytics / YOLOv5.

The fixtures (tests/fixtures/convert/yolo*, made by scripts/fixtures/make_yolo_fixtures.py with
torch) are reduced checkpoints in the official layouts (pickled fp16 model objects) and the raw
outputs that ultralytics (YOLOv8, YOLO11) and the yolov5 package (P6, MegaDetector redwood's
layout) compute from those very files on fixed letterboxed inputs of several sizes. Here they are
converted without torch (the core's converter, src/convert/yolo.rs) and run in ONNX Runtime.
The checks that rename a module's class (an unknown module, a head that is not Detect, a broken
"model" beside "ema") and the activations against their float64 definitions are cargo tests of
src/convert/yolo.rs, where a checkpoint's stand-ins can be edited.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import REPO
from deepfaune_rs import _core
from deepfaune_rs.convert import convert, read_stamp

load_checkpoint = _core.read_checkpoint


def build_detector(ckpt) -> onnx.ModelProto:
    return onnx.load_from_string(_core.build_detector(ckpt))


FIX = REPO / "tests" / "fixtures" / "convert"
# name -> (output layout, crop (H, W) of each input for the stride-64 model)
MODELS = {
    "yolov8_tiny": ("yolov8", {}),
    "yolo11_tiny": ("yolov8", {}),
    "yolov5_p6_tiny": ("yolov5", {"a": (320, 448), "b": (256, 320)}),
}
BOX_ATOL = 1e-3  # input pixels
SCORE_ATOL = 1e-4
# fp32 cannot do better than its own rounding: where ultralytics' fp32 output is itself further
# than the tolerance from the exact (float64) result, the tolerance is that distance times 4.
FLOOR_FACTOR = 4.0
# ... and the converted graph must be as accurate as ultralytics overall (RMS error against the
# exact result; different summation orders give ratios of 0.7-1.7 on these fixtures).
RMS_FACTOR = 2.5


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    with np.load(FIX / "yolo_inputs.npz") as f:
        return {k: f[k] for k in ("a", "b")}


_sessions: dict[str, ort.InferenceSession] = {}


def session(name: str) -> ort.InferenceSession:
    if name not in _sessions:
        proto = build_detector(load_checkpoint(FIX / f"{name}.pt"))
        _sessions[name] = ort.InferenceSession(
            proto.SerializeToString(), providers=["CPUExecutionProvider"]
        )
    return _sessions[name]


def nchw(batch_u8: np.ndarray) -> np.ndarray:
    """As the fixture script fed ultralytics: uint8 NHWC RGB -> float32 NCHW / 255."""
    return np.ascontiguousarray(batch_u8.transpose(0, 3, 1, 2)).astype(np.float32) / 255


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(a * a)))


def _compare(what: str, ours, ref, exact, atol: float) -> None:
    floor = float(np.abs(ref - exact).max())  # ultralytics' own fp32 rounding error
    tol = max(atol, FLOOR_FACTOR * floor)
    diff = float(np.abs(ours - ref).max())
    assert diff <= tol, f"{what}: max |ours - ultralytics| = {diff:.3g} > {tol:.3g}"
    assert _rms(ours - exact) <= RMS_FACTOR * _rms(ref - exact) + 1e-12, (
        f"{what}: RMS error vs exact {_rms(ours - exact):.3g}, ultralytics' {_rms(ref - exact):.3g}"
    )


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("key", ["a", "b"])
def test_raw_output_equals_the_torch_model(name, key, inputs):
    layout, crops = MODELS[name]
    x = inputs[key]
    if key in crops:
        h, w = crops[key]
        x = x[:, :h, :w]
    with np.load(FIX / f"{name}.npz") as f:
        ref = f[f"out_{key}"].astype(np.float64)
        exact = ref + f[f"exact_{key}"].astype(np.float64)
    (out,) = session(name).run(["output0"], {"images": nchw(x)})
    assert out.shape == ref.shape and out.dtype == np.float32
    out = out.astype(np.float64)
    if layout == "yolov5":  # [b, N, 5 + nc] -> [b, 5 + nc, N]
        out, ref, exact = (t.transpose(0, 2, 1) for t in (out, ref, exact))
    # The references are not degenerate: boxes spread over the image, scores vary.
    assert ref[:, :2].std() > 20 and ref[:, 2:4].std() > 10 and ref[:, 4:].std() > 5e-3
    _compare("boxes (px)", out[:, :4], ref[:, :4], exact[:, :4], BOX_ATOL)
    _compare("scores", out[:, 4:], ref[:, 4:], exact[:, 4:], SCORE_ATOL)


def test_detection_counts_follow_the_input_size(inputs):
    """Anchors come from the feature-map sizes at run time: N = sum over levels of
    (H / s) * (W / s), for any input shape, with the checkpoint's strides (8, 16, 32)."""
    sess = session("yolo11_tiny")
    for h, w in [(32, 32), (64, 96), (160, 128)]:
        x = np.random.default_rng(h).random((1, 3, h, w), dtype=np.float32)
        (out,) = sess.run(None, {"images": x})
        assert out.shape == (1, 7, sum((h // s) * (w // s) for s in (8, 16, 32)))
        assert np.isfinite(out).all()


def test_graph_interface_is_what_the_core_expects():
    for name, (layout, _) in MODELS.items():
        ckpt = load_checkpoint(FIX / f"{name}.pt")
        assert _core.detector_layout(ckpt) == layout
        g = build_detector(ckpt).graph
        (inp,) = g.input
        (out,) = g.output
        assert inp.name == "images" and out.name == "output0"
        dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
        assert dims == ["batch", 3, "height", "width"]
        odims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
        assert odims == (["batch", 7, "anchors"] if layout == "yolov8" else ["batch", "anchors", 8])
        # fp16 checkpoint tensors become fp32 weights (ultralytics runs them in fp32 on CPU)
        types = {t.data_type for t in g.initializer}
        assert types <= {onnx.TensorProto.FLOAT, onnx.TensorProto.INT64}


def test_convert_writes_a_stamped_detector(tmp_path, inputs):
    dest = tmp_path / "df.onnx"
    info = convert(FIX / "yolov8_tiny.pt", dest)
    assert info["kind"] == "detector" and dest.is_file()
    stamp = read_stamp(dest)
    assert stamp["layout"] == "yolov8" and stamp["stride"] == "32" and stamp["nc"] == "3"
    assert json.loads(stamp["names"]) == {"0": "animal", "1": "person", "2": "vehicle"}
    sess = ort.InferenceSession(str(dest), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"images": nchw(inputs["b"])})
    with np.load(FIX / "yolov8_tiny.npz") as f:
        ref = f["out_b"].astype(np.float64)
        exact = ref + f["exact_b"].astype(np.float64)
    _compare("boxes (px)", out[:, :4].astype(np.float64), ref[:, :4], exact[:, :4], BOX_ATOL)


def test_not_a_detector_is_refused_clearly():
    with pytest.raises(ValueError, match="no 'model' or 'ema'"):
        build_detector({"state_dict": {}})
    with pytest.raises(ValueError, match="bare state dict"):
        build_detector({"model": {"w": np.zeros(3)}})


def test_end_to_end_heads_are_refused():
    ckpt = load_checkpoint(FIX / "yolo11_tiny.pt")
    layers = ckpt["model"].state["_modules"]["model"].state["_modules"]
    layers[list(layers)[-1]].state["end2end"] = True
    with pytest.raises(ValueError, match="end-to-end"):
        build_detector(ckpt)


def test_ema_is_preferred_as_ultralytics_loads_it():
    ckpt = load_checkpoint(FIX / "yolov8_tiny.pt")
    plain = build_detector(ckpt)
    ckpt["ema"], ckpt["model"] = ckpt["model"], None
    assert build_detector(ckpt).graph == plain.graph
