"""Per-video results of :meth:`Pipeline.run`: one :class:`VideoRecord` per video, a read-only
view of the core's record. The core samples each video through
:func:`deepfaune_rs.video.sample_video` (PyAV), runs its frames, records it in the run's
checkpoint and writes its rows in every output (table, CSV, MegaDetector JSON, Camtrap DP)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from . import _core
from .errors import Failure


@dataclass(frozen=True)
class VideoRecord:
    """One video: DeepFaune's answer for it, and what it was computed from (a read-only view of
    the core's record).

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

    @property
    def media_type(self) -> str:
        """MIME type from the extension (Camtrap DP ``fileMediatype``)."""
        return _core.media_type(self.path)

    @classmethod
    def from_json(cls, text: str) -> VideoRecord:
        """The view of the core's record (``_core.PipelineResults.video_records``)."""
        d = json.loads(text)
        f = d.get("failure")
        failure: Failure | None = None
        if f is not None:
            failure = {
                "path": d["path"],
                "stage": f["stage"],
                "kind": f["kind"],
                "reason": f["reason"],
                "index": None,
            }
        box = d.get("box")
        return cls(
            path=d["path"],
            prediction=d["prediction"],
            score=float(d["score"]),
            top1=d["top1"],
            count=int(d["count"]),
            humancount=int(d["humancount"]),
            date=d.get("date"),
            keyframe=d.get("keyframe"),
            box=None if box is None else tuple(box),  # type: ignore[arg-type]
            frame_rate=float(d["frame_rate"]),
            total_frames=int(d["total_frames"]),
            positions=list(d["positions"]),
            frames_processed=list(d["frames_processed"]),
            frame_size=tuple(d["frame_size"]),  # type: ignore[arg-type]
            detections=[{**det, "xyxy": tuple(det["xyxy"])} for det in d["detections"]],
            failure=failure,
            label_index=int(d["label_index"]),
            top1_index=int(d["top1_index"]),
            seconds_extraction=float(d["seconds_extraction"]),
            seconds_total=float(d["seconds_total"]),
        )
