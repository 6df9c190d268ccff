"""Downloading a model file from a local HTTP server (a benchmark, not a test): the core's
transfer (``deepfaune_rs.fetch.download``: ureq, written to ``.NAME.part``, synced, sha256
checked, renamed) against a plain Python ``urllib`` copy loop (1 MiB reads, written, synced)
followed by the same sha256 check (``_core.sha256_file``): what fetch.py did before the transfer
moved to the core. Both in the same run, on the same file, from the same server (which sends with
``sendfile`` so that it is not the bottleneck); best of ``--repeat``, as a time ratio.

    python benches/bench_fetch_transfer.py --mb 256
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from deepfaune_rs import _core
from deepfaune_rs.fetch import download


def _server(root: Path) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            path = root / self.path.lstrip("/")
            with open(path, "rb") as f:
                self.send_response(200)
                self.send_header("Content-Length", str(path.stat().st_size))
                self.end_headers()
                self.wfile.flush()
                self.connection.sendfile(f)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def _urllib(url: str, dest: Path) -> str:
    with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as out:
        while block := resp.read(1 << 20):
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    return _core.sha256_file(dest)


def _best(fn, repeat: int) -> tuple[float, str]:
    best, out = float("inf"), ""
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=256, help="file size in MB (default 256)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        served, out = Path(tmp) / "served", Path(tmp) / "out"
        served.mkdir()
        with open(served / "weights.pt", "wb") as f:
            for _ in range(args.mb):
                f.write(os.urandom(1 << 20))
        httpd = _server(served)
        url = f"http://127.0.0.1:{httpd.server_address[1]}/weights.pt"
        try:
            t_base, h_base = _best(lambda: _urllib(url, Path(tmp) / "base.pt"), args.repeat)
            t_core, h_core = _best(
                lambda: download("weights.pt", [url], out, progress=False)[1], args.repeat
            )
        finally:
            httpd.shutdown()
        assert h_core == h_base, (h_core, h_base)
        mbs = args.mb / t_core if t_core > 0 else float("inf")
        ratio = t_core / t_base if t_base > 0 else float("nan")
        print(f"{args.mb} MB, best of {args.repeat}")
        print(
            f"core {t_core:7.3f} s ({mbs:6.0f} MB/s)  urllib+sha256 {t_base:7.3f} s  "
            f"core/urllib time ratio {ratio:.2f}"
        )


if __name__ == "__main__":
    main()
