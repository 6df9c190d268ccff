"""Detection throughput of deepfaune-rs against the compute floor and a plain Python loop.

Measured in one run, on the same images (../shared/testdata, non-empty files), each variant in
its own subprocess so peak RSS is its own:
  floor   onnxruntime-python on pre-made letterboxed tensors (model alone, batch 1)
  python  Pillow decode + EXIF transpose + ImageOps.pad + onnxruntime + numpy NMS
  ours    deepfaune_rs.Detector().detect(files)

Usage: python benches/bench_detect.py [--repeat 2] [--testdata ../shared/testdata]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def images(testdata: Path) -> list[Path]:
    from conftest import all_test_images

    return [p for p in all_test_images(testdata) if p.stat().st_size > 0]


def run_variant(name: str, files: list[Path], model: Path) -> dict:
    import numpy as np
    import onnxruntime as ort

    from reference_detect import ReferenceYolox, letterbox_zamba, load_rgb

    if name == "floor":
        tensors = [letterbox_zamba(load_rgb(p))[None] for p in files]
        sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        sess.run(["output"], {"images": tensors[0]})  # warm-up
        t = time.perf_counter()
        for x in tensors:
            sess.run(["output"], {"images": x})
        elapsed = time.perf_counter() - t
    elif name == "python":
        ref = ReferenceYolox(model)
        ref.detect(files[0])
        t = time.perf_counter()
        for p in files:
            ref.detect(p)
        elapsed = time.perf_counter() - t
    elif name == "ours":
        import deepfaune_rs

        det = deepfaune_rs.Detector()
        det.detect(files[:1], progress=False)
        t = time.perf_counter()
        res = det.detect(files, progress=False)
        elapsed = time.perf_counter() - t
        assert len(res) == len(files) and not res.failures
    else:
        raise ValueError(name)
    del np
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": name, "images": len(files), "seconds": elapsed, "peak_rss_mb": peak_mb}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--testdata", default=str(HERE.parent.parent / "shared" / "testdata"))
    ap.add_argument(
        "--model",
        default=str(HERE.parent.parent / "shared" / "models" / "md_lite_yolox_tiny_640.onnx"),
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="pass over the image list this many times"
    )
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args()
    files = images(Path(args.testdata)) * args.repeat
    if args.variant:
        print(json.dumps(run_variant(args.variant, files, Path(args.model))))
        return
    results = {}
    for name in ["floor", "python", "ours"]:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--variant",
                name,
                "--testdata",
                args.testdata,
                "--model",
                args.model,
                "--repeat",
                str(args.repeat),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{'variant':<8} {'images':>6} {'s/img':>8} {'img/s':>7} {'peak RSS MB':>12}")
    for r in results.values():
        per = r["seconds"] / r["images"]
        rss = r["peak_rss_mb"]
        print(f"{r['variant']:<8} {r['images']:>6} {per:>8.4f} {1 / per:>7.2f} {rss:>12.0f}")
    ours = results["ours"]["seconds"]
    print(f"overhead over the model-only floor: {ours / results['floor']['seconds'] - 1:+.1%}")
    print(f"speed-up over the Python loop:     {results['python']['seconds'] / ours:.2f}x")


if __name__ == "__main__":
    main()
