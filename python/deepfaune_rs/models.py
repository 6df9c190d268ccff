"""Model manifests and weights: listing them, their state, and fetching the official weights.

Weights of DeepFaune and MegaDetector are not bundled (licences and size); the embedded
``md-lite`` detector is. :func:`fetch` downloads, checks and converts the official files
(``deepfaune-rs models fetch``); :func:`status` says where each file stands
(``deepfaune-rs models``). See :mod:`deepfaune_rs.fetch` for the details.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ._core import builtin_models as list_models
from ._core import copy_into_model_dir
from .fetch import FetchedFile, FileStatus, fetch, model_dir, status
from .fetch import download as _download

__all__ = ["FetchedFile", "FileStatus", "copy_into_model_dir", "download", "download_official"]
__all__ += ["fetch", "list_models", "model_dir", "status"]


def download(url: str, dest: os.PathLike, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Downloads ``url`` to ``dest`` (resumable, retried, placed atomically: a partial download
    never takes the name ``dest``) and checks ``sha256`` when given. Returns ``dest``."""
    dest = Path(dest)
    done = _download(
        dest.name, [url], dest.parent, sha256=sha256 or "", progress=False, timeout=timeout
    )
    return done[0]


def download_official(model_id: str, folder: os.PathLike | None = None) -> Path:
    """Deprecated: use :func:`fetch` (which also converts and verifies). Downloads the official
    file of a built-in model into ``folder`` without converting it; returns its path."""
    warnings.warn(
        "download_official() is deprecated: use deepfaune_rs.models.fetch(model_id), which "
        "also converts the weights to ONNX and verifies them",
        DeprecationWarning,
        stacklevel=2,
    )
    first = fetch(model_id, folder=folder, progress=False, convert=False)[0]
    return first.source or first.path
