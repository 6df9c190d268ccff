"""Checkpoint and resume: a run killed part-way and resumed writes the same bytes as one run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import deepfaune_rs
from conftest import REPO, all_test_images


def _cmd(shared_models, inputs, out, *extra):
    return [
        sys.executable, "-m", "deepfaune_rs.cli", "run", str(inputs), "-o", str(out),
        "--detector", "md-lite",
        "--classifier", str(shared_models / "pixel_classifier_182_c38.onnx"),
        "--classifier-manifest", str(REPO / "models" / "tiny-pixel-c38.toml"),
        "--no-progress", *extra,
    ]  # fmt: skip


def _records(path) -> int:
    try:
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")[1:]  # minus the header line
    except FileNotFoundError:
        return 0
    # Image records only: a finished run ends with its completion line (issue 17), videos
    # have lines of their own.
    return sum(
        1
        for line in lines
        if line.strip() and b'"complete"' not in line and not line.startswith(b'{"video":')
    )


def _complete(path) -> bool:
    with open(path, "rb") as f:
        return b'"complete":true' in f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]


def _kill_when(cmd, ready) -> None:
    """Starts `cmd` and SIGKILLs it as soon as `ready()` holds (failing if it ends first)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_killed_then_resumed_run_equals_an_uninterrupted_one(shared_models, testdata, tmp_path):
    # Two of the test folders (37 images, the 0-byte one among them): the run is killed in the
    # first, resumed across the second.
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in ("buow", "southwest"):
        (inputs / name).symlink_to(testdata / name)
    whole = tmp_path / "whole.csv"
    p = subprocess.run(_cmd(shared_models, inputs, whole), capture_output=True, text=True)
    assert p.returncode == 3, p.stderr  # the 0-byte test image is a failure

    out = tmp_path / "resumed.csv"
    ckpt = tmp_path / "resumed.csv.checkpoint"
    _kill_when(_cmd(shared_models, inputs, out, "--resume"), lambda: _records(ckpt) >= 12)
    done = _records(ckpt)
    total = len(all_test_images(testdata / "buow")) + len(all_test_images(testdata / "southwest"))
    assert 12 <= done < total and not out.exists()

    p = subprocess.run(_cmd(shared_models, inputs, out, "--resume"), capture_output=True, text=True)
    assert p.returncode == 3, p.stderr
    assert out.read_bytes() == whole.read_bytes()
    assert _records(ckpt) == total  # every image once: nothing done twice
    assert _complete(ckpt)

    # Other settings: refused, with what differs.
    p = subprocess.run(
        _cmd(shared_models, inputs, out, "--resume", "--score-threshold", "0.5"),
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2  # the user's to correct (delete it or write elsewhere): usage
    assert "another model or other settings" in p.stderr and "threshold" in p.stderr


def test_python_checkpoint_reuses_finished_work(shared_models, testdata, tmp_path):
    pipe = deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
    )
    ckpt = tmp_path / "run.checkpoint"
    folder = tmp_path / "buow"
    folder.mkdir()
    for src in sorted((testdata / "buow").iterdir()):
        shutil.copyfile(src, folder / src.name)
    first = pipe.run(folder, progress=False, checkpoint=ckpt)
    # The middle of every image is now zeros, with its size, its first and last 64 KiB and its
    # modification time kept: the file's identity (issue 17) is unchanged, so the checkpoint's
    # records still stand; a run that decoded any image again would get other pixels.
    for f in folder.iterdir():
        st = f.stat()
        data = bytearray(f.read_bytes())
        assert len(data) > 2 * 65536 + 4096
        data[65536:-65536] = bytes(len(data) - 2 * 65536)
        f.write_bytes(bytes(data))
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    records = _records(ckpt)
    calls = []
    second = pipe.run(folder, progress=lambda d, t: calls.append((d, t)), checkpoint=ckpt)
    assert _records(ckpt) == records  # nothing appended: nothing was processed
    assert second.changed_since_checkpoint == []
    assert calls[-1] == (len(first), len(first))
    assert first.to_pandas().equals(second.to_pandas())
    assert (first.logits == second.logits).all() and (first.embeddings == second.embeddings).all()
    assert first.detections.failures == second.detections.failures
    with pytest.raises(deepfaune_rs.InvalidArgumentError):
        other = deepfaune_rs.Pipeline(
            "md-lite",
            shared_models / "pixel_classifier_182_c38.onnx",
            classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
            maxlag_s=20,
        )
        other.run(testdata / "buow", progress=False, checkpoint=ckpt)


def _video_lines(path) -> int:
    """The complete video lines of a checkpoint (``{"video": ..., "identity": ...}``)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        return 0
    n = 0
    for line in lines:
        try:
            n += "video" in json.loads(line)
        except ValueError:
            pass
    return n


def test_killed_during_the_videos_then_resumed_equals_one_run(shared_models, testdata, tmp_path):
    """Videos are checkpointed too: a run killed after its first video is recorded resumes
    without processing that video again and writes the same CSV bytes as one run."""
    pytest.importorskip("av")
    from test_video import _testdata_frames, make_video

    folder = tmp_path / "mixed"
    folder.mkdir()
    for src in sorted((testdata / "buow").iterdir())[:3]:
        (folder / src.name).symlink_to(src)
    for k, fps in enumerate([10, 15, 30, 12]):
        make_video(folder / f"clip{k}.mp4", _testdata_frames(testdata, 60), fps)

    def outputs(name):  # the CSV, MegaDetector JSON and Camtrap DP tables of a run
        return ("--json", str(tmp_path / f"{name}.json"), "--camtrap-dp", str(tmp_path / name))

    whole = tmp_path / "whole.csv"
    p = subprocess.run(
        _cmd(shared_models, folder, whole, *outputs("whole")), capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr

    out = tmp_path / "resumed.csv"
    checkpoint = tmp_path / "resumed.csv.checkpoint"
    # The images' lines, then one line per video, in the same file.
    _kill_when(_cmd(shared_models, folder, out, "--resume"), lambda: _video_lines(checkpoint) >= 1)
    done = _video_lines(checkpoint)
    assert 1 <= done < 4 and not out.exists()
    assert not (tmp_path / "resumed.csv.checkpoint.videos").exists()

    p = subprocess.run(
        _cmd(shared_models, folder, out, "--resume", *outputs("resumed")),
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == whole.read_bytes()
    assert _video_lines(checkpoint) == 4  # every video once: nothing done twice
    # Restored video records give the same MegaDetector JSON and Camtrap DP tables too.
    assert (tmp_path / "resumed.json").read_bytes() == (tmp_path / "whole.json").read_bytes()
    for table in ("media.csv", "observations.csv", "deployments.csv"):
        assert (tmp_path / "resumed" / table).read_bytes() == (
            tmp_path / "whole" / table
        ).read_bytes()
    media = (tmp_path / "whole" / "media.csv").read_text()
    assert media.count("video/mp4") == 4


def test_a_video_line_is_reused_for_the_same_file_only(shared_models, testdata, tmp_path):
    """A video's line in the run's checkpoint is taken back as recorded while the file is the
    one recorded; a video replaced under its name is run again and listed as changed."""
    pytest.importorskip("av")
    from test_video import _testdata_frames, make_video

    folder = tmp_path / "v"
    folder.mkdir()
    clip = folder / "clip.mp4"
    make_video(clip, _testdata_frames(testdata, 24), 12)
    pipe = deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
    )
    ckpt = tmp_path / "run.checkpoint"
    first = pipe.run(folder, progress=False, checkpoint=ckpt)
    assert _video_lines(ckpt) == 1
    assert not (tmp_path / "run.checkpoint.videos").exists()
    # Tamper with the recorded answer; a resumed run must take it as recorded...
    lines = ckpt.read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if "video" in json.loads(line))
    rec = json.loads(lines[k])
    assert rec["video"]["path"] == str(clip) and rec["identity"]["size"] == clip.stat().st_size
    rec["video"]["prediction"] = "recorded"
    lines[k] = json.dumps(rec)
    ckpt.write_text("\n".join(lines) + "\n")
    again = pipe.run(folder, progress=False, checkpoint=ckpt)
    assert again.videos[0].prediction == "recorded"
    assert again.changed_since_checkpoint == []
    # ...but not for another file under the same name.
    make_video(clip, _testdata_frames(testdata, 36), 12)
    replaced = pipe.run(folder, progress=False, checkpoint=ckpt)
    assert replaced.videos[0].prediction == first.videos[0].prediction != "recorded"
    assert replaced.changed_since_checkpoint == [str(clip)]


def test_a_damaged_record_is_processed_again(shared_models, testdata, tmp_path):
    """A checkpoint line that is valid JSON but wrong (a deciding box that is not one of the
    image's boxes, as a flipped bit could make) is not trusted: that image is processed again,
    recorded anew, and the results equal a clean run's."""
    pipe = deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
    )
    ckpt = tmp_path / "run.checkpoint"
    first = pipe.run(testdata / "buow", progress=False, checkpoint=ckpt)
    lines = ckpt.read_text().splitlines()
    k = next(i for i, line in enumerate(lines[1:], 1) if json.loads(line)["boxes"])
    rec = json.loads(lines[k])
    rec["best"] = len(rec["boxes"]) + 5
    lines[k] = json.dumps(rec)
    ckpt.write_text("\n".join(lines) + "\n")
    second = pipe.run(testdata / "buow", progress=False, checkpoint=ckpt)
    assert first.to_pandas().equals(second.to_pandas())
    assert (first.logits == second.logits).all()
    after = [json.loads(line) for line in ckpt.read_text().splitlines()]
    records = [r for r in after if "path" in r]
    assert len(records) == len(lines) - 1  # the damaged image, recorded again (minus the header)
    assert records[-1]["path"] == rec["path"]
    assert after[-1].get("complete") is True
