"""fp32 against int8 on the user's own images: ``deepfaune-rs agreement FOLDER``.

Both precisions run the same sample of images through the same detector (and classifier); the
report says how often they agree, so the user decides on numbers from their own cameras:
the per-image decision (empty / animal / human / vehicle), the IoU of the deciding box when
both have one, the classifier's top-1 class on the images both classified, the sequence
prediction, and each run's seconds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .quantize import image_files

__all__ = ["agreement", "box_iou", "format_report"]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two ``[n, 4]`` arrays of ``x1, y1, x2, y2`` boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 1.0)


def _run(files: list[str], detector: str, classifier: str | None, precision: str, **kw: Any):
    from . import Detector, Pipeline

    t0 = time.perf_counter()
    det = Detector(detector, precision=precision, **kw)
    if classifier is None:
        res = det.detect(files, progress=False)
        return res, None, time.perf_counter() - t0
    pipe = Pipeline(det, classifier, precision=precision, **kw)
    out = pipe.run(files, progress=False, keep_embeddings=False)
    return out.detections, out, time.perf_counter() - t0


def agreement(
    inputs: Sequence[os.PathLike | str],
    *,
    sample: int | None = 200,
    detector: str = "DFbsMDS",
    classifier: str | None = "deepfaune-v15",
    device: str = "cpu",
) -> dict[str, Any]:
    """Runs ``sample`` images of ``inputs`` (evenly spread over the sorted walk; all with
    ``None``) at fp32 and at int8 and returns the agreement figures (see the module doc).
    ``classifier=None`` compares the detector alone."""
    files = [os.fspath(p) for p in image_files(inputs, sample)]
    if not files:
        from .errors import InvalidArgumentError

        raise InvalidArgumentError(f"no image files in {', '.join(map(str, inputs))}")
    d32, p32, s32 = _run(files, detector, classifier, "fp32", device=device)
    d8, p8, s8 = _run(files, detector, classifier, "int8", device=device)
    ok = (np.asarray(d32.category) != 255) & (np.asarray(d8.category) != 255)
    c32, c8 = np.asarray(d32.category)[ok], np.asarray(d8.category)[ok]
    names = {0: "empty", 1: "animal", 2: "human", 3: "vehicle"}
    confusion: dict[str, int] = {}
    for a, b in zip(c32, c8):
        if a != b:
            key = f"{names[int(a)]}->{names[int(b)]}"
            confusion[key] = confusion.get(key, 0) + 1
    b32, b8 = np.asarray(d32.best_detection), np.asarray(d8.best_detection)
    both = ok & (b32 >= 0) & (b8 >= 0)
    ious = box_iou(np.asarray(d32.boxes)[b32[both]], np.asarray(d8.boxes)[b8[both]])
    report: dict[str, Any] = {
        "images": int(ok.sum()),
        "detector": detector,
        "classifier": classifier,
        "decision_agreement": float(np.mean(c32 == c8)) if len(c32) else float("nan"),
        "decision_changes": confusion,
        "boxes_compared": int(both.sum()),
        "best_box_iou_mean": float(ious.mean()) if len(ious) else float("nan"),
        "best_box_iou_min": float(ious.min()) if len(ious) else float("nan"),
        "best_box_iou_ge_0_9": float(np.mean(ious >= 0.9)) if len(ious) else float("nan"),
        "fp32_seconds": round(s32, 2),
        "int8_seconds": round(s8, 2),
    }
    if p32 is not None and p8 is not None:
        cl = np.asarray(p32.classified) & np.asarray(p8.classified) & ok
        t32 = np.asarray(p32.logits)[cl].argmax(axis=1) if cl.any() else np.zeros(0)
        t8 = np.asarray(p8.logits)[cl].argmax(axis=1) if cl.any() else np.zeros(0)
        report["classified_both"] = int(cl.sum())
        report["top1_agreement"] = float(np.mean(t32 == t8)) if cl.any() else float("nan")
        same = [a == b for a, b in zip(p32.prediction, p8.prediction)]
        report["sequence_prediction_agreement"] = float(np.mean(same)) if same else float("nan")
    return report


def format_report(r: dict[str, Any]) -> str:
    """The report as aligned text lines."""
    pct = lambda x: "n/a" if x != x else f"{100 * x:.1f} %"  # noqa: E731
    lines = [
        f"images compared            {r['images']} (detector {r['detector']}"
        + (f", classifier {r['classifier']})" if r["classifier"] else ")"),
        f"decision agreement         {pct(r['decision_agreement'])}"
        + (f"  changes: {r['decision_changes']}" if r["decision_changes"] else ""),
        f"best-box IoU               mean {r['best_box_iou_mean']:.4f}, min "
        f"{r['best_box_iou_min']:.4f}, >= 0.9: {pct(r['best_box_iou_ge_0_9'])} "
        f"({r['boxes_compared']} images with a box in both)",
    ]
    if "top1_agreement" in r:
        lines += [
            f"top-1 class agreement      {pct(r['top1_agreement'])} "
            f"({r['classified_both']} images classified in both)",
            f"sequence prediction agr.   {pct(r['sequence_prediction_agreement'])}",
        ]
    speed = r["fp32_seconds"] / r["int8_seconds"] if r["int8_seconds"] else float("nan")
    lines.append(
        f"seconds                    fp32 {r['fp32_seconds']}, int8 {r['int8_seconds']} "
        f"({speed:.2f}x, including model loading)"
    )
    return "\n".join(lines)
