"""The stand-alone ``Classifier`` on files plus boxes, against the same work done with Pillow and
onnxruntime-python (the baseline a user with their own boxes would write), in one run.

Both sides read the same JPEG files (EXIF orientation applied), cut DeepFaune's square crop
around the same boxes, squash it with Pillow's bicubic, normalise, and run the same ONNX model
in batches of ``--batch`` with ``--threads`` intra-op threads. The two are timed in alternation
(``--rounds``); the figure is the median time per crop and the ratio baseline / ours.

Usage: python benches/bench_classifier.py [--rounds 5] [--crops 16] [--batch 8] [--threads 2]
           [--model M.onnx --manifest M.toml] [--images DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


def square(box, width, height):
    """DeepFaune's cropSquareCVtoPIL, as pixel bounds."""
    x1, y1, x2, y2 = box
    xs, ys = x2 - x1, y2 - y1
    if xs > ys:
        y1, y2 = y1 - int((xs - ys) / 2), y2 + int((xs - ys) / 2)
    if ys > xs:
        x1, x2 = x1 - int((ys - xs) / 2), x2 + int((ys - xs) / 2)
    return max(0, int(x1)), max(0, int(y1)), min(int(x2), width), min(int(y2), height)


def baseline(session, files, boxes, size, batch, mean, std):
    """Pillow + numpy + onnxruntime-python."""
    from PIL import Image, ImageOps

    out = []
    for start in range(0, len(files), batch):
        tensors = []
        for f, b in zip(files[start : start + batch], boxes[start : start + batch]):
            with Image.open(f) as im:
                img = ImageOps.exif_transpose(im).convert("RGB")
            crop = img.crop(square(b, img.width, img.height)).resize((size, size), Image.BICUBIC)
            x = (np.asarray(crop, dtype=np.float32) / np.float32(255.0) - mean) / std
            tensors.append(x.transpose(2, 0, 1))
        out.append(session.run(["logits"], {"input": np.stack(tensors).astype(np.float32)})[0])
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--crops", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--model", default=str(SHARED / "models" / "tiny_vit_dinov2_layout_182_c38.onnx")
    )
    ap.add_argument("--manifest", default=str(REPO / "models" / "tiny-vit-c38.toml"))
    ap.add_argument("--images", default=str(SHARED / "testdata" / "buow"))
    args = ap.parse_args()

    import onnxruntime as ort

    import deepfaune_rs
    from deepfaune_rs import _core

    files = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if not files:
        sys.exit(f"no JPEG files in {args.images}")
    files = [str(files[i % len(files)]) for i in range(args.crops)]
    rng = np.random.default_rng(0)
    boxes = []
    for f in files:
        w, h = (int(v) for v in _core.read_image(f)[0].shape[1::-1])
        x, y = rng.uniform(0, w * 0.6), rng.uniform(0, h * 0.6)
        boxes.append((x, y, x + rng.uniform(0.1, 0.4) * w, y + rng.uniform(0.1, 0.4) * h))

    clf = deepfaune_rs.Classifier(
        args.model,
        classifier_manifest=args.manifest,
        batch_size=args.batch,
        intra_threads=args.threads,
    )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    session = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    size = clf.input_size
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)

    ours_t, base_t = [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        ours = clf.classify(files, boxes, keep_embeddings=False).logits
        ours_t.append((time.perf_counter() - t) / len(files))
        t = time.perf_counter()
        ref = baseline(session, files, boxes, size, args.batch, mean, std)
        base_t.append((time.perf_counter() - t) / len(files))
    diff = float(np.abs(ours - ref).max())
    o, b = statistics.median(ours_t), statistics.median(base_t)
    print(f"{len(files)} crops, batch {args.batch}, {args.threads} threads, {args.rounds} rounds")
    print(f"Classifier (Rust core):          {o * 1e3:8.2f} ms/crop")
    print(f"Pillow + onnxruntime-python:     {b * 1e3:8.2f} ms/crop")
    print(f"ratio baseline / ours: {b / o:.2f}   (largest logit difference {diff:.2e})")


if __name__ == "__main__":
    main()
