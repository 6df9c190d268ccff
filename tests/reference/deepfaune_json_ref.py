"""Independent reference of DeepFaune 1.4.1's MegaDetector-JSON path (``PredictorJSON`` with
``DetectorJSON.bestBoxDetection``), for parity tests.

Written with numpy and Pillow from DeepFaune's own code (``detectTools.py``: ``DetectorJSON``,
``convertJSONboxToBox``, ``cropSquareCVtoPIL``; ``predictTools.py``: ``PredictorJSON``,
``PredictorImageBase.nextBatch``; ``fileManager.py``: the EXIF date) and SPEC 2.2-2.4. It never
imports ``deepfaune_rs``: tests compare the two.

It works the way DeepFaune does:

- the file is read with Python's ``json`` (float64 numbers); paths go through
  ``os.path.normpath`` and ``/`` separators (MegaDetector's ``load_api_results``); rows whose
  ``failure`` is set are dropped; relative paths are joined to ``root`` (DeepFaune opens them
  relative to its working folder);
- per image, ``argmax`` of the confidences of all boxes; above the threshold, the category is
  ``int(category)``; ``count`` = boxes of any category above the threshold; ``humancount`` = 0;
- the image is read as stored, **without** its EXIF orientation (``cv2.imdecode`` with
  ``IMREAD_UNCHANGED``; Pillow's libjpeg-turbo decodes the same pixels), the box is converted
  with ``int(x * width)`` and ``x1 + int(w * width)`` on that stored size, squared and clipped as
  ``cropSquareCVtoPIL`` does, and the crop resized to 182x182 with Pillow's bicubic and
  normalised (torchvision's ``Resize`` on a PIL image, ``ToTensor``, ``Normalize``);
- an animal image that cannot be read becomes empty but keeps its count.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

THRESHOLD = 0.4  # detectTools.MDV5_THRES
CROP_SIZE = 182
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass
class Row:
    """What ``bestBoxDetection`` gives for one image, plus what the predictor needs."""

    filename: str
    category: int  # int(category) of the deciding box, 0 = empty
    count: int
    crop: tuple[int, int, int, int] | None  # pixel bounds (x1, y1, x2, y2) of the crop
    tensor: np.ndarray | None  # [3, 182, 182] classifier input of the crop
    date: str | None  # EXIF DateTimeOriginal, None = "NA"


def load_rows(json_path: str, root: str) -> list[tuple[str, list]]:
    """``DetectorJSON.__init__``: (file, detections) of the rows without a failure."""
    with open(json_path, encoding="utf-8") as f:
        doc = json.load(f)
    rows = []
    for im in doc["images"]:
        if im.get("failure") is not None:
            continue  # "removing lines with Failure event"
        name = os.path.normpath(im["file"]).replace("\\", "/")
        rows.append((os.path.join(root, name), im["detections"]))
    return rows


def read_stored(path: str) -> np.ndarray | None:
    """The image as stored (no EXIF orientation), RGB, or None when it cannot be read."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError):
        return None


def exif_date(path: str) -> str | None:
    """``fileManager.getDateFromMetadata`` for images."""
    try:
        with Image.open(path) as im:
            return im._getexif()[36867]
    except Exception:  # noqa: BLE001 - DeepFaune catches everything here too
        return None


def convert_box(bbox, width: int, height: int) -> list[int]:
    """``DetectorJSON.convertJSONboxToBox``."""
    xmin = int(bbox[0] * width)
    ymin = int(bbox[1] * height)
    xmax = xmin + int(bbox[2] * width)
    ymax = ymin + int(bbox[3] * height)
    return [xmin, ymin, xmax, ymax]


def crop_square(image: np.ndarray, box) -> tuple[tuple[int, int, int, int], Image.Image]:
    """``cropSquareCVtoPIL``: the pixel bounds and the cropped PIL image."""
    x1, y1, x2, y2 = box
    xsize = x2 - x1
    ysize = y2 - y1
    if xsize > ysize:
        y1 = y1 - int((xsize - ysize) / 2)
        y2 = y2 + int((xsize - ysize) / 2)
    if ysize > xsize:
        x1 = x1 - int((ysize - xsize) / 2)
        x2 = x2 + int((ysize - xsize) / 2)
    height, width, _ = image.shape
    top, bottom = max(0, int(y1)), min(int(y2), height)
    left, right = max(0, int(x1)), min(int(x2), width)
    return (left, top, right, bottom), Image.fromarray(image[top:bottom, left:right])


def classifier_input(crop: Image.Image) -> np.ndarray:
    """torchvision ``Resize((182, 182), BICUBIC)`` + ``ToTensor`` + ``Normalize`` on a PIL image."""
    x = np.asarray(crop.resize((CROP_SIZE, CROP_SIZE), Image.BICUBIC), dtype=np.float32)
    x = x / np.float32(255.0)
    return ((x - MEAN) / STD).transpose(2, 0, 1).astype(np.float32)


def best_box_detection(filename: str, detections: list, threshold: float = THRESHOLD) -> Row:
    """``DetectorJSON.bestBoxDetection`` (the detections are Python floats)."""
    date = exif_date(filename)
    image = read_stored(filename)  # nextImread
    category, count = 0, 0
    if len(detections):
        kbox = int(np.argmax([box["conf"] for box in detections]))
        if detections[kbox]["conf"] > threshold:
            category = int(detections[kbox]["category"])
        count = sum(box["conf"] > threshold for box in detections)
    if category == 0:
        return Row(filename, 0, 0, None, None, date)
    if category != 1:
        return Row(filename, category, count, None, None, date)
    if image is None:  # cropCurrentBox gives None: "FileNotFoundError" -> empty, count kept
        return Row(filename, 0, count, None, None, date)
    height, width, _ = image.shape
    rect, crop = crop_square(image, convert_box(detections[kbox]["bbox"], width, height))
    return Row(filename, 1, count, rect, classifier_input(crop), date)


def predictor_rows(json_path: str, root: str, threshold: float = THRESHOLD) -> list[Row]:
    """Every row of ``PredictorJSON``, in the file's order (before ``reorderBySeqnum``)."""
    return [best_box_detection(f, d, threshold) for f, d in load_rows(json_path, root)]


def kinds_and_logits(rows: list[Row], logits_of_crops: np.ndarray, n_classes: int):
    """``PredictorImageBase.nextBatch``'s prediction rows, as the kinds and logits the sequence
    reference (``deepfaune_sequence_ref.predict``) takes: category 1 = animal with the crop's
    logits, 2 human, 3 vehicle, 0 empty, and any other number a row that is "not empty" and
    keeps all-zero logits (an animal row for the averaging)."""
    kinds, logits = [], np.zeros((len(rows), n_classes), dtype=np.float32)
    k = 0
    for i, r in enumerate(rows):
        if r.category == 1:
            logits[i] = logits_of_crops[k]
            k += 1
            kinds.append(1)
        elif r.category in (0, 2, 3):
            kinds.append(r.category)
        else:
            kinds.append(1)  # zero logits
    return kinds, logits
