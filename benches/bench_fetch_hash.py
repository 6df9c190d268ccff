"""Hashing a downloaded model file (a benchmark, not a test): the core's checks against the
hashlib code fetch.py used before they moved to the core, measured in the same run on the same
file, as ratios.

- ``check``: what a download is checked with (``_core.fetch_check``): sha256, plus MD5 only when
  the publisher gives one. Baseline: hashlib's sha256 and MD5 in one read, as fetch.py did for
  every check.
- ``check+md5``: the same with a published MD5 (MegaDetector's case). Same baseline.
- ``status``: the sha256 ``deepfaune-rs models`` takes of each file (``_core.sha256_file``).
  Baseline: hashlib's sha256 of the same file.

Each is the best of ``--repeat`` runs over a file of ``--mb`` random megabytes (in the page cache
after the first read, so it is the hashing that is timed, not the disk).

    python benches/bench_fetch_hash.py --mb 1024
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from deepfaune_rs import _core


def _Expect(md5: str = "") -> SimpleNamespace:  # noqa: N802 - what a check expects
    return SimpleNamespace(size=None, md5=md5, sha256="", locked_sha256="", accept_new_hash=False)


def _hashlib(path: Path, *names: str) -> str:
    hs = [hashlib.new(n) for n in names]
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            for h in hs:
                h.update(block)
    return hs[0].hexdigest()


def _best(fn, repeat: int) -> tuple[float, str]:
    best, out = float("inf"), ""
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=512, help="file size in MB (default 512)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.pt"
        with open(path, "wb") as f:
            for _ in range(args.mb):
                f.write(os.urandom(1 << 20))
        md5 = _hashlib(path, "md5")
        lock = Path(tmp) / "deepfaune-rs.lock.json"
        cases = {
            "check": (
                lambda: _core.fetch_check(path, path.name, _Expect(), lock),
                lambda: _hashlib(path, "sha256", "md5"),
            ),
            "check+md5": (
                lambda: _core.fetch_check(path, path.name, _Expect(md5=md5), lock),
                lambda: _hashlib(path, "sha256", "md5"),
            ),
            "status": (
                lambda: _core.sha256_file(path),
                lambda: _hashlib(path, "sha256"),
            ),
        }
        print(f"{args.mb} MB, best of {args.repeat}")
        for name, (core, base) in cases.items():
            t_base, h_base = _best(base, args.repeat)
            t_core, h_core = _best(core, args.repeat)
            assert h_core == h_base, (name, h_core, h_base)
            mbs = args.mb / t_core if t_core > 0 else float("inf")
            ratio = t_core / t_base if t_base > 0 else float("nan")
            print(
                f"{name:10s} core {t_core:7.3f} s ({mbs:6.0f} MB/s)  hashlib {t_base:7.3f} s  "
                f"core/hashlib time ratio {ratio:.2f}"
            )


if __name__ == "__main__":
    main()
