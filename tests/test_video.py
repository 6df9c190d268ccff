"""Videos (SPEC 2.5): the frames DeepFaune 1.4.1 samples, how they are read, and the per-video
answer against the sampled frames run as images and aggregated by the independent reference."""

from __future__ import annotations

import csv
import json
import os
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import deepfaune_rs
from conftest import REPO, shared_dir
from deepfaune_rs import video as dfv
from reference.deepfaune_sequence_ref import average_logits, build_rows

av = pytest.importorskip("av")

CREATED = "2023-05-01T12:34:56.000000Z"


# Each case worked out by hand from DeepFaune's PredictorVideo.nextBatch (12 frames: 8 + 4):
# step = int(int(fps) / 3), shrunk while 7 * step > total; then 4 more at
# int((total - last) / 4) apart, none when that is 0.
HAND_CASES = [
    # 300 frames at 30 fps: step 10, 70 <= 300; rest int(230 / 4) = 57 -> 127, 184, 241, 298.
    (300, 30, [0, 10, 20, 30, 40, 50, 60, 70, 127, 184, 241, 298]),
    # 20 frames at 7.5 fps: int(7.5) = 7, int(7 / 3) = 2, 14 <= 20; rest int(6 / 4) = 1.
    (20, 7.5, [0, 2, 4, 6, 8, 10, 12, 14, 15, 16, 17, 18]),
    # 5 frames at 30 fps: step 10 shrinks to 0 (7 * 1 = 7 > 5); rest int(5 / 4) = 1.
    (5, 30, [0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]),
    # 10 frames at 1 fps: int(1 / 3) = 0 from the start; rest int(10 / 4) = 2.
    (10, 1, [0, 0, 0, 0, 0, 0, 0, 0, 2, 4, 6, 8]),
    # 14 frames at 30 fps: step 2 (7 * 2 = 14 is not > 14), so frame 14, one past the last
    # frame, is asked for; rest int((14 - 14) / 4) = 0: no more frames.
    (14, 30, [0, 2, 4, 6, 8, 10, 12, 14]),
    # 24 frames at 15 fps: step 5 -> 4 (28 > 24) -> 3 (21 <= 24); rest int(3 / 4) = 0.
    (24, 15, [0, 3, 6, 9, 12, 15, 18, 21]),
    # 29.97 fps: int(29.97) = 29, int(29 / 3) = 9; 63 <= 100; rest int(37 / 4) = 9.
    (100, 29.97, [0, 9, 18, 27, 36, 45, 54, 63, 72, 81, 90, 99]),
    (0, 30, []),
]


@pytest.mark.parametrize("total, fps, expected", HAND_CASES)
def test_frame_indices_follow_deepfaune_by_hand(total, fps, expected):
    assert dfv.frame_indices(total, fps) == expected


def _testdata_frames(testdata: Path, n: int, size=(640, 480)) -> list[np.ndarray]:
    names = [
        "ena24/2480.jpg",
        "buow/RCNX0851.JPG",
        "southwest/2021-08-08_RCNX0063_fox.JPG",
        "ena24/9455.jpg",
    ]
    imgs = [np.asarray(Image.open(testdata / name).convert("RGB").resize(size)) for name in names]
    # Consecutive blocks of frames show different pictures, so frames differ in content.
    return [imgs[(i * len(imgs)) // max(n, 1)] for i in range(n)]


def make_video(path: Path, frames, fps, codec="mpeg4", gop=12, created=CREATED) -> Path:
    container = av.open(str(path), "w")
    if created:
        container.metadata["creation_time"] = created
    stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = "yuv420p"
    stream.codec_context.gop_size = gop
    stream.bit_rate = 20_000_000  # little compression damage, so the detector finds the animals
    for f in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame in order, no seeking: the plain way to read a video."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


# (file name, fps, frames, codec): several rates and lengths, fewer than 12 frames included.
VIDEOS = [
    ("fps1.avi", 1, 10, "mpeg4"),
    ("fps7_5.mp4", 7.5, 20, "mpeg4"),
    ("short15.mov", 15, 5, "mpeg4"),
    ("fps30.m4v", 30, 90, "mpeg4"),
    ("ps30.mpeg", 30, 40, "mpeg1video"),
]


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory, testdata):
    d = tmp_path_factory.mktemp("videos")
    for name, fps, n, codec in VIDEOS:
        make_video(d / name, _testdata_frames(testdata, n), fps, codec)
    return d


@pytest.fixture(scope="module")
def pipeline(shared_models):
    return deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
    )


def test_long_video_seeks_to_the_same_frames_as_decoding_everything(tmp_path, testdata):
    # 300 frames with a keyframe every 50: the last four positions are reached by seeking.
    frames = _testdata_frames(testdata, 300, size=(160, 120))
    path = make_video(tmp_path / "long.mp4", frames, 30, gop=50)
    v = dfv.sample_video(path)
    assert (v.total_frames, v.fps) == (300, 30.0)
    assert v.positions == [0, 10, 20, 30, 40, 50, 60, 70, 127, 184, 241, 298]
    everything = decode_all(path)
    assert v.frame_numbers == sorted(set(v.positions))
    for k, frame in zip(v.frame_numbers, v.frames):
        np.testing.assert_array_equal(frame, everything[k])


@pytest.mark.parametrize("name, fps, n, codec", VIDEOS)
def test_sampled_frames_are_the_frames_at_those_numbers(video_dir, name, fps, n, codec):
    v = dfv.sample_video(video_dir / name)
    if codec == "mpeg1video":
        # MPEG-PS stores no frame count: like OpenCV, round(duration * fps), duration estimated
        # by FFmpeg (here short of the real length).
        with av.open(str(video_dir / name)) as c:
            assert v.total_frames == int(np.floor(c.duration / 1e6 * fps + 0.5))
    else:
        assert v.total_frames == n
    assert v.positions == dfv.frame_indices(v.total_frames, fps)
    everything = decode_all(video_dir / name)
    assert len(everything) == n
    for pos, slot in zip(v.positions, v.slots):
        if pos >= min(n, v.total_frames):  # past the last frame: unread, as in DeepFaune
            assert slot is None
            continue
        np.testing.assert_array_equal(v.frames[slot], everything[pos])
    # QuickTime-family containers keep creation_time; AVI and MPEG-PS have no such tag.
    quicktime = name.endswith((".mp4", ".mov", ".m4v"))
    assert v.date == ("2023:05:01 12:34:56" if quicktime else None)


@pytest.mark.parametrize("name, fps, n, codec", VIDEOS)
def test_frames_and_counts_match_opencv_as_deepfaune_reads_them(video_dir, name, fps, n, codec):
    cv2 = pytest.importorskip("cv2")
    cap = cv2.VideoCapture(str(video_dir / name))
    total, cv_fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), int(cap.get(5))
    v = dfv.sample_video(video_dir / name)
    assert (v.total_frames, int(v.fps)) == (total, cv_fps)
    if codec == "mpeg1video":
        # OpenCV cannot seek exactly in MPEG-PS (position 0 returns frame 10 here): the frames
        # read here are the true ones (see the test above), not OpenCV's.
        return
    for pos, slot in zip(v.positions, v.slots):
        cap.set(cv2.CAP_PROP_POS_FRAMES, pos)
        ok, bgr = cap.read()
        assert ok == (slot is not None), pos
        if ok:
            # PyAV's and OpenCV's FFmpeg convert YUV to RGB identically here.
            np.testing.assert_array_equal(v.frames[slot], cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()


LABELS_EXTRA = ["human", "vehicle", "empty", "undefined"]


def _expected_from_frames_as_images(pipeline, v, tmp_path: Path):
    """Runs the sampled frames as PNG images, then aggregates them with the reference."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, frame in zip(v.frame_numbers, v.frames):
        Image.fromarray(frame).save(folder / f"frame_{k:05d}.png")
    res = pipeline.run(folder, progress=False)
    by_number = {int(Path(p).stem.split("_")[1]): i for i, p in enumerate(res.paths)}
    cat = res.detections.category
    n_classes = len(pipeline.class_names)
    kinds, logits = [], []
    for slot in v.slots:
        if slot is None:
            kinds.append(0)
            logits.append(np.zeros(n_classes, np.float32))
        else:
            i = by_number[v.frame_numbers[slot]]
            kinds.append(int(cat[i]))
            logits.append(np.asarray(res.logits[i]))
    rows, layout = build_rows(kinds, np.stack(logits))
    label, score, top1 = average_logits(rows, layout, 0.8)
    names = pipeline.class_names + LABELS_EXTRA
    read = [by_number[k] for k in v.frame_numbers]
    count = max(int(res.count[i]) for i in read)
    humancount = max(int(res.humancount[i]) for i in read)
    # Keyframe (the rule): the animal frame with the highest logit of the predicted
    # class (top1 when undefined); the first human/vehicle frame; none when empty.
    keyframe = None
    if top1 < n_classes:
        animal = [k for k in range(len(kinds)) if kinds[k] == 1]
        best = max(animal, key=lambda k: (logits[k][top1], -k))
        keyframe = v.positions[best]
    elif top1 in (layout.human, layout.vehicle):
        code = 2 if top1 == layout.human else 3
        keyframe = v.positions[kinds.index(code)]
    return res, {
        "prediction": names[label],
        "score": score,
        "top1": names[top1],
        "count": count,
        "humancount": humancount,
        "keyframe": keyframe,
    }


@pytest.mark.parametrize("name", [name for name, *_ in VIDEOS])
def test_video_answer_is_the_reference_over_its_frames_as_images(
    pipeline, video_dir, tmp_path, name
):
    v = dfv.sample_video(video_dir / name)
    images, expected = _expected_from_frames_as_images(pipeline, v, tmp_path)
    result = pipeline.run(video_dir / name, progress=False)
    assert len(result) == 0 and not result.failures
    (rec,) = result.videos
    got = {
        "prediction": rec.prediction,
        "score": pytest.approx(expected["score"]),
        "top1": rec.top1,
        "count": rec.count,
        "humancount": rec.humancount,
        "keyframe": rec.keyframe,
    }
    assert got == expected
    # Per frame, the frame-level API and the image path agree...
    r = pipeline.run_frames(v.frames, v.slots, v.path)
    order = [int(Path(p).stem.split("_")[1]) for p in images.paths]
    rows = [order.index(k) for k in v.frame_numbers]
    np.testing.assert_array_equal(r.detections.category, images.detections.category[rows])
    np.testing.assert_allclose(r.logits, images.logits[rows], rtol=1e-5, atol=1e-5)
    assert rec.frames_processed == v.frame_numbers
    # ...and the record holds every box of every frame, with the frame's number.
    det = images.detections
    want = [
        (n, int(det.classes[b]), float(det.confidences[b]))
        for n, row in zip(v.frame_numbers, rows)
        for b in np.flatnonzero(det.image_index == row)
    ]
    got_boxes = [(d["frame_number"], d["category"], d["conf"]) for d in rec.detections]
    assert [g[:2] for g in got_boxes] == [w[:2] for w in want]
    assert [g[2] for g in got_boxes] == pytest.approx([w[2] for w in want], abs=1e-5)
    if rec.keyframe is not None and rec.box is not None:
        assert any(d["frame_number"] == rec.keyframe for d in rec.detections)


def test_some_video_sees_an_animal(pipeline, video_dir):
    # Guards the test above against comparing only empty videos.
    res = pipeline.run(video_dir, progress=False)
    assert any(v.keyframe is not None and v.count > 0 for v in res.videos)


def test_bad_videos_are_failures_with_reasons(pipeline, video_dir, tmp_path):
    error_vid = shared_dir() / "testdata" / "southwest" / "error_vid.mp4"
    good = video_dir / "fps7_5.mp4"
    data = good.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 3])
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(b"this is not a video at all" * 100)
    unsupported = tmp_path / "clip.mkv"
    shutil.copy(good, unsupported)
    inputs = [good, truncated, garbage, unsupported]
    if error_vid.is_file():
        inputs.append(error_vid)
    res = pipeline.run(inputs, progress=False)
    failures = {Path(f["path"]).name: f for f in res.failures}
    assert set(failures) == {p.name for p in inputs} - {"fps7_5.mp4"}
    assert failures["clip.mkv"]["kind"] == "unsupported"
    assert "unsupported video format .mkv" in failures["clip.mkv"]["reason"]
    assert failures["garbage.avi"]["kind"] == "corrupt"
    if error_vid.is_file():
        assert failures["error_vid.mp4"]["kind"] == "empty"
        assert "0 bytes" in failures["error_vid.mp4"]["reason"]
    for f in failures.values():
        assert f["reason"] and f["stage"] in ("read", "decode")
    # The good video still ran; the bad ones that are DeepFaune videos are rows, "empty".
    by_name = {Path(v.path).name: v for v in res.videos}
    assert by_name["fps7_5.mp4"].failure is None and by_name["fps7_5.mp4"].frames_processed
    for name in ("truncated.mp4", "garbage.avi"):
        assert (by_name[name].prediction, by_name[name].score) == ("empty", 1.0)
        assert by_name[name].failure is not None
    assert "clip.mkv" not in by_name


def test_without_pyav_videos_say_how_to_install_it(pipeline, video_dir, monkeypatch):
    monkeypatch.setattr(dfv, "_import_av", lambda: None)
    res = pipeline.run(video_dir / "fps1.avi", progress=False)
    (failure,) = res.failures
    assert failure["kind"] == "missing_dependency"
    assert "deepfaune-rs[video]" in failure["reason"]


def test_a_sampler_error_is_the_videos_failure_never_a_crash(
    pipeline, video_dir, monkeypatch, tmp_path
):
    """Any exception of the frame reader (not only VideoError) fails that video alone: a
    failed record, "empty", the run goes on; Ctrl-C while reading stops the run, and the
    video interrupted is not recorded in the checkpoint."""
    real = dfv.sample_video

    def flaky(path, *args):
        if Path(path).name == "fps1.avi":
            raise RuntimeError("decoder exploded")
        return real(path, *args)

    monkeypatch.setattr(dfv, "sample_video", flaky)
    inputs = [video_dir / "fps1.avi", video_dir / "fps7_5.mp4"]
    res = pipeline.run(inputs, progress=False)
    bad, good = res.videos
    assert bad.failure is not None and good.failure is None
    assert (bad.failure["stage"], bad.failure["kind"]) == ("read", "other")
    assert "RuntimeError: decoder exploded" in bad.failure["reason"]
    assert (bad.prediction, bad.score) == ("empty", 1.0)
    assert [f["path"] for f in res.failures] == [str(inputs[0])]

    def interrupted(path, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(dfv, "sample_video", interrupted)
    ckpt = tmp_path / "run.checkpoint"
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(inputs, progress=False, checkpoint=ckpt)
    lines = [json.loads(line) for line in ckpt.read_text().splitlines()]
    assert lines and not any("video" in line for line in lines)
    assert not deepfaune_rs._core.checkpoint_is_complete(str(ckpt))


@pytest.fixture(scope="module")
def mixed(pipeline, video_dir, testdata, tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    (root / "cam1").mkdir()
    (root / "cam2").mkdir()
    for name in ("2480.jpg", "352.jpg"):
        shutil.copy(testdata / "ena24" / name, root / "cam1" / name)
    shutil.copy(video_dir / "fps7_5.mp4", root / "cam1" / "b.mp4")
    shutil.copy(video_dir / "short15.mov", root / "cam2" / "a.MOV")
    out = root / "cam2" / "sorted"
    out.mkdir()
    (out / ".deepfaune-rs-output").touch()
    shutil.copy(video_dir / "fps1.avi", out / "skipped.avi")
    return root, pipeline.run(root, progress=False)


def test_mixed_folder_table_has_images_then_one_sequence_per_video(mixed):
    root, res = mixed
    assert len(res) == 2
    names = [os.path.relpath(v.path, root) for v in res.videos]
    assert names == [os.path.join("cam1", "b.mp4"), os.path.join("cam2", "a.MOV")]
    t = res.table()
    assert t["media_type"] == ["image", "image", "video", "video"]
    image_seq = max(t["seqnum"][:2])
    assert t["seqnum"][2:] == [image_seq + 1, image_seq + 2]
    for k, v in enumerate(res.videos, start=2):
        assert (t["prediction"][k], t["predictionbase"][k]) == (v.prediction, v.prediction)
        assert (t["date"][k], t["keyframe"][k]) == ("2023:05:01 12:34:56", v.keyframe)
    assert res.videos[0].media_type == "video/mp4"
    assert res.videos[1].media_type == "video/quicktime"


def test_mixed_folder_csv_and_pandas(mixed, tmp_path):
    _, res = mixed
    path = tmp_path / "out.csv"
    res.to_csv(path)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0][-2:] == ["media_type", "keyframe"]
    assert [r[-2] for r in rows[1:]] == ["image", "image", "video", "video"]
    df = res.to_pandas()
    assert list(df["filename"]) == [r[0] for r in rows[1:]]
    # Scores print as DeepFaune's pandas does (1.0, 0.97): Python's repr of the table's floats,
    # for images and videos alike (the whole file: tests/test_video_exports.py).
    for column in ("scorebase", "score"):
        at = rows[0].index(column)
        assert [r[at] for r in rows[1:]] == [repr(float(x)) for x in df[column]]


def test_mixed_folder_megadetector_json(mixed, tmp_path):
    root, res = mixed
    path = tmp_path / "md.json"
    res.to_megadetector_json(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    entries = {e["file"]: e for e in doc["images"]}
    video = entries["cam1/b.mp4"]
    rec = res.videos[0]
    assert video["frame_rate"] == 7.5
    assert video["frames_processed"] == rec.frames_processed
    assert len(video["detections"]) == len(rec.detections)
    for d in video["detections"]:
        assert d["frame_number"] in rec.frames_processed
        assert all(0 <= x <= 1 for x in d["bbox"])
    assert {"cam1/2480.jpg", "cam1/352.jpg", "cam2/a.MOV"} <= set(entries)
    try:
        from megadetector.postprocessing.validate_batch_results import (
            ValidateBatchResultsOptions,
            validate_batch_results,
        )
    except ImportError:
        return
    report = validate_batch_results(str(path), ValidateBatchResultsOptions())
    assert not report["validation_results"]["errors"]


def test_mixed_folder_sorting_places_videos_by_prediction(mixed, tmp_path):
    root, res = mixed
    report = res.sort_into(tmp_path / "dest")
    placed = {os.path.basename(src): Path(dst) for src, dst in report["placed"]}
    assert not report["failures"]
    for v in res.videos:
        dst = placed[os.path.basename(v.path)]
        assert dst.parent.name == v.prediction
        assert dst.read_bytes() == Path(v.path).read_bytes()
    assert len(placed) == 4
