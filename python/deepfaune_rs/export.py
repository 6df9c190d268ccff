"""Converting official PyTorch weights to the ONNX files the manifests expect.

Needs the ``export`` extra (``pip install "deepfaune-rs[export]"``: torch, timm, onnx,
ultralytics). Nothing else in deepfaune_rs imports torch. This file also runs on its own
(``python export.py classifier WEIGHTS.pt -o OUT.onnx``) with only torch/timm/onnxruntime.

Classifier (DeepFaune's ViT-L/14 DINOv2): the checkpoint is
``{"args": {"backbone", "num_classes"}, "state_dict"}`` with keys prefixed ``base_model.``.
DeepFaune runs it at 182 px with ``dynamic_img_size=True``: timm resamples the 37x37 position
grid to 13x13 (bicubic, antialiased) at every call, an op ONNX cannot express. The export bakes
the resampled grid into a fixed-size graph and checks the ONNX outputs against the dynamic timm
model before writing anything.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

PREFIX = "base_model."


def _load_checkpoint(torch: Any, weights: Path) -> dict:
    try:
        return torch.load(weights, map_location="cpu", weights_only=False)
    except TypeError:  # torch < 1.13
        return torch.load(weights, map_location="cpu")


def _atomic_output(output: Path) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".onnx", dir=output.parent)
    os.close(fd)
    return Path(tmp)


def export_classifier(
    weights: os.PathLike,
    output: os.PathLike,
    *,
    size: int = 182,
    opset: int = 17,
    atol: float = 1e-3,
    model_kwargs: dict | None = None,
) -> dict:
    """Exports a DeepFaune classifier checkpoint to ONNX (inputs ``input`` [b, 3, size, size];
    outputs ``logits`` [b, classes] and ``embedding`` [b, dim], the CLS token). The ONNX model is
    compared with timm's dynamic-size model on random inputs; nothing is written unless the
    largest difference is below ``atol``. ``model_kwargs`` overrides timm's architecture
    (for small test copies). Returns a summary dict."""
    import numpy as np
    import onnxruntime as ort
    import timm
    import torch
    from timm.layers import resample_abs_pos_embed

    ckpt = _load_checkpoint(torch, Path(weights))
    try:
        backbone = ckpt["args"]["backbone"]
        num_classes = int(ckpt["args"]["num_classes"])
        state = ckpt["state_dict"]
    except (KeyError, TypeError) as e:
        raise ValueError(
            f"{weights}: not a DeepFaune classifier checkpoint "
            "({'args': {'backbone', 'num_classes'}, 'state_dict'} expected)"
        ) from e
    state = {k[len(PREFIX) :] if k.startswith(PREFIX) else k: v for k, v in state.items()}
    kw = dict(pretrained=False, num_classes=num_classes, **(model_kwargs or {}))
    dynamic = timm.create_model(backbone, dynamic_img_size=True, **kw).eval()
    dynamic.load_state_dict(state)
    fixed = timm.create_model(backbone, img_size=size, **kw).eval()
    patch = dynamic.patch_embed.patch_size[0]
    grid = size // patch
    prefix = 0 if getattr(dynamic, "no_embed_class", False) else dynamic.num_prefix_tokens
    baked = dict(state)
    baked["pos_embed"] = resample_abs_pos_embed(
        state["pos_embed"],
        new_size=(grid, grid),
        num_prefix_tokens=prefix,
        interpolation="bicubic",
        antialias=True,
    )
    fixed.load_state_dict(baked)

    class LogitsAndEmbedding(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: Any) -> Any:
            features = self.model.forward_features(x)
            return self.model.forward_head(features), features[:, 0, :]

    output = Path(output)
    tmp = _atomic_output(output)
    try:
        torch.onnx.export(
            LogitsAndEmbedding(fixed).eval(),
            torch.randn(1, 3, size, size),
            str(tmp),
            input_names=["input"],
            output_names=["logits", "embedding"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
        x = np.random.default_rng(0).normal(size=(2, 3, size, size)).astype(np.float32)
        logits, emb = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"]).run(
            ["logits", "embedding"], {"input": x}
        )
        with torch.no_grad():
            feats = dynamic.forward_features(torch.from_numpy(x))
            ref_logits, ref_emb = dynamic.forward_head(feats).numpy(), feats[:, 0, :].numpy()
        diff = max(float(np.abs(logits - ref_logits).max()), float(np.abs(emb - ref_emb).max()))
        if not diff < atol:
            raise RuntimeError(f"ONNX differs from timm by {diff:.2e} (> {atol}); not written")
        os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {
        "output": str(output),
        "backbone": backbone,
        "num_classes": num_classes,
        "embedding_dim": int(emb.shape[1]),
        "max_abs_diff_vs_timm": diff,
    }


def export_detector(
    weights: os.PathLike, output: os.PathLike, *, imgsz: int = 960, opset: int = 17
) -> dict:
    """Exports an ultralytics YOLO checkpoint (DeepFaune's ``deepfaune-yolov8s_960.pt``,
    MegaDetector v1000) to a fixed-size ONNX model (``images`` [b, 3, imgsz, imgsz] ->
    ``output0`` [b, 4 + classes, N], the ``yolov8`` layout), checked against the PyTorch model."""
    import numpy as np
    import onnxruntime as ort
    import torch

    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics import YOLO

    model = YOLO(str(weights))
    exported = Path(
        model.export(format="onnx", imgsz=imgsz, opset=opset, dynamic=True, simplify=False)
    )
    output = Path(output)
    tmp = _atomic_output(output)
    try:
        os.replace(exported, tmp)
        sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
        (out,) = sess.run(None, {sess.get_inputs()[0].name: x})
        with torch.no_grad():
            ref = model.model.float().eval()(torch.from_numpy(x))
            ref = (ref[0] if isinstance(ref, (list, tuple)) else ref).numpy()
        diff = float(np.abs(out - ref).max())
        if not diff < 1e-2:
            raise RuntimeError(f"ONNX differs from PyTorch by {diff:.2e}; not written")
        os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"output": str(output), "shape": list(out.shape), "max_abs_diff": diff}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="export", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    c = sub.add_parser("classifier")
    c.add_argument("weights")
    c.add_argument("-o", "--output", required=True)
    c.add_argument("--size", type=int, default=182)
    c.add_argument("--model-kwargs", default=None, help="JSON overrides of timm's architecture")
    d = sub.add_parser("detector")
    d.add_argument("weights")
    d.add_argument("-o", "--output", required=True)
    d.add_argument("--imgsz", type=int, default=960)
    args = ap.parse_args(argv)
    if args.what == "classifier":
        import json

        kwargs = json.loads(args.model_kwargs) if args.model_kwargs else None
        info = export_classifier(args.weights, args.output, size=args.size, model_kwargs=kwargs)
    else:
        info = export_detector(args.weights, args.output, imgsz=args.imgsz)
    for k, v in info.items():
        print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
