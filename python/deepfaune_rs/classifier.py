"""Stage 5 (classify) alone: DeepFaune's classifier for boxes found elsewhere (your own
detector, a labelling tool)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _core
from .detect import PathLike
from .pipeline import DEFAULT_CLASSIFIER

Box = Sequence[float] | None


@dataclass
class Classification:
    """One row per input, in order: ``logits`` ``[n, classes]`` (raw, the columns are
    ``class_names``), ``embeddings`` ``[n, d]`` (``[n, 0]`` unless kept), ``bird_logits``
    ``[n, groups]`` (``[n, 0]`` without the bird head). An input that could not be classified
    (an unreadable file, a box without pixels) has NaN rows and is listed in ``failures`` as
    ``(index, reason)``."""

    logits: np.ndarray
    embeddings: np.ndarray
    bird_logits: np.ndarray
    class_names: list[str]
    failures: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.logits.shape[0])


class Classifier:
    """The classifier of a :class:`Pipeline` without its detector: images plus boxes to
    logits and embeddings, with the pipeline's crop (DeepFaune's square around the box, from
    the full-resolution upright image, Pillow's bicubic, ImageNet normalisation) and the same
    model. ``classifier``, ``classifier_manifest``, ``language`` and ``bird_head`` as for
    :class:`Pipeline`; ``batch_size`` crops per inference call, ``intra_threads`` ONNX
    Runtime's threads (0: its default), ``device``, ``precision`` and ``cache_dir`` as for
    :class:`Pipeline`; missing built-in weights raise one
    ``WeightsNotFoundError`` unless ``fetch=True``.

    Sequences, thresholds and labels are the pipeline's work: give the boxes to
    :meth:`Pipeline.run` (``detections=``) for DeepFaune's table.
    """

    def __init__(
        self,
        classifier: PathLike = DEFAULT_CLASSIFIER,
        *,
        classifier_manifest: PathLike | None = None,
        language: str = "en",
        bird_head: bool = False,
        batch_size: int = 8,
        intra_threads: int = 0,
        device: str = "cpu",
        precision: str = "fp32",
        cache_dir: PathLike | None = None,
        fetch: bool = False,
    ) -> None:
        from .fetch import classifier_id, require

        if precision == "fp32":  # an int8 variant's own absence is the core's error
            require((), classifier_id(classifier), bird_head, fetch_first=fetch)
        self._inner = _core.Classifier(
            os.fspath(classifier),
            classifier_manifest=(
                None if classifier_manifest is None else os.fspath(classifier_manifest)
            ),
            language=language,
            bird_head=bird_head,
            batch_size=batch_size,
            intra_threads=intra_threads,
            device=device,
            precision=precision,
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
        )

    @property
    def class_names(self) -> list[str]:
        """The classes (the logits' columns)."""
        return self._inner.class_names

    @property
    def input_size(self) -> int:
        """The side of the square the crops are squashed to, in pixels."""
        return self._inner.input_size

    def classify(
        self,
        images: Sequence[PathLike] | Sequence[Any],
        boxes: Sequence[Box] | None = None,
        *,
        box_format: str = "xyxy",
        square: bool = True,
        keep_embeddings: bool = True,
    ) -> Classification:
        """Classifies one crop per image. ``images``: file paths (decoded upright, EXIF
        orientation applied, as a run decodes them) or ``HxWx3`` uint8 RGB arrays. ``boxes``:
        one per image, ``[x1, y1, x2, y2]`` in pixels (``box_format="megadetector"``:
        MegaDetector's ``[x, y, w, h]`` as fractions of the image), None for the whole image;
        None: every image whole. ``square=True`` cuts DeepFaune's square around the box (as
        after detection), ``False`` the box itself."""
        images = list(images)
        boxes = [None] * len(images) if boxes is None else list(boxes)
        given = [None if b is None else tuple(float(v) for v in b) for b in boxes]
        kw = {"box_format": box_format, "square": square, "keep_embeddings": keep_embeddings}
        if all(isinstance(i, (str, os.PathLike)) for i in images):
            out = self._inner.classify_files([os.fspath(p) for p in images], given, **kw)
        else:
            arrays = [np.ascontiguousarray(i, dtype=np.uint8) for i in images]
            out = self._inner.classify(arrays, given, **kw)
        logits, embeddings, bird_logits, failures = out
        return Classification(logits, embeddings, bird_logits, self.class_names, failures)
