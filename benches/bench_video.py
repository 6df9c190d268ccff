"""Seconds per video against the same frames run as images, and the share of frame extraction.

Builds camera-trap-like videos from ../shared/testdata images (H.264 when the PyAV wheel has
libx264, else MPEG-4 Part 2; 1280x720, 30 fps, one keyframe per second, 10 s), then:

  video   deepfaune_rs.Pipeline.run(video): sampling 12 frames with PyAV (seeking), detection,
          classification, aggregation; extraction timed inside (`VideoRecord.seconds_extraction`)
  images  the same sampled frames written as JPEG (quality 95) and run with Pipeline.run(folder)

Detector: the embedded md-lite (YOLOX-tiny 640); classifier: the small pixel classifier from
../shared/models (the ViT-L classifier would add the same ~0.7 s per animal crop to both paths).

Usage: python benches/bench_video.py [--videos 4] [--seconds 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))

from conftest import find_testdata, shared_dir  # noqa: E402


def make_video(path: Path, frames: list[np.ndarray], fps: int) -> str:
    import av

    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as c:
        c.metadata["creation_time"] = "2024-06-01T05:00:00.000000Z"
        s = c.add_stream(codec, rate=fps)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = "yuv420p"
        s.codec_context.gop_size = fps
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return codec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--fps", type=int, default=30)
    args = ap.parse_args()

    import deepfaune_rs
    from deepfaune_rs.video import sample_video

    testdata = find_testdata()
    pictures = sorted(testdata.rglob("*.jpg")) + sorted(testdata.rglob("*.JPG"))
    pipe = deepfaune_rs.Pipeline(
        "md-lite",
        shared_dir() / "models" / "pixel_classifier_182_c38.onnx",
        classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        n = args.seconds * args.fps
        videos = []
        for v in range(args.videos):
            # A few stills per video, each held for a while, with a slow pan so frames differ.
            stills = [
                np.asarray(Image.open(pictures[(v * 3 + k) % len(pictures)]).convert("RGB"))
                for k in range(3)
            ]
            stills = [np.asarray(Image.fromarray(s).resize((1280, 720))) for s in stills]
            frames = [np.roll(stills[(i * 3) // n], 2 * i, axis=1) for i in range(n)]
            path = tmp_dir / f"video_{v}.mp4"
            codec = make_video(path, frames, args.fps)
            videos.append(path)
        pipe.run(videos[0], progress=False)  # warm-up: sessions, thread pools

        t0 = time.perf_counter()
        res = pipe.run(videos, progress=False)
        video_total = time.perf_counter() - t0
        extraction = sum(r.seconds_extraction for r in res.videos)
        per_video = sum(r.seconds_total for r in res.videos)

        frame_dir = tmp_dir / "frames"
        frame_dir.mkdir()
        n_frames = 0
        for path in videos:
            s = sample_video(path)
            for k, f in zip(s.frame_numbers, s.frames):
                Image.fromarray(f).save(frame_dir / f"{path.stem}_{k:05d}.jpg", quality=95)
                n_frames += 1
        t0 = time.perf_counter()
        pipe.run(frame_dir, progress=False)
        images_total = time.perf_counter() - t0

    nv = len(videos)
    print(f"{nv} videos, {args.seconds} s at {args.fps} fps, 1280x720, {codec}, md-lite + pixel")
    print(f"video path : {video_total / nv:.3f} s per video ({video_total:.2f} s)")
    print(f"  frame extraction {extraction / nv:.3f} s per video = {extraction / per_video:.1%}")
    print(
        f"images path: {images_total / nv:.3f} s per video's frames "
        f"({n_frames} JPEG frames, {images_total / n_frames:.3f} s per image)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
