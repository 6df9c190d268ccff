"""Per-video results of :meth:`Pipeline.run`: one :class:`VideoRecord` per video, and their rows in
DeepFaune's table and in MegaDetector batch JSON (``frame_rate``, ``frames_processed``,
per-detection ``frame_number``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _core
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
    failure: dict | None = None
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
    failure = {"path": path, "stage": e.stage, "kind": e.kind, "reason": e.reason, "index": None}
    return VideoRecord(
        path,
        empty.prediction,
        float(empty.score),
        empty.top1,
        failure=failure,
        label_index=int(empty.label_index),
        top1_index=int(empty.top1_index),
    )


def run_videos(
    pipe: _core.Pipeline,
    paths: Sequence[str],
    progress: Callable[[int, int], object] | None = None,
    keep_embeddings: bool = False,
) -> list[VideoRecord]:
    """Samples, detects, classifies and aggregates each video; bad videos become failures."""
    out = []
    for i, path in enumerate(paths):
        t0 = time.perf_counter()
        try:
            rec = _record(pipe, sample_video(path), keep_embeddings)
        except VideoError as e:
            rec = _failed(pipe, path, e)
        rec.seconds_total = time.perf_counter() - t0
        out.append(rec)
        if progress is not None:
            progress(i + 1, len(paths))
    return out


def unsupported_failure(path: str) -> dict:
    """The failure entry of a video format DeepFaune does not read."""
    ext = os.path.splitext(path)[1].lower()
    reason = f"unsupported video format {ext} (DeepFaune reads {', '.join(MEDIA_TYPES)})"
    return {"path": path, "stage": "read", "kind": "unsupported", "reason": reason, "index": None}


def camtrap_entry(rec: VideoRecord) -> dict:
    """The video as the Camtrap DP writer takes it: plain values only (not ``rec.result``)."""
    rate = float(rec.frame_rate or 0.0)
    return {
        "path": rec.path,
        "date": rec.date,
        "duration_s": rec.total_frames / rate if rate > 0 else 0.0,
        "label_index": rec.label_index,
        "top1_index": rec.top1_index,
        "score": float(rec.score),
        "count": int(rec.count),
        "humancount": int(rec.humancount),
        "keyframe": rec.keyframe,
        "box": None if rec.box is None else tuple(float(x) for x in rec.box),
        "frame_size": tuple(int(x) for x in rec.frame_size),
        "failed": rec.failure is not None,
    }


def megadetector_entry(rec: VideoRecord, name: str) -> dict:
    """The video's entry in MegaDetector batch JSON 1.6 (boxes normalised to the frame size)."""
    if rec.failure is not None:
        # The format's checker wants frame_rate and frames_processed on every video entry,
        # failed ones too (0 when the container could not be read).
        return {
            "file": name,
            "failure": rec.failure["reason"],
            "frame_rate": round(float(rec.frame_rate or 0.0), 3),
            "frames_processed": [],
            "detections": None,
        }
    w, h = rec.frame_size
    dets = []
    for d in rec.detections:
        x1, y1, x2, y2 = d["xyxy"]
        dets.append(
            {
                "category": str(d["category"] + 1),
                "conf": round(d["conf"], 3),
                "bbox": [
                    round(x1 / w, 4),
                    round(y1 / h, 4),
                    round((x2 - x1) / w, 4),
                    round((y2 - y1) / h, 4),
                ],
                "frame_number": d["frame_number"],
            }
        )
    return {
        "file": name,
        "frame_rate": round(rec.frame_rate, 3),
        "frames_processed": rec.frames_processed,
        "detections": dets,
    }
