"""Detection with the embedded detector against the independent reference (reference_detect.py)."""

from __future__ import annotations

import numpy as np
import pytest

import deepfaune_rs
from conftest import all_test_images
from reference_detect import ReferenceYolox, iou, load_rgb


@pytest.fixture(scope="module")
def reference(shared_models):
    return ReferenceYolox(
        shared_models / "md_lite_yolox_tiny_640.onnx", threshold=0.25, nms_iou=0.45
    )


@pytest.fixture(scope="module")
def ours(testdata):
    return deepfaune_rs.Detector().detect(testdata, progress=False)


def test_same_decision_and_best_box_on_every_image(testdata, reference, ours):
    paths = ours.paths
    assert len(paths) == len(all_test_images(testdata))
    boxes, conf, idx = ours.boxes, ours.confidences, ours.image_index
    compared = 0
    for i, p in enumerate(paths):
        if ours.category[i] == 255:
            continue
        ref_boxes, ref_scores, _ = reference.detect(p)
        mine = np.nonzero(idx == i)[0]
        assert (len(mine) == 0) == (len(ref_boxes) == 0), f"{p}: empty decision differs"
        assert (ours.category[i] == 0) == (len(ref_boxes) == 0)
        if len(ref_boxes):
            best = mine[np.argmax(conf[mine])]
            assert iou(boxes[best], ref_boxes[0]) >= 0.99, (
                f"{p}: best box {boxes[best]} vs {ref_boxes[0]}"
            )
            assert abs(conf[best] - ref_scores[0]) < 1e-3
            assert len(mine) == len(ref_boxes), f"{p}: {len(mine)} boxes vs {len(ref_boxes)}"
        compared += 1
    assert compared >= 70


def test_zero_byte_files_are_failures(testdata, ours):
    failed = {f["path"]: f for f in ours.failures}
    zero = [p for p in all_test_images(testdata) if p.stat().st_size == 0]
    assert zero, "testdata should contain 0-byte images"
    for p in zero:
        assert str(p) in failed
        assert failed[str(p)]["kind"] == "empty"
        i = ours.paths.index(str(p))
        assert ours.category[i] == 255


def test_decoded_pixels_equal_pillow(testdata):
    # mozjpeg (libjpeg) decodes bit-identically to Pillow (libjpeg-turbo); EXIF orientation applied.
    for p in all_test_images(testdata):
        if p.stat().st_size == 0:
            continue
        ours, _, _ = deepfaune_rs.read_image(str(p))
        ref = np.asarray(load_rgb(p))
        assert ours.shape == ref.shape, p
        assert np.array_equal(ours, ref), f"{p}: max diff {np.abs(ours.astype(int) - ref).max()}"


def test_columns_are_zero_copy_read_only_views(ours):
    b = ours.boxes
    assert b.dtype == np.float32 and b.shape[1] == 4
    assert not b.flags.writeable
    assert not b.flags.owndata  # a view of the result's own memory
    with pytest.raises(ValueError):
        b[0, 0] = 1.0
