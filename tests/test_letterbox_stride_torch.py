"""Opt-in: DeepFaune's detector path, ``YOLO(pt).predict(image, imgsz=960, conf=...)``, against
deepfaune-rs with the DF manifest (``shape = "stride"``) on a full-size YOLOv8s.

The checkpoint is a random-weight YOLOv8s in DeepFaune's layout (nc=3), made by
scripts/fixtures/make_yolo_fixtures.py in a Python with torch and ultralytics (set
DEEPFAUNE_TORCH_PYTHON to it, e.g. /work/torchvenv/bin/python); it is converted here without
torch. ultralytics reads each photo with OpenCV as DeepFaune does when given a file name.
Confidences equal ultralytics' within 1e-3 and boxes within 1e-2 input pixels (1e-5 of the 960
side: two fp32 evaluations of a full-size random network differ by that much; measured 8.7e-3 px
and 2.6e-5 on 677 boxes) with the rectangle letterbox; the 960x960 square gives none of them.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, all_test_images
from deepfaune_rs import Detector
from deepfaune_rs.convert import convert

TORCH_PY = os.environ.get("DEEPFAUNE_TORCH_PYTHON")
pytestmark = pytest.mark.skipif(
    not TORCH_PY, reason="opt-in: set DEEPFAUNE_TORCH_PYTHON to a Python with torch + ultralytics"
)
SCRIPT = REPO / "scripts" / "fixtures" / "make_yolo_fixtures.py"
CONF = 0.25
PREDICT = """
import json, os, sys
os.environ.setdefault("YOLO_OFFLINE", "1")
import cv2
from ultralytics import YOLO
yolo = YOLO(sys.argv[1])
rows = []
for k, path in enumerate(json.loads(sys.argv[2])):
    r = yolo.predict(cv2.imread(path), imgsz=960, conf=float(sys.argv[3]), device="cpu",
                     verbose=False)[0]
    rows.append({"shape": list(r.orig_shape), "input": None,
                 "det": [[*b.tolist(), float(c), float(k_)] for b, c, k_ in
                         zip(r.boxes.xyxy.numpy(), r.boxes.conf.numpy(), r.boxes.cls.numpy())]})
print(json.dumps(rows))
"""


def _torch(*args: str) -> str:
    p = subprocess.run([TORCH_PY, *map(str, args)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-4000:]
    return p.stdout


def _manifest(d: Path, onnx_name: str, shape: str) -> Path:
    text = (REPO / "models" / "df.toml").read_text()
    text = text.replace('file = "deepfaune-yolov8s_960.onnx"', f'file = "{onnx_name}"')
    text = text.replace("threshold = 0.6", f"threshold = {CONF}")
    lines = [f'shape = "{shape}"' if ln.startswith("shape = ") else ln for ln in text.splitlines()]
    p = d / f"df-{shape}.toml"
    p.write_text("\n".join(lines) + "\n")
    return p


def _sorted(rows: np.ndarray) -> np.ndarray:
    return rows[np.lexsort((rows[:, 0], -rows[:, 4]))] if len(rows) else rows.reshape(0, 6)


def test_df_rectangle_equals_ultralytics_predict(tmp_path, testdata):
    ckpt = tmp_path / "yolov8s.pt"
    _torch(SCRIPT, "checkpoint", "yolov8", "s", ckpt, "--nc", "3")
    onnx_path = tmp_path / "yolov8s.onnx"
    convert(ckpt, onnx_path)
    imgs = [p for p in all_test_images(testdata) if p.stat().st_size > 0][::10][:6]
    paths = [str(p) for p in imgs]
    ref = json.loads(_torch("-c", PREDICT, ckpt, json.dumps(paths), str(CONF)).splitlines()[-1])
    results = {}
    for shape in ("stride", "square"):
        det = Detector(str(onnx_path), manifest=str(_manifest(tmp_path, onnx_path.name, shape)))
        res = []
        for p in paths:
            r = det.detect([p], progress=False)
            res.append(np.column_stack([r.boxes, r.confidences, r.classes]).astype(np.float64))
        results[shape] = res
    n_boxes, worst_box, worst_conf, square_equal = 0, 0.0, 0.0, 0
    for k, p in enumerate(paths):
        h, w = ref[k]["shape"]
        want = _sorted(np.array(ref[k]["det"], dtype=np.float64).reshape(-1, 6))
        got = _sorted(results["stride"][k])
        assert len(got) == len(want), (p, len(got), len(want))
        scale = max(w, h) / 960  # one input pixel in original pixels
        if len(want):
            worst_box = max(worst_box, float(np.abs(got[:, :4] - want[:, :4]).max() / scale))
            worst_conf = max(worst_conf, float(np.abs(got[:, 4] - want[:, 4]).max()))
            np.testing.assert_array_equal(got[:, 5], want[:, 5])
        n_boxes += len(want)
        sq = _sorted(results["square"][k])
        if (
            len(sq) == len(want)
            and np.allclose(sq[:, :4], want[:, :4], atol=1e-2 * scale, rtol=0)
            and np.allclose(sq[:, 4], want[:, 4], atol=1e-3, rtol=0)
        ):
            square_equal += 1
    print(
        f"\n{len(paths)} photos, {n_boxes} boxes: max |ours - ultralytics| box {worst_box:.2e} "
        f"input px, conf {worst_conf:.2e}; square letterbox equal on {square_equal} photos"
    )
    assert n_boxes > 0, "no boxes: lower CONF"
    assert worst_box <= 1e-2 and worst_conf <= 1e-3
    assert square_equal == 0
