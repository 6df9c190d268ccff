"""How fast the review page answers for a big run (a benchmark, not a test).

A temporary tree holds N symbolic links to the test images (10 per folder, as camera bursts),
listed in a MegaDetector file with one animal box below the classification threshold each, so
the run classifies nothing and takes seconds; the result is a real ``PipelineResult`` of N
images with boxes. Then, in this process:

- start: the review server's state (the journal applied, the columns taken, the sequences),
  from the run and from its CSV alone (as without a checkpoint);
- first page: ``/api/info`` + the first page of sequences over HTTP, as the page loads them;
- thumbnails: the first page's thumbnails, cold (made by the core) then warm (the disk cache);
- one relabel: the journal line appended and synced, then applied to the page's columns alone;
- the whole journal applied again to the whole run (what loading does, and what a relabel
  cost before it was applied alone), measured in the same run;
- baseline, measured in the same run: ``pandas.read_csv`` of the same results' CSV (what a user
  opens today to look at a run).

    python benches/bench_review.py               # N = 100000
    python benches/bench_review.py --n 2000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import REPO, all_test_images, find_testdata, shared_dir  # noqa: E402


def build(root: Path, n: int) -> Path:
    sources = [p for p in all_test_images(find_testdata()) if p.stat().st_size > 0]
    images = []
    for i in range(n):
        folder = root / f"cam{i // 10:06d}"
        if i % 10 == 0:
            folder.mkdir()
        src = sources[i % len(sources)]
        link = folder / f"img{i:07d}{src.suffix}"
        os.symlink(src, link)
        images.append(
            {
                "file": str(link.relative_to(root)),
                "detections": [{"category": "1", "conf": 0.3, "bbox": [0.2, 0.3, 0.4, 0.3]}],
            }
        )
    doc = {
        "info": {"format_version": "1.4", "detector": "bench"},
        "detection_categories": {"1": "animal", "2": "person", "3": "vehicle"},
        "images": images,
    }
    md = root / "md.json"
    md.write_text(json.dumps(doc))
    return md


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=600) as r:
        return r.read()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="images")
    args = ap.parse_args()
    import pandas as pd

    import deepfaune_rs
    from deepfaune_rs.review import ReviewServer, ReviewState
    from deepfaune_rs.review_table import ResultTable

    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp:
        root = Path(tmp) / "images"
        root.mkdir()
        os.environ["DEEPFAUNE_RS_CACHE"] = str(Path(tmp) / "cache")
        t = time.perf_counter()
        md = build(root, args.n)
        pipe = deepfaune_rs.Pipeline(
            None,
            shared_dir() / "models" / "pixel_classifier_182_c38.onnx",
            detector_mode=None,
            classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
        )
        res = pipe.run(root, detections=md, progress=False, keep_embeddings=False)
        made = time.perf_counter() - t
        csv_path = Path(tmp) / "r.csv"
        res.to_csv(csv_path)
        n_seq = int(res.seqnum.max(initial=0))
        print(f"{len(res)} images, {n_seq} sequences (made in {made:.1f} s)")

        t = time.perf_counter()
        pd.read_csv(csv_path)
        baseline = time.perf_counter() - t

        t = time.perf_counter()
        alone = ReviewState(ResultTable(csv_path), str(csv_path) + ".corrections.jsonl")
        start_table = time.perf_counter() - t
        assert alone.n_images == len(res)

        t = time.perf_counter()
        state = ReviewState(res, str(csv_path) + ".corrections.jsonl")
        start = time.perf_counter() - t
        server = ReviewServer(state).start()
        try:
            api = server.url.replace("/?", "/api/{}?")
            t = time.perf_counter()
            get(server.url)
            get(api.format("info"))
            page = json.loads(get(api.format("sequences")))
            first = time.perf_counter() - t
            ids = [im["id"] for s in page["items"] for im in s["images"]]
            # One relabel: the journal line, synced, and the run's answers again.
            body = json.dumps({"ids": ids[:1], "label": res.labels[0], "scope": "sequence"})
            req = urllib.request.Request(
                api.format("change"), data=body.encode(), headers={"X-Token": server.token}
            )
            t = time.perf_counter()
            with urllib.request.urlopen(req, timeout=600) as r:
                r.read()
            change = time.perf_counter() - t
            t = time.perf_counter()
            state.refresh()
            full = time.perf_counter() - t
            thumbs = []
            for _ in range(2):
                t = time.perf_counter()
                for i in ids:
                    get(api.format("").replace("/api/?", f"/thumb/{i}?"))
                thumbs.append(time.perf_counter() - t)
        finally:
            server.stop()
    print(f"baseline: pandas.read_csv of the results   {baseline:8.3f} s")
    print(f"review server state (journal, sequences)  {start:8.3f} s")
    print(f"the same from the CSV alone (no checkpoint) {start_table:8.3f} s")
    ratio = first / baseline
    print(f"first page (HTML + info + 25 sequences)   {first:8.3f} s  = {ratio:.2f}x baseline")
    print(f"its {len(ids)} thumbnails: cold {thumbs[0]:.3f} s, warm {thumbs[1]:.3f} s")
    print(f"one relabel (journal line synced, applied alone)  {change:.4f} s")
    print(f"the whole journal applied again (load path)       {full:.3f} s = {full / change:.0f}x")


if __name__ == "__main__":
    main()
