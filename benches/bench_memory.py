"""Peak memory of a detection run as the number of images grows (a benchmark, not a test).

For each N, a temporary folder tree holds N symbolic links to the test images (1,000 per
sub-folder, like camera folders), and a fresh Python process runs
``deepfaune_rs.Detector().detect(folder, progress=False)`` with the embedded detector. The child
reports its peak resident set size (``ru_maxrss``), the RSS once the model is loaded, and the
time. Memory is flat when the peak for the largest N is within 1.2 times that of the smallest.

    python benches/bench_memory.py                  # N = 1000 and 20000
    python benches/bench_memory.py --n 1000 5000    # faster on a small machine
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import all_test_images, find_testdata  # noqa: E402

CHILD = r"""
import json, resource, sys, time
import deepfaune_rs
det = deepfaune_rs.Detector(threads=int(sys.argv[2]))
loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
res = det.detect(sys.argv[1], progress=False)
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"images": len(res), "failures": len(res.failures), "boxes": len(res.boxes),
                  "loaded_kb": loaded, "peak_kb": peak, "seconds": seconds}))
"""


def build_tree(root: Path, n: int, sources: list[Path]) -> None:
    for i in range(n):
        folder = root / f"cam{i // 1000:03d}"
        if i % 1000 == 0:
            folder.mkdir()
        src = sources[i % len(sources)]
        os.symlink(src, folder / f"img{i:07d}{src.suffix}")


def measure(n: int, threads: int, python: str) -> dict:
    sources = all_test_images(find_testdata())
    if not sources:
        sys.exit(f"no test images under {find_testdata()}")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        build_tree(Path(tmp), n, sources)
        t = time.perf_counter()
        out = subprocess.run(
            [python, "-c", CHILD, tmp, str(threads)], capture_output=True, text=True, check=True
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        r["wall"] = time.perf_counter() - t
        r["n"] = n
        return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 20000], help="image counts")
    ap.add_argument("--threads", type=int, default=0, help="decode threads (0 = default)")
    ap.add_argument("--python", default=sys.executable, help="interpreter with deepfaune_rs")
    args = ap.parse_args()
    rows = []
    for n in args.n:
        r = measure(n, args.threads, args.python)
        rows.append(r)
        print(
            f"N={r['n']:>7}  peak RSS {r['peak_kb'] / 1024:8.1f} MB  (model loaded "
            f"{r['loaded_kb'] / 1024:7.1f} MB)  {r['seconds']:8.1f} s  "
            f"{r['seconds'] / r['n'] * 1000:6.1f} ms/image  failures {r['failures']}  "
            f"boxes {r['boxes']}",
            flush=True,
        )
    if len(rows) > 1:
        ratio = rows[-1]["peak_kb"] / rows[0]["peak_kb"]
        verdict = "flat" if ratio < 1.2 else "GROWS"
        print(f"peak RSS ratio N={rows[-1]['n']} / N={rows[0]['n']}: {ratio:.3f} ({verdict})")


if __name__ == "__main__":
    main()
