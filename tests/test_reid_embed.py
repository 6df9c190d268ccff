"""Embedding stage against independent references: OpenCV (CLAHE), Pillow + onnxruntime
(preprocessing and model output)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from deepfaune_rs import _core, errors
from deepfaune_rs.reid import Embedder, clahe_rgb

cv2 = pytest.importorskip("cv2")

MODEL = "yolox_tiny_backbone_embed.onnx"


def load_rgb(path) -> np.ndarray:
    return np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))


@pytest.fixture(scope="module")
def jaguar(testdata):
    d = testdata / "jaguar"
    if not d.is_dir():
        pytest.skip(f"no jaguar test images at {d}")
    return d


@pytest.fixture(scope="module")
def embedder(shared_models):
    path = shared_models / MODEL
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return Embedder("yolox-embed", weights=path)


def test_clahe_step_is_bit_exact_with_opencv(jaguar):
    img = load_rgb(next(iter(sorted(jaguar.glob("*.jpg")))))
    for crop in (img, img[300:777, 400:1011], img[:37, :53]):
        lum = np.ascontiguousarray(
            cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2LAB)[:, :, 0]
        )
        for clip, grid in ((4.0, 4), (2.0, 8)):
            ref = cv2.createCLAHE(clipLimit=clip, tileGridSize=(grid, grid)).apply(lum)
            np.testing.assert_array_equal(_core.clahe_gray(lum, clip, grid), ref)


def test_clahe_rgb_close_to_albumentations_pipeline(jaguar):
    img = np.ascontiguousarray(load_rgb(sorted(jaguar.glob("*.jpg"))[3])[200:700, 300:900])
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
    lab[:, :, 0] = cv2.createCLAHE(clipLimit=4.0, tileGridSize=(4, 4)).apply(lab[:, :, 0])
    ref = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).astype(int)
    diff = np.abs(clahe_rgb(img, 4.0, 4).astype(int) - ref)
    # Same equalisation; the colour conversion is float where OpenCV's is fixed point.
    assert diff.mean() < 4.0, diff.mean()


def pillow_input(img: np.ndarray, box, size=256) -> np.ndarray:
    """yolox-embed's manifest, written with Pillow: crop, long side to 256 (BICUBIC), centred
    black padding, CHW float 0-255."""
    x1, y1, x2, y2 = box
    crop = Image.fromarray(img).crop((x1, y1, x2, y2))
    w, h = crop.size
    s = size / max(w, h)
    nw, nh = max(1, min(size, round(w * s))), max(1, min(size, round(h * s)))
    canvas = Image.new("RGB", (size, size))
    canvas.paste(crop.resize((nw, nh), Image.BICUBIC), ((size - nw) // 2, (size - nh) // 2))
    return np.asarray(canvas, dtype=np.float32).transpose(2, 0, 1)


def md_boxes(jaguar):
    import pandas as pd

    df = pd.read_csv(jaguar / "reid_manifest.csv")
    df = df[[(jaguar / f).is_file() for f in df["filename"]]]
    paths = [jaguar / f for f in df["filename"]]
    # float64, as the CSV text reads (issue 18: fractions keep their precision)
    boxes = df[["bbox_x", "bbox_y", "bbox_w", "bbox_h"]].to_numpy(np.float64)
    return paths, boxes


def test_preprocessing_and_embeddings_match_pillow_and_onnxruntime(jaguar, embedder, shared_models):
    import onnxruntime as ort

    paths, boxes = md_boxes(jaguar)
    paths, boxes = paths[:4], boxes[:4]
    res = embedder.embed(paths, boxes, box_format="megadetector", batch_size=3)
    assert res.failures == [] and res.embeddings.shape == (4, 672)
    sess = ort.InferenceSession(str(shared_models / MODEL), providers=["CPUExecutionProvider"])
    for i, (p, b) in enumerate(zip(paths, boxes)):
        img = load_rgb(p)
        h, w = img.shape[:2]
        px = (
            int(np.floor(b[0] * w)),
            int(np.floor(b[1] * h)),
            int(min(w, np.ceil((b[0] + b[2]) * w))),
            int(min(h, np.ceil((b[1] + b[3]) * h))),
        )
        ref_in = pillow_input(img, px)
        np.testing.assert_array_equal(embedder.prepare(img, px), ref_in)
        ref = sess.run(["embedding"], {"images": ref_in[None]})[0][0]
        np.testing.assert_allclose(res.embeddings[i], ref, atol=1e-5)


def test_failures_are_rows_not_exceptions(jaguar, embedder, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    good = sorted(jaguar.glob("*.jpg"))[0]
    boxes = np.array([[-1, -1, -1, -1], [0, 0, 100, 100], [0, 0, 100, 100]], np.float32)
    res = embedder.embed([good, bad, good], boxes)
    assert [i for i, _ in res.failures] == [0, 1]
    assert "no box" in res.failures[0][1]
    assert np.isnan(res.embeddings[:2]).all() and np.isfinite(res.embeddings[2]).all()
    assert res.ok.tolist() == [False, False, True]
    with pytest.raises(errors.InvalidArgumentError):
        embedder.embed([good], np.zeros((2, 4), np.float32))
    with pytest.raises(errors.WeightsNotFoundError):
        Embedder("yolox-embed", weights=tmp_path / "missing.onnx")
    with pytest.raises(errors.UnknownModelError):
        Embedder("no-such-model")
