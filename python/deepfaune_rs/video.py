"""Videos: which frames DeepFaune 1.4.1 looks at, and reading them with PyAV (SPEC 2.5).

DeepFaune reads videos with OpenCV (``cv2.VideoCapture``). Here frames come from PyAV, whose
wheels carry their own FFmpeg on Linux, macOS and Windows (``pip install deepfaune-rs[video]``),
so no system FFmpeg is needed. Frame numbers, frame count and frame rate follow OpenCV's FFmpeg
backend: frame ``k`` is the frame whose timestamp is ``k / fps`` after the stream start, the count
is the container's frame count or ``round(duration * fps)``, and the rate is FFmpeg's guessed rate.
Frames are converted to RGB by FFmpeg's swscale (as OpenCV does to BGR).

The package imports without PyAV; videos are then reported as failures that say how to install it.
Which frames are read, the frame count and the creation date are the core's
(``src/image_io/frames.rs``); this module reads the frames.

>>> frame_indices(300, 30)  # 8 frames 10 apart (30 fps / 3), then 4 spread over the rest
[0, 10, 20, 30, 40, 50, 60, 70, 127, 184, 241, 298]
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _core
from ._core import (
    FRAMES_PER_VIDEO,
    creation_date,
    frame_indices,
    is_unsupported_video,  # noqa: F401 - part of this module's API
    is_video,  # noqa: F401
)

#: Extensions DeepFaune accepts for videos (compared case-insensitively); the core's list.
VIDEO_EXTENSIONS = tuple("." + e for e in _core.VIDEO_EXTENSIONS)
#: Video formats that DeepFaune does not read; given explicitly or met in a folder, they are
#: reported as failures instead of being passed over in silence.
UNSUPPORTED_VIDEO_EXTENSIONS = tuple("." + e for e in _core.UNSUPPORTED_VIDEO_EXTENSIONS)
INSTALL_HINT = 'PyAV is not installed: pip install "deepfaune-rs[video]"'


class VideoError(Exception):
    """A video that cannot be classified; ``stage`` (read/decode) and ``kind`` as for images."""

    def __init__(self, stage: str, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.kind = kind
        self.reason = reason


@dataclass
class SampledVideo:
    """The frames read from one video.

    ``positions`` are DeepFaune's sampled frame numbers; ``frames`` the distinct frames that could
    be read (``[h, w, 3]`` uint8 RGB) with their ``frame_numbers``; ``slots[k]`` the index in
    ``frames`` of position ``k``, or None when that frame could not be read.
    """

    path: str
    total_frames: int
    fps: float
    positions: list[int]
    frames: list[np.ndarray] = field(default_factory=list)
    frame_numbers: list[int] = field(default_factory=list)
    slots: list[int | None] = field(default_factory=list)
    date: str | None = None
    seconds: float = 0.0


def _import_av() -> Any:
    try:
        import av
    except ImportError:
        return None
    return av


def _frame_rate(stream: Any) -> float:
    for rate in (stream.guessed_rate, stream.average_rate, stream.base_rate):
        if rate:
            return float(rate)
    return 0.0


def _frame_count(container: Any, stream: Any, fps: float) -> int:
    """OpenCV's ``CAP_PROP_FRAME_COUNT`` (the core's ``frame_count``) from PyAV's facts."""
    seconds = 0.0
    if container.duration:
        seconds = container.duration / 1_000_000
    elif stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    return _core.frame_count(int(stream.frames or 0), seconds, fps)


class _FrameReader:
    """Decodes frames by number, seeking to the keyframe before a far target instead of decoding
    everything in between.

    A target more than one keyframe interval ahead is reached by seeking (the interval is learnt
    from the keyframes decoded so far, one second until one is seen); a nearer one by decoding on.
    """

    def __init__(self, container: Any, stream: Any, fps: float) -> None:
        self.container, self.stream, self.fps = container, stream, fps
        self.start = stream.start_time or 0
        self.tb = stream.time_base
        self.iterator: Iterator[tuple[int, Any]] | None = None
        self.current: tuple[int, Any] | None = None
        self.last_key: int | None = None
        self.key_interval = max(int(fps), 1)

    def _number(self, frame: Any, counter: int) -> int:
        if frame.pts is None or not self.tb or self.fps <= 0:
            n = counter
        else:
            n = int(round(float((frame.pts - self.start) * self.tb) * self.fps))
        if frame.key_frame:
            if self.last_key is not None and n > self.last_key:
                self.key_interval = n - self.last_key
            self.last_key = n
        return n

    def _decode_from(self, target: int) -> Iterator[tuple[int, Any]]:
        self.last_key = None  # keyframe intervals are only measured within one decoding run
        if target > 0 and self.tb and self.fps > 0:
            ts = self.start + int(target / self.fps / self.tb)
            self.container.seek(ts, stream=self.stream, backward=True, any_frame=False)
            frames = self.container.decode(self.stream)
            first = next(frames, None)
            if first is None:
                return
            n = self._number(first, target)
            if n <= target:
                yield n, first
                for frame in frames:
                    n = self._number(frame, n + 1)
                    yield n, frame
                return
        # From the start: the seek overshot, or nothing to seek to.
        self.container.seek(0, stream=self.stream, backward=True, any_frame=False)
        counter = 0
        for frame in self.container.decode(self.stream):
            counter = self._number(frame, counter)
            yield counter, frame
            counter += 1

    def read(self, target: int) -> Any | None:
        """The frame numbered ``target`` (or the first after it), None past the end."""
        if self.iterator is not None and self.current is not None:
            if self.current[0] >= target:  # the frame after a gap in the numbering
                return self.current[1]
            if target - self.current[0] > self.key_interval:
                self.iterator = None
        if self.iterator is None or self.current is None:
            self.iterator = self._decode_from(target)
            self.current = None
        for number, frame in self.iterator:
            self.current = (number, frame)
            if number >= target:
                return frame
        self.iterator = None
        return None


def sample_video(path: str | os.PathLike, n_frames: int = FRAMES_PER_VIDEO) -> SampledVideo:
    """Reads the frames DeepFaune classifies in ``path`` (see :func:`frame_indices`).

    Raises :class:`VideoError` when the file cannot be classified at all: PyAV missing, empty
    file, not a video, no frames; frames missing at some positions are recorded in ``slots``.
    """
    path = os.fspath(path)
    av = _import_av()
    if av is None:
        raise VideoError("read", "missing_dependency", INSTALL_HINT)
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise VideoError("read", "io", str(e)) from e
    if size == 0:
        raise VideoError("read", "empty", "empty file (0 bytes)")
    t0 = time.perf_counter()
    try:
        container = av.open(path)
    except Exception as e:  # PyAV raises many FFmpeg error classes
        raise VideoError("decode", "corrupt", f"not a readable video: {e}") from e
    try:
        if not container.streams.video:
            raise VideoError("decode", "format", "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = _frame_rate(stream)
        total = _frame_count(container, stream, fps)
        if total <= 0:
            raise VideoError("decode", "empty", "the video has no frames")
        positions = frame_indices(total, fps, n_frames)
        out = SampledVideo(path, total, fps, positions)
        out.date = creation_date([dict(container.streams[0].metadata), dict(container.metadata)])
        reader = _FrameReader(container, stream, fps)
        found: dict[int, int] = {}
        for number in sorted(set(positions)):
            try:
                frame = reader.read(number) if number < total else None
            except Exception:  # a damaged packet: this position stays unread, as in DeepFaune
                frame, reader.iterator = None, None
            if frame is None:
                continue
            found[number] = len(out.frames)
            out.frames.append(frame.to_ndarray(format="rgb24"))
            out.frame_numbers.append(number)
        out.slots = [found.get(p) for p in positions]
        if not out.frames:
            raise VideoError("decode", "corrupt", "no frame could be decoded")
        out.seconds = time.perf_counter() - t0
        return out
    finally:
        container.close()


def read_frame(path: str | os.PathLike, number: int) -> np.ndarray:
    """Frame ``number`` of a video (``[h, w, 3]`` uint8 RGB), numbered as :func:`sample_video`
    numbers them (a video's keyframe, for the review page). Raises :class:`VideoError` (PyAV
    missing, unreadable file, no such frame)."""
    av = _import_av()
    if av is None:
        raise VideoError("read", "missing_dependency", INSTALL_HINT)
    try:
        container = av.open(os.fspath(path))
    except Exception as e:  # PyAV raises many FFmpeg error classes
        raise VideoError("decode", "corrupt", f"not a readable video: {e}") from e
    try:
        if not container.streams.video:
            raise VideoError("decode", "format", "no video stream")
        stream = container.streams.video[0]
        frame = _FrameReader(container, stream, _frame_rate(stream)).read(max(number, 0))
        if frame is None:
            raise VideoError("decode", "corrupt", f"no frame {number}")
        return frame.to_ndarray(format="rgb24")
    except VideoError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged packet
        raise VideoError("decode", "corrupt", str(e)) from e
    finally:
        container.close()
