"""A season over many machines: the pipeline on a Ray cluster (extra ``[ray]``).

The core walks the inputs once and cuts them into one work unit per folder
(:class:`deepfaune_rs._core.RunPlan`; sequences never cross a folder, so a folder is never
split). Ray Data sends the units to a pool of actors (``map_batches`` with a callable class and
``ray.data.ActorPoolStrategy``), each of which builds one :class:`~deepfaune_rs.Pipeline` and
runs its units as ordinary runs: images are read and decoded by the core from their paths (never
by Ray's image reader), videos sampled with PyAV and run by the core, both recorded in the
unit's checkpoint. Each unit comes back as a part (the checkpoint's image records, exact to the
float bit) with its video records (the core's JSON), and the core merges the parts into the
results of one run (``Pipeline.merge``): the same rows in the same order, then sequences, so
the CSV, MegaDetector JSON and Camtrap DP are those of a single-machine run, byte for byte.

Faults: an actor that dies is restarted and its unit run again (Ray Data's actor pools:
``max_restarts`` and ``max_task_retries`` unlimited). With ``checkpoint_dir`` (storage every
node sees), each unit keeps its own checkpoint there, so a unit cut short resumes where it
stopped and a job started again skips the folders already finished.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

from . import _core
from ._progress import ProgressArg, make_callback
from .detect import Detector, Inputs, PathLike, _as_paths
from .errors import InvalidArgumentError
from .pipeline import Pipeline, PipelineResult
from .video import is_unsupported_video, is_video
from .videos import VideoRecord

#: Fault drills: when this variable names a file that does not exist yet, the first actor to
#: get a batch creates it and exits at once (``os._exit``), as a killed node would.
EXIT_ONCE_ENV = "DEEPFAUNE_RS_DISTRIBUTED_EXIT_ONCE"


def _exit_once() -> None:
    marker = os.environ.get(EXIT_ONCE_ENV)
    if not marker:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os._exit(1)


class _UnitRunner:
    """One actor of the pool: one :class:`Pipeline`, built once, running unit after unit."""

    def __init__(self, pipeline: Mapping[str, Any], keep_embeddings: bool) -> None:
        kwargs = dict(pipeline)
        if isinstance(kwargs.get("detector"), Mapping):
            kwargs["detector"] = Detector(**kwargs["detector"])
        self.pipeline = Pipeline(**kwargs)
        self.keep_embeddings = keep_embeddings

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list]:
        _exit_once()
        out: dict[str, list] = {"unit": [], "part": [], "videos": [], "restored": []}
        for unit, images, videos, checkpoint in zip(
            batch["unit"], batch["images"], batch["videos"], batch["checkpoint"]
        ):
            part, records, restored = self._run(
                json.loads(str(images)), json.loads(str(videos)), str(checkpoint) or None
            )
            out["unit"].append(int(unit))
            out["part"].append(part)
            out["videos"].append(records)
            out["restored"].append(restored)
        return out

    def _run(
        self, images: list[str], videos: list[str], checkpoint: str | None
    ) -> tuple[str, str, bool]:
        complete = checkpoint is not None and _core.checkpoint_is_complete(checkpoint)
        res = self.pipeline.run(
            images + videos,
            progress=None,
            keep_embeddings=self.keep_embeddings,
            checkpoint=checkpoint,
        )
        restored = complete and not res.changed_since_checkpoint
        return res.to_part(), json.dumps(res.video_records), restored


def _checkpoint_name(folder: str, images: list[str], videos: list[str]) -> str:
    """A unit's checkpoint file: named by its folder and files, so a job started again over
    the same folders finds it, and a folder whose files changed starts a new one."""
    key = json.dumps([folder, images, videos]).encode("utf-8", "surrogateescape")
    return f"unit-{hashlib.sha256(key).hexdigest()[:24]}.ckpt"


def run(
    inputs: Inputs,
    pipeline: Mapping[str, Any] | None = None,
    *,
    address: str | None = None,
    actors: int = 1,
    checkpoint_dir: PathLike | None = None,
    keep_embeddings: bool = False,
    cpus_per_actor: float = 1.0,
    memory_per_actor: int | None = None,
    runtime_env: Mapping[str, Any] | None = None,
    progress: ProgressArg = True,
    stats: dict | None = None,
) -> PipelineResult:
    """Runs :meth:`Pipeline.run` over ``inputs`` on a Ray cluster; returns the results of one
    run over the same inputs (same rows, sequences and exports).

    ``pipeline``: the keyword arguments of :class:`Pipeline`, with ``detector`` by name or as
    the keyword arguments of :class:`Detector` (``{"detector": {"model": "md-lite",
    "detection_threshold": 0.3}, "classifier": "deepfaune-v15"}``); every actor builds its own,
    so the model files must be where every node finds them (``DEEPFAUNE_RS_MODELS`` on shared
    storage). The driver builds the classifier alone, for the labels of the merge.
    ``address``: the cluster (``"auto"``, ``"127.0.0.1:6379"``, ``"ray://head:10001"``); None
    starts Ray on this machine; ignored when Ray is already initialised in this process.
    ``actors``: the pool size; each actor asks for ``cpus_per_actor`` CPUs and
    ``memory_per_actor`` bytes (a scheduling hint: see the README for measured figures).
    ``checkpoint_dir``: a folder on storage every node sees, one checkpoint per folder.
    ``runtime_env``: Ray's runtime environment of the job (e.g. ``{"env_vars": {...}}``).
    An actor that dies (a node lost, a process killed) is restarted and its unit run again: Ray
    Data's actor pools restart actors and retry their tasks without limit by default
    (``max_restarts=-1``, ``max_task_retries=-1``), which this function keeps.
    ``keep_embeddings``: keep each image's crop embedding (:meth:`PipelineResult.save_embeddings`);
    off by default: DeepFaune's 1,024 floats add 5.5 kB to each image's record sent back.
    ``stats`` (a dict, filled in): ``units``, ``ran`` and ``restored`` (units taken whole from
    their checkpoint), ``images``."""
    try:
        import ray
        import ray.data
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("distributed runs need Ray Data: pip install 'deepfaune-rs[ray]'") from e
    kwargs = dict(pipeline or {})
    if isinstance(kwargs.get("detector"), Detector):
        raise InvalidArgumentError(
            "give the detector by name (pipeline={'detector': 'md-lite'}): each actor loads one"
        )
    if actors < 1 or cpus_per_actor <= 0:
        raise InvalidArgumentError("actors must be >= 1 and cpus_per_actor > 0")
    paths = _as_paths(inputs)
    images: list[str] = []
    explicit_videos: list[str] = []
    unsupported: list[str] = []
    for p in paths:  # as Pipeline.run sorts its inputs
        if os.path.isdir(p):
            images.append(p)
        elif is_video(p):
            explicit_videos.append(p)
        elif is_unsupported_video(p):
            unsupported.append(p)
        else:
            images.append(p)
    # The driver's pipeline only labels the merged rows: no detector.
    driver = Pipeline(**{**kwargs, "detector": None, "detector_mode": None})
    plan = _core.RunPlan(images)
    units = [
        (os.fspath(f), [os.fspath(i) for i in im], [os.fspath(v) for v in vi])
        for f, im, vi in plan.units
    ]
    if explicit_videos:
        units.append(("", [], explicit_videos))
    ckdir = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
    if ckdir is not None:
        os.makedirs(ckdir, exist_ok=True)
    items = [
        {
            "unit": u,
            "images": json.dumps(im),
            "videos": json.dumps(vi),
            "checkpoint": ""
            if ckdir is None
            else os.path.join(ckdir, _checkpoint_name(folder, im, vi)),
        }
        for u, (folder, im, vi) in enumerate(units)
    ]
    parts: dict[int, dict] = {}
    if items:
        _run_units(
            ray,
            items,
            units,
            len(plan),
            kwargs,
            keep_embeddings,
            address,
            actors,
            cpus_per_actor,
            memory_per_actor,
            runtime_env,
            progress,
            parts,
        )
    n = len(plan.units)
    root = paths[0] if len(paths) == 1 and os.path.isdir(paths[0]) else None
    res = driver.merge(plan, [str(parts[u]["part"]) for u in range(n)], root)
    by_path = {}
    for u in range(len(units)):
        for text in json.loads(str(parts[u]["videos"])):
            by_path[VideoRecord.from_json(text).path] = text
    video_paths = explicit_videos + [os.fspath(v) for v in plan.videos]
    unsupported += [os.fspath(v) for v in plan.unsupported_videos]
    # The units' video records (the core's, as their runs wrote them) in the run's order.
    res = res.with_videos([by_path[v] for v in video_paths], unsupported)
    if stats is not None:
        restored = sum(bool(parts[u]["restored"]) for u in range(len(units)))
        stats.update(units=len(units), restored=restored, ran=len(units) - restored)
        stats["images"] = len(plan)
    return res


def _run_units(
    ray: Any,
    items: list[dict],
    units: list[tuple[str, list[str], list[str]]],
    total: int,
    kwargs: dict,
    keep_embeddings: bool,
    address: str | None,
    actors: int,
    cpus_per_actor: float,
    memory_per_actor: int | None,
    runtime_env: Mapping[str, Any] | None,
    progress: ProgressArg,
    parts: dict[int, dict],
) -> None:
    """Runs the units on the actor pool; their rows go into `parts`, by unit."""
    started = False
    if not ray.is_initialized():
        ray.init(
            address=address,
            runtime_env=None if runtime_env is None else dict(runtime_env),
            log_to_driver=False,
        )
        started = True
    ctx = ray.data.DataContext.get_current()
    bars = ctx.enable_progress_bars
    try:
        ctx.enable_progress_bars = False  # ours counts images, not blocks
        ds = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _UnitRunner,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(actors, len(items))),
            fn_constructor_kwargs={"pipeline": kwargs, "keep_embeddings": keep_embeddings},
            num_cpus=cpus_per_actor,
            memory=memory_per_actor,
        )
        callback = make_callback(progress, "deepfaune (ray)")
        done = 0
        for row in ds.iter_rows():
            u = int(row["unit"])
            parts[u] = row
            done += len(units[u][1])
            if callback is not None:
                callback(done, total)
    finally:
        ctx.enable_progress_bars = bars
        if started:
            ray.shutdown()
