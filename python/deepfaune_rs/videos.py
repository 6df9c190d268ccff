"""Per-video results of :meth:`Pipeline.run`: one :class:`VideoRecord` per video (its JSON form
is the core's ``VideoRecord``, which writes the videos' rows in every output)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from . import _core
from ._files import atomic_open
from .errors import Failure
from .video import MEDIA_TYPES, SampledVideo, VideoError, sample_video


@dataclass
class VideoRecord:
    """One video: DeepFaune's answer for it, and what it was computed from.

    ``keyframe`` is the frame number that shows the prediction best and ``box`` its deciding box
    (``x1, y1, x2, y2`` in frame pixels); ``detections`` holds every box of every sampled frame with
    its ``frame_number``. A video that could not be read has ``failure`` (path, stage, kind,
    reason) and is ``empty``, as DeepFaune counts it. ``label_index`` and ``top1_index`` place
    ``prediction`` and ``top1`` in DeepFaune's label list (the classifier's classes, its bird
    groups, then human, vehicle, empty, undefined), whatever the language.
    """

    path: str
    prediction: str
    score: float
    top1: str
    count: int = 0
    humancount: int = 0
    date: str | None = None
    keyframe: int | None = None
    box: tuple[float, float, float, float] | None = None
    frame_rate: float = 0.0
    total_frames: int = 0
    positions: list[int] = field(default_factory=list)
    frames_processed: list[int] = field(default_factory=list)
    frame_size: tuple[int, int] = (0, 0)
    detections: list[dict] = field(default_factory=list)
    failure: Failure | None = None
    label_index: int | None = None
    top1_index: int | None = None
    seconds_extraction: float = 0.0
    seconds_total: float = 0.0
    result: Any = None

    @property
    def media_type(self) -> str:
        """MIME type from the extension (Camtrap DP ``fileMediatype``)."""
        return MEDIA_TYPES.get(os.path.splitext(self.path)[1].lower(), "video/unknown")


def _record(pipe: _core.Pipeline, v: SampledVideo, keep_embeddings: bool) -> VideoRecord:
    r = pipe.run_frames(v.frames, v.slots, v.path, keep_embeddings=keep_embeddings)
    det = r.detections
    boxes, conf, classes, rows = det.boxes, det.confidences, det.classes, det.image_index
    detections = [
        {
            "frame_number": v.frame_numbers[int(rows[k])],
            "category": int(classes[k]),
            "conf": float(conf[k]),
            "xyxy": tuple(float(x) for x in boxes[k]),
        }
        for k in range(len(conf))
    ]
    keyframe = box = None
    if r.keyframe_slot is not None:
        frame = v.slots[r.keyframe_slot]
        assert frame is not None  # the keyframe is a frame that was read
        keyframe = v.frame_numbers[frame]
        best = int(det.best_detection[frame])
        if best >= 0:
            box = tuple(float(x) for x in boxes[best])
    h, w = v.frames[0].shape[:2]
    return VideoRecord(
        path=v.path,
        prediction=r.prediction,
        score=float(r.score),
        top1=r.top1,
        label_index=int(r.label_index),
        top1_index=int(r.top1_index),
        count=int(r.count),
        humancount=int(r.humancount),
        date=v.date,
        keyframe=keyframe,
        box=box,  # type: ignore[arg-type]
        frame_rate=v.fps,
        total_frames=v.total_frames,
        positions=list(v.positions),
        frames_processed=list(v.frame_numbers),
        frame_size=(int(w), int(h)),
        detections=detections,
        seconds_extraction=v.seconds,
        result=r,
    )


def _failed(pipe: _core.Pipeline, path: str, e: VideoError) -> VideoRecord:
    # No frame read: DeepFaune's answer is "empty"; the core names it in the pipeline's language.
    empty = pipe.run_frames([], [None], path)
    failure: Failure = {
        "path": path,
        "stage": e.stage,
        "kind": e.kind,
        "reason": e.reason,
        "index": None,
    }
    return VideoRecord(
        path,
        empty.prediction,
        float(empty.score),
        empty.top1,
        failure=failure,
        label_index=int(empty.label_index),
        top1_index=int(empty.top1_index),
    )


IDENTITY_EDGE = 64 * 1024


def file_identity(path: str) -> dict | None:
    """What tells one file from another under the same path (as the core's image checkpoint):
    size, modification time and the SHA-256 (first 16 bytes, hex) of the first and last 64 KiB.
    None when the file cannot be read."""
    import hashlib

    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            h = hashlib.sha256(f.read(IDENTITY_EDGE))
            if st.st_size > IDENTITY_EDGE:
                f.seek(max(st.st_size - IDENTITY_EDGE, IDENTITY_EDGE))
                h.update(f.read(IDENTITY_EDGE))
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "edges": h.hexdigest()[:32]}


def run_videos(
    pipe: _core.Pipeline,
    paths: Sequence[str],
    progress: Callable[[int, int], object] | None = None,
    keep_embeddings: bool = False,
    checkpoint: str | os.PathLike | None = None,
    resuming: bool = True,
    changed: list[str] | None = None,
) -> list[VideoRecord]:
    """Samples, detects, classifies and aggregates each video; bad videos become failures.

    ``checkpoint``: the run's (image) checkpoint, already opened by the core for this run; the
    videos are recorded beside it (:class:`VideoCheckpoint`), and videos it holds are not
    processed again, unless ``resuming`` is false (the image checkpoint is new: older video
    records are stale) or the file is not the one recorded (:func:`file_identity`): those are
    processed again and their paths appended to ``changed``."""
    ckpt = None if checkpoint is None else VideoCheckpoint(checkpoint, resuming)
    out = []
    try:
        for i, path in enumerate(paths):
            identity = None if ckpt is None else file_identity(path)
            rec = None if ckpt is None else ckpt.done.get(path)
            if rec is not None and (identity is None or ckpt.identity.get(path) != identity):
                rec = None  # another file under the same name: never its old result
                if changed is not None:
                    changed.append(path)
            if rec is None:
                t0 = time.perf_counter()
                try:
                    rec = _record(pipe, sample_video(path), keep_embeddings)
                except VideoError as e:
                    rec = _failed(pipe, path, e)
                rec.seconds_total = time.perf_counter() - t0
                if ckpt is not None:
                    ckpt.append(rec, identity)
            out.append(rec)
            if progress is not None:
                progress(i + 1, len(paths))
    finally:
        if ckpt is not None:
            ckpt.close()
    return out


class VideoCheckpoint:
    """The videos of a checkpointed run: ``<checkpoint>.videos``, JSON lines beside the core's
    image checkpoint. Its first line copies that checkpoint's header (models and settings), so a
    file left by a run with other settings is never reused (nor one left beside an image
    checkpoint that has since been deleted); then one line per video with every field of its
    :class:`VideoRecord` (but ``result``, the core object, which restored records lack). Each
    line is flushed and synced; a torn last line (killed mid-write) is dropped on reopening.
    Each line also holds the video file's identity (:func:`file_identity`).
    Floats go through JSON exactly, so a resumed run writes the same outputs."""

    FORMAT = "deepfaune-rs-video-checkpoint/1"

    def __init__(self, images_checkpoint: str | os.PathLike, resuming: bool = True) -> None:
        with open(images_checkpoint, encoding="utf-8") as f:
            header = json.loads(f.readline())
        self.path = os.fspath(images_checkpoint) + ".videos"
        self.done: dict[str, VideoRecord] = {}
        self.identity: dict[str, dict | None] = {}
        lines: list[str] = []
        try:
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().split("\n")
        except FileNotFoundError:
            pass
        first = {"format": self.FORMAT, "images_checkpoint": header}
        valid = [json.dumps(first)]
        if resuming and lines and _loads(lines[0]) == first:
            for line in lines[1:]:
                rec = _loads(line)
                if not isinstance(rec, dict):
                    break  # a torn last line ends the usable part
                self.done[rec["path"]] = _from_json(rec)
                self.identity[rec["path"]] = rec.get("identity")
                valid.append(line)
        # Rewrite the valid part (atomically), so appends follow a complete line.
        with atomic_open(self.path, "w", encoding="utf-8") as f:
            f.write("".join(v + "\n" for v in valid))
        self._file = open(self.path, "a", encoding="utf-8")

    def append(self, rec: VideoRecord, identity: dict | None = None) -> None:
        line = _to_json(rec)
        if identity is not None:
            line["identity"] = identity
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _loads(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _to_json(rec: VideoRecord) -> dict:
    return {f.name: getattr(rec, f.name) for f in fields(VideoRecord) if f.name != "result"}


def _from_json(d: dict) -> VideoRecord:
    known = {f.name for f in fields(VideoRecord)} - {"result"}
    kw = {k: v for k, v in d.items() if k in known}
    for k in ("box", "frame_size"):
        if kw.get(k) is not None:
            kw[k] = tuple(kw[k])
    for det in kw.get("detections", []):
        det["xyxy"] = tuple(det["xyxy"])
    return VideoRecord(**kw)


def unsupported_failure(path: str) -> Failure:
    """The failure entry of a video format DeepFaune does not read."""
    ext = os.path.splitext(path)[1].lower()
    reason = f"unsupported video format {ext} (DeepFaune reads {', '.join(MEDIA_TYPES)})"
    return {"path": path, "stage": "read", "kind": "unsupported", "reason": reason, "index": None}
