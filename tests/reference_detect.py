"""An independent reference of SPEC 2.2 for the embedded YOLOX detector, written from the SPEC and
zamba's preprocessing with Pillow, numpy and onnxruntime-python. It never calls deepfaune_rs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps


def load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        return im.convert("RGB")


def letterbox_zamba(img: Image.Image, size: int = 640) -> np.ndarray:
    # zamba's MegadetectorLiteYoloX.scale_and_pad_array
    padded = ImageOps.pad(img, (size, size), method=Image.BICUBIC, color=None, centering=(0, 0))
    return np.asarray(padded, dtype=np.float32).transpose(2, 0, 1)


def nms_numpy(boxes: np.ndarray, scores: np.ndarray, iou_thr: float) -> list[int]:
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = (xx2 - xx1).clip(0) * (yy2 - yy1).clip(0)
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= iou_thr]
    return keep


class ReferenceYolox:
    def __init__(self, model: Path, threshold: float = 0.25, nms_iou: float = 0.45) -> None:
        opts = ort.SessionOptions()
        self.sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        self.threshold = threshold
        self.nms_iou = nms_iou

    def detect(self, path: Path) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        """Returns (boxes xyxy in original pixels, scores), most confident first, and (w, h)."""
        img = load_rgb(path)
        w, h = img.size
        x = letterbox_zamba(img)[None]
        out = self.sess.run(["output"], {"images": x})[0][0]
        scores = out[:, 4] * out[:, 5:].max(axis=1)
        sel = scores >= self.threshold
        xywh, scores = out[sel, :4], scores[sel]
        boxes = np.stack(
            [
                xywh[:, 0] - xywh[:, 2] / 2,
                xywh[:, 1] - xywh[:, 3] / 2,
                xywh[:, 0] + xywh[:, 2] / 2,
                xywh[:, 1] + xywh[:, 3] / 2,
            ],
            axis=1,
        )
        keep = nms_numpy(boxes, scores, self.nms_iou)[:300]
        ratio = min(640 / w, 640 / h)
        boxes = boxes[keep] / ratio
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        return boxes, scores[keep], (w, h)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
