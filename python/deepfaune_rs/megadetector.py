"""MegaDetector batch output (format 1.6) read back as the detection step.

Writing is :meth:`DetectionResult.to_megadetector_json`; reading lets results that MegaDetector,
AddaxAI or any tool writing the format already produced be classified and put into sequences,
as DeepFaune's ``PredictorJSON`` does.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import _core
from .detect import DetectionResult, PathLike

#: DeepFaune's threshold for boxes read from a MegaDetector file.
DEEPFAUNE_JSON_THRESHOLD = 0.4


def read_megadetector_json(
    path: PathLike, root: PathLike | None = None, threshold: float = DEEPFAUNE_JSON_THRESHOLD
) -> DetectionResult:
    """Reads a MegaDetector batch file (formats 1.0 to 1.6) as detection results.

    Boxes count when ``conf > threshold`` (DeepFaune uses 0.4). Their normalised coordinates
    become pixels with each image's size (read from its header, EXIF orientation applied, no
    decoding) the way DeepFaune does: ``x1 = int(x * width)``, ``x2 = x1 + int(w * width)``.
    Categories are mapped by name (animal, person or human, vehicle), so other tools' numbering
    works. Images the file marks as failed, and images that cannot be found, are failures.
    ``root`` is the folder the file's paths are relative to (default: the JSON file's folder).
    Species classifications in the file are kept (:attr:`DetectionResult.classifications`).

    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "r.json").write_text(json.dumps({"images": [
    ...     {"file": "gone.jpg", "failure": "Failure image access", "detections": None}]}))
    >>> res = read_megadetector_json(d / "r.json")
    >>> res.category_names, res.failures[0]["kind"]
    (['failed'], 'upstream')
    """
    path = os.fspath(path)
    base = os.fspath(root) if root is not None else str(Path(path).resolve().parent)
    inner = _core.read_megadetector_json(path, base, threshold)
    return DetectionResult(inner, base)
