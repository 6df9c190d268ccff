"""Converting a full-size DeepFaune classifier checkpoint to ONNX without torch (a benchmark, not a
test): wall time and peak memory, and optionally the converted model's speed against a
torch-exported ONNX of the same weights.

A fresh Python process runs ``deepfaune_rs.convert.convert(checkpoint, out.onnx)`` (read the .pt
with the memory-mapping reader, build the graph, serialise, write atomically, load and run it once
in ONNX Runtime) and reports its wall time and peak resident set size (``ru_maxrss``: file pages
of the memory-mapped checkpoint count while they are mapped). Targets for the 1.2 GB ViT-L on a
2-core machine: under 2 minutes and under 4 GB.

    python benches/bench_convert.py --checkpoint deepfaune-vit_large_patch14_dinov2.lvd142m.v4.pt
    DEEPFAUNE_TORCH_PYTHON=/path/to/torch/python python benches/bench_convert.py --family dinov3
        (no checkpoint given: a full-size random-weight one in DeepFaune's layout is written to a
        temporary folder first, with scripts/fixtures/make_vit_fixtures.py and that Python)
    ... --compare-torch   also export the same weights with torch.onnx (opset 17, as
        tests/torch_export.py does) and time both ONNX files on a batch of 8 crops
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "fixtures" / "make_vit_fixtures.py"

CHILD = r"""
import json, resource, sys, time
t = time.perf_counter()
from deepfaune_rs.convert import convert
info = convert(sys.argv[1], sys.argv[2], check=sys.argv[3] == "1")
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "peak_kb": peak, "kind": info["kind"]}))
"""

TORCH_EXPORT = r"""
import sys, torch, timm
from timm.layers import resample_abs_pos_embed
ck = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
name, n = ck["args"]["backbone"], ck["args"]["num_classes"]
sd = {k[len("base_model."):]: v.float() for k, v in ck["state_dict"].items()}
size = int(sys.argv[3])
if "dinov2" in name:  # a fixed-size model with the grid resampled, as tests/torch_export.py does
    m = timm.create_model(name, pretrained=False, num_classes=n, img_size=size)
    sd["pos_embed"] = resample_abs_pos_embed(sd["pos_embed"], new_size=(size // 14,) * 2,
                                             num_prefix_tokens=1, antialias=True)
else:
    m = timm.create_model(name, pretrained=False, num_classes=n, global_pool="token")
m.load_state_dict(sd)
m.eval()
class Wrap(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m
    def forward(self, x):
        f = self.m.forward_features(x)
        return self.m.forward_head(f), f[:, 0, :]
dyn = {"input": {0: "batch"}, "logits": {0: "batch"}, "embedding": {0: "batch"}}
torch.onnx.export(Wrap(m).eval(), torch.randn(1, 3, size, size), sys.argv[2], opset_version=17,
                  input_names=["input"], output_names=["logits", "embedding"],
                  dynamic_axes=dyn, dynamo=False)
"""


def torch_python(arg: str | None) -> str:
    py = arg or os.environ.get("DEEPFAUNE_TORCH_PYTHON")
    if not py:
        sys.exit("no --checkpoint: give --torch-python (or DEEPFAUNE_TORCH_PYTHON) to make one")
    return py


def convert_in_child(ckpt: Path, out: Path, check: bool) -> dict:
    t = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-c", CHILD, str(ckpt), str(out), "1" if check else "0"],
        capture_output=True, text=True,
    )  # fmt: skip
    if p.returncode != 0:
        sys.exit(f"conversion failed:\n{p.stderr}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["process_seconds"] = time.perf_counter() - t
    return r


def compare_speed(ours: Path, theirs: Path, size: int, runs: int) -> None:
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sessions = {
        "converted": ort.InferenceSession(str(ours), so, providers=["CPUExecutionProvider"]),
        "torch export": ort.InferenceSession(str(theirs), so, providers=["CPUExecutionProvider"]),
    }
    x = np.random.default_rng(0).standard_normal((8, 3, size, size)).astype(np.float32)
    outs = {k: s.run(["logits", "embedding"], {"input": x}) for k, s in sessions.items()}
    a, b = outs.values()
    print(
        f"  outputs: max |converted - torch export| logits {abs(a[0] - b[0]).max():.2e}, "
        f"embedding {abs(a[1] - b[1]).max():.2e}"
    )
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(runs):  # interleaved, so a busy machine slows both alike
        for k, s in sessions.items():
            t = time.perf_counter()
            s.run(None, {"input": x})
            times[k].append(time.perf_counter() - t)
    for k, ts in times.items():
        print(
            f"  {k:13s} batch of 8 at {size} px: best {min(ts):.3f} s, median {np.median(ts):.3f} s"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--checkpoint", type=Path, help="a DeepFaune classifier .pt (default: make one)"
    )
    ap.add_argument("--family", choices=["dinov2", "dinov3"], default="dinov2")
    ap.add_argument(
        "--torch-python", help="Python with torch + timm (default $DEEPFAUNE_TORCH_PYTHON)"
    )
    ap.add_argument("--no-check", action="store_true", help="skip convert()'s ONNX Runtime check")
    ap.add_argument("--compare-torch", action="store_true", help="time against a torch export")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        tmp = Path(tmp)
        ckpt = args.checkpoint
        if ckpt is None:
            ckpt = tmp / f"deepfaune-{args.family}.pt"
            t = time.perf_counter()
            cmd = [torch_python(args.torch_python), str(SCRIPT), "checkpoint", args.family]
            subprocess.run([*cmd, str(ckpt)], check=True, capture_output=True)
            print(f"made {ckpt.name} with torch in {time.perf_counter() - t:.0f} s")
        out = tmp / "converted.onnx"
        r = convert_in_child(ckpt, out, check=not args.no_check)
        print(
            f"{ckpt.name}: {ckpt.stat().st_size / 1e6:.1f} MB -> {out.stat().st_size / 1e6:.1f} MB "
            f"ONNX ({r['kind']}{'' if args.no_check else ', checked in ONNX Runtime'})"
        )
        print(
            f"  wall {r['seconds']:.1f} s in convert(), {r['process_seconds']:.1f} s with the "
            f"interpreter start; peak RSS {r['peak_kb'] / 1024**2:.2f} GB"
        )
        if args.compare_torch:
            from deepfaune_rs import _core

            backbone = _core.read_checkpoint(ckpt)["args"]["backbone"]
            size = _core.VIT_BACKBONES[backbone]["default_size"]
            theirs = tmp / "torch.onnx"
            subprocess.run(
                [torch_python(args.torch_python), "-c", textwrap.dedent(TORCH_EXPORT), str(ckpt),
                 str(theirs), str(size)],
                check=True, capture_output=True,
            )  # fmt: skip
            compare_speed(out, theirs, size, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
