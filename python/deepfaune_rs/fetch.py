"""Downloading, verifying and converting the official weights (``deepfaune-rs models fetch``).

The core (``src/fetch/``) does it all: the files of each built-in model, the download (HTTP(S)
or ``file://``; the official URL then the mirrors, or ``$DEEPFAUNE_RS_BASE_URL/NAME`` alone;
resumed from ``.NAME.part`` with a ``Range`` request; retried with back-off), the checks
(published size, MD5, sha256; the lock file ``deepfaune-rs.lock.json``), the atomic placement
and the states (``embedded``, ``missing``, ``downloaded``, ``converted``, ``verified``). This
module keeps the Python side: the progress on stderr and the back-off pause (``time.sleep``:
Ctrl-C stops it); the core converts the ``.pt`` files (``src/convert/``, no torch), stamped with
:data:`deepfaune_rs.convert.CONVERTER_VERSION`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _core
from ._core import FetchedFile, FileStatus, model_dir, read_onnx_stamp, sha256_file
from ._core import fetch_classifier_id as classifier_id
from ._core import fetch_detector_ids as detector_ids
from ._core import fetch_targets as resolve_targets
from ._progress import make_callback

ENV_BASE_URL: str = _core.FETCH_ENV_BASE_URL
LOCK_NAME: str = _core.LOCK_NAME
RETRIES: int = _core.FETCH_RETRIES  # attempts per URL after the first
BACKOFF_S: float = _core.FETCH_BACKOFF_S  # doubled after each failed attempt, at most:
BACKOFF_MAX_S: float = _core.FETCH_BACKOFF_MAX_S
TIMEOUT_S: float = _core.FETCH_TIMEOUT_S  # seconds without any byte
DEFAULT_TARGET: str = _core.DEFAULT_TARGET
STATES: tuple[str, ...] = tuple(_core.FETCH_STATES)
__all__ = ["Artifact", "FetchedFile", "FileStatus", "classifier_id", "detector_ids", "download"]
__all__ += ["fetch", "missing", "model_dir", "read_onnx_stamp", "require", "resolve_targets"]
__all__ += ["sha256_file", "status"]
_sleep = time.sleep  # tests replace it to run the back-off without waiting


@dataclass(frozen=True)
class Artifact:
    """One file a built-in model needs (the core's ``fetch::Artifact``)."""

    model_id: str
    role: str  # "model" or "bird_head"
    kind: str  # "detector", "classifier" or "bird_head"
    file: str  # the ONNX file the core loads
    url: str = ""
    url_format: str = ""  # "pt" (converted after download), "onnx" (used as is) or ""
    mirrors: tuple[str, ...] = ()
    url_size: int | None = None
    url_md5: str = ""
    url_sha256: str = ""
    file_sha256: str = ""
    input_size: int | None = None
    embedded: bool = False

    label = property(lambda self: f"{self.model_id}{' bird head' * (self.role != 'model')}")
    source_name = property(lambda self: _core.fetch_sources(self)[0])

    def urls(self) -> list[str]:
        """``$DEEPFAUNE_RS_BASE_URL/NAME`` alone when set, else the official URL, the mirrors."""
        return _core.fetch_sources(self, os.environ.get(ENV_BASE_URL))[1]


class _Hooks:
    """What the core's download calls: lines and a byte bar on stderr (with ``progress``) and
    the back-off pause."""

    def __init__(self, progress: bool) -> None:
        self.progress, self.bar = progress, None

    def say(self, text: str) -> None:
        if self.progress:
            print(text, file=sys.stderr, flush=True)

    def bytes(self, name: str, done: int, total: int | None, end: bool) -> None:
        if not self.progress:
            return
        if end:  # a cut line ends; a file of unknown size is drawn once
            if self.bar and done < (total or 0):
                print(file=sys.stderr, flush=True)
            elif not total:
                make_callback(True, name, unit="B")(done, done)  # type: ignore[misc]
            self.bar = None
        elif total:
            self.bar = self.bar or make_callback(True, name, unit="B")
            self.bar(done, total)  # type: ignore[misc]

    def sleep(self, seconds: float) -> None:
        _sleep(seconds)


def _converter_version() -> str:
    from . import convert

    return str(convert.CONVERTER_VERSION)


def _artifacts_for(ids: Sequence[str] | None, bird_head: bool = True) -> list[Artifact]:
    """The files of the built-in models ``ids`` (None: all), models then bird heads."""
    return [Artifact(**d) for d in _core.fetch_artifacts(ids, bird_head)]


def download(
    name: str,
    urls: Sequence[str],
    folder: os.PathLike | str,
    *,
    sha256: str = "",
    progress: bool = True,
    retries: int | None = None,
    timeout: float | None = None,
) -> tuple[Path, str, str]:
    """Downloads ``name`` into ``folder`` from the first of ``urls`` that gives it (resumed,
    retried, checked against ``sha256``, placed atomically); returns its path, sha256, URL."""
    return _core.fetch_download(name, urls, folder, _Hooks(progress), sha256, retries, timeout)


def status(
    targets: Iterable[str] | None = None, folder: os.PathLike | str | None = None
) -> list[FileStatus]:
    """The state of every file of the built-in models (or of ``targets``); hashes each file."""
    ids = resolve_targets(targets) if targets is not None else None
    return _core.fetch_status(_artifacts_for(ids), folder or model_dir(), _converter_version())


def fetch(
    *targets: str,
    folder: os.PathLike | str | None = None,
    progress: bool = True,
    convert: bool = True,
    accept_new_hash: bool = False,
    retries: int | None = None,
    timeout: float | None = None,
) -> list[FetchedFile]:
    """Downloads, checks and converts the official weights of ``targets`` (model ids, detector
    modes or ``"deepfaune"``, the default) into ``folder`` (default: the model directory).
    Verified files are not fetched again; ``convert=False`` stops after the download;
    ``accept_new_hash`` takes a file whose sha256 differs from the lock file's. Raises
    :class:`UnknownModelError` (before any download), :class:`DownloadError` or
    :class:`ChecksumError` (nothing is then left under the file's name)."""
    ids = resolve_targets(targets or (DEFAULT_TARGET,))
    r, t = RETRIES if retries is None else retries, TIMEOUT_S if timeout is None else timeout
    folder = folder if folder is not None else model_dir()
    args = (convert, accept_new_hash, _converter_version(), r, t)
    return _core.fetch_files(_artifacts_for(ids), folder, _Hooks(progress), *args)


def missing(
    detectors: Sequence[str] = (),
    classifier: str | None = None,
    bird_head: bool = False,
    weights: Mapping[str, Any] | None = None,
) -> list[tuple[Artifact, Path]]:
    """The built-in model files a run needs that are not in the model directory."""
    given = [str(k) for k in (weights or {})]
    gone, _ = _core.fetch_missing(list(detectors), classifier, bird_head, given, model_dir())
    return [(Artifact(**d), Path(p)) for d, p in gone]


def require(
    detectors: Sequence[str] = (),
    classifier: str | None = None,
    bird_head: bool = False,
    weights: Mapping[str, Any] | None = None,
    fetch_first: bool = False,
    progress: bool = True,
) -> None:
    """Raises ONE :class:`WeightsNotFoundError` naming every missing file of a run and the
    command that fetches them; with ``fetch_first`` they are fetched instead."""
    given = [str(k) for k in (weights or {})]
    ids = _core.fetch_require(list(detectors), classifier, bird_head, given, fetch_first)
    if ids:
        fetch(*ids, progress=progress)
