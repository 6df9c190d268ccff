"""Odd and hostile files: every one is decoded as Pillow would, or reported as a failure with
its path, stage, kind and reason; none stops the run. All inputs are generated here."""

from __future__ import annotations

import io
import json
import os
import struct

import numpy as np
import pytest
from PIL import Image, ImageOps

import deepfaune_rs

RNG = np.random.default_rng(7)


def _noise(h=48, w=64) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _pillow_rgb(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def _exif(orientation: int | None = None, date: bytes | None = None) -> bytes:
    """An APP1 EXIF payload written by hand (little-endian TIFF), so broken values can be put
    in: Orientation as SHORT, DateTimeOriginal as ASCII with any bytes."""
    ifd0 = []
    if orientation is not None:
        ifd0.append((274, 3, 1, struct.pack("<HH", orientation, 0)))
    exif_ifd_at = 8 + 2 + 12 * (len(ifd0) + (date is not None)) + 4
    if date is not None:
        ifd0.append((34665, 4, 1, struct.pack("<I", exif_ifd_at)))
    out = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(ifd0))
    for tag, typ, count, value in ifd0:
        out += struct.pack("<HHI", tag, typ, count) + value
    out += struct.pack("<I", 0)
    if date is not None:
        data_at = exif_ifd_at + 2 + 12 + 4
        out += struct.pack("<H", 1) + struct.pack("<HHII", 36867, 2, len(date), data_at)
        out += struct.pack("<I", 0) + date
    return b"Exif\x00\x00" + out


def _save_jpeg(path, arr, exif: bytes | None = None, mode: str = "RGB", **kw) -> None:
    im = Image.fromarray(arr).convert(mode)
    if exif is not None:
        kw["exif"] = exif
    im.save(path, "JPEG", quality=92, **kw)


# --- pixel formats ------------------------------------------------------------------------


def test_cmyk_jpeg_matches_pillow_exactly(tmp_path):
    p = tmp_path / "cmyk.jpg"
    _save_jpeg(p, _noise(), mode="CMYK")
    with Image.open(p) as im:
        assert im.mode == "CMYK"
    ours = deepfaune_rs.read_image(str(p))[0]
    np.testing.assert_array_equal(ours, _pillow_rgb(p))


@pytest.mark.parametrize("mode", ["L", "P"])
@pytest.mark.parametrize("fmt", ["PNG", "GIF", "JPEG"])
def test_grayscale_and_palette_match_pillow(tmp_path, fmt, mode):
    if fmt == "JPEG" and mode == "P":
        pytest.skip("JPEG has no palette mode")
    p = tmp_path / f"x.{fmt.lower()}"
    Image.fromarray(_noise()).convert(mode).save(p, fmt)
    np.testing.assert_array_equal(deepfaune_rs.read_image(str(p))[0], _pillow_rgb(p))


def test_rgba_png_drops_alpha_like_pillow(tmp_path):
    p = tmp_path / "rgba.png"
    a = RNG.integers(0, 256, (30, 40, 4), dtype=np.uint8)
    Image.fromarray(a, "RGBA").save(p)
    np.testing.assert_array_equal(deepfaune_rs.read_image(str(p))[0], _pillow_rgb(p))


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16_bit_rgb_keeps_the_high_byte_like_pillow(tmp_path, ext):
    cv2 = pytest.importorskip("cv2")
    a16 = RNG.integers(0, 65536, (30, 20, 3), dtype=np.uint16)
    p = tmp_path / f"rgb16.{ext}"
    assert cv2.imwrite(str(p), a16)  # OpenCV writes BGR: a16[..., ::-1] is the RGB image
    ours = deepfaune_rs.read_image(str(p))[0]
    np.testing.assert_array_equal(ours, (a16[..., ::-1] >> 8).astype(np.uint8))
    np.testing.assert_array_equal(ours, _pillow_rgb(p))


def test_16_bit_grayscale_keeps_the_high_byte_like_opencv(tmp_path):
    cv2 = pytest.importorskip("cv2")
    g16 = RNG.integers(0, 65536, (30, 20), dtype=np.uint16)
    p = tmp_path / "g16.png"
    assert cv2.imwrite(str(p), g16)
    ours = deepfaune_rs.read_image(str(p))[0]
    # Pillow clips I;16 to 255 when converting to RGB (a white image); OpenCV keeps v >> 8.
    np.testing.assert_array_equal(ours, cv2.imread(str(p), cv2.IMREAD_COLOR)[..., ::-1])
    np.testing.assert_array_equal(ours[..., 0], (g16 >> 8).astype(np.uint8))


# --- EXIF ---------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_exif_transpose(tmp_path, orientation):
    p = tmp_path / f"o{orientation}.jpg"
    _save_jpeg(p, _noise(40, 72), exif=_exif(orientation))
    pixels, _, o = deepfaune_rs.read_image(str(p))
    assert o == orientation
    np.testing.assert_array_equal(pixels, _pillow_rgb(p))


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_absurd_orientation_is_ignored_like_pillow(tmp_path, orientation):
    p = tmp_path / "odd.jpg"
    _save_jpeg(p, _noise(40, 72), exif=_exif(orientation))
    pixels, _, o = deepfaune_rs.read_image(str(p))
    assert o == 1
    np.testing.assert_array_equal(pixels, _pillow_rgb(p))


@pytest.mark.parametrize(
    "date",
    [
        b"0000:00:00 00:00:00\x00",
        b"\xff\xfe\x80garbage\x01\x02\x00",
        b"2021:05:28 13:45:07" + b"9" * 5000 + b"\x00",
        b"2021:02:30 10:00:00\x00",
        b"\x00",
    ],
)
def test_broken_dates_are_no_date(tmp_path, date):
    p = tmp_path / "d.jpg"
    _save_jpeg(p, _noise(), exif=_exif(6, date))
    pixels, got, o = deepfaune_rs.read_image(str(p))
    assert got is None and o == 6 and pixels.shape == (64, 48, 3)
    res = deepfaune_rs.Detector().detect(tmp_path, progress=False)
    assert res.dates == [None] and not res.failures


def test_a_valid_date_is_read(tmp_path):
    p = tmp_path / "d.jpg"
    _save_jpeg(p, _noise(), exif=_exif(1, b"2021:05:28 13:45:07\x00"))
    assert deepfaune_rs.read_image(str(p))[1] == "2021:05:28 13:45:07"


# --- names and folders --------------------------------------------------------------------


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_noise()).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.skipif(os.name != "posix", reason="bytes file names are a POSIX thing")
def test_non_utf8_names_survive_into_python_and_json(tmp_path):
    raw = os.path.join(os.fsencode(tmp_path), b"caf\xe9-\xff.jpg")
    with open(raw, "wb") as f:
        f.write(_jpeg_bytes())
    res = deepfaune_rs.Detector().detect(tmp_path, progress=False)
    assert not res.failures
    assert [os.fsencode(p) for p in res.paths] == [raw]  # surrogate escapes round-trip
    # A bytes path works as input too.
    assert len(deepfaune_rs.Detector().detect(raw, progress=False).failures) == 0
    out = tmp_path / "out" / "r.json"
    out.parent.mkdir()
    res.to_megadetector_json(out)
    # JSON is UTF-8: undecodable bytes become U+FFFD (lossy, documented).
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["images"][0]["file"] == "caf\ufffd-\ufffd.jpg"


def test_very_long_names(tmp_path):
    name = "a" * 246 + ".jpg"  # 250 characters; Linux allows 255 bytes
    (tmp_path / name).write_bytes(_jpeg_bytes())
    res = deepfaune_rs.Detector().detect(tmp_path, progress=False)
    assert [os.path.basename(p) for p in res.paths] == [name] and not res.failures


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlink_loops_are_reported_and_the_run_goes_on(tmp_path):
    (tmp_path / "cam").mkdir()
    (tmp_path / "cam" / "x.jpg").write_bytes(_jpeg_bytes())
    os.symlink(tmp_path, tmp_path / "cam" / "loop")
    os.symlink(tmp_path / "self.jpg", tmp_path / "self.jpg")  # a link to itself
    res = deepfaune_rs.Detector().detect(tmp_path, progress=False)
    assert [os.path.basename(p) for p in res.paths] == ["x.jpg"]
    reasons = {os.path.basename(f["path"]): f for f in res.failures}
    assert reasons["loop"]["stage"] == "walk" and "loop" in reasons["loop"]["reason"]
    assert reasons["self.jpg"]["stage"] == "walk"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_named_pipes_are_reported_never_opened(tmp_path):
    """Opening a named pipe for reading blocks until a writer comes: the walk reports it, and a
    pipe given by name is refused as not a regular file (this test would hang otherwise)."""
    (tmp_path / "x.jpg").write_bytes(_jpeg_bytes())
    os.mkfifo(tmp_path / "pipe.jpg")
    res = deepfaune_rs.Detector(threads=1).detect(tmp_path, progress=False)
    assert [os.path.basename(p) for p in res.paths] == ["x.jpg"]
    (f,) = res.failures
    assert (os.path.basename(f["path"]), f["stage"]) == ("pipe.jpg", "walk")
    assert "not a regular file" in f["reason"]
    res = deepfaune_rs.Detector(threads=1).detect(tmp_path / "pipe.jpg", progress=False)
    (f,) = res.failures
    assert (f["stage"], f["kind"]) == ("read", "io") and "not a regular file" in f["reason"]


# --- files that change during the run -----------------------------------------------------


def _twelve(tmp_path):
    for i in range(12):
        (tmp_path / f"f{i:02d}.jpg").write_bytes(_jpeg_bytes())
    return tmp_path / "f11.jpg"


def test_file_vanishing_during_the_run(tmp_path):
    last = _twelve(tmp_path)

    def progress(done, total):
        if done == 1:
            last.unlink()

    res = deepfaune_rs.Detector(threads=1).detect(tmp_path, progress=progress)
    assert len(res) == 12
    (f,) = res.failures
    assert (os.path.basename(f["path"]), f["stage"], f["kind"]) == ("f11.jpg", "read", "io")
    assert f["index"] == 11 and res.category[11] == 255


def test_the_walk_is_lazy_results_start_before_it_ends(tmp_path):
    """The folders are walked as the run goes (no pre-scan of the whole tree): an image created
    in a later folder after the first result is still found, and the progress total, a lower
    bound while the count runs, ends equal to the number of images."""
    (tmp_path / "a").mkdir()
    (tmp_path / "z").mkdir()
    for i in range(40):
        (tmp_path / "a" / f"f{i:02d}.jpg").write_bytes(_jpeg_bytes())
    late = tmp_path / "z" / "late.jpg"
    calls = []

    def progress(done, total):
        calls.append((done, total))
        if done == 1:
            late.write_bytes(_jpeg_bytes())

    res = deepfaune_rs.Detector(threads=1).detect(tmp_path, progress=progress)
    assert len(res) == 41 and os.fspath(res.paths[-1]) == os.fspath(late)
    assert not res.failures
    assert [d for d, _ in calls] == list(range(1, 42))
    assert all(d <= t for d, t in calls) and calls[-1] == (41, 41)


def test_file_truncated_during_the_run(tmp_path):
    last = _twelve(tmp_path)

    def progress(done, total):
        if done == 1:
            data = last.read_bytes()
            last.write_bytes(data[: len(data) // 2])

    res = deepfaune_rs.Detector(threads=1).detect(tmp_path, progress=progress)
    (f,) = res.failures
    assert (f["index"], f["stage"], f["kind"]) == (11, "decode", "corrupt")


# --- outputs ------------------------------------------------------------------------------


@pytest.fixture()
def small_result(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(_jpeg_bytes())
    return deepfaune_rs.Detector().detect(tmp_path / "in", progress=False)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_output_folder(tmp_path, small_result):
    out = tmp_path / "ro"
    out.mkdir()
    (out / "r.json").write_text("previous")
    out.chmod(0o555)
    try:
        with pytest.raises(deepfaune_rs.OutputError):
            small_result.to_megadetector_json(out / "r.json")
        assert os.listdir(out) == ["r.json"]
        assert (out / "r.json").read_text() == "previous"
    finally:
        out.chmod(0o755)


def test_output_that_cannot_replace_the_target(tmp_path, small_result):
    # Works even as root: renaming a file over a non-empty directory always fails.
    target = tmp_path / "r.json"
    target.mkdir()
    (target / "keep").write_text("previous")
    with pytest.raises(deepfaune_rs.OutputError) as e:
        small_result.to_megadetector_json(target)
    assert isinstance(e.value, OSError)
    assert sorted(os.listdir(tmp_path)) == ["in", "r.json"]  # no temporary file left
    assert (target / "keep").read_text() == "previous"


def test_output_into_a_missing_folder(tmp_path, small_result):
    with pytest.raises(deepfaune_rs.OutputError):
        small_result.to_megadetector_json(tmp_path / "nope" / "r.json")


# --- decompression bombs in every format ---------------------------------------------------


def _gif_claiming(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("P", (4, 4)).save(buf, "GIF")
    b = bytearray(buf.getvalue())
    b[6:10] = struct.pack("<HH", w, h)  # logical screen
    i = b.index(b"\x2c")  # image descriptor: left, top, width, height
    b[i + 5 : i + 9] = struct.pack("<HH", w, h)
    return bytes(b)


def _bmp_claiming(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "BMP")
    b = bytearray(buf.getvalue())
    b[18:26] = struct.pack("<ii", w, h)
    return bytes(b)


def _tiff_claiming(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    # Compressed strips, so the small data stays consistent with any claimed size.
    Image.new("RGB", (4, 4)).save(buf, "TIFF", compression="tiff_adobe_deflate")
    b = bytearray(buf.getvalue())
    # Patch ImageWidth, ImageLength and RowsPerStrip in the first IFD (little-endian).
    ifd = struct.unpack_from("<I", b, 4)[0]
    for k in range(struct.unpack_from("<H", b, ifd)[0]):
        e = ifd + 2 + 12 * k
        tag, typ = struct.unpack_from("<HH", b, e)
        if tag in (256, 257, 278):
            value = w if tag == 256 else h
            if typ == 3:
                struct.pack_into("<H", b, e + 8, min(value, 65535))
            else:
                struct.pack_into("<I", b, e + 8, value)
    return bytes(b)


@pytest.mark.parametrize(
    "name,data",
    [
        ("bomb.gif", _gif_claiming(65535, 65535)),
        ("bomb.bmp", _bmp_claiming(100_000, 100_000)),
        ("bomb.tif", _tiff_claiming(60_000, 60_000)),
    ],
)
def test_decompression_bombs_are_refused_before_decoding(tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    res = deepfaune_rs.Detector().detect(tmp_path, progress=False)
    (f,) = res.failures
    assert f["kind"] == "too_large", f
    assert "178956970" in f["reason"]
