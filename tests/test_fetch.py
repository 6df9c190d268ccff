"""Fetching official weights, against a loopback HTTP server (127.0.0.1, started per test).

The server serves files from a temporary folder with injectable faults (no Range support, a
connection cut after N bytes, 404, corrupted bytes) and records every request. A guard fails any
test that asks urllib for an address other than 127.0.0.1, and every test sets
``DEEPFAUNE_RS_BASE_URL`` or rewrites the manifests' URLs to the loopback server, so nothing here
can reach the network. Expected hashes come from hashlib on the served bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
import sys
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import deepfaune_rs
import deepfaune_rs.pipeline
from deepfaune_rs import cli
from deepfaune_rs import fetch as F
from deepfaune_rs.errors import ChecksumError, DownloadError, UnknownModelError

DF_PT = "deepfaune-yolov8s_960.pt"
DF_ONNX = "deepfaune-yolov8s_960.onnx"
MDS_PT = "md_v1000.0.0-sorrel.pt"


# ---------------------------------------------------------------------------------------------
# The loopback server


@dataclass
class Fault:
    status: int | None = None  # answer this HTTP status instead of the file
    cut_after: int | None = None  # send the headers, then only this many body bytes, then close
    cut_times: int = 1  # how many responses are cut (then the file is served whole)
    no_range: bool = False  # ignore Range (answer 200 with the whole file)
    corrupt: bool = False  # flip one byte in the middle
    ignore_if_range: bool = False  # resume even when If-Range names another version


class LoopbackServer:
    """Serves ``root/NAME`` at ``/NAME`` and ``/ANY/PREFIX/NAME`` (the prefix is ignored, so one
    server stands in for several mirrors; faults are keyed by the full path or by NAME)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.faults: dict[str, Fault] = {}
        self.requests: list[dict] = []
        self.cuts: dict[str, int] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                name = path.rsplit("/", 1)[-1]
                fault = server.faults.get(path) or server.faults.get(name) or Fault()
                rng = self.headers.get("Range")
                with server.lock:
                    server.requests.append({"path": path, "range": rng, "status": None})
                    entry = server.requests[-1]
                file = server.root / name
                if fault.status is not None or not file.is_file():
                    entry["status"] = fault.status or 404
                    self.send_error(entry["status"])
                    return
                data = bytearray(file.read_bytes())
                if fault.corrupt:
                    data[len(data) // 2] ^= 0xFF
                etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
                start = 0
                if_range = self.headers.get("If-Range")
                entry["if_range"], entry["etag"] = if_range, etag
                fresh = if_range is None or if_range == etag or fault.ignore_if_range
                if rng and not fault.no_range and fresh:
                    start = int(rng.split("=", 1)[1].split("-", 1)[0])
                    if start >= len(data):
                        entry["status"] = 416
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                    entry["status"] = 206
                else:
                    self.send_response(200)
                    entry["status"] = 200
                body = bytes(data[start:])
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.end_headers()
                with server.lock:
                    done = server.cuts.get(path, 0)
                    cut = fault.cut_after is not None and done < fault.cut_times
                    if cut:
                        server.cuts[path] = done + 1
                if cut:
                    self.wfile.write(body[: fault.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    def add(self, name: str, data: bytes) -> bytes:
        (self.root / name).write_bytes(data)
        return data

    def gets(self, name: str) -> list[dict]:
        return [r for r in self.requests if r["path"].rsplit("/", 1)[-1] == name]


@pytest.fixture
def loopback_only(monkeypatch):
    """The core refuses any host but 127.0.0.1 ($DEEPFAUNE_RS_ALLOWED_HOSTS, before it
    connects; a local file:// path is not a host), and so does urllib; records the URLs a
    download was started from."""
    asked: list[str] = []
    monkeypatch.setenv("DEEPFAUNE_RS_ALLOWED_HOSTS", "127.0.0.1")
    real_say = F._Hooks.say

    def say(self, text: str) -> None:  # noqa: ANN001
        if text.startswith("downloading ") and " from " in text:
            asked.append(text.split(" from ", 1)[1].split(" ", 1)[0])
        real_say(self, text)

    monkeypatch.setattr(F._Hooks, "say", say)
    real_err = cli._Hooks.err

    def err(self, text: str) -> None:  # noqa: ANN001 - the command line's download lines
        if text.startswith("downloading ") and " from " in text:
            asked.append(text.split(" from ", 1)[1].split(" ", 1)[0])
        real_err(self, text)

    monkeypatch.setattr(cli._Hooks, "err", err)
    real_open = urllib.request.OpenerDirector.open

    def guarded(self, fullurl, *args, **kwargs):  # noqa: ANN001
        url = fullurl if isinstance(fullurl, str) else fullurl.full_url
        asked.append(url)
        parts = urllib.parse.urlsplit(url)
        if parts.hostname != "127.0.0.1" and not (parts.scheme == "file" and not parts.netloc):
            pytest.fail(f"the test asked for a non-loopback URL: {url}")
        return real_open(self, fullurl, *args, **kwargs)

    monkeypatch.setattr(urllib.request.OpenerDirector, "open", guarded)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    return asked


def test_the_core_refuses_hosts_not_allowed(loopback_only, models, sleeps, monkeypatch):
    """The guard above is real: with the official URLs (no base URL), the download is refused
    before any connection, naming the host and the setting."""
    monkeypatch.delenv("DEEPFAUNE_RS_BASE_URL", raising=False)
    with pytest.raises(DownloadError) as e:
        F.fetch("df", progress=False, convert=False)
    assert "is not in DEEPFAUNE_RS_ALLOWED_HOSTS (127.0.0.1)" in str(e.value)
    assert loopback_only == []
    assert not (models / DF_PT).exists()


NO_CHECKS = {"url_size": None, "url_md5": "", "url_sha256": ""}


def patch_artifacts(monkeypatch, change) -> None:
    """Every built-in file fetch.py handles goes through ``change(artifact)`` first."""
    real = F._artifacts_for

    def artifacts(ids=None, bird_head=True):
        return [change(a) for a in real(ids, bird_head)]

    monkeypatch.setattr(F, "_artifacts_for", artifacts)


def without_published_checks(monkeypatch) -> None:
    """The stand-ins served here are not the publishers' files: the manifests' published size
    and checksums are set aside (tests of those checks set their own)."""
    patch_artifacts(monkeypatch, lambda a: dataclasses.replace(a, **NO_CHECKS))


@pytest.fixture
def server(tmp_path, loopback_only, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    srv = LoopbackServer(served)
    monkeypatch.setenv(F.ENV_BASE_URL, srv.url)
    without_published_checks(monkeypatch)
    yield srv
    srv.stop()


@pytest.fixture
def models(tmp_path, monkeypatch):
    d = tmp_path / "models"
    monkeypatch.setenv("DEEPFAUNE_RS_MODELS", str(d))
    return d


@pytest.fixture
def sleeps(monkeypatch):
    """The back-off delays asked for (without waiting)."""
    out: list[float] = []
    monkeypatch.setattr(F, "_sleep", out.append)
    return out


def set_rows(monkeypatch, **changes: dict) -> None:
    """Rewrites fields of the built-in models' own files: ``df={"url_size": 3}``."""
    changes = {mid.replace("_", "-"): fields for mid, fields in changes.items()}

    def change(a):
        fields = changes.get(a.model_id) if a.role == "model" else None
        if fields and "mirrors" in fields:
            fields = {**fields, "mirrors": tuple(fields["mirrors"])}
        return dataclasses.replace(a, **fields) if fields else a

    patch_artifacts(monkeypatch, change)


def payload(n: int, seed: int = 0) -> bytes:
    """Deterministic bytes that are not a repeated pattern (a shifted restart would show)."""
    out = bytearray()
    block = seed.to_bytes(4, "little")
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


def listing_states(stdout: str) -> dict[str, str]:
    """``deepfaune-rs models`` output -> {"df": "verified", "deepfaune-v15 bird head": ...}."""
    out: dict[str, str] = {}
    model = None
    for line in stdout.splitlines():
        words = line.split()
        if line[:1].isalnum() and len(words) > 2 and not line.startswith("model directory"):
            model = words[0]
            out[model] = words[2]
        elif line.startswith("  + bird head") and model:
            out[f"{model} bird head"] = words[3]
    return out


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------------------------------------
# Download: resume, restart, retries, mirrors, failures


def test_cut_download_resumes_with_range(server, models, sleeps):
    data = server.add(DF_PT, payload(300_000))
    server.faults[DF_PT] = Fault(cut_after=100_000)
    done = F.fetch("df", progress=False, convert=False, retries=2)
    assert [(r["range"], r["status"]) for r in server.gets(DF_PT)] == [
        (None, 200),
        ("bytes=100000-", 206),
    ]
    assert (models / DF_PT).read_bytes() == data
    assert sleeps == [F.BACKOFF_S]
    assert done[0].state == "downloaded" and done[0].source == models / DF_PT
    assert leftovers(models) == sorted([DF_PT, F.LOCK_NAME])  # no .part, no temp file


def test_interrupted_fetch_resumes_in_the_next_call(server, models, sleeps):
    data = server.add(DF_PT, payload(200_000, seed=1))
    server.faults[DF_PT] = Fault(cut_after=50_000)
    with pytest.raises(DownloadError):
        F.fetch("df", progress=False, convert=False, retries=0)
    part = models / f".{DF_PT}.part"
    assert part.stat().st_size == 50_000 and not (models / DF_PT).exists()
    assert F.status(["df"])[0].state == "missing"
    F.fetch("df", progress=False, convert=False, retries=0)
    assert server.gets(DF_PT)[-1]["range"] == "bytes=50000-"
    assert (models / DF_PT).read_bytes() == data and not part.exists()


def test_complete_part_is_checked_not_downloaded_again(server, models, sleeps, monkeypatch):
    # A crash between the end of the download and the rename leaves a complete .part.
    data = server.add(DF_PT, payload(20_000, seed=12))
    set_rows(monkeypatch, df={"url_size": len(data), "url_md5": hashlib.md5(data).hexdigest()})
    models.mkdir()
    (models / f".{DF_PT}.part").write_bytes(data)
    F.fetch("df", progress=False, convert=False)
    assert server.requests == [] and (models / DF_PT).read_bytes() == data
    # The same, but damaged: thrown away and downloaded again in full.
    (models / DF_PT).unlink()
    bad = bytearray(data)
    bad[5] ^= 1
    (models / f".{DF_PT}.part").write_bytes(bytes(bad))
    F.fetch("df", progress=False, convert=False)
    assert [r["range"] for r in server.requests] == [None]
    assert (models / DF_PT).read_bytes() == data


@pytest.mark.parametrize("if_range", [True, False])
def test_resume_of_a_file_that_changed_restarts(server, models, sleeps, if_range):
    server.add(DF_PT, payload(60_000, seed=13))
    server.faults[DF_PT] = Fault(cut_after=10_000)
    with pytest.raises(DownloadError):
        F.fetch("df", progress=False, convert=False, retries=0)
    new = server.add(DF_PT, payload(70_000, seed=14))  # the publisher replaced the file
    server.faults[DF_PT] = Fault(ignore_if_range=not if_range)
    F.fetch("df", progress=False, convert=False, retries=1)
    reqs = server.gets(DF_PT)
    assert reqs[1]["if_range"] == reqs[0]["etag"]  # the validator of the first response
    if if_range:  # the server sees that the file changed and sends all of it
        assert [r["status"] for r in reqs] == [200, 200]
    else:  # the client sees the new size in Content-Range and starts over
        assert [r["status"] for r in reqs] == [200, 206, 200]
    assert (models / DF_PT).read_bytes() == new


def test_server_without_range_support_restarts_cleanly(server, models, sleeps):
    data = server.add(DF_PT, payload(120_000, seed=2))
    server.faults[DF_PT] = Fault(cut_after=40_000, no_range=True)
    F.fetch("df", progress=False, convert=False, retries=1)
    reqs = server.gets(DF_PT)
    assert [(r["range"], r["status"]) for r in reqs] == [(None, 200), ("bytes=40000-", 200)]
    assert (models / DF_PT).read_bytes() == data  # not the first 40000 bytes twice


def test_retries_back_off_exponentially_then_one_line(server, models, sleeps):
    server.add(DF_PT, payload(100_000))
    server.faults[DF_PT] = Fault(cut_after=1000, cut_times=99)
    with pytest.raises(DownloadError) as e:
        F.fetch("df", progress=False, convert=False, retries=3)
    msg = str(e.value)
    assert "\n" not in msg and DF_PT in msg and f"{server.url}/{DF_PT}" in msg
    assert "connection" in msg and "4 attempts" in msg
    assert sleeps == [F.BACKOFF_S, 2 * F.BACKOFF_S, 4 * F.BACKOFF_S]
    # Every attempt continued where the previous one stopped; the bytes are kept for later.
    assert [r["range"] for r in server.gets(DF_PT)] == [
        None,
        "bytes=1000-",
        "bytes=2000-",
        "bytes=3000-",
    ]
    assert (models / f".{DF_PT}.part").stat().st_size == 4000
    assert not (models / DF_PT).exists()


def test_progress_bar_on_stderr(server, models, sleeps, capsys, monkeypatch):
    # The text bar (tqdm's, when installed, is tqdm's own format).
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    server.add(DF_PT, payload(300_000))
    F.fetch("df", progress=True, convert=False)
    err = capsys.readouterr().err
    assert f"downloading {DF_PT} from {server.url}/{DF_PT}" in err
    last = err.split("\r")[-1]
    assert last.startswith(f"{DF_PT} [{'#' * 30}] 300.0 kB/300.0 kB ") and last.endswith("\n")


def test_file_url_mirror(tmp_path, loopback_only, models, sleeps, monkeypatch):
    without_published_checks(monkeypatch)
    share = tmp_path / "share"
    share.mkdir()
    data = payload(5000, seed=11)
    (share / DF_PT).write_bytes(data)
    monkeypatch.setenv(F.ENV_BASE_URL, share.as_uri())
    done = F.fetch("df", progress=False, convert=False)
    assert (models / DF_PT).read_bytes() == data and done[0].url == f"{share.as_uri()}/{DF_PT}"


def test_one_download_of_a_file_at_a_time(server, models, sleeps):
    fcntl = pytest.importorskip("fcntl")
    server.add(DF_PT, payload(1000))
    models.mkdir()
    with open(models / f".{DF_PT}.part.lock", "w") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(DownloadError) as e:
            F.fetch("df", progress=False, convert=False)
        assert "another process is downloading" in str(e.value)
    assert server.requests == []
    F.fetch("df", progress=False, convert=False)  # released: it goes through
    assert leftovers(models) == sorted([DF_PT, F.LOCK_NAME])


def test_404_is_one_line_naming_file_and_url(server, models, sleeps):
    with pytest.raises(DownloadError) as e:
        F.fetch("df", progress=False, retries=3)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"could not download {DF_PT}: {server.url}/{DF_PT}: HTTP 404")
    assert sleeps == []  # a 404 is not retried
    assert leftovers(models) == []


def test_cli_network_failure_is_one_line(server, models, sleeps, capsys):
    server.faults[DF_PT] = Fault(cut_after=10, cut_times=99)
    server.add(DF_PT, payload(5000))
    code = cli.main(["models", "fetch", "DF", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == cli.EXIT_ERROR
    assert len(err.splitlines()) == 1, err
    assert err.startswith("deepfaune-rs: error: could not download " + DF_PT)
    assert f"{server.url}/{DF_PT}" in err and "connection" in err


def test_mirror_fallback(tmp_path, loopback_only, models, sleeps, monkeypatch):
    monkeypatch.delenv(F.ENV_BASE_URL, raising=False)
    without_published_checks(monkeypatch)
    srv = LoopbackServer(tmp_path)
    try:
        data = srv.add(DF_PT, payload(10_000, seed=3))
        dead, good = f"{srv.url}/official/{DF_PT}", f"{srv.url}/mirror/{DF_PT}"
        srv.faults[f"/official/{DF_PT}"] = Fault(status=404)
        set_rows(monkeypatch, df={"url": dead, "mirrors": [good]})
        done = F.fetch("df", progress=False, convert=False)
        assert [r["path"] for r in srv.requests] == [f"/official/{DF_PT}", f"/mirror/{DF_PT}"]
        assert done[0].url == good
        assert (models / DF_PT).read_bytes() == data
        assert json.loads((models / F.LOCK_NAME).read_text())["files"][DF_PT]["url"] == good
        # With the base URL set, only $DEEPFAUNE_RS_BASE_URL/NAME is asked for.
        monkeypatch.setenv(F.ENV_BASE_URL, f"{srv.url}/inst/")
        assert F.resolve_targets(["df"]) == ["df"]
        art = F._artifacts_for(["df"])[0]
        assert art.urls() == [f"{srv.url}/inst/{DF_PT}"]
    finally:
        srv.stop()


def test_no_server_gives_one_clear_line(loopback_only, models, sleeps, monkeypatch, capsys):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    monkeypatch.setenv(F.ENV_BASE_URL, f"http://127.0.0.1:{port}")
    code = cli.main(["models", "fetch", "mds", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == cli.EXIT_ERROR and len(err.splitlines()) == 1, err
    assert f"http://127.0.0.1:{port}/{MDS_PT}" in err and "refused" in err.lower()
    assert len(sleeps) == F.RETRIES  # the command line's retries are the core's
    assert leftovers(models) == []


# ---------------------------------------------------------------------------------------------
# Verification and the lock file


def test_size_mismatch_refused_and_not_placed(server, models, sleeps, monkeypatch):
    data = server.add(DF_PT, payload(4096))
    set_rows(monkeypatch, df={"url_size": len(data) + 1})
    with pytest.raises(ChecksumError) as e:
        F.fetch("df", progress=False, convert=False)
    assert f"{DF_PT}: 4096 bytes, the publisher's size is 4097" in str(e.value)
    assert leftovers(models) == []


def test_md5_mismatch_refused_and_not_placed(server, models, sleeps, monkeypatch):
    data = server.add(MDS_PT, payload(50_000, seed=4))
    good_md5 = hashlib.md5(data).hexdigest()
    set_rows(monkeypatch, mds={"url_md5": good_md5, "url_size": len(data)})
    server.faults[MDS_PT] = Fault(corrupt=True)
    with pytest.raises(ChecksumError) as e:
        F.fetch("MDS", progress=False, convert=False)
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    msg = str(e.value)
    assert hashlib.md5(bad).hexdigest() in msg and good_md5 in msg and "\n" not in msg
    assert leftovers(models) == []
    del server.faults[MDS_PT]  # the server is fixed: the same call now succeeds
    F.fetch("MDS", progress=False, convert=False)
    assert (models / MDS_PT).read_bytes() == data


def test_sha256_published_is_checked(server, models, sleeps, monkeypatch):
    data = server.add(DF_PT, payload(3000, seed=5))
    set_rows(monkeypatch, df={"url_sha256": hashlib.sha256(b"another file").hexdigest()})
    with pytest.raises(ChecksumError) as e:
        F.fetch("df", progress=False, convert=False)
    assert hashlib.sha256(data).hexdigest() in str(e.value)
    assert leftovers(models) == []


def test_lock_records_first_download_and_refuses_a_changed_one(server, models, sleeps, capsys):
    first = server.add(DF_PT, payload(8000, seed=6))
    F.fetch("df", progress=False, convert=False)
    lock = json.loads((models / F.LOCK_NAME).read_text())
    entry = lock["files"][DF_PT]
    assert entry["sha256"] == hashlib.sha256(first).hexdigest()
    assert entry["size"] == len(first) and entry["url"] == f"{server.url}/{DF_PT}"
    assert not [n for n in leftovers(models) if n.endswith(".tmp")]

    # Present and matching: no new request.
    n = len(server.requests)
    F.fetch("df", progress=False, convert=False)
    assert len(server.requests) == n

    # The publisher's file changes; the local copy is gone: the new download is refused.
    (models / DF_PT).unlink()
    second = server.add(DF_PT, payload(8000, seed=7))
    with pytest.raises(ChecksumError) as e:
        F.fetch("df", progress=False, convert=False)
    msg = str(e.value)
    old, new = hashlib.sha256(first).hexdigest(), hashlib.sha256(second).hexdigest()
    assert DF_PT in msg and old in msg and new in msg and "--accept-new-hash" in msg
    assert not (models / DF_PT).exists() and not (models / f".{DF_PT}.part").exists()
    assert json.loads((models / F.LOCK_NAME).read_text())["files"][DF_PT]["sha256"] == old

    # The CLI says it in one line too, then accepts it when told to.
    assert cli.main(["models", "fetch", "df", "--no-progress", "--no-convert"]) == cli.EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and new in err
    args = ["models", "fetch", "df", "--no-progress", "--no-convert", "--accept-new-hash"]
    assert cli.main(args) == cli.EXIT_OK
    assert (models / DF_PT).read_bytes() == second
    assert json.loads((models / F.LOCK_NAME).read_text())["files"][DF_PT]["sha256"] == new


def test_local_file_that_differs_from_the_lock_is_refused(server, models, sleeps):
    server.add(DF_PT, payload(2000, seed=8))
    F.fetch("df", progress=False, convert=False)
    (models / DF_PT).write_bytes(payload(2000, seed=9))
    with pytest.raises(ChecksumError) as e:
        F.fetch("df", progress=False, convert=False)
    assert str(models / DF_PT) in str(e.value) and "delete the file" in str(e.value)


def test_unknown_target_is_a_usage_error_before_any_request(server, models, capsys):
    with pytest.raises(UnknownModelError) as e:
        F.fetch("df", "nope", "DFbsMDS", progress=False)
    assert "'nope'" in str(e.value)
    assert server.requests == []
    assert cli.main(["models", "fetch", "nope"]) == cli.EXIT_USAGE
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_targets():
    cls = deepfaune_rs.pipeline.DEFAULT_CLASSIFIER
    assert F.resolve_targets(["deepfaune"]) == ["df", "mds", cls]
    assert F.resolve_targets(["DFbsMDS", "dfmds", "MDR"]) == ["df", "mds", "mdr"]
    assert F.resolve_targets(["Deepfaune-V14", "mds"]) == ["deepfaune-v14", "mds"]
    assert F.detector_ids("DFMDS") == ["df", "mds"]
    assert F.detector_ids("md-lite") == ["md-lite"] and F.detector_ids("x/y.onnx") == []
    assert F.classifier_id("deepfaune-v13") == "deepfaune-v13"
    assert F.classifier_id("model.onnx") is None
    # A name that is no built-in classifier is a typo to name now, not a file to skip.
    with pytest.raises(UnknownModelError, match="unknown model 'df'.*deepfaune-v15"):
        F.classifier_id("df")
    with pytest.raises(UnknownModelError, match="unknown model 'md-lit'.*md-lite.*DFbsMDS"):
        F.detector_ids("md-lit")


# ---------------------------------------------------------------------------------------------
# Missing weights fail fast, all at once


def test_weights_not_found_lists_all_missing_models_at_once(models, loopback_only, capsys):
    import deepfaune_rs.pipeline  # the command line no longer imports it

    cls = deepfaune_rs.pipeline.DEFAULT_CLASSIFIER
    rows = {m["id"]: m for m in deepfaune_rs.list_models()}
    with pytest.raises(deepfaune_rs.WeightsNotFoundError) as e:
        deepfaune_rs.Pipeline()
    msg = str(e.value)
    for mid in ("df", "mds", cls):
        assert str(models / rows[mid]["file"]) in msg
    assert f"`deepfaune-rs models fetch df mds {cls}`" in msg
    assert e.value.command == f"deepfaune-rs models fetch df mds {cls}"
    assert [m[0] for m in e.value.missing] == ["df", "mds", cls]
    assert loopback_only == []  # no network access

    # One present: the others are still listed together, and only they are to be fetched.
    models.mkdir()
    (models / rows["df"]["file"]).write_bytes(b"")
    with pytest.raises(deepfaune_rs.WeightsNotFoundError) as e:
        deepfaune_rs.Pipeline("DFMDS", "deepfaune-v11")
    assert e.value.command == "deepfaune-rs models fetch mds deepfaune-v11"

    # The CLI: one line, exit 1, before any image is read.
    code = cli.main(["run", str(models), "-o", str(models / "r.csv"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == cli.EXIT_ERROR and len(err.splitlines()) == 1
    assert f"deepfaune-rs models fetch mds {cls}" in err
    # A detector alone names only what detection needs; md-lite needs nothing.
    with pytest.raises(deepfaune_rs.WeightsNotFoundError) as e:
        deepfaune_rs.Detector("MDR")
    assert e.value.command == "deepfaune-rs models fetch mdr"
    deepfaune_rs.Detector("md-lite")
    assert loopback_only == []


def test_bird_head_is_required_only_when_asked(models, monkeypatch):
    rows = {m["id"]: m for m in deepfaune_rs.list_models()}
    with_head = [i for i, m in rows.items() if m.get("bird_head")]
    if not with_head:
        pytest.skip("the manifests' rows do not describe bird heads yet")
    cid = with_head[0]
    models.mkdir()
    (models / rows[cid]["file"]).write_bytes(b"")
    assert F.missing([], cid, bird_head=False) == []
    gone = F.missing([], cid, bird_head=True)
    assert [(a.label, p) for a, p in gone] == [
        (f"{cid} bird head", models / rows[cid]["bird_head"]["file"])
    ]


# ---------------------------------------------------------------------------------------------
# Conversion, the lock file's conversion records, and the states


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "convert"


@pytest.fixture
def yolo_pt() -> Path:
    p = FIXTURES / "yolov8_tiny.pt"
    if not p.is_file():
        pytest.skip("tests/fixtures/convert/yolov8_tiny.pt not there")
    return p


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def state(mid: str = "df") -> F.FileStatus:
    return F.status([mid])[0]


def test_stamp_reader_agrees_with_onnx(yolo_pt, tmp_path):
    import onnx

    from deepfaune_rs.convert import convert

    out = tmp_path / "y.onnx"
    convert(yolo_pt, out)
    expected = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert F.read_onnx_stamp(out) == expected
    assert expected["source_sha256"] == sha(yolo_pt)
    assert F.read_onnx_stamp(yolo_pt) == {}  # a zip, not ONNX


def test_fetch_converts_records_and_verifies(server, models, sleeps, yolo_pt):
    from deepfaune_rs.convert import CONVERTER_VERSION

    assert state().state == "missing"
    server.add(DF_PT, yolo_pt.read_bytes())
    F.fetch("df", progress=False, convert=False)
    st = state()
    assert (st.state, st.path, st.source) == ("downloaded", models / DF_ONNX, models / DF_PT)

    done = F.fetch("DF", progress=False)
    assert done[0].state == "verified" and done[0].converted and done[0].url is None
    onnx_path = models / DF_ONNX
    lock = json.loads((models / F.LOCK_NAME).read_text())
    conv = lock["conversions"][DF_ONNX]
    assert conv["sha256"] == sha(onnx_path)
    assert conv["source"] == DF_PT and conv["source_sha256"] == sha(yolo_pt)
    assert conv["converter_version"] == CONVERTER_VERSION
    assert F.read_onnx_stamp(onnx_path)["source_sha256"] == sha(yolo_pt)
    assert state().state == "verified"
    # The core loads what was converted, under the manifest's name.
    assert deepfaune_rs.Detector("DF").models == ["df"]

    # Nothing to do the second time: no request, no conversion.
    n = len(server.requests)
    again = F.fetch("df", progress=False)
    assert again[0].state == "verified" and not again[0].converted
    assert len(server.requests) == n

    # Without the .pt, the ONNX stays verified by the lock file.
    (models / DF_PT).unlink()
    assert state().state == "verified"


def test_stale_conversions_are_noticed_and_redone(server, models, sleeps, yolo_pt, monkeypatch):
    import deepfaune_rs.convert as conv_mod

    server.add(DF_PT, yolo_pt.read_bytes())
    F.fetch("df", progress=False)
    onnx_path = models / DF_ONNX

    # A newer converter: the conversion is stale, fetch redoes it and records the version.
    monkeypatch.setattr(conv_mod, "CONVERTER_VERSION", "999")
    monkeypatch.setattr(conv_mod, "convert", partial(conv_mod.convert, converter_version="999"))
    st = state()
    assert st.state == "downloaded" and "converter" in st.detail
    done = F.fetch("df", progress=False)
    assert done[0].converted and done[0].state == "verified"
    assert F.read_onnx_stamp(onnx_path)["converter_version"] == "999"
    lock = json.loads((models / F.LOCK_NAME).read_text())
    assert lock["conversions"][DF_ONNX]["converter_version"] == "999"
    assert state().state == "verified"

    # The ONNX is damaged after the conversion: not verified any more; fetch converts again.
    data = bytearray(onnx_path.read_bytes())
    data[-100] ^= 0xFF
    onnx_path.write_bytes(bytes(data))
    st = state()
    assert st.state == "converted" and "differs from the lock file" in st.detail
    assert F.fetch("df", progress=False)[0].converted
    assert state().state == "verified"

    # A new source in place of the recorded one: refused, unless accepted; the conversion then
    # follows the source.
    other = FIXTURES / "yolo11_tiny.pt"
    if other.is_file():
        (models / DF_PT).write_bytes(other.read_bytes())
        st = state()
        assert st.state == "downloaded" and "changed since the conversion" in st.detail
        with pytest.raises(ChecksumError):
            F.fetch("df", progress=False)
        done = F.fetch("df", progress=False, accept_new_hash=True)
        assert done[0].converted and done[0].source_sha256 == sha(other)
        lock = json.loads((models / F.LOCK_NAME).read_text())
        assert lock["conversions"][DF_ONNX]["source_sha256"] == sha(other)
        assert F.read_onnx_stamp(onnx_path)["source_sha256"] == sha(other)
        assert state().state == "verified"


def test_onnx_not_made_here_is_kept_and_reported(server, models, sleeps, shared_models, capsys):
    models.mkdir()
    mine = (shared_models / "md_lite_yolox_tiny_640.onnx").read_bytes()
    (models / DF_ONNX).write_bytes(mine)
    st = state()
    assert st.state == "converted" and "not made by" in st.detail
    done = F.fetch("df", progress=False)
    assert done[0].state == "converted" and "kept" in done[0].notes[0]
    assert (models / DF_ONNX).read_bytes() == mine
    assert server.requests == []  # nothing downloaded for a file that is kept
    # The listing says so.
    assert cli.main(["models"]) == cli.EXIT_OK
    out = capsys.readouterr().out
    line = next(s for s in out.splitlines() if s.startswith("df "))
    assert line.split()[:3] == ["df", "detector", "converted"]
    assert next(s for s in out.splitlines() if s.startswith("md-lite")).split()[2] == "embedded"


def test_models_cli_states(server, models, sleeps, yolo_pt, capsys):
    server.add(DF_PT, yolo_pt.read_bytes())
    server.add(MDS_PT, yolo_pt.read_bytes())
    # MDS's published MD5 is not the stand-in's: its download (the API's, which the fixture
    # lets through without the published checks) is set up here; the command line fetches df.
    F.fetch("MDS", progress=False, convert=False)
    assert cli.main(["models", "fetch", "df", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert (
        f"df{' ' * 22} verified   {models / DF_ONNX} (downloaded from {server.url}/{DF_PT}, "
        "converted)" in out
    )
    assert cli.main(["models"]) == 0
    out = capsys.readouterr().out
    states = listing_states(out)
    assert states["df"] == "verified" and states["mds"] == "downloaded"
    assert states["mdr"] == "missing" and states["md-lite"] == "embedded"
    cls = deepfaune_rs.pipeline.DEFAULT_CLASSIFIER
    assert states[cls] == states[f"{cls} bird head"] == "missing"
    assert f"model directory: {models} " in out.splitlines()[0]
    # The lock file's conversion entry removed: a converted file, no longer verified.
    lock = json.loads((models / F.LOCK_NAME).read_text())
    del lock["conversions"][DF_ONNX]
    (models / F.LOCK_NAME).write_text(json.dumps(lock))
    st = state()
    assert st.state == "converted" and "not recorded" in st.detail


def test_detect_fetch_flag(server, models, sleeps, yolo_pt, testdata, tmp_path, capsys):
    server.add(MDS_PT, yolo_pt.read_bytes())
    img = next(iter(sorted((testdata / "southwest").glob("*.JPG"))))
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / img.name).symlink_to(img)
    out = tmp_path / "out.json"
    args = ["detect", str(folder), "-o", str(out), "--model", "MDS", "--no-progress"]
    assert cli.main(args) == cli.EXIT_ERROR  # missing, and not fetched unless asked
    assert "deepfaune-rs models fetch mds" in capsys.readouterr().err
    assert server.requests == [] and not out.exists()
    assert cli.main([*args, "--fetch"]) == cli.EXIT_OK
    assert [r["path"] for r in server.requests] == [f"/{MDS_PT}"]
    assert [i["file"] for i in json.loads(out.read_text())["images"]] == [img.name]
    assert state("mds").state == "verified"


def test_convert_cli(yolo_pt, tmp_path, capsys):
    out = tmp_path / "d.onnx"
    assert cli.main(["convert", str(yolo_pt), "-o", str(out)]) == cli.EXIT_OK
    printed = capsys.readouterr().out
    assert f"output: {out}" in printed and f"source_sha256: {sha(yolo_pt)}" in printed
    assert f"sha256: {sha(out)}" in printed
    assert cli.main(["convert", str(tmp_path / "nope.pt")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no such file" in err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert cli.main(["convert", str(junk)]) == cli.EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot convert" in err
    assert not (tmp_path / "junk.onnx").exists()


def test_run_fetch_flag(server, models, sleeps, yolo_pt, testdata, shared_models, tmp_path, capsys):
    from conftest import REPO

    server.add(MDS_PT, yolo_pt.read_bytes())
    folder = tmp_path / "images"
    folder.mkdir()
    imgs = sorted((testdata / "southwest").glob("*.JPG"))[:2]
    for img in imgs:
        (folder / img.name).symlink_to(img)
    out = tmp_path / "r.csv"
    args = ["run", str(folder), "-o", str(out), "--detector", "MDS", "--no-progress"]
    args += ["--classifier", str(shared_models / "pixel_classifier_182_c38.onnx")]
    args += ["--classifier-manifest", str(REPO / "models" / "tiny-pixel-c38.toml")]
    assert cli.main(args) == cli.EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.endswith("(or fetch=True / --fetch)") and "models fetch mds`" in err
    assert server.requests == []
    assert cli.main([*args, "--fetch"]) == cli.EXIT_OK
    assert [r["path"] for r in server.requests] == [f"/{MDS_PT}"]
    assert len(out.read_text().splitlines()) == 1 + len(imgs)


def test_published_checks_reach_fetch(monkeypatch):
    """What the publishers give (issue 10, ../shared/deepfaune-1.5.md) is what fetch checks."""
    monkeypatch.delenv(F.ENV_BASE_URL, raising=False)
    arts = {a.label: a for a in F._artifacts_for(["mds", "deepfaune-v15"])}
    assert arts["mds"].url_md5 == "4339a2c8af7a381f18ded7ac2a4df03e"
    assert arts["deepfaune-v15"].url_size == 1_212_611_300
    assert arts["deepfaune-v15"].urls()[0].startswith("https://pbil.univ-lyon1.fr/")
    hf = arts["deepfaune-v15"].urls()[1]
    assert "Addax-Data-Science/EUR-DF-v1-5" in hf
    assert "e5c04750c44cb2ecbfa4f86624c37ae438f0b3dd" in hf
    assert arts["deepfaune-v15 bird head"].source_name.endswith("-bird_head.pt")
