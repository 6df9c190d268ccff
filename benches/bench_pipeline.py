"""Seconds per image of the whole pipeline (detector + classifier on the best animal crop) with the
architecture-faithful benchmark models (YOLOv8s 960 + ViT-L/14 182, random weights; build them
with ../shared/tools/make_bench_models.sh OUTDIR TORCH_VENV), in one run, each variant in its own
process:

  floor  onnxruntime-python on pre-made tensors (detector on the letterboxed image, ViT on one crop)
  ours   deepfaune_rs.Pipeline.run(files)
  torch  DeepFaune's way: ultralytics YOLO.predict + torchvision transforms + timm ViT (PyTorch),
         in the throw-away torch venv (never this package's environment)

All three classify exactly one crop per image: the benchmark manifest maps the random detector's
three classes to "animal" and keeps every box (threshold 0), so the work is the same everywhere.

Usage: python benches/bench_pipeline.py --models OUTDIR --torch-python VENV/bin/python [--n 24]
"""

from __future__ import annotations

import argparse
import json
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

DETECTOR_MANIFEST = """
kind = "detector"
id = "bench-yolov8s"
name = "benchmark YOLOv8s 960 (random weights)"
file = "yolov8s_960_c3.onnx"
[input]
size = 960
shape = "stride"          # ultralytics rect letterbox (960x736 for 4:3), as DeepFaune runs it
letterbox = "centred"
resize = "cv2-linear"
pad_value = 114
scale = 0.00392156862745098
[output]
layout = "yolov8"
classes = ["animal", "animal", "animal"]
[postprocess]
threshold = 0.0
nms_iou = 0.7
max_det = 300
"""

TORCH_PATH = r"""
import json, resource, sys, time
import numpy as np, torch, timm
from PIL import Image
from torchvision import transforms
import os
os.environ["YOLO_OFFLINE"] = "1"
import yaml
from ultralytics import YOLO
from ultralytics.utils import ROOT

files = json.load(open(sys.argv[1]))
out = sys.argv[2]
torch.manual_seed(0)
torch.set_num_threads(2)
cfg = yaml.safe_load(open(ROOT / "cfg/models/v8/yolov8.yaml"))
cfg["nc"], cfg["scale"] = 3, "s"
y = out + ".yaml"
open(y, "w").write(yaml.safe_dump(cfg))
yolo = YOLO(y)
vit = timm.create_model("vit_large_patch14_dinov2.lvd142m", pretrained=False, num_classes=38,
                        dynamic_img_size=True).eval()
bicubic = transforms.InterpolationMode.BICUBIC
tf = transforms.Compose([transforms.Resize((182, 182), interpolation=bicubic),
                         transforms.ToTensor(),
                         transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])

def one(path):
    r = yolo.predict(path, imgsz=960, conf=0.0, verbose=False)[0]
    b = r.boxes.xyxy.cpu().numpy()
    im = Image.open(path).convert("RGB")
    x1, y1, x2, y2 = b[0] if len(b) else (0, 0, im.width, im.height)
    crop = im.crop((int(x1), int(y1), max(int(x2), int(x1) + 1), max(int(y2), int(y1) + 1)))
    with torch.no_grad():
        vit(tf(crop).unsqueeze(0))

one(files[0])
t = time.perf_counter()
for f in files:
    one(f)
elapsed = time.perf_counter() - t
print(json.dumps({"variant": "torch", "images": len(files), "seconds": elapsed,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def images(testdata: Path, n: int) -> list[Path]:
    from conftest import all_test_images

    files = [p for p in all_test_images(testdata) if p.stat().st_size > 0]
    return (files * (n // len(files) + 1))[:n]


def variant(name: str, files: list[Path], models: Path, workdir: Path) -> dict:
    import numpy as np

    if name == "floor":
        import onnxruntime as ort
        from test_pipeline_parity import classifier_input_reference

        import deepfaune_rs
        from reference_detect import load_rgb

        det = ort.InferenceSession(
            str(models / "yolov8s_960_c3.onnx"), providers=["CPUExecutionProvider"]
        )
        vit = ort.InferenceSession(
            str(models / "vitl14_182_c38.onnx"), providers=["CPUExecutionProvider"]
        )
        tensors = []
        for p in files:
            img = load_rgb(p)
            w, h = img.size
            r = 960 / max(w, h)
            nw, nh = round(w * r), round(h * r)
            ph = (960 - nh) % 32
            arr = deepfaune_rs.resize_cv2_linear(np.asarray(img), (nw, nh))
            x = np.full((nh + ph, nw, 3), 114, np.uint8)
            x[ph // 2 : ph // 2 + nh] = arr
            t = (x.astype(np.float32) / 255).transpose(2, 0, 1)[None]
            crop = classifier_input_reference(img, (0, 0, min(w, h), min(w, h)))
            tensors.append((np.ascontiguousarray(t), crop))
        det.run(None, {"images": tensors[0][0]})
        vit.run(None, {"input": tensors[0][1]})
        start = time.perf_counter()
        for t, c in tensors:
            det.run(None, {"images": t})
            vit.run(None, {"input": c})
        elapsed = time.perf_counter() - start
    elif name.startswith("ours"):
        import deepfaune_rs

        # "ours" or "ours:D,C": the detector's and the classifier's intra-op threads (0 = one per
        # core, ONNX Runtime's default), while the two models overlap.
        d_threads, c_threads = map(int, (name.split(":")[1] if ":" in name else "0,0").split(","))

        manifest = workdir / "bench-yolov8s.toml"
        manifest.write_text(DETECTOR_MANIFEST)
        (workdir / "yolov8s_960_c3.onnx").unlink(missing_ok=True)
        (workdir / "yolov8s_960_c3.onnx").symlink_to(models / "yolov8s_960_c3.onnx")
        pipe = deepfaune_rs.Pipeline(
            deepfaune_rs.Detector(str(manifest), intra_threads=d_threads),
            models / "vitl14_182_c38.onnx",
            classifier_manifest=REPO / "models" / "deepfaune-v14.toml",
            intra_threads=c_threads,
        )
        pipe.run(files[:1], progress=False)
        start = time.perf_counter()
        res = pipe.run(files, progress=False)
        elapsed = time.perf_counter() - start
        assert sum(res.classified) == len(files), "every image must be classified once"
    else:
        raise ValueError(name)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"variant": name, "images": len(files), "seconds": elapsed, "peak_rss_mb": peak}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True, type=Path)
    ap.add_argument("--torch-python", default=None)
    ap.add_argument("--testdata", type=Path, default=REPO.parent / "shared" / "testdata")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument(
        "--splits",
        nargs="*",
        default=[],
        metavar="D,C",
        help="also run the pipeline with D detector and C classifier intra-op threads "
        "(0 = one per core), e.g. --splits 2,1 1,1 1,2",
    )
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args()
    files = images(args.testdata, args.n)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.variant:
            print(json.dumps(variant(args.variant, files, args.models, workdir)))
            return
        results = {}
        for name in ["floor", "ours", *(f"ours:{s}" for s in args.splits)]:
            out = subprocess.run(
                [sys.executable, __file__, "--variant", name, "--models", str(args.models),
                 "--testdata", str(args.testdata), "--n", str(args.n)],
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
    print(f"{'variant':<10} {'images':>6} {'s/img':>8} {'vs floor':>9} {'peak RSS MB':>12}")
    floor = results["floor"]["seconds"]
    for r in results.values():
        per = r["seconds"] / r["images"]
        vs = f"{r['seconds'] / floor - 1:+.1%}"
        print(f"{r['variant']:<10} {r['images']:>6} {per:>8.3f} {vs:>9} {r['peak_rss_mb']:>12.0f}")
    ours = results["ours"]["seconds"]
    print(f"ours vs model-only floor: {ours / floor - 1:+.1%}")
    if "torch" in results:
        print(f"speed-up over the PyTorch path: {results['torch']['seconds'] / ours:.2f}x")


if __name__ == "__main__":
    main()
