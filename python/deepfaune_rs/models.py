"""Model manifests and weights: listing them, and downloading official weights for users.

Weights of DeepFaune and MegaDetector are not bundled (licences and size); the embedded
``md-lite`` detector is. ``deepfaune-rs models`` shows where each file is expected.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from . import _core
from .errors import ChecksumError, OutputError


def list_models() -> list[dict[str, Any]]:
    """The built-in manifests: id, name, file, official url, expected path, availability."""
    return _core.builtin_models()


def model_dir() -> Path:
    """Where user weights are looked for (``$DEEPFAUNE_RS_MODELS`` or the user cache)."""
    return Path(_core.model_dir())


def download(url: str, dest: os.PathLike, sha256: str | None = None, timeout: float = 60.0) -> Path:
    """Downloads ``url`` to ``dest`` atomically (a partial download never replaces a file) and
    checks ``sha256`` when given. Returns ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as src:
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        found = digest.hexdigest()
        if sha256 and found != sha256.lower():
            raise ChecksumError(f"{url}: expected sha256 {sha256}, downloaded {found}")
        os.replace(tmp, dest)
    except ChecksumError:
        os.unlink(tmp)
        raise
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise OutputError(f"download of {url} to {dest} failed: {e}") from e
    return dest


def download_official(model_id: str, folder: os.PathLike | None = None) -> Path:
    """Downloads the official weights of a built-in model (DeepFaune's or MegaDetector's server)
    into ``folder`` (default: the model directory). PyTorch weights then need
    ``deepfaune-rs export-detector`` / ``export-classifier`` to become ONNX."""
    for m in list_models():
        if m["id"] == model_id.lower():
            if not m["url"]:
                raise ValueError(
                    f"model '{model_id}' has no download URL (it is embedded or user-made)"
                )
            folder = Path(folder) if folder else model_dir()
            name = m["url"].rsplit("/", 1)[-1]
            return download(
                m["url"], folder / name, m["sha256"] if m["url_format"] == "onnx" else None
            )
    raise ValueError(f"unknown model '{model_id}'")


def copy_into_model_dir(path: os.PathLike) -> Path:
    """Copies a weights file into the model directory (where manifests look for it)."""
    dest = model_dir() / Path(path).name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dest)
    return dest
