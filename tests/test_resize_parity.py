"""The resamplers against Pillow and OpenCV themselves, on real and synthetic images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import deepfaune_rs
from conftest import all_test_images

SIZES = [(640, 480), (640, 360), (182, 182), (960, 540), (7, 5), (1000, 1000)]


def _rng_image(w: int, h: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("filt,pil", [("bicubic", Image.BICUBIC), ("bilinear", Image.BILINEAR)])
@pytest.mark.parametrize("src", [(37, 29), (400, 300), (64, 64), (5, 200)])
@pytest.mark.parametrize("dst", SIZES)
def test_resize_pil_is_bit_exact_on_random_images(filt, pil, src, dst):
    arr = _rng_image(*src, seed=src[0] * 1000 + dst[0])
    ref = np.asarray(Image.fromarray(arr).resize(dst, pil))
    ours = deepfaune_rs.resize_pil(arr, dst, filter=filt)
    assert np.array_equal(ours, ref), f"max diff {np.abs(ours.astype(int) - ref).max()}"


def test_resize_pil_crop_box_equals_pillow_crop_then_resize():
    arr = _rng_image(300, 200, 7)
    for box in [(10, 20, 110, 60), (0, 0, 300, 200), (250, 150, 300, 200), (3, 4, 9, 190)]:
        ref = np.asarray(Image.fromarray(arr).crop(box).resize((182, 182), Image.BICUBIC))
        ours = deepfaune_rs.resize_pil(arr, (182, 182), box_=box)
        assert np.array_equal(ours, ref), box


def test_resize_pil_on_real_photos(testdata):
    photos = [p for p in all_test_images(testdata) if p.stat().st_size > 0][::6]
    for p in photos:
        arr, _, _ = deepfaune_rs.read_image(str(p))
        h, w = arr.shape[:2]
        dst = (640, round(h / w * 640)) if w >= h else (round(w / h * 640), 640)
        ref = np.asarray(Image.fromarray(arr).resize(dst, Image.BICUBIC))
        assert np.array_equal(deepfaune_rs.resize_pil(arr, dst), ref), p


@pytest.mark.parametrize("src", [(37, 29), (400, 300), (1920, 1080), (64, 64), (4208, 2368)])
@pytest.mark.parametrize(
    "dst", [(960, 540), (20, 15), (200, 150), (32, 32), (1000, 700), (961, 541)]
)
def test_resize_cv2_linear_matches_opencv(src, dst):
    cv2 = pytest.importorskip("cv2")
    arr = _rng_image(*src, seed=src[1] * 7 + dst[1])
    ref = cv2.resize(arr, dst, interpolation=cv2.INTER_LINEAR)
    ours = deepfaune_rs.resize_cv2_linear(arr, dst)
    diff = np.abs(ours.astype(int) - ref)
    if dst[0] <= src[0] and dst[1] <= src[1]:
        # Shrinking (every camera image into a 960/1280 letterbox): bit-exact.
        assert diff.max() == 0, diff.max()
    else:
        # Enlarging: OpenCV's vector code rounds a few values differently; within one level.
        assert diff.max() <= 1, diff.max()
        assert (diff > 0).mean() < 0.02
