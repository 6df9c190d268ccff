"""Stage 8 (import): MegaDetector batch output (format 1.6) read back as the detection step.

Writing is :meth:`DetectionResult.to_megadetector_json`; reading lets results that MegaDetector,
SpeciesNet, AddaxAI or any tool writing the format already produced be classified and put into
sequences (``Pipeline.run(..., detections=...)``), with the package's rules or exactly as
DeepFaune's ``PredictorJSON`` does (``rules="deepfaune"``).
"""

from __future__ import annotations

import os
from pathlib import Path

from . import _core
from ._renamed import renamed
from .detect import DetectionResult, PathLike

#: DeepFaune's threshold for boxes read from a MegaDetector file.
DEEPFAUNE_JSON_THRESHOLD = 0.4
#: The rule sets of :func:`read_megadetector_json` and ``Pipeline.run(json_rules=...)``.
JSON_RULES = ("corrected", "deepfaune")


def read_megadetector_json(
    path: PathLike,
    root: PathLike | None = None,
    detection_threshold: float | None = None,
    rules: str = "corrected",
    *,
    threshold: float | None = None,
) -> DetectionResult:
    """Reads a MegaDetector batch file (formats 1.0 to 1.6; MegaDetector v5/v1000, SpeciesNet's
    MegaDetector-format output, AddaxAI, ours) as detection results, to classify and sequence
    with ``Pipeline.run(..., detections=...)``.

    Coordinates and confidences stay float64 from the JSON text through the pixel conversion
    and the threshold test, as Python gives them to DeepFaune: boxes count when
    ``conf > detection_threshold`` (default DeepFaune's 0.4; ``threshold``, its old name, is
    deprecated), and their normalised coordinates become pixels
    with each image's size (read from its header, no decoding) as DeepFaune's
    ``convertJSONboxToBox`` does: ``x1 = int(x * width)``, ``x2 = x1 + int(w * width)``.
    ``root`` is the folder the file's paths are relative to (default: the JSON file's folder).
    Species classifications in the file are kept (:attr:`DetectionResult.classifications`).

    ``rules`` (see :data:`JSON_RULES`) says how boxes become per-image decisions:

    ``"corrected"`` (default), the package's rules, as for its own detection runs:
      the most confident **animal** box is classified even when a person box is more
      confident; ``count`` counts animal boxes and ``humancount`` person boxes; sizes and boxes
      are those of the image after its EXIF orientation; categories are mapped by name
      (animal, person or human, vehicle), so other tools' numbering works; rows the file marks
      as failed, and images that cannot be read, are rows of category ``"failed"`` listed in
      :attr:`DetectionResult.failures`.

    ``"deepfaune"``, DeepFaune 1.4.1's ``PredictorJSON`` exactly, quirks included:

    1. rows with a ``failure`` are dropped (no row; still listed in ``failures`` with
       ``index`` None); a row with ``"detections": null`` and no failure (DeepFaune crashes)
       too;
    2. the most confident box of **any** category decides the image (numpy ``argmax``, the
       first one on ties); if it is not above the threshold the image is empty, whatever the
       other boxes;
    3. its category is ``int(category id)``, ignoring ``detection_categories``: "1" animal,
       "2" human, "3" vehicle, "0" empty, any other number an image that is "not empty" with
       all-zero logits (an animal image with a uniform softmax: ``undefined``); so a person box
       more confident than an animal box makes the image ``human`` and the animal is never
       classified;
    4. ``count`` is the number of boxes **of every category** above the threshold (0 for an
       empty image) and ``humancount`` is always 0;
    5. **no EXIF orientation**: DeepFaune reads the image as stored (``cv2.imdecode`` with
       ``IMREAD_UNCHANGED``), converts the box with the stored width and height and crops the
       stored pixels; the sizes and boxes of these results are in that stored grid;
    6. an animal image whose file cannot be read is empty but keeps its ``count`` (here: a
       failure row with that count, listed in ``failures``);
    7. where DeepFaune crashes (a person or vehicle box on an unreadable file, grayscale or
       16-bit images, a category id that is not a number) the image is read as RGB or listed as
       a failure instead.

    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "r.json").write_text(json.dumps({"images": [
    ...     {"file": "gone.jpg", "failure": "Failure image access", "detections": None}]}))
    >>> res = read_megadetector_json(d / "r.json")
    >>> res.category_names, res.failures[0]["kind"]
    (['failed'], 'upstream')
    >>> len(read_megadetector_json(d / "r.json", rules="deepfaune"))  # DeepFaune drops the row
    0
    """
    path = os.fspath(path)
    base = os.fspath(root) if root is not None else str(Path(path).resolve().parent)
    given = renamed("detection_threshold", detection_threshold, "threshold", threshold)
    conf = DEEPFAUNE_JSON_THRESHOLD if given is None else float(given)
    inner = _core.read_megadetector_json(path, base, conf, rules)
    return DetectionResult(inner, base)
