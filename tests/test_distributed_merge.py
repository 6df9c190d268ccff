"""The core's side of distributed runs, without Ray: a run cut into one unit per folder
(`RunPlan`), each unit run on its own as an actor runs it, and the parts merged
(`Pipeline.merge`) give the bytes of one run, also when a folder's images are not contiguous in
the walk (a subfolder sorts between two of its images)."""

from __future__ import annotations

import json
import os

import pytest

import deepfaune_rs
from conftest import REPO, all_test_images
from deepfaune_rs import _core
from deepfaune_rs.distributed import _UnitRunner
from deepfaune_rs.errors import InvalidArgumentError


def _kwargs(shared_models) -> dict:
    return {
        "detector": "md-lite",
        "classifier": str(shared_models / "pixel_classifier_182_c38.onnx"),
        "classifier_manifest": str(REPO / "models" / "tiny-pixel-c38.toml"),
        "score_threshold": 0.5,
    }


@pytest.fixture(scope="module")
def tree(testdata, tmp_path_factory):
    """Links to test images: `m.jpg`, `sub/...`, `z.jpg` at the top (so `sub` sorts between two
    images of the top folder), a 0-byte image, a file of no media type, NAS metadata."""
    root = tmp_path_factory.mktemp("tree")
    images = [p for p in all_test_images(testdata) if p.stat().st_size > 0]
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "@eaDir").mkdir()
    links = {
        "a.jpg": images[0],
        "m.jpg": images[1],
        "z.jpg": images[2],
        "sub/b.jpg": images[20],
        "sub/c.jpg": images[21],
        "sub/deeper/d.jpg": images[40],
    }
    for name, src in links.items():
        (root / name).symlink_to(src)
    (root / "sub" / "empty.jpg").write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    return root


def _parts(kwargs, plan) -> list[str]:
    runner = _UnitRunner(kwargs, keep_embeddings=False)
    parts = []
    for u, (_, images, videos) in enumerate(plan.units):
        batch = {
            "unit": [u],
            "images": [json.dumps([os.fspath(p) for p in images])],
            "videos": [json.dumps([os.fspath(p) for p in videos])],
            "checkpoint": [""],
        }
        parts.append(runner(batch)["part"][0])
    return parts


def test_units_run_apart_and_merged_give_the_bytes_of_one_run(shared_models, tree, tmp_path):
    kwargs = _kwargs(shared_models)
    local = deepfaune_rs.Pipeline(**kwargs).run(tree, progress=False, keep_embeddings=False)

    plan = _core.RunPlan([os.fspath(tree)])
    folders = [os.path.relpath(f, tree) for f, _, _ in plan.units]
    assert folders == [".", "sub", os.path.join("sub", "deeper")]
    # The walk's order (sorted paths; the results' rows are in the table's order).
    order = sorted(os.path.relpath(p, tree) for p in local.paths)
    assert order[:2] == ["a.jpg", "m.jpg"] and order[-1] == "z.jpg"  # `sub` in between

    driver = deepfaune_rs.Pipeline(**{**kwargs, "detector": None, "detector_mode": None})
    merged = driver.merge(plan, _parts(kwargs, plan), str(tree))
    for res, name in ((local, "local"), (merged, "merged")):
        res.to_csv(tmp_path / f"{name}.csv")
        res.to_megadetector_json(tmp_path / f"{name}.json")
    assert (tmp_path / "merged.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert (tmp_path / "merged.json").read_bytes() == (tmp_path / "local.json").read_bytes()
    assert merged.failures == local.failures  # the 0-byte image and notes.txt, as one run
    assert merged.skipped_metadata == local.skipped_metadata == 1
    assert (merged.logits == local.logits).all()
    # md-lite has no person class: blurring people is refused on the merged results too.
    for res in (local, merged):
        with pytest.raises(InvalidArgumentError, match="no person class"):
            res.sort_into(tmp_path / "sorted", blur_humans=True)


def test_parts_that_do_not_fit_the_plan_are_refused(shared_models, tree):
    kwargs = _kwargs(shared_models)
    plan = _core.RunPlan([os.fspath(tree)])
    parts = _parts(kwargs, plan)
    driver = deepfaune_rs.Pipeline(**{**kwargs, "detector": None, "detector_mode": None})
    with pytest.raises(InvalidArgumentError, match="does not hold the images"):
        driver.merge(plan, [parts[1], parts[0], parts[2]])
    with pytest.raises(InvalidArgumentError, match="parts for"):
        driver.merge(plan, parts[:2])
    with pytest.raises(InvalidArgumentError, match="damaged record"):
        driver.merge(plan, [parts[0][:-20], parts[1], parts[2]])
