"""Shared fixtures: where ../shared is (tests read it in place, never copy it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    env = os.environ.get("DEEPFAUNE_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def find_testdata() -> Path:
    env = os.environ.get("DEEPFAUNE_TESTDATA")
    return Path(env) if env else shared_dir() / "testdata"


@pytest.fixture(scope="session")
def testdata() -> Path:
    d = find_testdata()
    if not d.is_dir():
        pytest.skip(f"test images not found at {d} (set DEEPFAUNE_TESTDATA)")
    return d


@pytest.fixture(scope="session")
def shared_models() -> Path:
    d = shared_dir() / "models"
    if not d.is_dir():
        pytest.skip(f"shared test models not found at {d} (set DEEPFAUNE_SHARED)")
    return d


def all_test_images(root: Path) -> list[Path]:
    exts = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif"}
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts)
