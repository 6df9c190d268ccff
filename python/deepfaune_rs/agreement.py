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

from ._core import agreement_report, box_iou
from .quantize import image_files

__all__ = ["agreement", "box_iou", "format_report"]


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
    return agreement_report((d32, p32), (d8, p8), detector, classifier, round(s32, 2), round(s8, 2))


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
