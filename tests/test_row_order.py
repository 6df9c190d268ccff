"""One row order for every array and table of a run's results (issue 15): row ``i`` of
``logits``, ``embeddings``, ``paths``, the detection columns and ``to_pandas()`` is the same
image. The arrays followed the walk order while the table followed DeepFaune's sequence order,
so ``t["logits"] = list(res.logits)`` attached logits to other images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import deepfaune_rs
from conftest import REPO


@pytest.fixture(scope="module")
def pipe(shared_models):
    return deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
    )


CAMERAS = {
    "cam1": ("buow", ["IMG_0708.JPG", "IMG_0827.JPG", "IMG_0919.JPG", "IMG_1160.JPG",
                      "RCNX0712.JPG"]),
    "cam2": ("southwest", ["IMAG0004_cougar.JPG", "IMAG0031_wolf.JPG", "IMAG0046_bobcat.JPG",
                           "IMAG0104_wolf.JPG", "error_img.JPG", "error_vid.mp4"]),
}  # fmt: skip


@pytest.fixture(scope="module")
def folders(testdata, tmp_path_factory):
    """Two camera folders of small copies (EXIF dates kept; a 0-byte image and video): the
    dates are not in the order of the names, so the walk order is not DeepFaune's order."""
    root = tmp_path_factory.mktemp("order")
    for camera, (source, names) in CAMERAS.items():
        (root / camera).mkdir()
        for name in names:
            src, dst = testdata / source / name, root / camera / name
            if src.stat().st_size == 0:
                dst.write_bytes(b"")
                continue
            with Image.open(src) as img:
                exif = img.getexif()
                small = img.resize((img.width // 6, img.height // 6), Image.BILINEAR)
            small.save(dst, quality=90, exif=exif)
    return root


@pytest.fixture(scope="module")
def res(pipe, folders):
    return pipe.run(folders, progress=False)


def test_the_walk_order_is_not_deepfaunes_order(res, folders):
    """The case the test is about: sorted paths (the walk) against the table's order."""
    walked = sorted(str(p) for p in folders.rglob("*.JPG"))
    table = list(_image_rows(res).filename)
    assert sorted(table) == walked
    assert table != walked


def _image_rows(res):
    """The table's image rows: the first ``len(res)``, videos follow."""
    t = res.to_pandas()
    assert list(t.media_type) == ["image"] * len(res) + ["video"] * len(res.videos)
    return t.iloc[: len(res)]


def test_every_array_row_is_the_table_row(pipe, res):
    """Row i of every array belongs to the image of row i of ``to_pandas()``, checked against a
    run over that image alone (whose one row cannot be in another order)."""
    t = _image_rows(res)
    n = len(res)
    assert [str(p) for p in res.paths] == list(t.filename)
    assert [str(p) for p in res.detections.paths] == list(t.filename)
    assert list(res.seqnum) == list(t.seqnum)
    assert list(res.predictionbase) == list(t.predictionbase)
    assert list(res.prediction) == list(t.prediction)
    assert list(res.scorebase) == list(t.scorebase)
    assert list(res.score) == list(t.score)
    assert list(res.top1) == list(t.top1)
    assert list(res.count) == list(t["count"])
    assert list(res.humancount) == list(t.humancount)
    assert list(res.detections.count) == list(t["count"])
    assert res.logits.shape[0] == res.embeddings.shape[0] == len(res.classified) == n
    assert len(res.dates) == len(res.reviewed) == n
    classified = 0
    for i, path in enumerate(t.filename):
        alone = pipe.run(path, progress=False)
        assert [str(p) for p in alone.paths] == [path]
        assert res.classified[i] == alone.classified[0], path
        np.testing.assert_array_equal(res.logits[i], alone.logits[0], err_msg=path)
        np.testing.assert_array_equal(res.embeddings[i], alone.embeddings[0], err_msg=path)
        assert res.predictionbase[i] == alone.predictionbase[0], path
        assert res.dates[i] == alone.dates[0], path
        det, one = res.detections, alone.detections
        assert det.category[i] == one.category[0], path
        assert tuple(det.crop_boxes[i]) == tuple(one.crop_boxes[0]), path
        if det.best_detection[i] >= 0:
            np.testing.assert_array_equal(
                det.boxes[det.best_detection[i]], one.boxes[one.best_detection[0]], err_msg=path
            )
        classified += bool(alone.classified[0])
    assert classified >= 3 and len(res.failures) == 2
    # The 0-byte image and video: typed records (deepfaune_rs.Failure), the image's row its own.
    for f in res.failures:
        assert set(f) == set(deepfaune_rs.Failure.__annotations__)
    (image,) = [f for f in res.failures if f["index"] is not None]
    assert str(res.paths[image["index"]]) == image["path"]


def test_redecided_results_keep_one_order(res):
    """Re-deciding with another ``maxlag_s`` renumbers the sequences: the arrays follow the new
    table, each row still its own image."""
    logits = {str(p): res.logits[i].copy() for i, p in enumerate(res.paths)}
    again = res.redecide(maxlag_s=0)
    t = _image_rows(again)
    assert [str(p) for p in again.paths] == list(t.filename)
    assert list(again.seqnum) == list(t.seqnum)
    for i, p in enumerate(again.paths):
        np.testing.assert_array_equal(again.logits[i], logits[str(p)])
    # The same settings again give the same table (order included).
    back = again.redecide(maxlag_s=res.settings["maxlag_s"])
    assert back.to_pandas().equals(res.to_pandas())


def test_saved_embeddings_follow_the_table(res, tmp_path):
    res.save_embeddings(tmp_path / "e.npz")
    saved = np.load(tmp_path / "e.npz")
    assert list(saved["filename"]) == list(_image_rows(res).filename)
    np.testing.assert_array_equal(saved["embedding"], res.embeddings)
