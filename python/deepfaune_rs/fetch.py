"""Downloading, verifying and converting the official weights (``deepfaune-rs models fetch``).

The manifests name, for every built-in model, the ONNX file the core loads (``file``), the
official file (``url``, usually a PyTorch ``.pt``), re-hosted copies (``mirrors``) and whatever the
publisher gives to check it (``url_size``, ``url_md5``, ``url_sha256``). :func:`fetch` downloads
what is missing into the model directory and converts ``.pt`` files to ONNX with
:func:`deepfaune_rs.convert.convert` (no torch).

- **Download**: ``urllib`` only; the official URL first, then the mirrors; each URL retried with
  exponential back-off; an interrupted download is kept as ``.NAME.part`` in the model directory
  and resumed with an HTTP ``Range`` request (a server that ignores ``Range`` restarts it).
  ``$DEEPFAUNE_RS_BASE_URL`` replaces every URL: file ``NAME`` is then fetched from
  ``$DEEPFAUNE_RS_BASE_URL/NAME`` only (institutional mirrors, tests).
- **Verification**: size, MD5 and sha256 where the manifest has them. Where nothing is published,
  the sha256 of the first download is recorded in ``deepfaune-rs.lock.json`` in the model
  directory and a later download that differs is refused (:class:`ChecksumError` naming the file
  and both hashes; ``accept_new_hash=True`` / ``--accept-new-hash`` records the new one instead).
- **Atomic placement**: a file gets its final name only when it is complete, synced and verified.
- **Conversion**: recorded in the lock file with the ONNX's sha256, the source's sha256 and the
  converter version; a conversion whose source or converter version changed is redone.

States of a model file (:func:`status`):

- ``embedded``: inside the package (md-lite); nothing to fetch.
- ``missing``: neither the ONNX file nor the downloaded source file is in the model directory.
- ``downloaded``: the source file (``.pt``) is there, but no usable ONNX: none, or one this
  package converted from another source or with another converter version (``fetch`` converts).
- ``converted``: the ONNX file is there and the core can load it, but it is not verified: it is
  not recorded in the lock file (exported by hand, or the lock entry was deleted) or its hashes
  differ from the lock file's.
- ``verified``: the ONNX file's sha256 is the lock file's; the lock records it as converted from
  a source whose sha256 is the lock file's entry for that source (which passed the published size
  and checksums when it was downloaded) and, if the source file is still there, it still has that
  sha256; and the converter version is the current one. For an ONNX downloaded as is: its sha256
  is the manifest's (or the lock file's).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import http.client
import json
import os
import re
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
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
    UnknownModelError,
    WeightsNotFoundError,
)

#: Replaces the base URL of every file: ``NAME`` is fetched from ``$DEEPFAUNE_RS_BASE_URL/NAME``.
ENV_BASE_URL = "DEEPFAUNE_RS_BASE_URL"
#: The lock file in the model directory.
LOCK_NAME = "deepfaune-rs.lock.json"
#: Attempts per URL after the first one (connection errors, timeouts, cut transfers, HTTP 5xx).
RETRIES = 4
#: First back-off delay in seconds; doubled after each failed attempt, at most BACKOFF_MAX_S.
BACKOFF_S = 1.0
BACKOFF_MAX_S = 30.0
#: Socket timeout of one request (seconds without any byte).
TIMEOUT_S = 60.0
CHUNK = 1 << 20

#: DeepFaune's detector modes -> the built-in detectors they need (src/detect/mode.rs).
MODES = {
    "df": ("df",),
    "mds": ("mds",),
    "mdr": ("mdr",),
    "dfbsmds": ("df", "mds"),
    "dfmds": ("df", "mds"),
}
#: The target that fetches DeepFaune's default setup.
DEFAULT_TARGET = "deepfaune"

STATES = ("embedded", "missing", "downloaded", "converted", "verified")

_sleep = time.sleep  # tests replace it to run the back-off without waiting


# ---------------------------------------------------------------------------------------------
# What the manifests say


@dataclass(frozen=True)
class Artifact:
    """One file a built-in model needs: the model's own weights or its bird head."""

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
    def label(self) -> str:
        """``df``, ``deepfaune-v15``, ``deepfaune-v15 bird head``."""
        return self.model_id if self.role == "model" else f"{self.model_id} bird head"

    @property
    def source_name(self) -> str:
        """The name of the downloaded file (the last part of the official URL)."""
        if self.url_format != "pt":
            return self.file
        return urllib.parse.unquote(urllib.parse.urlsplit(self.url).path.rsplit("/", 1)[-1])

    def urls(self) -> list[str]:
        """Where the file is downloaded from, in order: ``$DEEPFAUNE_RS_BASE_URL/NAME`` alone
        when that is set, else the official URL then the mirrors."""
        base = os.environ.get(ENV_BASE_URL, "").strip()
        if base:
            return [base.rstrip("/") + "/" + urllib.parse.quote(self.source_name)]
        out = [u for u in (self.url, *self.mirrors) if u]
        return list(dict.fromkeys(out))


def _int_or_none(v: Any) -> int | None:
    try:
        v = int(v)
    except (TypeError, ValueError):
        return None
    return v if v > 0 else None


def _artifact(row: Mapping[str, Any], model_id: str, role: str, kind: str) -> Artifact:
    return Artifact(
        model_id=model_id,
        role=role,
        kind=kind,
        file=str(row.get("file") or ""),
        url=str(row.get("url") or ""),
        url_format=str(row.get("url_format") or "").lower(),
        mirrors=tuple(str(u) for u in (row.get("mirrors") or ()) if u),
        url_size=_int_or_none(row.get("url_size")),
        url_md5=str(row.get("url_md5") or "").lower(),
        url_sha256=str(row.get("url_sha256") or "").lower(),
        file_sha256=str(row.get("sha256") or "").lower(),
        input_size=_int_or_none(row.get("input_size")) if role == "model" else None,
        embedded=bool(row.get("embedded", False)),
    )


def artifacts_of(row: Mapping[str, Any]) -> list[Artifact]:
    """The files of one ``_core.builtin_models()`` row: the model, then its bird head."""
    out = [_artifact(row, row["id"], "model", row["kind"])]
    bird = row.get("bird_head")
    if isinstance(bird, Mapping) and bird.get("file"):
        out.append(_artifact(bird, row["id"], "bird_head", "bird_head"))
    return out


def _rows() -> dict[str, dict[str, Any]]:
    return {m["id"].lower(): m for m in _core.builtin_models()}


def default_classifier() -> str:
    """The classifier of DeepFaune's default setup: the one ``Pipeline()`` uses by default."""
    from .pipeline import DEFAULT_CLASSIFIER

    return DEFAULT_CLASSIFIER


def resolve_targets(targets: Iterable[str]) -> list[str]:
    """Model ids for targets: a model id, a detector mode (``DFbsMDS``, ...) or ``deepfaune``
    (DeepFaune's default setup: DF, MegaDetector sorrel and the default classifier with its bird
    head). Raises :class:`UnknownModelError` naming every unknown target."""
    rows = _rows()
    ids: list[str] = []
    unknown: list[str] = []
    for t in targets:
        key = str(t).strip().lower()
        if key == DEFAULT_TARGET:
            cls = default_classifier().lower()
            if cls not in rows:  # a build whose manifests lag behind the Python package
                raise UnknownModelError(f"the default classifier '{cls}' is not built in")
            ids += [*MODES["dfbsmds"], cls]
        elif key in rows:
            ids.append(key)
        elif key in MODES:
            ids += MODES[key]
        else:
            unknown.append(str(t))
    if unknown:
        choices = ", ".join([DEFAULT_TARGET, *sorted(rows), "DF", "MDS", "MDR", "DFbsMDS", "DFMDS"])
        raise UnknownModelError(
            f"unknown model or mode {', '.join(repr(u) for u in unknown)}: choose from {choices}"
        )
    return list(dict.fromkeys(ids))


def _artifacts_for(ids: Sequence[str], bird_head: bool = True) -> list[Artifact]:
    rows = _rows()
    out: list[Artifact] = []
    for i in ids:
        arts = artifacts_of(rows[i])
        out += arts if bird_head else arts[:1]
    return out


# ---------------------------------------------------------------------------------------------
# Files, hashes, the lock file


def model_dir() -> Path:
    """Where the core looks for weights (``$DEEPFAUNE_RS_MODELS`` or the user cache)."""
    return Path(_core.model_dir())


def _hash_file(path: Path, *names: str) -> dict[str, str]:
    hs = {n: hashlib.new(n) for n in names}
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                break
            for h in hs.values():
                h.update(b)
    return {n: h.hexdigest() for n, h in hs.items()}


def sha256_file(path: os.PathLike | str) -> str:
    """Lowercase hex sha256 of a file, streamed."""
    return _hash_file(Path(path), "sha256")["sha256"]


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not on Windows
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Lock:
    """``deepfaune-rs.lock.json``: the sha256 of every file downloaded (trust on first use where
    nothing is published) and of every conversion, with its source and converter version.

    ``{"version": 1, "files": {NAME: {"sha256", "size", "url", "recorded"}},
    "conversions": {ONNX: {"sha256", "source", "source_sha256", "converter_version", "recorded"}}}``
    Written atomically; each update re-reads the file first so concurrent fetches into the same
    folder keep each other's entries.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
        self.data = self._read()

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return {"version": 1, "files": {}, "conversions": {}}
        except (OSError, ValueError) as e:
            raise ChecksumError(
                f"{self.path}: unreadable lock file ({e}); fix it or delete it (the hashes it "
                "recorded are then taken again from the next downloads)"
            ) from e
        if not isinstance(data, dict):
            raise ChecksumError(f"{self.path}: not a deepfaune-rs lock file; delete it")
        data.setdefault("version", 1)
        for k in ("files", "conversions"):
            if not isinstance(data.get(k), dict):
                data[k] = {}
        return data

    def file(self, name: str) -> dict[str, Any] | None:
        e = self.data["files"].get(name)
        return e if isinstance(e, dict) and isinstance(e.get("sha256"), str) else None

    def conversion(self, name: str) -> dict[str, Any] | None:
        e = self.data["conversions"].get(name)
        return e if isinstance(e, dict) and isinstance(e.get("sha256"), str) else None

    def _update(self, section: str, name: str, entry: dict[str, Any]) -> None:
        self.data = self._read()
        entry = {**entry, "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat()}
        self.data[section][name] = entry
        text = json.dumps(self.data, indent=2, sort_keys=True) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{LOCK_NAME}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as e:
            raise OutputError(f"cannot write the lock file {self.path}: {e}") from e
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        _fsync_dir(self.path.parent)

    def record_file(self, name: str, sha256: str, size: int, url: str | None) -> None:
        self._update("files", name, {"sha256": sha256, "size": size, "url": url})

    def record_conversion(
        self, name: str, sha256: str, source: str, source_sha256: str, version: str
    ) -> None:
        self._update(
            "conversions",
            name,
            {
                "sha256": sha256,
                "source": source,
                "source_sha256": source_sha256,
                "converter_version": version,
            },
        )


def read_onnx_stamp(path: os.PathLike | str) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file (what :func:`deepfaune_rs.convert.convert` stamps:
    ``converter``, ``converter_version``, ``source_sha256``...), read by walking the protobuf's
    top-level fields and skipping the graph, so a 1 GB model costs a few reads, not a parse.
    Empty for a file that is not ONNX or has no metadata."""

    def varint(f: Any) -> int | None:
        shift = result = 0
        while True:
            b = f.read(1)
            if not b:
                return None
            result |= (b[0] & 0x7F) << shift
            if not b[0] & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ValueError("bad varint")

    def fields(buf: bytes) -> dict[int, bytes]:
        import io

        out: dict[int, bytes] = {}
        f = io.BytesIO(buf)
        while True:
            tag = varint(f)
            if tag is None:
                return out
            if tag & 7 != 2:
                raise ValueError("unexpected wire type in a metadata entry")
            n = varint(f)
            if n is None:
                raise ValueError("truncated")
            out[tag >> 3] = f.read(n)

    out: dict[str, str] = {}
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            while f.tell() < size:
                tag = varint(f)
                if tag is None:
                    break
                number, wire = tag >> 3, tag & 7
                if wire == 0:
                    varint(f)
                elif wire == 1:
                    f.seek(8, os.SEEK_CUR)
                elif wire == 5:
                    f.seek(4, os.SEEK_CUR)
                elif wire == 2:
                    n = varint(f)
                    if n is None or f.tell() + n > size:
                        return {}
                    if number == 14:  # ModelProto.metadata_props
                        entry = fields(f.read(n))
                        key = entry.get(1, b"").decode("utf-8", "replace")
                        out[key] = entry.get(2, b"").decode("utf-8", "replace")
                    else:
                        f.seek(n, os.SEEK_CUR)
                else:
                    return {}
    except (OSError, ValueError):
        return {}
    return out


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
    """What a downloaded file must be: published size and hashes, and the lock file's sha256."""

    size: int | None = None
    md5: str = ""
    sha256: str = ""  # published
    locked_sha256: str = ""  # recorded at the first download
    accept_new_hash: bool = False


def _check(path: Path, name: str, expect: _Expect, lock_path: Path) -> dict[str, str]:
    """Raises ChecksumError when the file at ``path`` is not what is expected; returns its
    hashes."""
    size = path.stat().st_size
    if expect.size is not None and size != expect.size:
        raise ChecksumError(
            f"{name}: {size} bytes, the publisher's size is {expect.size}: corrupt or another file"
        )
    h = _hash_file(path, "sha256", "md5")
    if expect.md5 and h["md5"] != expect.md5:
        raise ChecksumError(f"{name}: MD5 {h['md5']}, the publisher's MD5 is {expect.md5}")
    if expect.sha256 and h["sha256"] != expect.sha256:
        raise ChecksumError(
            f"{name}: sha256 {h['sha256']}, the publisher's sha256 is {expect.sha256}"
        )
    if expect.locked_sha256 and h["sha256"] != expect.locked_sha256 and not expect.accept_new_hash:
        raise ChecksumError(
            f"{name}: sha256 {h['sha256']} differs from {expect.locked_sha256} recorded in "
            f"{lock_path} at the first download; if the publisher really changed the file, "
            "accept it with `deepfaune-rs models fetch --accept-new-hash ...` "
            "(or delete its entry in the lock file)"
        )
    return h


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
            h = _check(part, name, expect, lock_path)
        except ChecksumError:
            part.unlink(missing_ok=True)  # start over
            meta.unlink(missing_ok=True)
        else:
            came_from = str(_read_json(meta).get("url") or "")
            return _place(part, meta, folder / name), h["sha256"], came_from
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
                h = _check(part, name, expect, lock_path)
            except ChecksumError as e:
                part.unlink(missing_ok=True)
                meta.unlink(missing_ok=True)
                bad.append(ChecksumError(f"{e} (from {url})"))
                tried.append(f"{url}: refused ({e})")
                break
            return _place(part, meta, folder / name), h["sha256"], url
    if bad and len(bad) == len(tried):
        raise bad[0]
    raise DownloadError(f"could not download {name}: " + "; ".join(tried))


# ---------------------------------------------------------------------------------------------
# Status


@dataclass
class FileStatus:
    """Where one model file stands (see the module's docstring for the states)."""

    model_id: str
    role: str
    state: str
    path: Path  # the ONNX the core loads
    source: Path | None = None  # the downloaded file, when it differs from ``path``
    detail: str = ""
    sha256: str | None = None  # of ``path`` when hashed

    @property
    def label(self) -> str:
        return self.model_id if self.role == "model" else f"{self.model_id} bird head"


def _converter_version() -> str | None:
    try:
        from .convert import CONVERTER_VERSION
    except ImportError:
        return None
    return str(CONVERTER_VERSION)


def _status(a: Artifact, folder: Path, lock: Lock) -> FileStatus:
    path = folder / a.file
    if a.embedded:
        return FileStatus(a.model_id, a.role, "embedded", path, detail="inside the package")
    if a.url_format != "pt":
        if not path.is_file():
            return FileStatus(a.model_id, a.role, "missing", path)
        sha = sha256_file(path)
        pinned = a.file_sha256 or a.url_sha256 or (lock.file(a.file) or {}).get("sha256")
        if pinned and sha == pinned:
            return FileStatus(a.model_id, a.role, "verified", path, sha256=sha)
        why = "differs from the recorded sha256" if pinned else "no sha256 recorded"
        return FileStatus(a.model_id, a.role, "converted", path, detail=why, sha256=sha)
    src = folder / a.source_name
    has_src = src.is_file()
    if not path.is_file():
        state = "downloaded" if has_src else "missing"
        return FileStatus(a.model_id, a.role, state, path, src)
    sha = sha256_file(path)
    conv = lock.conversion(a.file)
    if conv is None or conv["sha256"] != sha:
        stamp = read_onnx_stamp(path)
        if stamp.get("converter") == "deepfaune-rs":
            why = "converted by deepfaune-rs, not recorded in the lock file"
        else:
            why = "not made by `models fetch` (not in the lock file)"
        if conv is not None:
            why = "sha256 differs from the lock file"
        return FileStatus(a.model_id, a.role, "converted", path, src, why, sha)
    current = _converter_version()
    if current is not None and conv.get("converter_version") != current:
        why = f"converter {conv.get('converter_version')} -> {current}: `models fetch` redoes it"
        state = "downloaded" if has_src else "converted"
        return FileStatus(a.model_id, a.role, state, path, src, why, sha)
    locked_src = lock.file(a.source_name)
    if locked_src is None or locked_src["sha256"] != conv.get("source_sha256"):
        why = "converted from another source than the one the lock file records"
        state = "downloaded" if has_src else "converted"
        return FileStatus(a.model_id, a.role, state, path, src, why, sha)
    if has_src and sha256_file(src) != locked_src["sha256"]:
        why = f"{a.source_name} changed since the conversion: `models fetch` redoes it"
        return FileStatus(a.model_id, a.role, "downloaded", path, src, why, sha)
    return FileStatus(a.model_id, a.role, "verified", path, src, sha256=sha)


def status(
    targets: Iterable[str] | None = None, folder: os.PathLike | str | None = None
) -> list[FileStatus]:
    """The state of every file of the built-in models (or of ``targets``): ``embedded``,
    ``missing``, ``downloaded``, ``converted`` or ``verified`` (defined in this module's
    docstring). Hashes every file present, so it takes a few seconds for the big classifiers."""
    folder = Path(folder) if folder is not None else model_dir()
    ids = resolve_targets(targets) if targets is not None else list(_rows())
    lock = Lock(folder)
    return [_status(a, folder, lock) for a in _artifacts_for(ids)]


# ---------------------------------------------------------------------------------------------
# Fetch


@dataclass
class FetchedFile:
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

    @property
    def label(self) -> str:
        return self.model_id if self.role == "model" else f"{self.model_id} bird head"


def _ensure_source(
    a: Artifact,
    folder: Path,
    lock: Lock,
    *,
    progress: bool,
    accept_new_hash: bool,
    retries: int | None,
    timeout: float | None,
    notes: list[str],
) -> tuple[Path, str, str | None]:
    """The downloaded file of ``a``, checked: there already, or downloaded now. Returns its
    path, sha256 and the URL it came from (None when it was there)."""
    name = a.source_name
    path = folder / name
    locked = lock.file(name)
    expect = _Expect(
        size=a.url_size,
        md5=a.url_md5,
        sha256=a.url_sha256 or (a.file_sha256 if a.url_format != "pt" else ""),
        locked_sha256=locked["sha256"] if locked else "",
        accept_new_hash=accept_new_hash,
    )
    if path.is_file():
        published = _Expect(size=expect.size, md5=expect.md5, sha256=expect.sha256)
        try:
            h = _check(path, name, published, lock.path)
        except ChecksumError as e:
            notes.append(f"{name} in the model directory was corrupt ({e}); downloaded again")
            path.unlink()
        else:
            if locked and h["sha256"] != locked["sha256"] and not accept_new_hash:
                raise ChecksumError(
                    f"{path}: sha256 {h['sha256']} differs from {locked['sha256']} recorded in "
                    f"{lock.path}; delete the file to download it again, or keep it with "
                    "`deepfaune-rs models fetch --accept-new-hash ...`"
                )
            if not locked or locked["sha256"] != h["sha256"]:
                lock.record_file(name, h["sha256"], path.stat().st_size, None)
            return path, h["sha256"], None
    dest, sha, url = download(
        name,
        a.urls(),
        folder,
        expect=expect,
        progress=progress,
        retries=retries,
        timeout=timeout,
    )
    if locked and locked["sha256"] != sha:
        notes.append(f"{name}: new sha256 {sha} accepted (was {locked['sha256']})")
    lock.record_file(name, sha, dest.stat().st_size, url)
    return dest, sha, url


def _convert(a: Artifact, src: Path, dest: Path, progress: bool) -> dict[str, Any]:
    try:
        from . import convert as conv
    except ImportError as e:
        raise ConversionError(
            f"converting {src.name} needs the onnx package ({e}): pip install onnx"
        ) from e
    _say(progress, f"converting {src.name} -> {dest.name}")
    kind = "detector" if a.kind == "detector" else a.kind
    size = a.input_size if a.kind == "classifier" else None
    try:
        info = conv.convert(src, dest, kind=kind, size=size)
    except ImportError as e:
        raise ConversionError(
            f"converting {src.name} needs the onnx package ({e}): pip install onnx"
        ) from e
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
    path = folder / a.file
    if a.embedded:
        return FetchedFile(a.model_id, a.role, "embedded", path)
    lock = Lock(folder)
    notes: list[str] = []
    common = dict(
        progress=progress,
        accept_new_hash=accept_new_hash,
        retries=retries,
        timeout=timeout,
        notes=notes,
    )
    if a.url_format != "pt":  # used as downloaded
        st = _status(a, folder, lock)
        if st.state == "verified":
            return FetchedFile(a.model_id, a.role, "verified", path, sha256=st.sha256)
        src, sha, url = _ensure_source(a, folder, lock, **common)  # type: ignore[arg-type]
        return FetchedFile(a.model_id, a.role, "verified", src, sha256=sha, url=url, notes=notes)

    st = _status(a, folder, lock)
    if st.state == "verified":
        locked_src = lock.file(a.source_name) or {}
        return FetchedFile(
            a.model_id,
            a.role,
            "verified",
            path,
            st.source if st.source and st.source.is_file() else None,
            st.sha256,
            locked_src.get("sha256"),
        )
    ours = lock.conversion(a.file) is not None
    if path.is_file() and not ours and read_onnx_stamp(path).get("converter") != "deepfaune-rs":
        # Someone's own export under the official name: theirs to replace, not ours.
        notes.append(
            f"kept {path.name}: it was not made by deepfaune-rs (delete it to fetch and "
            f"convert {a.source_name} instead)"
        )
        return FetchedFile(a.model_id, a.role, "converted", path, sha256=st.sha256, notes=notes)
    src, src_sha, url = _ensure_source(a, folder, lock, **common)  # type: ignore[arg-type]
    # An ONNX of ours that the lock file does not vouch for (converted by hand, another source,
    # another converter version, changed since) is converted again: "verified" only ever means
    # converted here, from a checked source.
    if not convert:
        return FetchedFile(
            a.model_id, a.role, "downloaded", path, src, None, src_sha, url, False, notes
        )
    info = _convert(a, src, path, progress)
    if info.get("source_sha256") and info["source_sha256"] != src_sha:
        raise ConversionError(
            f"{src.name} changed while it was converted (sha256 {info['source_sha256']}, "
            f"expected {src_sha}); run the fetch again"
        )
    lock.record_conversion(
        a.file, info["sha256"], src.name, src_sha, str(info.get("converter_version"))
    )
    return FetchedFile(
        a.model_id, a.role, "verified", path, src, info["sha256"], src_sha, url, True, notes
    )


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
    out = []
    for a in _artifacts_for(ids):
        out.append(
            _fetch_one(
                a,
                folder,
                progress=progress,
                convert=convert,
                accept_new_hash=accept_new_hash,
                retries=retries,
                timeout=timeout,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# What a run needs


def detector_ids(
    model: str | os.PathLike | None, secondary: str | os.PathLike | None = None
) -> list[str]:
    """Built-in detector ids that ``Detector(model, secondary=...)`` loads (paths and manifests
    are the caller's files: none). An unknown name raises :class:`UnknownModelError` listing
    the valid ones (before any missing weights are looked for)."""
    rows = _rows()
    out: list[str] = []
    for spec in (model, secondary):
        if spec is None:
            continue
        _core.check_model_spec("detector", os.fspath(spec).strip())
        key = os.fspath(spec).strip().lower()
        if key in MODES:
            out += MODES[key]
        elif key in rows and rows[key]["kind"] == "detector":
            out.append(key)
    return list(dict.fromkeys(out))


def classifier_id(classifier: str | os.PathLike | None) -> str | None:
    """The built-in classifier id of ``classifier``, or None for a file or manifest. An unknown
    name raises :class:`UnknownModelError` listing the valid ones."""
    if classifier is None:
        return None
    _core.check_model_spec("classifier", os.fspath(classifier).strip())
    key = os.fspath(classifier).strip().lower()
    row = _rows().get(key)
    return key if row is not None and row["kind"] == "classifier" else None


def missing(
    detectors: Sequence[str] = (),
    classifier: str | None = None,
    bird_head: bool = False,
    weights: Mapping[str, Any] | None = None,
) -> list[tuple[Artifact, Path]]:
    """The built-in model files a run needs that are not in the model directory (ids given
    an explicit file in ``weights`` are the caller's)."""
    given = {k.lower() for k in (weights or {})}
    folder = model_dir()
    need: list[Artifact] = []
    ids = [d for d in detectors if d not in given]
    need += _artifacts_for(ids, bird_head=False)
    if classifier is not None:
        arts = _artifacts_for([classifier], bird_head=True)
        need += arts if bird_head else arts[:1]
    return [
        (a, folder / a.file) for a in need if not a.embedded and not (folder / a.file).is_file()
    ]


def fetch_command(arts: Sequence[Artifact]) -> str:
    """The one command that fetches these files."""
    ids = list(dict.fromkeys(a.model_id for a in arts))
    return "deepfaune-rs models fetch " + " ".join(ids)


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
    gone = missing(detectors, classifier, bird_head, weights)
    if not gone:
        return
    arts = [a for a, _ in gone]
    if fetch_first:
        ids = list(dict.fromkeys(a.model_id for a in arts))
        fetch(*ids, progress=progress)
        return
    listing = "; ".join(f"{a.label} ({p})" for a, p in gone)
    cmd = fetch_command(arts)
    n = len(gone)
    e = WeightsNotFoundError(
        f"weights not found for {n} model file{'s' if n > 1 else ''}: {listing}; "
        f"get {'them' if n > 1 else 'it'} with `{cmd}` (or fetch=True / --fetch)"
    )
    e.missing = [(a.label, str(p)) for a, p in gone]  # type: ignore[attr-defined]
    e.command = cmd  # type: ignore[attr-defined]
    raise e
