"""Model manifests and weights: listing them, their state, and fetching the official weights.

Weights of DeepFaune and MegaDetector are not bundled (licences and size); the embedded
``md-lite`` detector is. :func:`fetch` downloads, checks and converts the official files
(``deepfaune-rs models fetch``); :func:`status` says where each file stands
(``deepfaune-rs models``). See :mod:`deepfaune_rs.fetch` for the details.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any

from . import _core
from ._files import atomic_open
from .fetch import FetchedFile, FileStatus, _Expect, fetch, model_dir, status
from .fetch import download as _download

__all__ = [
    "FetchedFile",
    "FileStatus",
    "copy_into_model_dir",
    "download",
    "download_official",
    "fetch",
    "list_models",
    "model_dir",
    "status",
]


def list_models() -> list[dict[str, Any]]:
    """The built-in manifests: id, name, file, official url, expected path, availability."""
    return _core.builtin_models()


def download(url: str, dest: os.PathLike, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Downloads ``url`` to ``dest`` (resumable, retried, placed atomically: a partial download
    never takes the name ``dest``) and checks ``sha256`` when given. Returns ``dest``."""
    dest = Path(dest)
    path, _, _ = _download(
        dest.name,
        [url],
        dest.parent,
        expect=_Expect(sha256=(sha256 or "").lower()),
        progress=False,
        timeout=timeout,
    )
    return path


def download_official(model_id: str, folder: os.PathLike | None = None) -> Path:
    """Deprecated: use :func:`fetch` (which also converts and verifies). Downloads the official
    file of a built-in model into ``folder`` without converting it; returns its path."""
    warnings.warn(
        "download_official() is deprecated: use deepfaune_rs.models.fetch(model_id), which "
        "also converts the weights to ONNX and verifies them",
        DeprecationWarning,
        stacklevel=2,
    )
    done = fetch(model_id, folder=folder, progress=False, convert=False)
    first = done[0]
    return first.source or first.path


def copy_into_model_dir(path: os.PathLike) -> Path:
    """Copies a weights file into the model directory (where manifests look for it),
    atomically."""
    dest = model_dir() / Path(path).name
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "rb") as src, atomic_open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return dest
