"""Exceptions raised by deepfaune_rs (the classes are the core's: ``src/python/errors.rs``).

Every exception derives from :class:`DeepfauneError` and from the closest builtin, so
``except FileNotFoundError`` works for missing weights and ``except ValueError`` for bad
arguments. Per-image problems (a corrupt JPEG, an empty file) are not raised: they are listed in
the results' ``failures`` (:class:`Failure`).
"""

from __future__ import annotations

from typing import TypedDict

from ._core import _error_classes

globals().update(_error_classes())
__all__ = sorted(["Failure", *_error_classes()])


class Failure(TypedDict):
    """A file that could not be processed: one entry of the results' ``failures``: its ``path``;
    the ``stage`` where it failed (``walk``, ``read``, ``decode``, ``detect``, ``classify``...);
    ``kind``, a machine key (``io``, ``empty``, ``format``, ``corrupt``, ``too_large``,
    ``unsupported``...); ``reason``, what happened, for a person; ``index``, its row in the
    results (its ``status`` says ``failed``), None when it has none."""

    path: str
    stage: str
    kind: str
    reason: str
    index: int | None
