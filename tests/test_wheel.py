"""The built wheel: size, contents, licence notice, embedded model, SIMD JPEG decoder.

Runs when DEEPFAUNE_WHEEL names the wheel file (.ci/run sets it to the manylinux wheel it built,
audited and installed); DEEPFAUNE_WHEEL_TARGET, the cargo target folder of that build, adds the
SIMD check: the machine code of mozjpeg-sys's nasm-assembled decoder objects (AVX2 and SSE2
IDCT, colour conversion, upsampling), as the build left them, must be in the wheel's extension
(relocated bytes masked). The .so carries no symbol table, so `nm` cannot tell.
"""

from __future__ import annotations

import configparser
import hashlib
import os
import re
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

WHEEL = os.environ.get("DEEPFAUNE_WHEEL")
pytestmark = pytest.mark.skipif(not WHEEL, reason="set DEEPFAUNE_WHEEL to a built wheel")

MAX_BYTES = 30_000_000  # the wheel stays under 30 MB (issue 16)
MODEL = REPO / "models" / "md_lite_yolox_tiny_640.onnx"


@pytest.fixture(scope="module")
def wheel() -> zipfile.ZipFile:
    path = Path(WHEEL or "")
    assert path.is_file(), f"DEEPFAUNE_WHEEL={WHEEL} is not a file"
    with zipfile.ZipFile(path) as z:
        yield z


@pytest.fixture(scope="module")
def extension(wheel) -> bytes:
    names = [n for n in wheel.namelist() if re.fullmatch(r"deepfaune_rs/_core\.[^/]*(so|pyd)", n)]
    assert len(names) == 1, names
    return wheel.read(names[0])


def test_size_under_30_mb():
    size = Path(WHEEL or "").stat().st_size
    print(f"\n{Path(WHEEL or '').name}: {size / 1e6:.2f} MB")
    assert size < MAX_BYTES, size


def test_one_abi3_wheel_for_cpython_3_9_and_later():
    name = Path(WHEEL or "").name
    assert re.fullmatch(r"deepfaune_rs-[^-]+-cp39-abi3-[^-]+\.whl", name), name
    if sys.platform == "linux":
        assert "manylinux_2_28_x86_64" in name or "aarch64" in name, name


def test_contents(wheel):
    names = set(wheel.namelist())
    package = {n for n in names if n.startswith("deepfaune_rs/")}
    python_files = {p.relative_to(REPO / "python").as_posix()
                    for p in (REPO / "python" / "deepfaune_rs").rglob("*.py")}  # fmt: skip
    assert python_files <= package, python_files - package
    # The review page is read from the package at import (deepfaune_rs.review).
    assert {
        "deepfaune_rs/py.typed",
        "deepfaune_rs/_core.pyi",
        "deepfaune_rs/review_page.html",
    } <= package
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    entry_points = configparser.ConfigParser()
    entry_points.read_string(wheel.read(f"{dist_info}/entry_points.txt").decode())
    assert entry_points["console_scripts"]["deepfaune-rs"].strip() == "deepfaune_rs.cli:main"


def test_zamba_mit_notice_ships_with_the_embedded_model(wheel):
    notice = [n for n in wheel.namelist() if n.endswith("/LICENSE-zamba.txt")]
    assert len(notice) == 1 and ".dist-info/licenses/" in notice[0], notice
    text = wheel.read(notice[0])
    assert text == (REPO / "models" / "LICENSE-zamba.txt").read_bytes()
    assert b"MIT License" in text


def test_embedded_detector_is_inside_the_extension(extension):
    assert MODEL.read_bytes() in extension


def test_the_installed_package_is_this_wheel(wheel, extension):
    import deepfaune_rs._core as core

    installed = Path(core.__file__)
    # The CI venv may live inside the checkout (.venv-ci): only python/ is the source tree.
    source = REPO / "python"
    assert source not in installed.parents, f"tests ran against the source tree: {installed}"
    assert "site-packages" in installed.parts, f"not an installed package: {installed}"
    assert hashlib.sha256(installed.read_bytes()).digest() == hashlib.sha256(extension).digest()


def _decoder_simd_objects() -> list[Path]:
    target = os.environ.get("DEEPFAUNE_WHEEL_TARGET")
    if not target:
        pytest.skip("set DEEPFAUNE_WHEEL_TARGET to the wheel build's cargo target folder")
    objs = sorted(Path(target).glob("*/release/build/mozjpeg-sys-*/out/j*-[as][vs][xe]2.o"))
    objs += sorted(Path(target).glob("release/build/mozjpeg-sys-*/out/j*-[as][vs][xe]2.o"))
    # The decoder's: colour conversion, merged and fancy upsampling, inverse DCTs.
    return [o for o in objs if re.match(r"j(dcolor|dmerge|dsample|idct\w+)-(avx2|sse2)\.o", o.name)]


def _code_pattern(obj: Path) -> re.Pattern[bytes]:
    """The object's .text as a regex, the bytes that relocations rewrite left free."""
    elffile = pytest.importorskip("elftools.elf.elffile")
    with open(obj, "rb") as f:
        elf = elffile.ELFFile(f)
        text = elf.get_section_by_name(".text").data()
        free: set[int] = set()
        rela = elf.get_section_by_name(".rela.text")
        for r in rela.iter_relocations() if rela else []:
            free.update(range(r["r_offset"], r["r_offset"] + 4))
    return re.compile(
        b"".join(b"." if i in free else re.escape(bytes([b])) for i, b in enumerate(text)), re.S
    )


@pytest.mark.skipif(sys.platform != "linux", reason="ELF objects")
def test_simd_jpeg_decoder_is_in_the_wheel(extension):
    objs = _decoder_simd_objects()
    names = {o.name for o in objs}
    # Without nasm mozjpeg-sys assembles none of these, and the check would have nothing to find.
    assert {"jidctint-avx2.o", "jidctint-sse2.o", "jdcolor-avx2.o", "jdsample-avx2.o"} <= names, (
        f"no nasm-built decoder objects under DEEPFAUNE_WHEEL_TARGET: {sorted(names)}"
    )
    missing = [o.name for o in objs if not _code_pattern(o).search(extension)]
    assert not missing, f"SIMD decoder code not in the wheel: {missing}"
