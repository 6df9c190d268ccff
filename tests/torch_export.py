"""The torch exporter: official PyTorch weights to ONNX with torch.onnx, the independent
reference the core's converter (``src/convert/``) is checked against (the opt-in full-size tests
``tests/test_convert_*_fullsize.py``, ``benches/bench_convert.py --compare-torch``). It is not
part of the package (``export-classifier`` / ``export-detector`` run the core's converter).

Needs the ``export`` extra (``pip install "deepfaune-rs[export]"``: torch, timm, onnx,
ultralytics). It runs on its own (``python tests/torch_export.py classifier WEIGHTS.pt -o
OUT.onnx``) with only torch/timm/onnxruntime.

Classifiers: the checkpoint is ``{"args": {"backbone", "num_classes"}, "state_dict"}`` (1.5 adds
a ``transform`` that DeepFaune never reads) with keys prefixed ``base_model.``. Every export is
compared with timm's model built the way DeepFaune builds it, on random inputs, and nothing is
written unless the largest difference is below ``atol``.

- DeepFaune 1.1-1.4, ViT-L/14 DINOv2 at 182 px: DeepFaune runs it with
  ``dynamic_img_size=True``, so timm resamples the 37x37 position grid to 13x13 (bicubic,
  antialiased) at every call, an op ONNX cannot express. The export bakes the resampled grid into
  a fixed-size graph.
- DeepFaune 1.5, ViT-L/16 DINOv3 (``vit_large_patch16_dinov3.lvd1689m``) at 224 px: DeepFaune
  builds it with ``global_pool="token"`` (the CLS token; timm's default for this model is "avg",
  which loads the same weights and gives other logits), so the export does too and refuses a
  model whose ``global_pool`` is anything else. Needs timm >= 1.0.20 (the first with DINOv3).
  There is no position grid: positions are rotary embeddings (RoPE) that timm computes from the
  patch grid; building the model for a fixed 224 px input makes them constants of the graph.
  The exporter is torch's TorchScript one (``torch.onnx.export(..., dynamo=False)``) at opset 17:
  it traces timm's attention, ``F.scaled_dot_product_attention`` included, into plain MatMul /
  Softmax nodes (ONNX has no attention op before opset 23, which onnxruntime's CPU kernels and
  older runtimes may lack), and the RoPE rotation (a half-rotation: slice, negate, concat,
  multiply-add with the constant sin/cos tables) into elementwise ops every runtime has. The
  dynamo exporter needs onnxscript and produces the same ops; the TorchScript one is what the
  1.4 export already uses and is checked against timm here, so it is kept for both.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

PREFIX = "base_model."
#: The first timm with DINOv3 (``vit_large_patch16_dinov3``).
TIMM_DINOV3 = (1, 0, 20)


def _is_dinov3(backbone: str) -> bool:
    return "dinov3" in backbone


def _version_tuple(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split("+")[0].split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


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
    size: int | None = None,
    opset: int = 17,
    atol: float = 1e-3,
    model_kwargs: dict | None = None,
) -> dict:
    """Exports a DeepFaune classifier checkpoint to ONNX (inputs ``input`` [b, 3, size, size];
    outputs ``logits`` [b, classes] and ``embedding`` [b, dim], the CLS token after the final
    norm). ``size`` defaults to DeepFaune's: 182 for DINOv2 (1.1-1.4), 224 for DINOv3 (1.5). The
    ONNX model is compared with timm's model built as DeepFaune builds it, on random inputs;
    nothing is written unless the largest difference is below ``atol``. ``model_kwargs``
    overrides timm's architecture (for small test copies). Returns a summary dict."""
    import numpy as np
    import onnxruntime as ort
    import timm
    import torch

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
    kw = dict(pretrained=False, num_classes=num_classes)
    if _is_dinov3(backbone):
        if _version_tuple(timm.__version__) < TIMM_DINOV3:
            raise ImportError(f"{backbone} needs timm >= 1.0.20 (found {timm.__version__})")
        size = size or 224
        # DeepFaune 1.5: timm.create_model(BACKBONE, pretrained=False, num_classes=...,
        # global_pool="token"); timm's default for the model is "avg".
        kw["global_pool"] = "token"
        kw.update(model_kwargs or {})
        reference = timm.create_model(backbone, **kw).eval()
        pool = getattr(reference, "global_pool", None)
        if pool != "token":
            raise ValueError(
                f"{backbone} built with global_pool={pool!r}: DeepFaune 1.5 uses the CLS token "
                "(global_pool='token'); another pooling loads the same weights and gives other "
                "logits, so it is not exported"
            )
        reference.load_state_dict(state)
        fixed = timm.create_model(backbone, img_size=size, dynamic_img_size=False, **kw).eval()
        fixed.load_state_dict(state)
    else:
        size = size or 182
        kw.update(model_kwargs or {})
        reference = timm.create_model(backbone, dynamic_img_size=True, **kw).eval()
        reference.load_state_dict(state)
        fixed = timm.create_model(backbone, img_size=size, **kw).eval()
        fixed.load_state_dict(_bake_position_grid(reference, state, size))

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
            feats = reference.forward_features(torch.from_numpy(x))
            ref_logits, ref_emb = reference.forward_head(feats).numpy(), feats[:, 0, :].numpy()
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
        "input_size": size,
        "embedding_dim": int(emb.shape[1]),
        "max_abs_diff_vs_timm": diff,
    }


def _bake_position_grid(dynamic: Any, state: dict, size: int) -> dict:
    """The state dict with the DINOv2 position grid resampled for ``size`` as timm's dynamic-size
    model does at every call (bicubic, antialiased)."""
    from timm.layers import resample_abs_pos_embed

    grid = size // dynamic.patch_embed.patch_size[0]
    prefix = 0 if getattr(dynamic, "no_embed_class", False) else dynamic.num_prefix_tokens
    baked = dict(state)
    baked["pos_embed"] = resample_abs_pos_embed(
        state["pos_embed"],
        new_size=(grid, grid),
        num_prefix_tokens=prefix,
        interpolation="bicubic",
        antialias=True,
    )
    return baked


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
    c.add_argument("--size", type=int, default=None, help="182 for DINOv2, 224 for DINOv3")
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
