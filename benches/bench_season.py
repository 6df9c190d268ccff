"""Projected hours for a 100,000-image season on this machine, from costs measured in this run
on the architecture-faithful benchmark models (YOLOv8s 960 + ViT-L/14 182, random weights; build
them with ../shared/tools/make_bench_models.sh OUTDIR TORCH_VENV), each variant in its own
process:

  fp32   deepfaune_rs: Detector.detect (decode + letterbox 960x736 + YOLOv8s) and Pipeline.run
         (the same + the ViT-L on one crop per image)
  int8   the same with precision="int8": the detector quantised static (QDQ, calibrated on
         ../shared/testdata), the ViT dynamic (int8 MatMuls), by `models quantize`'s code
  torch  DeepFaune's way: ultralytics YOLO.predict + torchvision transforms + timm ViT, in the
         torch venv (--torch-python), never this package's environment

The season: 60 % empty images (DeepFaune's DFbsMDS runs them through DF, then MegaDetector as
backstop: two detector passes; MegaDetector v1000 sorrel is a YOLO11s, costed here as the
YOLOv8s), 35 % animals (one detector pass + one crop classified), 5 % people (one pass).
CPU use is core-seconds per wall second (user + system time over elapsed) of each measured run.
Also measured: the detector with the 960x960 square letterbox (fp32), and ViT-L session start
without and with the on-disk cache of ONNX Runtime's optimised graph (``cache_dir``).

Usage: python benches/bench_season.py --models OUTDIR [--torch-python VENV/bin/python] [--n 16]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(HERE))

SEASON = 100_000
SHARES = {"empty": 0.60, "animal": 0.35, "human": 0.05}
DETECTOR_FILE, VIT_FILE = "yolov8s_960_c3.onnx", "vitl14_182_c38.onnx"

TORCH_PATH = r"""
import json, os, resource, sys, time
os.environ["YOLO_OFFLINE"] = "1"
import numpy as np, torch, timm, yaml
from PIL import Image
from torchvision import transforms
from ultralytics import YOLO
from ultralytics.utils import ROOT

files = json.load(open(sys.argv[1]))
out = sys.argv[2]
torch.manual_seed(0)
torch.set_num_threads(os.cpu_count())
cfg = yaml.safe_load(open(ROOT / "cfg/models/v8/yolov8.yaml"))
cfg["nc"], cfg["scale"] = 3, "s"
open(out + ".yaml", "w").write(yaml.safe_dump(cfg))
yolo = YOLO(out + ".yaml")
vit = timm.create_model("vit_large_patch14_dinov2.lvd142m", pretrained=False, num_classes=38,
                        dynamic_img_size=True).eval()
bicubic = transforms.InterpolationMode.BICUBIC
tf = transforms.Compose([transforms.Resize((182, 182), interpolation=bicubic),
                         transforms.ToTensor(),
                         transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

yolo.predict(files[0], imgsz=960, conf=0.0, verbose=False)
t, c = time.perf_counter(), cpu()
boxes = [yolo.predict(f, imgsz=960, conf=0.0, verbose=False)[0].boxes.xyxy.cpu().numpy()
         for f in files]
det_s, det_cpu = time.perf_counter() - t, cpu() - c
crops = []
for f, b in zip(files, boxes):
    im = Image.open(f).convert("RGB")
    x1, y1, x2, y2 = b[0] if len(b) else (0, 0, im.width, im.height)
    crops.append(im.crop((int(x1), int(y1), max(int(x2), int(x1) + 1), max(int(y2), int(y1) + 1))))
with torch.no_grad():
    vit(tf(crops[0]).unsqueeze(0))
    t, c = time.perf_counter(), cpu()
    for crop in crops:
        vit(tf(crop).unsqueeze(0))
cls_s, cls_cpu = time.perf_counter() - t, cpu() - c
n = len(files)
print(json.dumps({"variant": "torch", "images": n, "detect": det_s / n, "classify": cls_s / n,
                  "cpu_use": (det_cpu + cls_cpu) / (det_s + cls_s)}))
"""


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def prepare(models: Path, workdir: Path, testdata: Path, int8: bool) -> dict:
    """Manifests for the benchmark models in ``workdir`` (and their int8 variants)."""
    from bench_pipeline import DETECTOR_MANIFEST

    for f in (DETECTOR_FILE, VIT_FILE):
        (workdir / f).unlink(missing_ok=True)
        (workdir / f).symlink_to(models / f)
    (workdir / "bench-yolov8s.toml").write_text(DETECTOR_MANIFEST)
    square = DETECTOR_MANIFEST.replace('shape = "stride"', 'shape = "square"')
    (workdir / "bench-yolov8s-square.toml").write_text(square.replace("bench-yolov8s", "bench-sq"))
    v14 = (REPO / "models" / "deepfaune-v14.toml").read_text().splitlines()
    v14 = [
        f'file = "{VIT_FILE}"'
        if ln.startswith("file = ")
        else 'sha256 = ""'
        if ln.startswith("sha256 = ")
        else ln.replace('id = "deepfaune-v14"', 'id = "bench-vitl"')
        for ln in v14
    ]
    (workdir / "bench-vitl.toml").write_text("\n".join(v14) + "\n")
    out = {}
    if int8:
        from deepfaune_rs.quantize import quantize

        out["detector"] = quantize(str(workdir / "bench-yolov8s.toml"), [testdata], sample=16)
        out["classifier"] = quantize(str(workdir / "bench-vitl.toml"))
    return out


def variant(name: str, files: list[Path], workdir: Path) -> dict:
    import deepfaune_rs

    precision = "int8" if name == "int8" else "fp32"
    det_toml, vit_toml = str(workdir / "bench-yolov8s.toml"), str(workdir / "bench-vitl.toml")
    det = deepfaune_rs.Detector(det_toml, precision=precision)
    det.detect(files[:1], progress=False)
    t, c = time.perf_counter(), _cpu()
    det.detect(files, progress=False)
    det_s, det_cpu = time.perf_counter() - t, _cpu() - c
    pipe = deepfaune_rs.Pipeline(det, vit_toml, precision=precision)
    pipe.run(files[:1], progress=False)
    t, c = time.perf_counter(), _cpu()
    res = pipe.run(files, progress=False)
    pipe_s, pipe_cpu = time.perf_counter() - t, _cpu() - c
    assert sum(res.classified) == len(files), "every image must be classified once"
    n = len(files)
    out = {
        "variant": name,
        "images": n,
        "detect": det_s / n,
        "classify": (pipe_s - det_s) / n,
        "cpu_use": pipe_cpu / pipe_s,
        "detect_cpu_use": det_cpu / det_s,
    }
    if name == "fp32":
        sq = deepfaune_rs.Detector(str(workdir / "bench-yolov8s-square.toml"))
        sq.detect(files[:1], progress=False)
        t = time.perf_counter()
        sq.detect(files, progress=False)
        out["detect_square"] = (time.perf_counter() - t) / n
        cache = workdir / "ort-cache"
        starts = {}
        for label, kw in (
            ("no cache", {}),
            ("cache, first", {"cache_dir": cache}),
            ("cache, next", {"cache_dir": cache}),
        ):
            t = time.perf_counter()
            deepfaune_rs.Pipeline(None, vit_toml, detector_mode=None, **kw)
            starts[label] = time.perf_counter() - t
        out["vit_session_start"] = starts
    return out


def hours(r: dict) -> float:
    per_image = (
        SHARES["empty"] * 2 * r["detect"]
        + SHARES["animal"] * (r["detect"] + r["classify"])
        + SHARES["human"] * r["detect"]
    )
    return SEASON * per_image / 3600


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", required=True, type=Path)
    ap.add_argument("--torch-python", default=None)
    ap.add_argument("--testdata", type=Path, default=REPO.parent / "shared" / "testdata")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    from bench_pipeline import images

    files = images(args.testdata, args.n)
    if args.variant:
        print(json.dumps(variant(args.variant, files, args.workdir)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.environ["DEEPFAUNE_RS_MODELS"] = str(workdir)
        t = time.perf_counter()
        q = prepare(args.models, workdir, args.testdata, int8=True)
        print(f"quantised both models in {time.perf_counter() - t:.0f} s: "
              f"detector {q['detector']['fp32_mb']} -> {q['detector']['int8_mb']} MB, "
              f"ViT {q['classifier']['fp32_mb']} -> {q['classifier']['int8_mb']} MB")  # fmt: skip
        results = {}
        for name in ("fp32", "int8"):
            out = subprocess.run(
                [sys.executable, __file__, "--variant", name, "--models", str(args.models),
                 "--testdata", str(args.testdata), "--n", str(args.n), "--workdir", str(workdir)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        if args.torch_python:
            job = workdir / "files.json"
            job.write_text(json.dumps([str(f) for f in files]))
            script = workdir / "torch_path.py"
            script.write_text(textwrap.dedent(TORCH_PATH))
            out = subprocess.run(
                [args.torch_python, str(script), str(job), str(workdir / "yolo")],
                capture_output=True, text=True, check=True, cwd=workdir,
            )  # fmt: skip
            results["torch"] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{os.cpu_count()} cores, {args.n} images per measurement")
    print(f"{'variant':<8} {'detect s/img':>12} {'classify s/crop':>16} {'CPU use':>8} "
          f"{'100k season h':>14}")  # fmt: skip
    for r in results.values():
        print(f"{r['variant']:<8} {r['detect']:>12.3f} {r['classify']:>16.3f} "
              f"{r['cpu_use']:>8.2f} {hours(r):>14.1f}")  # fmt: skip
    base = hours(results["fp32"])
    for name, r in results.items():
        if name != "fp32":
            print(f"{name} vs fp32: {base / hours(r):.2f}x")
    f = results["fp32"]
    print(
        f"detector letterbox: square 960x960 {f['detect_square']:.3f} s/img, rectangle "
        f"{f['detect']:.3f} s/img ({f['detect_square'] / f['detect']:.2f}x)"
    )
    starts = results["fp32"]["vit_session_start"]
    print("ViT-L session start: " + ", ".join(f"{k} {v:.2f} s" for k, v in starts.items()))


if __name__ == "__main__":
    main()
