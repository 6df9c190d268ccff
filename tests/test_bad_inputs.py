"""Hostile and broken files are reported with their reasons and never stop the run."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

import deepfaune_rs


def _jpeg_bytes(w=64, h=48) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
        buf, "JPEG"
    )
    return buf.getvalue()


def _png_header_claiming(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _jpeg_claiming(w: int, h: int) -> bytes:
    b = bytearray(_jpeg_bytes())
    i = b.index(b"\xff\xc0")  # SOF0: FF C0 len(2) precision(1) height(2) width(2)
    b[i + 5 : i + 7] = struct.pack(">H", h)
    b[i + 7 : i + 9] = struct.pack(">H", w)
    return bytes(b)


@pytest.fixture()
def hostile(tmp_path):
    good = _jpeg_bytes()
    (tmp_path / "good.jpg").write_bytes(good)
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.jpg").write_bytes(b"this is not an image at all")
    (tmp_path / "bomb.png").write_bytes(_png_header_claiming(100_000, 100_000))
    (tmp_path / "bomb.jpg").write_bytes(_jpeg_claiming(65_000, 65_000))
    (tmp_path / "dir.jpg").mkdir()
    (tmp_path / "unreadable.jpg").write_bytes(good)
    os.chmod(tmp_path / "unreadable.jpg", 0)
    return tmp_path


def test_every_bad_file_is_reported_and_the_good_one_processed(hostile):
    res = deepfaune_rs.Detector().detect(hostile, progress=False)
    by_name = {os.path.basename(f["path"]): f for f in res.failures}
    assert by_name["zero.jpg"]["kind"] == "empty"
    assert by_name["truncated.jpg"]["kind"] == "corrupt"
    assert "truncated" in by_name["truncated.jpg"]["reason"]
    assert by_name["text.jpg"]["kind"] == "format"
    assert by_name["bomb.png"]["kind"] == "too_large"
    assert by_name["bomb.jpg"]["kind"] == "too_large"
    assert "65000x65000" in by_name["bomb.jpg"]["reason"]
    assert "directory" in by_name["dir.jpg"]["reason"]
    names = [os.path.basename(p) for p in res.paths]
    assert "good.jpg" in names
    assert res.category[names.index("good.jpg")] != 255
    if os.geteuid() != 0:  # root reads any file: permissions cannot be tested as root
        assert by_name["unreadable.jpg"]["kind"] == "io"


def test_explicit_directory_path_is_a_failure_not_a_crash(hostile):
    res = deepfaune_rs.Detector().detect(
        [hostile / "good.jpg", hostile / "zero.jpg"], progress=False
    )
    assert len(res) == 2 and len(res.failures) == 1


def test_read_image_raises_a_typed_error(hostile):
    with pytest.raises(deepfaune_rs.ImageReadError) as e:
        deepfaune_rs.read_image(str(hostile / "truncated.jpg"))
    assert isinstance(e.value, OSError)
    assert "truncated.jpg" in str(e.value)


def test_cli_exit_status_reports_failures(hostile, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "r.json"
    cmd = [
        sys.executable,
        "-m",
        "deepfaune_rs.cli",
        "detect",
        str(hostile),
        "-o",
        str(out),
        "--no-progress",
    ]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 3, p.stderr
    assert "truncated.jpg" in p.stderr
    doc = json.loads(out.read_text())
    failed = {im["file"]: im for im in doc["images"] if "failure" in im}
    assert "zero.jpg" in failed and failed["zero.jpg"]["detections"] is None
    ok = [im for im in doc["images"] if "failure" not in im]
    expected = ["good.jpg"] if os.geteuid() != 0 else ["good.jpg", "unreadable.jpg"]
    assert [im["file"] for im in ok] == expected
