"""Classifier cost per crop: DeepFaune 1.5 (ViT-L/16 DINOv3 at 224 px) against 1.4 (ViT-L/14
DINOv2 at 182 px), onnxruntime alone, in one run, with their ratio.

The models are the full-size architectures with random weights (the compute of the real ones,
not their outputs), exported to ONNX with torch the way ``tests/torch_export.py`` does: 1.4
with its position grid baked for 182 px, 1.5 with CLS pooling and its RoPE tables fixed for
224 px. They are made with a Python that has torch and timm >= 1.0.20 (``--torch-python``, default
``$DEEPFAUNE_TORCH_PYTHON``) in a temporary folder, or given with ``--v14`` / ``--v15``.

The two models are timed in alternation (``--rounds``), on the same random crops, at batch 1
and batch 8; the figure is the median time per crop over the rounds.

Usage: python benches/bench_classifier_versions.py [--rounds 5] [--crops 16] [--threads 2]
           [--v14 V14.onnx --v15 V15.onnx | --torch-python PY [--keep DIR]]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

MAKE = """
import sys, torch, timm
out, which = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
if which == "v14":
    from timm.layers import resample_abs_pos_embed
    name, size, kw = "vit_large_patch14_dinov2.lvd142m", 182, {"num_classes": 38}
    src = timm.create_model(name, pretrained=False, **kw).state_dict()
    src["pos_embed"] = resample_abs_pos_embed(src["pos_embed"], new_size=(13, 13),
        num_prefix_tokens=1, interpolation="bicubic", antialias=True)
    m = timm.create_model(name, pretrained=False, img_size=size, **kw).eval()
    m.load_state_dict(src)
else:
    name, size = "vit_large_patch16_dinov3.lvd1689m", 224
    m = timm.create_model(name, pretrained=False, num_classes=40, global_pool="token",
                          img_size=size, dynamic_img_size=False).eval()
    assert m.global_pool == "token"

class Both(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m
    def forward(self, x):
        f = self.m.forward_features(x)
        return self.m.forward_head(f), f[:, 0, :]

torch.onnx.export(Both(m).eval(), torch.randn(1, 3, size, size), out, input_names=["input"],
                  output_names=["logits", "embedding"], opset_version=17, dynamo=False,
                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"},
                                "embedding": {0: "batch"}})
print(out, sum(p.numel() for p in m.parameters()))
"""


def make_models(python: str, folder: Path) -> tuple[Path, Path]:
    paths = []
    for which in ("v14", "v15"):
        out = folder / f"{which}.onnx"
        if not out.exists():
            t = time.perf_counter()
            p = subprocess.run(
                [python, "-c", textwrap.dedent(MAKE), str(out), which],
                capture_output=True,
                text=True,
            )
            if p.returncode != 0:
                sys.exit(f"could not make the {which} model with {python}:\n{p.stderr[-2000:]}")
            params = int(p.stdout.split()[-1]) / 1e6
            print(f"made {out.name}: {params:.1f} M parameters in {time.perf_counter() - t:.0f} s")
        paths.append(out)
    return paths[0], paths[1]


def session(path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def per_crop(sess, crops, batch: int) -> float:
    """Seconds per crop over all ``crops`` in batches of ``batch``."""
    t = time.perf_counter()
    for i in range(0, len(crops), batch):
        sess.run(["logits", "embedding"], {"input": crops[i : i + batch]})
    return (time.perf_counter() - t) / len(crops)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--v14", type=Path, help="ONNX of the 1.4 classifier (182 px)")
    ap.add_argument("--v15", type=Path, help="ONNX of the 1.5 classifier (224 px)")
    ap.add_argument("--torch-python", default=os.environ.get("DEEPFAUNE_TORCH_PYTHON"))
    ap.add_argument("--keep", type=Path, help="make the models in (or reuse them from) DIR")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--crops", type=int, default=16, help="crops per round and model")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)

    import numpy as np
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        if args.v14 and args.v15:
            v14, v15 = args.v14, args.v15
        elif args.torch_python:
            folder = args.keep or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            v14, v15 = make_models(args.torch_python, folder)
        else:
            ap.error("give --v14 and --v15, or --torch-python (or set DEEPFAUNE_TORCH_PYTHON)")
        rng = np.random.default_rng(0)
        models = {
            "1.4 ViT-L/14 DINOv2 182": (session(v14, args.threads), 182),
            "1.5 ViT-L/16 DINOv3 224": (session(v15, args.threads), 224),
        }
        crops = {
            name: rng.standard_normal((args.crops, 3, s, s)).astype(np.float32)
            for name, (_, s) in models.items()
        }
        for name, (sess, _) in models.items():  # warm-up
            per_crop(sess, crops[name][:8], 8)
        times: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for batch in (1, 8):
                for name, (sess, _) in models.items():
                    times.setdefault((name, batch), []).append(per_crop(sess, crops[name], batch))
    print(
        f"onnxruntime {ort.__version__}, {args.threads} intra-op threads, {os.cpu_count()} cores, "
        f"{args.rounds} rounds x {args.crops} crops, median seconds per crop"
    )
    for batch in (1, 8):
        med = {name: statistics.median(times[(name, batch)]) for name in models}
        old, new = med.values()
        cells = ", ".join(f"{name}: {t:.3f} s" for name, t in med.items())
        print(f"batch {batch}: {cells}; ratio 1.5 / 1.4 = {new / old:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
