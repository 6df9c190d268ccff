"""DeepFaune's letterbox for DF and MDS: ultralytics' ``predict`` pads to the smallest stride-32
rectangle (``LetterBox(auto=True)``: 960x736 for a 4:3 photo at 960), not to the square.

The expected boxes are ultralytics' own: ``YOLO(pt).predict(cv2.imread(path), imgsz=640,
conf=0.1)`` on the reduced YOLOv8 checkpoint of tests/fixtures/convert (made by
scripts/fixtures/make_yolo_fixtures.py with torch and ultralytics 8.4; ``predict_det``). Here the
same checkpoint is converted without torch and run by deepfaune-rs with ``shape = "stride"``
(equal within fp32 rounding) and with ``shape = "square"`` (not equal: a different input).
The geometry alone (hand computations of ``LetterBox.get_params`` and ``ops.scale_boxes``) is
checked by the Rust unit tests of src/preprocess/letterbox.rs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, find_testdata
from deepfaune_rs import Detector
from deepfaune_rs.convert import convert

FIX = REPO / "tests" / "fixtures" / "convert"
TESTDATA = find_testdata()
# Input pixels (times each photo's 1/gain in original pixels): fp32 rounding of these random
# networks is itself 1e-3 px and more (test_convert_yolo.py measures it against float64).
BOX_ATOL = 2e-3
CONF_ATOL = 1e-3


def _manifest(path: Path, onnx_name: str, imgsz: int, conf: float, shape: str) -> Path:
    text = (REPO / "models" / "df.toml").read_text()
    text = text.replace('id = "df"', 'id = "df-test"')
    text = text.replace('file = "deepfaune-yolov8s_960.onnx"', f'file = "{onnx_name}"')
    text = text.replace("size = 960", f"size = {imgsz}")
    text = text.replace("threshold = 0.6", f"threshold = {conf}")
    lines = [
        f'shape = "{shape}"' if line.startswith("shape = ") else line for line in text.splitlines()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("stride")
    onnx_path = d / "yolov8_tiny.onnx"
    convert(FIX / "yolov8_tiny.pt", onnx_path)
    with np.load(FIX / "yolov8_tiny.npz") as f:
        ref = {k: f[k] for k in ("predict_images", "predict_imgsz", "predict_conf", "predict_det")}
    return onnx_path, ref


def _scale(path: str, imgsz: int) -> float:
    from PIL import Image

    with Image.open(path) as im:
        return max(im.size) / imgsz


def _detect(onnx_path: Path, ref: dict, shape: str) -> list[np.ndarray]:
    man = _manifest(
        onnx_path.parent / f"{shape}.toml",
        onnx_path.name,
        int(ref["predict_imgsz"]),
        float(ref["predict_conf"]),
        shape,
    )
    det = Detector(str(onnx_path), manifest=str(man))
    paths = [str(TESTDATA / p) for p in ref["predict_images"]]
    rows = []
    for p in paths:
        r = det.detect([p], progress=False)
        rows.append(
            np.column_stack([r.boxes, r.confidences, r.classes]).astype(np.float64)
            if len(r.confidences)
            else np.zeros((0, 6))
        )
    return rows


def _ultralytics(ref: dict, k: int) -> np.ndarray:
    det = ref["predict_det"]
    return det[det[:, 0] == k][:, 1:]


def _sorted(rows: np.ndarray) -> np.ndarray:
    return rows[np.lexsort((rows[:, 0], -rows[:, 4]))]


def test_stride_letterbox_equals_ultralytics_predict(model):
    onnx_path, ref = model
    ours = _detect(onnx_path, ref, "stride")
    for k, got in enumerate(ours):
        want = _ultralytics(ref, k)
        assert len(got) == len(want), (ref["predict_images"][k], len(got), len(want))
        got, want = _sorted(got), _sorted(want)
        scale = _scale(str(TESTDATA / ref["predict_images"][k]), int(ref["predict_imgsz"]))
        np.testing.assert_allclose(got[:, :4], want[:, :4], atol=BOX_ATOL * scale, rtol=0)
        np.testing.assert_allclose(got[:, 4], want[:, 4], atol=CONF_ATOL, rtol=0)
        np.testing.assert_array_equal(got[:, 5], want[:, 5])


def test_square_letterbox_does_not(model):
    onnx_path, ref = model
    ours = _detect(onnx_path, ref, "square")
    differs = 0
    for k, got in enumerate(ours):
        want = _ultralytics(ref, k)
        if len(got) != len(want):
            differs += 1
            continue
        got, want = _sorted(got), _sorted(want)
        scale = _scale(str(TESTDATA / ref["predict_images"][k]), int(ref["predict_imgsz"]))
        if not (
            np.allclose(got[:, :4], want[:, :4], atol=BOX_ATOL * scale, rtol=0)
            and np.allclose(got[:, 4], want[:, 4], atol=CONF_ATOL, rtol=0)
        ):
            differs += 1
    # Every photo here is wider than tall: the square adds padding the rectangle does not have.
    assert differs == len(ours)
