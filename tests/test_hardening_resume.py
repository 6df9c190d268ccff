"""Resume never reuses results of another file under the same name (issue 17, part 2): a card
emptied and refilled (camera counters restart) is processed again, and says so; a finished
run's checkpoint records that it is complete."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import deepfaune_rs
from conftest import REPO


def test_a_replaced_file_is_processed_again(shared_models, testdata, tmp_path):
    photos = sorted((testdata / "southwest").glob("*.JPG"))
    card = tmp_path / "card"
    card.mkdir()
    for k in range(3):
        os.symlink(photos[k], card / f"IMG_{k:04d}.JPG")
    pipe = deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
    )
    ckpt = tmp_path / "run.checkpoint"
    first = pipe.run(card, progress=False, checkpoint=ckpt)
    last = json.loads(ckpt.read_text().splitlines()[-1])
    assert last == {"complete": True, "images": 3}
    assert first.changed_since_checkpoint == []

    # The card is emptied and refilled: IMG_0001.JPG is now another photo.
    replaced = card / "IMG_0001.JPG"
    os.unlink(replaced)
    os.symlink(photos[4], replaced)
    again = pipe.run(card, progress=False, checkpoint=ckpt)
    fresh = pipe.run(card, progress=False)  # the truth: no checkpoint at all
    assert again.changed_since_checkpoint == [str(replaced)]
    np.testing.assert_array_equal(again.logits, fresh.logits)
    np.testing.assert_array_equal(again.detections.boxes, fresh.detections.boxes)
    assert list(again.prediction) == list(fresh.prediction)
    assert not np.array_equal(first.logits[1], again.logits[1])  # not the old photo's result
    # Resumed again with nothing changed: everything comes from the checkpoint.
    third = pipe.run(card, progress=False, checkpoint=ckpt)
    assert third.changed_since_checkpoint == []
    np.testing.assert_array_equal(third.logits, fresh.logits)
    assert json.loads(ckpt.read_text().splitlines()[-1])["complete"] is True


def test_a_replaced_video_is_processed_again(shared_models, testdata, tmp_path):
    pytest.importorskip("av")
    from test_video import _testdata_frames, make_video

    folder = tmp_path / "clips"
    folder.mkdir()
    frames = _testdata_frames(testdata, 12, size=(320, 240))
    clip = make_video(folder / "clip.mp4", frames, 10)
    pipe = deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
    )
    ckpt = tmp_path / "run.checkpoint"
    first = pipe.run(folder, progress=False, checkpoint=ckpt)
    # Replaced by another video under the same name (the pictures in reverse order).
    make_video(clip, frames[::-1], 10)
    again = pipe.run(folder, progress=False, checkpoint=ckpt)
    fresh = pipe.run(folder, progress=False)
    assert again.changed_since_checkpoint == [str(clip)]
    assert again.videos[0].detections == fresh.videos[0].detections
    assert again.videos[0].detections != first.videos[0].detections
    assert pipe.run(folder, progress=False, checkpoint=ckpt).changed_since_checkpoint == []
