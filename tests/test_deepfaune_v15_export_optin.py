"""Opt-in: ``export-classifier`` on a checkpoint in DeepFaune 1.5's layout (timm
``vit_large_patch16_dinov3.lvd1689m``, CLS-token pooling, 224 px; ``args``, ``state_dict`` with
the ``base_model.`` prefix and a pickled torchvision ``transform``), with random weights and a
reduced depth and width.

Needs a Python with torch, timm >= 1.0.20, torchvision and onnxruntime (never this package's own
environment): set DEEPFAUNE_TORCH_PYTHON to it. The exported ONNX then runs in deepfaune_rs
under the built-in v1.5 manifest (only the file name and the reduced embedding width changed),
and its logits on the pipeline's crops are compared with timm's model built as DeepFaune 1.5
builds it.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import numpy as np
import pytest

import deepfaune_rs
from conftest import REPO

TORCH_PY = os.environ.get("DEEPFAUNE_TORCH_PYTHON")
pytestmark = pytest.mark.skipif(
    not TORCH_PY, reason="opt-in: set DEEPFAUNE_TORCH_PYTHON to a Python with torch and timm"
)
EXPORT = REPO / "tests" / "torch_export.py"
BACKBONE = "vit_large_patch16_dinov3.lvd1689m"
TINY = {"depth": 2, "embed_dim": 64, "num_heads": 4}


def _torch(code: str, *args: str) -> str:
    p = subprocess.run(
        [TORCH_PY, "-c", textwrap.dedent(code), *args], capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


def _export(ckpt, onnx, kwargs=TINY) -> subprocess.CompletedProcess:
    return subprocess.run(
        [TORCH_PY, str(EXPORT), "classifier", str(ckpt), "-o", str(onnx),
         "--model-kwargs", json.dumps(kwargs)],
        capture_output=True, text=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("v15-export") / "deepfaune-v15-tiny.pt"
    _torch(
        """
        import json, sys, torch, timm
        from torchvision import transforms
        from torchvision.transforms import InterpolationMode
        torch.manual_seed(0)
        m = timm.create_model(sys.argv[2], pretrained=False, num_classes=40, global_pool="token",
                              **json.loads(sys.argv[3]))
        # timm's initialisation leaves the network almost inert (layer scales 1e-5, a head of
        # std 0.02: the logits hardly depend on the image). Weights of unit gain, random biases,
        # layer scales, tokens and norms make every part count.
        with torch.no_grad():
            for name, p in m.named_parameters():
                if p.dim() >= 2 and "token" not in name:
                    fan_in = p[0].numel()
                    p.normal_(0, 1 / fan_in ** 0.5)
                elif name.endswith(("norm.weight", "norm1.weight", "norm2.weight")):
                    p.normal_(1, 0.2)
                else:
                    p.normal_(0, 0.5)
        sd = {"base_model." + k: v for k, v in m.state_dict().items()}
        tf = transforms.Compose([
            transforms.Resize(size=(224, 224), interpolation=InterpolationMode.BICUBIC,
                              max_size=None, antialias=None),
            transforms.ToTensor(),
            transforms.Normalize(mean=torch.tensor([0.485, 0.456, 0.406]),
                                 std=torch.tensor([0.229, 0.224, 0.225]))])
        torch.save({"args": {"backbone": sys.argv[2], "num_classes": 40}, "state_dict": sd,
                    "transform": tf}, sys.argv[1])
        """,
        str(ckpt),
        BACKBONE,
        json.dumps(TINY),
    )
    return ckpt


def _timm_logits(ckpt, job, pool: str) -> np.ndarray:
    """timm's logits on the crops listed in ``job``, the model built as DeepFaune 1.5 does
    (``global_pool=pool``), the crops made with Pillow as torchvision's Resize does."""
    out = _torch(
        """
        import json, sys, numpy as np, torch, timm
        from PIL import Image, ImageOps
        ck = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
        m = timm.create_model(ck["args"]["backbone"], pretrained=False, num_classes=40,
                              global_pool=sys.argv[3], **json.loads(sys.argv[4])).eval()
        m.load_state_dict({k[len("base_model."):]: v for k, v in ck["state_dict"].items()})
        mean = np.array([0.485, 0.456, 0.406], np.float32)
        std = np.array([0.229, 0.224, 0.225], np.float32)
        xs = []
        for path, box in json.load(open(sys.argv[2])):
            im = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
            a = np.asarray(im.crop(box).resize((224, 224), Image.BICUBIC), np.float32) / 255
            xs.append(((a - mean) / std).transpose(2, 0, 1))
        with torch.no_grad():
            print(json.dumps(m(torch.from_numpy(np.stack(xs))).tolist()))
        """,
        str(ckpt),
        str(job),
        pool,
        json.dumps(TINY),
    )
    return np.array(json.loads(out.strip().splitlines()[-1]), dtype=np.float32)


def test_export_v15_checkpoint_matches_timm_with_cls_pooling(checkpoint, tmp_path, testdata):
    onnx = tmp_path / "deepfaune-v15-tiny.onnx"
    p = _export(checkpoint, onnx)
    assert p.returncode == 0, p.stderr
    info = dict(line.split(": ", 1) for line in p.stdout.strip().splitlines())
    assert info["input_size"] == "224" and info["num_classes"] == "40"
    assert float(info["max_abs_diff_vs_timm"]) < 1e-3
    # The built-in 1.5 manifest, for this file and the reduced width.
    text = (REPO / "models" / "deepfaune-v15.toml").read_text(encoding="utf-8")
    manifest = tmp_path / "v15-tiny.toml"
    manifest.write_text(
        text.replace("embedding_dim = 1024", "embedding_dim = 64"), encoding="utf-8"
    )
    pipe = deepfaune_rs.Pipeline("md-lite", onnx, classifier_manifest=manifest)
    res = pipe.run(testdata / "southwest", progress=False)
    assert res.logits.shape == (len(res), 40) and res.embeddings.shape == (len(res), 64)
    rows = [i for i in range(len(res)) if res.classified[i]]
    assert len(rows) >= 3
    job = tmp_path / "job.json"
    job.write_text(
        json.dumps([[res.paths[i], [int(v) for v in res.detections.crop_boxes[i]]] for i in rows])
    )
    token = _timm_logits(checkpoint, job, "token")
    assert token.std(axis=0).mean() > 0.1, "the logits depend on the image"
    assert np.abs(res.logits[rows] - token).max() < 1e-3
    # timm's default pooling for this model ("avg") loads the same weights and gives other
    # logits: what the exporter refuses.
    avg = _timm_logits(checkpoint, job, "avg")
    assert np.abs(res.logits[rows] - avg).max() > 0.1
    print(
        f"{len(rows)} crops: max |ours - timm token| = {np.abs(res.logits[rows] - token).max():.2e}"
        f", max |ours - timm avg| = {np.abs(res.logits[rows] - avg).max():.2f}"
    )


def test_export_refuses_another_pooling(checkpoint, tmp_path):
    onnx = tmp_path / "avg.onnx"
    p = _export(checkpoint, onnx, {**TINY, "global_pool": "avg"})
    assert p.returncode != 0 and "global_pool='avg'" in p.stderr, p.stderr
    assert not onnx.exists()
