"""Exact top-k cosine search: deepfaune-rs against numpy and faiss-cpu, in the same run.

A random float32 base (default 1,000,000 x 1024, 4 GB) and 1,000 queries, top-5. Each variant
runs in its own subprocess on the same base (saved once as .npy), so its peak RSS is its own:
  numpy   base normalised in place, (queries @ base.T) in batches of 100, argpartition + sort
  faiss   faiss.normalize_L2 in place, IndexFlatIP.add (faiss keeps its own copy), search
  ours    deepfaune_rs.reid.CosineIndex(base) (inverse norms only, no copy), search
Reported: index build time, search time, queries/s, peak RSS and RSS above the loaded base,
and agreement of the neighbours with numpy (ties aside). Not a test: nothing is asserted.

Usage: python benches/bench_reid.py [--n 1000000] [--dim 1024] [--queries 1000] [-k 5]
       [--threads N] [--out benches/out/reid.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_variant(name: str, data: Path, k: int) -> dict:
    base = np.load(data / "base.npy")
    queries = np.load(data / "queries.npy")
    loaded = rss_mb()
    t0 = time.perf_counter()
    if name == "numpy":
        base /= np.linalg.norm(base, axis=1, keepdims=True)
        qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        t1 = time.perf_counter()
        out_d, out_i = [], []
        for q0 in range(0, len(qn), 100):
            sims = qn[q0 : q0 + 100] @ base.T
            part = np.argpartition(-sims, k, axis=1)[:, :k]
            ps = np.take_along_axis(sims, part, axis=1)
            order = np.argsort(-ps, axis=1, kind="stable")
            out_i.append(np.take_along_axis(part, order, axis=1))
            out_d.append(1.0 - np.take_along_axis(ps, order, axis=1))
        d, i = np.concatenate(out_d), np.concatenate(out_i)
    elif name == "faiss":
        import faiss

        faiss.normalize_L2(base)
        index = faiss.IndexFlatIP(base.shape[1])
        index.add(base)
        qn = np.ascontiguousarray(queries.copy())
        faiss.normalize_L2(qn)
        t1 = time.perf_counter()
        s, i = index.search(qn, k)
        d = 1.0 - s
    else:
        from deepfaune_rs.reid import CosineIndex

        index = CosineIndex(base)
        t1 = time.perf_counter()
        d, i = index.search(queries, k=k)
    t2 = time.perf_counter()
    np.save(data / f"{name}_i.npy", i)
    np.save(data / f"{name}_d.npy", d.astype(np.float32))
    return {
        "variant": name,
        "build_s": round(t1 - t0, 3),
        "search_s": round(t2 - t1, 3),
        "queries_per_s": round(len(queries) / (t2 - t1), 1),
        "peak_rss_mb": round(peak_mb()),
        "rss_after_load_mb": round(loaded),
        "peak_above_base_mb": round(peak_mb() - loaded),
    }


def agreement(data: Path, a: str, b: str) -> dict:
    ia, ib = np.load(data / f"{a}_i.npy"), np.load(data / f"{b}_i.npy")
    da, db = np.load(data / f"{a}_d.npy"), np.load(data / f"{b}_d.npy")
    return {
        "same_indices": float((ia == ib).mean()),
        "same_top1": float((ia[:, 0] == ib[:, 0]).mean()),
        "max_abs_distance_diff": float(np.abs(da - db).max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--data", default=str(HERE / "out" / "reid_data"))
    ap.add_argument("--out", default=str(HERE / "out" / "reid.json"))
    ap.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    data = Path(args.data)
    if args.variant:
        print(json.dumps(run_variant(args.variant, data, args.k)))
        return
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = np.lib.format.open_memmap(data / "base.npy", "w+", np.float32, (args.n, args.dim))
    for r0 in range(0, args.n, 50_000):
        r1 = min(args.n, r0 + 50_000)
        base[r0:r1] = rng.standard_normal((r1 - r0, args.dim), dtype=np.float32)
    base.flush()
    del base
    np.save(data / "queries.npy", rng.standard_normal((args.queries, args.dim), dtype=np.float32))
    results = []
    for name in ("ours", "numpy", "faiss"):
        cmd = [sys.executable, __file__, "--variant", name, "--data", str(data), "-k", str(args.k)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"{name} failed:\n{r.stderr}", file=sys.stderr)
            continue
        results.append(json.loads(r.stdout.strip().splitlines()[-1]))
        print(results[-1], file=sys.stderr)
    report = {
        "base": [args.n, args.dim],
        "queries": args.queries,
        "k": args.k,
        "cpus": os.cpu_count(),
        "results": results,
        "ours_vs_numpy": agreement(data, "ours", "numpy"),
        "ours_vs_faiss": agreement(data, "ours", "faiss")
        if (data / "faiss_i.npy").exists()
        else None,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    for f in data.glob("*.npy"):
        f.unlink()


if __name__ == "__main__":
    main()
