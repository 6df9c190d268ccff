"""Stage 3 (detect) of the pipeline: detection of animals, people and vehicles."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np

from . import _core
from ._progress import ProgressArg, make_callback

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

PathLike = Union[str, "os.PathLike[str]"]
Inputs = Union[PathLike, bytes, Sequence[Union[PathLike, bytes]]]

#: Names of the per-image category codes.
CATEGORY_NAMES = {0: "empty", 1: "animal", 2: "human", 3: "vehicle", 255: "failed"}
#: Names of the per-box class codes (MegaDetector's categories "1", "2", "3").
CLASS_NAMES = {0: "animal", 1: "person", 2: "vehicle"}


def _as_paths(inputs: Inputs) -> list[str]:
    # fsdecode: bytes paths (names that are not UTF-8) become str with surrogate escapes, which
    # the core turns back into the same bytes.
    if isinstance(inputs, (str, bytes, os.PathLike)):
        return [os.fsdecode(inputs)]
    return [os.fsdecode(p) for p in inputs]


class Detector:
    """One detector, or two combined as DeepFaune does.

    ``model`` is the id of a built-in manifest (``"md-lite"``, the embedded default that needs no
    download; ``"df"``, ``"mds"``, ``"mdr"``), a DeepFaune mode (``"DF"``, ``"MDS"``, ``"MDR"``,
    ``"DFbsMDS"`` = DF with MegaDetector as backstop, ``"DFMDS"`` = both, merged), a manifest path
    (``.toml``) or an ONNX path (its manifest found by file name, or given with ``manifest=``).
    ``secondary`` with ``mode="backstop"`` or ``"ensemble"`` combines any two models.
    ``weights`` maps built-in ids to weight files (otherwise looked up in the model directory,
    see ``deepfaune-rs models``). Before anything is loaded, every built-in model needed is
    checked: missing ones raise one :class:`~deepfaune_rs.WeightsNotFoundError` naming them all
    and the ``deepfaune-rs models fetch ...`` command that gets them; with ``fetch=True`` they
    are fetched first (:func:`deepfaune_rs.models.fetch`; nothing is ever downloaded otherwise).
    ``device`` is ``"cpu"``, ``"cuda"``, ``"directml"``, ``"coreml"`` or ``"auto"`` (the first
    accelerator of the installed ONNX Runtime build, else the CPU); one the build lacks raises
    :class:`~deepfaune_rs.DeviceUnavailableError` naming those it has
    (:func:`deepfaune_rs.available_devices`). ``precision="int8"`` loads each model's int8
    variant (made by ``deepfaune-rs models quantize ID``). ``cache_dir`` keeps ONNX Runtime's
    optimised graph of each model file there, so later sessions start faster.

    >>> det = Detector()               # the embedded md-lite detector
    >>> det.models
    ['md-lite']
    """

    def __init__(
        self,
        model: PathLike = "md-lite",
        *,
        detection_threshold: float | None = None,
        device: str = "cpu",
        secondary: PathLike | None = None,
        mode: str | None = None,
        manifest: PathLike | None = None,
        weights: Mapping[str, PathLike] | None = None,
        intra_threads: int = 0,
        threads: int = 0,
        batch_size: int = 1,
        fetch: bool = False,
        precision: str = "fp32",
        cache_dir: PathLike | None = None,
        threshold: float | None = None,
    ) -> None:
        from ._renamed import renamed

        detection_threshold = renamed(
            "detection_threshold", detection_threshold, "threshold", threshold
        )
        from .fetch import detector_ids, require

        if precision == "fp32":  # an int8 variant's own absence is the core's error
            require(detector_ids(model, secondary), weights=weights, fetch_first=fetch)
        self._inner = _core.Detector(
            os.fspath(model),
            secondary=None if secondary is None else os.fspath(secondary),
            mode=mode,
            threshold=detection_threshold,
            manifest=None if manifest is None else os.fspath(manifest),
            weights={k: os.fspath(v) for k, v in (weights or {}).items()},
            intra_threads=intra_threads,
            threads=threads,
            batch_size=batch_size,
            device=device,
            precision=precision,
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
        )

    @property
    def models(self) -> list[str]:
        """Ids of the loaded detectors, primary first."""
        return self._inner.models

    @property
    def threshold(self) -> float:
        """Confidence threshold of the primary detector (``detection_threshold``)."""
        return self._inner.threshold

    @property
    def finds_people(self) -> bool:
        """Whether a detector of the set has a person class (md-lite has none: people cannot
        be told apart, nor blurred)."""
        return self._inner.finds_people

    def detect(
        self,
        inputs: Inputs,
        progress: ProgressArg = True,
        max_pixels: int | None = None,
        outputs: Sequence[PathLike] = (),
    ) -> DetectionResult:
        """Detects on image files and folders (walked recursively, sorted).

        Unreadable files do not stop the run: they are rows with category ``"failed"`` and are
        listed with their reasons in :attr:`DetectionResult.failures`.
        ``max_pixels`` refuses larger images before decoding (default 178,956,970, Pillow's limit).
        ``outputs``: the files the results will be written to; the walk passes over them.
        """
        paths = _as_paths(inputs)
        callback = make_callback(progress, "detect")
        outs = [os.fspath(o) for o in outputs]
        res = self._inner.detect(paths, progress=callback, max_pixels=max_pixels, outputs=outs)
        root = paths[0] if len(paths) == 1 and Path(paths[0]).is_dir() else None
        return DetectionResult(res, root)


class DetectionResult:
    """Detection results as columns (numpy arrays that are read-only views, no copies).

    Per image: :attr:`paths`, :attr:`category`, :attr:`count`, :attr:`humancount`,
    :attr:`crop_boxes`, :attr:`best_detection`, :attr:`sizes`, :attr:`dates`.
    Per box: :attr:`image_index`, :attr:`boxes` (xyxy, original pixels), :attr:`confidences`,
    :attr:`classes`.
    """

    def __init__(self, inner: _core.DetectionResults, root: str | None = None) -> None:
        self._r = inner
        self.root = root

    def __len__(self) -> int:
        return len(self._r)

    def __repr__(self) -> str:
        cats = self.category
        counts = {name: int((cats == code).sum()) for code, name in CATEGORY_NAMES.items()}
        parts = ", ".join(f"{k}={v}" for k, v in counts.items() if v)
        return f"<DetectionResult {len(self)} images ({parts}), {len(self.confidences)} boxes>"

    paths = property(lambda self: self._r.paths, doc="File path of each image.")
    dates = property(lambda self: self._r.dates, doc="EXIF DateTimeOriginal text, or None.")
    category = property(
        lambda self: self._r.category, doc="0 empty, 1 animal, 2 human, 3 vehicle, 255 failed."
    )
    count = property(lambda self: self._r.count, doc="Animal boxes per image.")
    humancount = property(lambda self: self._r.humancount, doc="Person boxes per image.")
    sizes = property(lambda self: self._r.sizes, doc="[n, 2] width, height after EXIF orientation.")
    crop_boxes = property(
        lambda self: self._r.crop_boxes, doc="[n, 4] classifier crop, -1 if none."
    )
    best_detection = property(
        lambda self: self._r.best_detection, doc="Row of the deciding box, -1."
    )
    image_index = property(lambda self: self._r.image_index, doc="Image row of each box.")
    boxes = property(lambda self: self._r.boxes, doc="[m, 4] boxes x1, y1, x2, y2 in pixels.")
    confidences = property(lambda self: self._r.confidences, doc="Confidence of each box.")
    classes = property(lambda self: self._r.classes, doc="0 animal, 1 person, 2 vehicle per box.")
    failures = property(
        lambda self: self._r.failures,
        doc="Failed files: path, stage, kind, reason, index (:class:`~deepfaune_rs.Failure`).",
    )
    detector = property(lambda self: self._r.detector, doc="Ids of the detectors used.")
    json_rules = property(
        lambda self: self._r.json_rules,
        doc="Rules the decisions of a MegaDetector file follow (corrected, deepfaune); None "
        "for a detection run.",
    )
    classification_categories = property(
        lambda self: dict(self._r.classification_categories),
        doc="Species categories {id: name} read from a MegaDetector file ({} otherwise).",
    )
    classifications = property(
        lambda self: self._r.classifications,
        doc="Per box: [(category id, score), ...] read from a MegaDetector file.",
    )

    @property
    def category_names(self) -> list[str]:
        """Per-image category as text: empty, animal, human, vehicle or failed."""
        return [CATEGORY_NAMES[int(c)] for c in self.category]

    def to_megadetector_json(self, path: PathLike, root: PathLike | None = None) -> None:
        """Writes MegaDetector batch output 1.6 (atomically). File names are relative to ``root``
        (default: the folder that was detected)."""
        root = self.root if root is None else os.fspath(root)
        self._r.to_megadetector_json(os.fspath(path), root)

    def to_pandas(self) -> pd.DataFrame:
        """One row per image: filepath, date, category, count, humancount, width, height, the
        deciding box's confidence and class, the crop box, and the failure reason."""
        import pandas as pd

        best = self.best_detection
        has = best >= 0
        conf = np.full(len(self), np.nan, dtype=np.float32)
        conf[has] = self.confidences[best[has]]
        reasons: list[str | None] = [None] * len(self)
        for f in self.failures:
            if f["index"] is not None:
                reasons[f["index"]] = f["reason"]
        crop = self.crop_boxes
        sizes = self.sizes
        return pd.DataFrame(
            {
                "filepath": self.paths,
                "date": self.dates,
                "category": self.category_names,
                "count": self.count,
                "humancount": self.humancount,
                "width": sizes[:, 0],
                "height": sizes[:, 1],
                "best_conf": conf,
                "crop_x1": crop[:, 0],
                "crop_y1": crop[:, 1],
                "crop_x2": crop[:, 2],
                "crop_y2": crop[:, 3],
                "failure": reasons,
            }
        )

    def detections_to_pandas(self) -> pd.DataFrame:
        """One row per box: filepath, class, confidence, x1, y1, x2, y2 (original pixels)."""
        import pandas as pd

        paths = self.paths
        idx = self.image_index
        b = self.boxes
        return pd.DataFrame(
            {
                "filepath": [paths[i] for i in idx],
                "class": [CLASS_NAMES[int(c)] for c in self.classes],
                "conf": self.confidences,
                "x1": b[:, 0],
                "y1": b[:, 1],
                "x2": b[:, 2],
                "y2": b[:, 3],
            }
        )
