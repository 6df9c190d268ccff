"""Downloading, verifying and converting the official weights (``deepfaune-rs models fetch``).

The core (``src/fetch/``) knows every built-in model's files from the manifests (ONNX ``file``,
official ``url``, ``mirrors``, published ``url_size`` / ``url_md5`` / ``url_sha256``), which models
a target names, how a download is checked, the lock file ``deepfaune-rs.lock.json`` (the sha256 of
each download, trusted on first use where nothing is published, and of each conversion with its
source and converter version) and each file's state. This module does what only Python does
here, and the order of the steps:

- **Download**: ``urllib``; the official URL, then the mirrors, each retried with exponential
  back-off; an interrupted download is kept as ``.NAME.part`` and resumed with an HTTP ``Range``
  request (a server that ignores ``Range`` restarts it). ``$DEEPFAUNE_RS_BASE_URL`` replaces
  every URL: ``NAME`` is then fetched from ``$DEEPFAUNE_RS_BASE_URL/NAME`` only.
- **Atomic placement**: a file gets its final name only when complete, synced and checked (a
  refused one raises :class:`ChecksumError` naming the file and both hashes; ``accept_new_hash``
  takes a download that differs from the lock file's hash).
- **Conversion** of ``.pt`` files (:func:`deepfaune_rs.convert.convert`, no torch), recorded in the
  lock file; a conversion whose source or converter version changed is redone.

States of a model file (:func:`status`): ``embedded`` (inside the package), ``missing``,
``downloaded`` (the ``.pt`` is there, no usable ONNX), ``converted`` (an ONNX the lock file does
not vouch for: exported by hand, or its hash differs) and ``verified`` (the ONNX's sha256 is the
lock file's, converted by the current converter from the recorded source, itself checked at
download and unchanged; or, downloaded as is, its sha256 is the manifest's or the lock file's).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _core
from .errors import (
    ChecksumError,
    ConversionError,
    DownloadError,
    OutputError,
    WeightsNotFoundError,
)

#: Replaces the base URL of every file: ``NAME`` is fetched from ``$DEEPFAUNE_RS_BASE_URL/NAME``.
ENV_BASE_URL = "DEEPFAUNE_RS_BASE_URL"
#: The lock file in the model directory.
LOCK_NAME: str = _core.LOCK_NAME
#: Attempts per URL after the first one (connection errors, timeouts, cut transfers, HTTP 5xx).
RETRIES = 4
#: First back-off delay in seconds; doubled after each failed attempt, at most BACKOFF_MAX_S.
BACKOFF_S = 1.0
BACKOFF_MAX_S = 30.0
#: Socket timeout of one request (seconds without any byte).
TIMEOUT_S = 60.0
CHUNK = 1 << 20
#: The target that fetches DeepFaune's default setup.
DEFAULT_TARGET: str = _core.DEFAULT_TARGET
STATES: tuple[str, ...] = tuple(_core.FETCH_STATES)

_sleep = time.sleep  # tests replace it to run the back-off without waiting


class _Labelled:
    model_id: str
    role: str

    @property
    def label(self) -> str:
        """``df``, ``deepfaune-v15``, ``deepfaune-v15 bird head``."""
        return self.model_id if self.role == "model" else f"{self.model_id} bird head"


@dataclass(frozen=True)
class Artifact(_Labelled):
    """One file a built-in model needs (the core's ``fetch::Artifact``): its weights or its bird
    head."""

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
    file_sha256: str = ""  # the manifest's pinned sha256 of ``file`` (empty: not pinned)
    input_size: int | None = None
    embedded: bool = False

    @property
    def source_name(self) -> str:
        """The name of the downloaded file (the last part of the official URL)."""
        return _core.fetch_sources(self)[0]

    def urls(self) -> list[str]:
        """Where the file is downloaded from, in order: ``$DEEPFAUNE_RS_BASE_URL/NAME`` alone
        when that is set, else the official URL then the mirrors."""
        return _core.fetch_sources(self, os.environ.get(ENV_BASE_URL))[1]


def _artifacts_for(ids: Sequence[str] | None, bird_head: bool = True) -> list[Artifact]:
    """The files of the built-in models ``ids`` (None: all), models then bird heads."""
    return [Artifact(**d) for d in _core.fetch_artifacts(ids, bird_head)]


def resolve_targets(targets: Iterable[str]) -> list[str]:
    """Model ids for targets: a model id, a detector mode (``DFbsMDS``, ...) or ``deepfaune``
    (DeepFaune's default setup: DF, MegaDetector sorrel and the default classifier with its bird
    head). Raises :class:`UnknownModelError` naming every unknown target."""
    return _core.fetch_targets([str(t) for t in targets])


def model_dir() -> Path:
    """Where the core looks for weights (``$DEEPFAUNE_RS_MODELS`` or the user cache)."""
    return Path(_core.model_dir())


def sha256_file(path: os.PathLike | str) -> str:
    """Lowercase hex sha256 of a file, streamed."""
    return _core.sha256_file(os.fspath(path))


def read_onnx_stamp(path: os.PathLike | str) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (what :func:`deepfaune_rs.convert.convert` stamps:
    ``converter``, ``converter_version``, ``source_sha256``...), read without parsing the graph.
    Empty for a file that is not ONNX or has no metadata."""
    return _core.read_onnx_stamp(os.fspath(path))


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not on Windows
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _int_or_none(v: Any) -> int | None:
    try:
        v = int(v)
    except (TypeError, ValueError):
        return None
    return v if v > 0 else None


# ---------------------------------------------------------------------------------------------
# Progress


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


class _ByteBar:
    """A download bar on stderr, in the package's progress style."""

    def __init__(self, desc: str, total: int | None, done: int) -> None:
        self.desc, self.total, self.done, self.start_done = desc, total, done, done
        self.start = time.monotonic()
        self.last = 0.0
        self._draw(force=True)

    def update(self, n: int) -> None:
        self.done += n
        self._draw()

    def _draw(self, force: bool = False, end: bool = False) -> None:
        now = time.monotonic()
        if not (force or end) and now - self.last < 0.2:
            return
        self.last = now
        rate = (self.done - self.start_done) / max(now - self.start, 1e-9)
        width = 30
        if self.total:
            filled = min(width, int(width * self.done / self.total))
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            text = (
                f"\r{self.desc} [{'#' * filled}{'.' * (width - filled)}] "
                f"{_fmt_bytes(self.done)}/{_fmt_bytes(self.total)} {_fmt_bytes(rate)}/s "
                f"ETA {eta:.0f}s"
            )
        else:
            text = f"\r{self.desc} {_fmt_bytes(self.done)} {_fmt_bytes(rate)}/s"
        sys.stderr.write(text + ("\n" if end else ""))
        sys.stderr.flush()

    def close(self) -> None:
        self._draw(end=True)


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# HTTP


class _Permanent(Exception):
    """This URL will not give the file (404, 403, ...): try the next one."""


class _Transient(Exception):
    """Worth another try after a pause (connection refused or reset, timeout, cut, HTTP 5xx)."""


_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.I)


def _user_agent() -> str:
    return f"deepfaune-rs/{getattr(_core, '__version__', '?')} (+urllib)"


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}".strip()
    if isinstance(e, urllib.error.URLError):
        r = e.reason
        return str(r.strerror or r) if isinstance(r, OSError) else str(r)
    if isinstance(e, http.client.IncompleteRead):
        return f"connection closed after {len(e.partial)} more bytes"
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def _transfer(
    url: str, part: Path, meta_path: Path, timeout: float, progress: bool, desc: str
) -> None:
    """Downloads ``url`` into ``part``, continuing what it holds with a ``Range`` request.
    Returns when the file is complete (as far as the server says); raises _Transient or
    _Permanent otherwise, leaving what arrived in ``part`` for the next attempt."""
    have = part.stat().st_size if part.exists() else 0
    meta = _read_json(meta_path) if have else {}
    headers = {"User-Agent": _user_agent(), "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        validator = meta.get("etag") or meta.get("last_modified")
        if validator and meta.get("url") == url:
            headers["If-Range"] = validator
    if have:
        _say(progress, f"resuming {desc} at {_fmt_bytes(have)} from {url}")
    else:
        _say(progress, f"downloading {desc} from {url}")
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416:  # our part is not a prefix the server can continue: start again
            part.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            raise _Transient("the server refused to resume (HTTP 416); restarting") from e
        if e.code in _RETRY_STATUS:
            raise _Transient(_reason(e)) from e
        raise _Permanent(_reason(e)) from e
    except urllib.error.URLError as e:
        if isinstance(e.reason, ssl.SSLCertVerificationError):  # not better next time
            raise _Permanent(_reason(e)) from e
        raise _Transient(_reason(e)) from e
    except (OSError, http.client.HTTPException) as e:
        raise _Transient(_reason(e)) from e
    with resp:
        # file:// URLs (a mirror on a shared drive) have no status: the whole file.
        status = 200 if resp.status is None else resp.status
        length = _int_or_none(resp.headers.get("Content-Length"))
        if status == 206 and have:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                part.unlink()
                meta_path.unlink(missing_ok=True)
                raise _Transient("the server resumed at another offset; restarting")
            total = int(m.group(3)) if m.group(3) != "*" else meta.get("total")
            if meta.get("total") and total != meta["total"]:  # another file than the part's
                part.unlink()
                meta_path.unlink(missing_ok=True)
                raise _Transient(
                    f"the file's size changed ({meta['total']} -> {total}); restarting"
                )
            mode = "ab"
        elif status == 200:
            have, total, mode = 0, length, "wb"  # no resume (a 200 to a Range): start over
            new_meta = {
                "url": url,
                "etag": resp.headers.get("ETag"),
                "last_modified": resp.headers.get("Last-Modified"),
                "total": total,
            }
            with open(meta_path, "w", encoding="utf-8") as f:
                json.dump(new_meta, f)
        else:
            raise _Permanent(f"unexpected HTTP status {status}")
        bar = _ByteBar(desc, total, have) if progress else None
        try:
            with open(part, mode) as out:
                try:
                    while True:
                        chunk = resp.read(CHUNK)
                        if not chunk:
                            break
                        out.write(chunk)
                        have += len(chunk)
                        if bar:
                            bar.update(len(chunk))
                except (OSError, http.client.HTTPException) as e:
                    out.flush()
                    raise _Transient(
                        f"connection lost after {have} of {total or '?'} bytes ({_reason(e)})"
                    ) from e
                out.flush()
                os.fsync(out.fileno())
        finally:
            if bar:
                bar.close()
    if total is not None and have < total:
        raise _Transient(f"connection closed after {have} of {total} bytes")
    if total is not None and have > total:
        part.unlink()
        raise _Transient(f"received {have} bytes, more than the announced {total}; restarting")


@dataclass
class _Expect:
    """What a downloaded file must be (the core's ``fetch::Expect``): published size and hashes,
    and the lock file's sha256."""

    size: int | None = None
    md5: str = ""
    sha256: str = ""  # published
    locked_sha256: str = ""  # recorded at the first download
    accept_new_hash: bool = False


def _check(path: Path, name: str, expect: _Expect, lock_path: Path) -> str:
    """The sha256 of the file at ``path``; ChecksumError when it is not what is expected."""
    return _core.fetch_check(path, name, expect, lock_path)


def download(
    name: str,
    urls: Sequence[str],
    folder: os.PathLike | str,
    *,
    expect: _Expect | None = None,
    progress: bool = True,
    retries: int | None = None,
    timeout: float | None = None,
) -> tuple[Path, str, str]:
    """Downloads file ``name`` into ``folder`` from the first of ``urls`` that gives it, checks
    it against ``expect`` and places it under its final name atomically. Returns the path, its
    sha256 and the URL it came from. Raises :class:`DownloadError` (one line naming the file and
    what each URL answered) or :class:`ChecksumError`."""
    folder = Path(folder)
    expect = expect or _Expect()
    retries = RETRIES if retries is None else retries
    timeout = TIMEOUT_S if timeout is None else timeout
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the model directory {folder}: {e}") from e
    part = folder / f".{name}.part"
    meta = folder / f".{name}.part.json"
    lock_path = folder / LOCK_NAME
    if not urls:
        raise DownloadError(
            f"{name}: its manifest gives no download URL (set {ENV_BASE_URL} to a server that "
            f"has it, or put it in {folder})"
        )
    with _exclusive(folder / f".{name}.part.lock", name, folder):
        return _download_locked(
            name, urls, folder, part, meta, lock_path, expect, progress, retries, timeout
        )


@contextlib.contextmanager
def _exclusive(path: Path, name: str, folder: Path) -> Iterator[None]:
    """One download of a file into a folder at a time (two would write the same .part)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock; the checks still catch a mixed file
        yield
        return
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise OutputError(f"cannot write in the model directory {folder}: {e}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            raise DownloadError(
                f"another process is downloading {name} into {folder}; wait for it to finish "
                "(or stop it), then run the fetch again"
            ) from e
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder before us removed that file: lock the new one
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still locked: a waiting process then locks a new file
        os.close(fd)


def _place(part: Path, meta: Path, dest: Path) -> Path:
    """The checked .part takes its final name (atomic rename, then the folder synced)."""
    os.replace(part, dest)
    _fsync_dir(dest.parent)
    meta.unlink(missing_ok=True)
    return dest


def _download_locked(
    name: str,
    urls: Sequence[str],
    folder: Path,
    part: Path,
    meta: Path,
    lock_path: Path,
    expect: _Expect,
    progress: bool,
    retries: int,
    timeout: float,
) -> tuple[Path, str, str]:
    tried: list[str] = []
    bad: list[ChecksumError] = []
    # A .part already complete (the process stopped between the download and the rename) is
    # checked as it is: asking for the bytes after its end would only get a 416.
    have = part.stat().st_size if part.exists() else 0
    total = expect.size or _int_or_none(_read_json(meta).get("total"))
    if have and have == total:
        try:
            sha = _check(part, name, expect, lock_path)
        except ChecksumError:
            part.unlink(missing_ok=True)  # start over
            meta.unlink(missing_ok=True)
        else:
            came_from = str(_read_json(meta).get("url") or "")
            return _place(part, meta, folder / name), sha, came_from
    for url in urls:
        delay = BACKOFF_S
        attempt = 0
        while True:
            try:
                _transfer(url, part, meta, timeout, progress, name)
            except _Permanent as e:
                tried.append(f"{url}: {e}")
                break
            except _Transient as e:
                if attempt >= retries:
                    tried.append(f"{url}: {e} ({attempt + 1} attempts)")
                    break
                attempt += 1
                _say(progress, f"  {e}; retrying in {delay:g} s")
                _sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            except OSError as e:  # writing the .part file
                raise OutputError(f"cannot write {part}: {e}") from e
            try:
                sha = _check(part, name, expect, lock_path)
            except ChecksumError as e:
                part.unlink(missing_ok=True)
                meta.unlink(missing_ok=True)
                bad.append(ChecksumError(f"{e} (from {url})"))
                tried.append(f"{url}: refused ({e})")
                break
            return _place(part, meta, folder / name), sha, url
    if bad and len(bad) == len(tried):
        raise bad[0]
    raise DownloadError(f"could not download {name}: " + "; ".join(tried))


# ---------------------------------------------------------------------------------------------
# Status


@dataclass
class FileStatus(_Labelled):
    """Where one model file stands (see the module's docstring for the states)."""

    model_id: str
    role: str
    state: str
    path: Path  # the ONNX the core loads
    source: Path | None = None  # the downloaded file, when it differs from ``path``
    detail: str = ""
    sha256: str | None = None  # of ``path`` when hashed


def _converter_version() -> str:
    from . import convert

    return str(convert.CONVERTER_VERSION)


def status(
    targets: Iterable[str] | None = None, folder: os.PathLike | str | None = None
) -> list[FileStatus]:
    """The state of every file of the built-in models (or of ``targets``): ``embedded``,
    ``missing``, ``downloaded``, ``converted`` or ``verified`` (defined in this module's
    docstring). Hashes every file present, so it takes a few seconds for the big classifiers."""
    folder = Path(folder) if folder is not None else model_dir()
    ids = resolve_targets(targets) if targets is not None else None
    done = _core.fetch_status(_artifacts_for(ids), folder, _converter_version())
    return [FileStatus(**{**d, "path": Path(d["path"])}) for d in done]


# ---------------------------------------------------------------------------------------------
# Fetch


@dataclass
class FetchedFile(_Labelled):
    """What :func:`fetch` did for one file."""

    model_id: str
    role: str
    state: str  # embedded / downloaded / converted / verified (see the module docstring)
    path: Path
    source: Path | None = None
    sha256: str | None = None
    source_sha256: str | None = None
    url: str | None = None  # where it was downloaded from (None: nothing downloaded)
    converted: bool = False
    notes: list[str] = field(default_factory=list)


def _convert(a: Artifact, src: Path, dest: Path, progress: bool) -> dict[str, Any]:
    from . import convert as conv

    _say(progress, f"converting {src.name} -> {dest.name}")
    size = a.input_size if a.kind == "classifier" else None
    try:
        info = conv.convert(src, dest, kind=a.kind, size=size)
    except OSError as e:
        raise OutputError(f"could not write {dest}: {e}") from e
    except Exception as e:  # noqa: BLE001 - whatever the builder met, one line for the user
        raise ConversionError(f"could not convert {src}: {type(e).__name__}: {e}") from e
    _say(progress, f"  {dest.name}: done in {info.get('seconds', 0.0):.1f} s")
    return info


def _fetch_one(
    a: Artifact,
    folder: Path,
    *,
    progress: bool,
    convert: bool,
    accept_new_hash: bool,
    retries: int | None,
    timeout: float | None,
) -> FetchedFile:
    plan = _core.fetch_plan(a, folder, _converter_version(), accept_new_hash)
    head, notes, url = (a.model_id, a.role), plan["notes"], None
    if plan["step"] == "done":
        src = None if plan["source"] is None else Path(plan["source"])
        sha, src_sha = plan["sha256"], plan["source_sha256"]
        return FetchedFile(*head, plan["state"], Path(plan["path"]), src, sha, src_sha, notes=notes)
    if plan["step"] == "source":  # there already, checked
        src, src_sha = Path(plan["source"]), plan["source_sha256"]
    else:
        expect = _Expect(**plan["expect"])
        src, src_sha, url = download(
            a.source_name, a.urls(), folder, expect=expect, progress=progress, retries=retries,
            timeout=timeout,
        )  # fmt: skip
        if expect.locked_sha256 and expect.locked_sha256 != src_sha:
            notes.append(f"{src.name}: new sha256 {src_sha} accepted (was {expect.locked_sha256})")
        _core.fetch_record_file(folder, src.name, src_sha, src.stat().st_size, url)
    if a.url_format != "pt":  # used as downloaded
        return FetchedFile(*head, "verified", src, sha256=src_sha, url=url, notes=notes)
    path = folder / a.file
    if not convert:
        return FetchedFile(*head, "downloaded", path, src, None, src_sha, url, False, notes)
    info = _convert(a, src, path, progress)
    if info.get("source_sha256") and info["source_sha256"] != src_sha:
        raise ConversionError(
            f"{src.name} changed while it was converted (sha256 {info['source_sha256']}, "
            f"expected {src_sha}); run the fetch again"
        )
    version = str(info.get("converter_version"))
    _core.fetch_record_conversion(folder, a.file, info["sha256"], src.name, src_sha, version)
    return FetchedFile(*head, "verified", path, src, info["sha256"], src_sha, url, True, notes)


def fetch(
    *targets: str,
    folder: os.PathLike | str | None = None,
    progress: bool = True,
    convert: bool = True,
    accept_new_hash: bool = False,
    retries: int | None = None,
    timeout: float | None = None,
) -> list[FetchedFile]:
    """Downloads, checks and converts the official weights of ``targets`` into ``folder``
    (default: the model directory, ``$DEEPFAUNE_RS_MODELS``).

    A target is a model id (``df``, ``mds``, ``mdr``, ``deepfaune-v15``, ``deepfaune-v14``...;
    a classifier comes with its bird head), a detector mode (``DF``, ``MDS``, ``DFbsMDS``,
    ``DFMDS``, ``MDR``) or ``"deepfaune"`` (DeepFaune's default setup, also the default when no
    target is given). Files already there and verified are not downloaded again; a conversion
    whose source or converter version changed is redone. ``convert=False`` stops after the
    download (state ``downloaded``). ``accept_new_hash=True`` takes a download whose sha256
    differs from the one the lock file recorded (see the module docstring). ``progress`` shows
    a bar per file and what is done on stderr. ``retries`` and ``timeout`` override
    :data:`RETRIES` and :data:`TIMEOUT_S`.

    Returns one :class:`FetchedFile` per file (models then bird heads). Raises
    :class:`UnknownModelError` (before any download) for an unknown target,
    :class:`DownloadError` when no URL gives a file, :class:`ChecksumError` when what was
    downloaded is not the published (or recorded) file: nothing is then left under its name."""
    ids = resolve_targets(targets or (DEFAULT_TARGET,))
    folder = Path(folder) if folder is not None else model_dir()
    opts = dict(progress=progress, convert=convert, accept_new_hash=accept_new_hash)
    opts.update(retries=retries, timeout=timeout)
    return [_fetch_one(a, folder, **opts) for a in _artifacts_for(ids)]  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# What a run needs


def detector_ids(
    model: str | os.PathLike | None, secondary: str | os.PathLike | None = None
) -> list[str]:
    """Built-in detector ids that ``Detector(model, secondary=...)`` loads (paths and manifests
    are the caller's files: none). An unknown name raises :class:`UnknownModelError` listing
    the valid ones (before any missing weights are looked for)."""
    return _core.fetch_detector_ids([os.fspath(s) for s in (model, secondary) if s is not None])


def classifier_id(classifier: str | os.PathLike | None) -> str | None:
    """The built-in classifier id of ``classifier``, or None for a file or manifest. An unknown
    name raises :class:`UnknownModelError` listing the valid ones."""
    return None if classifier is None else _core.fetch_classifier_id(os.fspath(classifier))


def _missing(
    detectors: Sequence[str], classifier: str | None, bird_head: bool, weights: Any
) -> tuple[list[tuple[Artifact, Path]], str]:
    given = [str(k) for k in (weights or {})]
    gone, cmd = _core.fetch_missing(list(detectors), classifier, bird_head, given, model_dir())
    return [(Artifact(**d), Path(p)) for d, p in gone], cmd


def missing(
    detectors: Sequence[str] = (),
    classifier: str | None = None,
    bird_head: bool = False,
    weights: Mapping[str, Any] | None = None,
) -> list[tuple[Artifact, Path]]:
    """The built-in model files a run needs that are not in the model directory (ids given
    an explicit file in ``weights`` are the caller's)."""
    return _missing(detectors, classifier, bird_head, weights)[0]


def require(
    detectors: Sequence[str] = (),
    classifier: str | None = None,
    bird_head: bool = False,
    weights: Mapping[str, Any] | None = None,
    fetch_first: bool = False,
    progress: bool = True,
) -> None:
    """Checks, before anything is loaded, that every built-in model file of a run is there;
    raises ONE :class:`WeightsNotFoundError` naming them all and the command that fetches them.
    With ``fetch_first`` the missing ones are fetched instead (the only network access)."""
    gone, cmd = _missing(detectors, classifier, bird_head, weights)
    if not gone:
        return
    if fetch_first:
        fetch(*dict.fromkeys(a.model_id for a, _ in gone), progress=progress)
        return
    listing = "; ".join(f"{a.label} ({p})" for a, p in gone)
    n = len(gone)
    e = WeightsNotFoundError(
        f"weights not found for {n} model file{'s' if n > 1 else ''}: {listing}; "
        f"get {'them' if n > 1 else 'it'} with `{cmd}` (or fetch=True / --fetch)"
    )
    e.missing = [(a.label, str(p)) for a, p in gone]  # type: ignore[attr-defined]
    e.command = cmd  # type: ignore[attr-defined]
    raise e
