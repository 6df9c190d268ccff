"""Opt-in: the PyTorch -> ONNX exporters on checkpoints with the official layouts.

Needs a Python with torch, timm, ultralytics and onnxruntime (never this package's own
environment): set DEEPFAUNE_TORCH_PYTHON to it, e.g. the venv made by
../shared/tools/make_bench_models.sh. The exported models then run in deepfaune_rs.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

import deepfaune_rs
from conftest import REPO

TORCH_PY = os.environ.get("DEEPFAUNE_TORCH_PYTHON")
pytestmark = pytest.mark.skipif(
    not TORCH_PY, reason="opt-in: set DEEPFAUNE_TORCH_PYTHON to a Python with torch and timm"
)
EXPORT = REPO / "tests" / "torch_export.py"
TINY = {"depth": 2, "embed_dim": 64, "num_heads": 4}


def _torch(code: str, *args: str) -> str:
    p = subprocess.run(
        [TORCH_PY, "-c", textwrap.dedent(code), *args], capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_export_classifier_checkpoint_in_deepfaune_layout(tmp_path, testdata):
    ckpt = tmp_path / "deepfaune-tiny.pt"
    # A random-weight checkpoint with DeepFaune's dict layout and key prefix.
    _torch(
        """
        import sys, torch, timm
        torch.manual_seed(0)
        m = timm.create_model("vit_large_patch14_dinov2.lvd142m", pretrained=False,
                              num_classes=38, dynamic_img_size=True, depth=2, embed_dim=64,
                              num_heads=4)
        sd = {"base_model." + k: v for k, v in m.state_dict().items()}
        torch.save({"args": {"backbone": "vit_large_patch14_dinov2.lvd142m", "num_classes": 38},
                    "state_dict": sd}, sys.argv[1])
        """,
        str(ckpt),
    )
    onnx = tmp_path / "tiny.onnx"
    p = subprocess.run(
        [TORCH_PY, str(EXPORT), "classifier", str(ckpt), "-o", str(onnx),
         "--model-kwargs", '{"depth": 2, "embed_dim": 64, "num_heads": 4}'],
        capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "max_abs_diff_vs_timm" in p.stdout and onnx.is_file()
    pipe = deepfaune_rs.Pipeline(
        "md-lite", onnx, classifier_manifest=REPO / "models" / "tiny-vit-c38.toml"
    )
    res = pipe.run(testdata / "southwest", progress=False)
    assert res.logits.shape == (len(res), 38) and res.embeddings.shape == (len(res), 64)
    # Our logits equal timm's dynamic-size model (DeepFaune's way) on the same crops.
    rows = [i for i in range(len(res)) if res.classified[i]]
    assert rows
    job = tmp_path / "job.json"
    job.write_text(
        json.dumps([[res.paths[i], [int(v) for v in res.detections.crop_boxes[i]]] for i in rows])
    )
    out = _torch(
        """
        import json, sys, numpy as np, torch, timm
        from PIL import Image, ImageOps
        ck = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
        m = timm.create_model(ck["args"]["backbone"], pretrained=False, num_classes=38,
                              dynamic_img_size=True, depth=2, embed_dim=64, num_heads=4).eval()
        m.load_state_dict({k[len("base_model."):]: v for k, v in ck["state_dict"].items()})
        mean = np.array([0.485, 0.456, 0.406], np.float32)
        std = np.array([0.229, 0.224, 0.225], np.float32)
        xs = []
        for path, box in json.load(open(sys.argv[2])):
            im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
            a = np.asarray(im.crop(box).resize((182, 182), Image.BICUBIC), np.float32) / 255
            xs.append(((a - mean) / std).transpose(2, 0, 1))
        with torch.no_grad():
            print(json.dumps(m(torch.from_numpy(np.stack(xs))).tolist()))
        """,
        str(ckpt),
        str(job),
    )
    ref = np.array(json.loads(out.strip().splitlines()[-1]), dtype=np.float32)
    assert np.abs(res.logits[rows] - ref).max() < 1e-3


def test_export_refuses_a_checkpoint_of_another_layout(tmp_path):
    bad = tmp_path / "bad.pt"
    _torch("import sys, torch; torch.save({'weights': 1}, sys.argv[1])", str(bad))
    p = subprocess.run(
        [TORCH_PY, str(EXPORT), "classifier", str(bad), "-o", str(tmp_path / "x.onnx")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode != 0 and "not a DeepFaune classifier checkpoint" in p.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_export_detector_from_ultralytics_checkpoint(tmp_path):
    pt = tmp_path / "yolov8n_c3.pt"
    _torch(
        """
        import os, sys
        os.environ["YOLO_OFFLINE"] = "1"
        import yaml
        from ultralytics import YOLO
        from ultralytics.utils import ROOT
        cfg = yaml.safe_load(open(ROOT / "cfg/models/v8/yolov8.yaml"))
        cfg["nc"], cfg["scale"] = 3, "n"
        y = os.path.join(os.path.dirname(sys.argv[1]), "c3.yaml")
        open(y, "w").write(yaml.safe_dump(cfg))
        m = YOLO(y)
        m.save(sys.argv[1]) if hasattr(m, "save") else None
        """,
        str(pt),
    )
    if not pt.exists():
        pytest.skip("this ultralytics cannot save an untrained model")
    onnx = tmp_path / "det.onnx"
    p = subprocess.run(
        [TORCH_PY, str(EXPORT), "detector", str(pt), "-o", str(onnx), "--imgsz", "320"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    manifest = tmp_path / "det.toml"
    text = (REPO / "models" / "df.toml").read_text()
    manifest.write_text(
        text.replace("size = 960", "size = 320").replace(
            'file = "deepfaune-yolov8s_960.onnx"', 'file = "det.onnx"'
        )
    )
    det = deepfaune_rs.Detector(str(manifest))
    img = np.zeros((240, 320, 3), dtype=np.uint8)
    from PIL import Image

    Image.fromarray(img).save(tmp_path / "black.jpg")
    res = det.detect(tmp_path / "black.jpg", progress=False)
    assert len(res) == 1 and not res.failures
    assert Path(onnx).stat().st_size > 0
