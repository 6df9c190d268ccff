"""Throughput of a run on Ray (``deepfaune_rs.distributed``) against the local run, on this
machine, all in one process and one session:

  local      deepfaune_rs.Pipeline.run(folders)                      (the baseline)
  ray xN     deepfaune_rs.distributed.run(folders, actors=N), on a Ray started here with as many
             CPUs as the machine has; N = 1 measures the overhead of the distributed path
             (planning, Ray Data, actor start, the parts' transfer and the merge)
  memory     peak RSS of one Ray worker process that builds the actor's pipeline and runs the
             biggest folder (what each actor needs; ``memory_per_actor=``)

The images are COPIES symbolic-linked copies of each folder of INPUTS (default ../shared/testdata),
each copy a folder of its own. Models: md-lite (embedded) and the shared pixel classifier, or with
--models OUTDIR the architecture-faithful benchmark models (YOLOv8s 960 + ViT-L/14 182, random
weights: ../shared/tools/make_bench_models.sh OUTDIR), DeepFaune's size. Every variant's CSV is
checked to be the same bytes as the local one.

Usage: python benches/bench_distributed.py [--copies 4] [--actors 1 2] [--rounds R] [--folders K]
       [--images K] [--models OUTDIR] [--memory-only]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared"


def _tree(
    inputs: Path, copies: int, folders: int | None, dest: Path, images: int | None = None
) -> int:
    """Symbolic-linked copies of the image folders of `inputs` under `dest` (the first `images`
    of each); returns the number of images."""
    exts = {".jpg", ".jpeg", ".png"}
    found = sorted(
        {p.parent for p in inputs.rglob("*") if p.is_file() and p.suffix.lower() in exts}
    )
    if folders is not None:
        found = found[:folders]
    n = 0
    for k in range(copies):
        for src in found:
            d = dest / f"{src.name}_{k}"
            d.mkdir(parents=True)
            files = [f for f in sorted(src.iterdir()) if f.is_file() and f.suffix.lower() in exts]
            for f in files[:images]:
                (d / f.name).symlink_to(f.resolve())
                n += 1
    return n


def _actor_memory(kwargs: dict, folder: Path) -> tuple[float, float]:
    """Peak RSS (MiB) of a Ray worker before and after it builds an actor's pipeline and runs
    `folder`."""
    import json

    import ray

    @ray.remote(num_cpus=1)
    def measure(kwargs: dict, images: list[str]) -> tuple[float, float]:
        import resource

        from deepfaune_rs.distributed import _UnitRunner

        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        runner = _UnitRunner(kwargs, keep_embeddings=False)
        batch = {"unit": [0], "images": [json.dumps(images)], "videos": ["[]"]}
        runner({**batch, "checkpoint": [""]})
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return before / 1024, peak / 1024

    images = [str(p) for p in sorted(folder.iterdir())]
    before, peak = ray.get(measure.remote(kwargs, images))
    return float(before), float(peak)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--inputs", type=Path, default=SHARED / "testdata")
    ap.add_argument("--copies", type=int, default=4, help="copies of each folder")
    ap.add_argument("--folders", type=int, default=None, help="only the first K folders")
    ap.add_argument("--images", type=int, default=None, help="only the first K images of each")
    ap.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=1, help="rounds of all variants")
    ap.add_argument(
        "--classifier", default=str(SHARED / "models" / "pixel_classifier_182_c38.onnx")
    )
    ap.add_argument("--classifier-manifest", default=str(REPO / "models" / "tiny-pixel-c38.toml"))
    ap.add_argument("--models", type=Path, default=None, help="benchmark models (see above)")
    ap.add_argument("--memory-only", action="store_true", help="only one actor's memory")
    args = ap.parse_args()

    # A Ray on this machine only: its addresses stay on the loopback interface. Its workers run
    # at the niceness of the baseline (Ray's default, 15, loses the CPU to any other work).
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_worker_niceness", "0")
    import ray

    import deepfaune_rs
    from deepfaune_rs import distributed

    kwargs: dict = {
        "detector": "md-lite",
        "classifier": args.classifier,
        "classifier_manifest": args.classifier_manifest,
    }
    with tempfile.TemporaryDirectory() as tmp:
        if args.models is not None:
            from bench_pipeline import DETECTOR_MANIFEST

            manifest = Path(tmp) / "bench-yolov8s.toml"
            manifest.write_text(DETECTOR_MANIFEST)
            (Path(tmp) / "yolov8s_960_c3.onnx").symlink_to(args.models / "yolov8s_960_c3.onnx")
            kwargs = {
                "detector": {"model": str(manifest)},
                "classifier": str(args.models / "vitl14_182_c38.onnx"),
                "classifier_manifest": str(REPO / "models" / "deepfaune-v14.toml"),
            }
        root = Path(tmp) / "images"
        n = _tree(args.inputs, args.copies, args.folders, root, args.images)
        print(f"{n} images in {len(list(root.iterdir()))} folders, {os.cpu_count()} CPUs")
        if args.memory_only:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
            try:
                _report_memory(kwargs, root)
            finally:
                ray.shutdown()
            return

        pipe = deepfaune_rs.Pipeline(**kwargs)
        expected = None
        ratios: dict[int, list[float]] = {a: [] for a in args.actors}
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        try:
            # Rounds alternate the variants, so that a change of load on a shared machine
            # falls on all of them; each ratio compares runs of the same round.
            for r in range(args.rounds):
                t0 = time.perf_counter()
                local = pipe.run(root, progress=False, keep_embeddings=False)
                base = time.perf_counter() - t0
                local.to_csv(Path(tmp) / "local.csv")
                expected = (Path(tmp) / "local.csv").read_bytes()
                print(f"round {r + 1} local   {base:7.2f} s  {n / base:6.2f} images/s")
                for actors in args.actors:
                    t0 = time.perf_counter()
                    res = distributed.run(root, pipeline=kwargs, actors=actors, progress=False)
                    took = time.perf_counter() - t0
                    res.to_csv(Path(tmp) / "ray.csv")
                    same = (Path(tmp) / "ray.csv").read_bytes() == expected
                    ratios[actors].append(took / base)
                    print(
                        f"round {r + 1} ray x{actors} {took:7.2f} s  {n / took:6.2f} images/s  "
                        f"time / local {took / base:5.2f}  CSV same bytes: {same}"
                    )
                    if not same:
                        sys.exit("the distributed CSV differs from the local one")
            for actors, rs in ratios.items():
                print(f"ray x{actors}: median time / local {statistics.median(rs):.2f}")
            _report_memory(kwargs, root)
        finally:
            ray.shutdown()


def _report_memory(kwargs: dict, root: Path) -> None:
    biggest = max(root.iterdir(), key=lambda d: len(list(d.iterdir())))
    before, peak = _actor_memory(kwargs, biggest)
    print(
        f"memory    one actor's peak RSS {peak:.0f} MiB ({len(list(biggest.iterdir()))} images; "
        f"the Ray worker alone {before:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
