"""Stage 3 (detect) of the pipeline: detection of animals, people and vehicles.
:class:`Detector` and :class:`DetectionResult` are the Rust core's classes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Union

from ._core import DetectionResult, Detector

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


__all__ = ["DetectionResult", "Detector"]
