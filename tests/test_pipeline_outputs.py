"""DeepFaune's outputs: the table (CSV, XLSX, pandas), folder sorting, the `run` CLI."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

import deepfaune_rs
from conftest import REPO

COLUMNS = "filename,date,seqnum,predictionbase,scorebase,prediction,score,top1,count,humancount"
# After DeepFaune's columns: status (ok / failed: reason); southwest/ also holds error_vid.mp4
# (0 bytes): a video row, hence two more columns.
WITH_VIDEOS = COLUMNS + ",status,media_type,keyframe"


@pytest.fixture(scope="module")
def manifest():
    return REPO / "models" / "tiny-pixel-c38.toml"


@pytest.fixture(scope="module")
def result(shared_models, manifest, testdata):
    pipe = deepfaune_rs.Pipeline(
        "md-lite", shared_models / "pixel_classifier_182_c38.onnx", classifier_manifest=manifest
    )
    return pipe.run(testdata / "southwest", progress=False)


def test_table_is_sorted_by_seqnum_then_filename(result):
    df = result.to_pandas()
    assert ",".join(df.columns) == WITH_VIDEOS
    assert len(df) == len(result) + 1
    keys = list(zip(df["seqnum"], df["filename"]))
    assert keys == sorted(keys)
    # Every image row appears once with its own per-image values.
    images = df[df["media_type"] == "image"]
    by_path = dict(zip(result.paths, result.predictionbase))
    assert dict(zip(images["filename"], images["predictionbase"])) == by_path
    # The empty video is a failure, and a row judged empty as DeepFaune does, whose status
    # says it failed; so does the 0-byte image's; every other row is ok.
    (video,) = result.videos
    assert video.failure["kind"] == "empty" and video.prediction == "empty"
    assert df["filename"].iloc[-1] == video.path
    failed = df[df["status"] != "ok"]
    assert sorted(os.path.basename(f) for f in failed["filename"]) == [
        "error_img.JPG",
        "error_vid.mp4",
    ]
    assert all(s.startswith("failed: ") for s in failed["status"])
    assert set(failed["prediction"]) == {"empty"}  # DeepFaune's value, kept


def test_csv_round_trips(result, tmp_path):
    out = tmp_path / "r.csv"
    result.to_csv(out)
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert ",".join(rows[0]) == WITH_VIDEOS
    df = result.to_pandas()
    assert [r[0] for r in rows[1:]] == list(df["filename"])
    assert [float(r[6]) for r in rows[1:]] == pytest.approx(list(df["score"]), abs=1e-6)
    # Missing dates are written as DeepFaune writes them.
    assert any(r[1] == "NA" for r in rows[1:])


def test_excel(result, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("openpyxl")
    out = tmp_path / "r.xlsx"
    result.to_excel(out)
    back = pd.read_excel(out)
    assert list(back.columns) == WITH_VIDEOS.split(",")
    assert list(back["filename"]) == list(result.to_pandas()["filename"])


def test_sort_into_places_every_readable_image_once(result, tmp_path):
    report = result.sort_into(tmp_path / "out")
    root = report["root"]
    placed = dict(report["placed"])
    ok = [p for p, c in zip(result.paths, result.detections.category) if c != 255]
    assert sorted(placed) == sorted(ok)
    for src, dst in placed.items():
        i = result.paths.index(src)
        assert os.path.dirname(dst) == os.path.join(root, result.prediction[i])
        with open(src, "rb") as a, open(dst, "rb") as b:
            assert a.read() == b.read()
    # A second sort never overwrites: a new root folder.
    again = result.sort_into(tmp_path / "out")
    assert again["root"] != root and len(again["placed"]) == len(placed)
    # The walk skips the sorted copies.
    walked = deepfaune_rs.Detector().detect(tmp_path / "out", progress=False)
    assert len(walked) == 0


def test_embeddings_and_logits_are_views(result):
    assert result.logits.shape == (len(result), 38)
    assert result.embeddings.shape[0] == len(result)
    assert not result.logits.flags.writeable and not result.logits.flags.owndata
    animal = np.asarray(result.classified)
    assert animal.any() and np.abs(result.logits[animal]).sum() > 0


def test_cli_run(shared_models, manifest, testdata, tmp_path):
    out = tmp_path / "r.csv"
    cmd = [
        sys.executable, "-m", "deepfaune_rs.cli", "run", str(testdata / "southwest"),
        "-o", str(out), "--detector", "md-lite",
        "--classifier", str(shared_models / "pixel_classifier_182_c38.onnx"),
        "--classifier-manifest", str(manifest), "--no-progress", "--language", "fr",
    ]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 3, p.stderr  # error_img.JPG and error_vid.mp4 are 0-byte files
    assert "error_vid.mp4" in p.stderr and "error_img.JPG" in p.stderr
    text = out.read_text(encoding="utf-8")
    assert text.splitlines()[0] == WITH_VIDEOS
    assert "vide" in text


def test_cli_embeddings_only_when_asked(shared_models, manifest, testdata, tmp_path):
    """`--embeddings F.npz` writes the crop embeddings with their file names, equal to the API's;
    without it the run keeps none (the checkpoint then holds no embedding either)."""
    folder = tmp_path / "buow"  # six of the images: three runs of them
    folder.mkdir()
    for src in sorted((testdata / "buow").iterdir())[:6]:
        (folder / src.name).symlink_to(src)
    base = [
        sys.executable, "-m", "deepfaune_rs.cli", "run", str(folder), "--detector", "md-lite",
        "--classifier", str(shared_models / "pixel_classifier_182_c38.onnx"),
        "--classifier-manifest", str(manifest), "--no-progress", "--resume",
    ]  # fmt: skip
    npz = tmp_path / "emb.npz"
    p = subprocess.run(
        [*base, "-o", str(tmp_path / "a.csv"), "--embeddings", str(npz)],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    pipe = deepfaune_rs.Pipeline(
        "md-lite", shared_models / "pixel_classifier_182_c38.onnx", classifier_manifest=manifest
    )
    api = pipe.run(folder, progress=False, keep_embeddings=True)
    with np.load(npz) as z:
        assert list(z["filename"]) == [os.fspath(x) for x in api.paths]
        assert np.array_equal(z["embedding"], api.embeddings) and z["embedding"].shape[1] > 0
    p = subprocess.run([*base, "-o", str(tmp_path / "b.csv")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    with_emb = (tmp_path / "a.csv.checkpoint").stat().st_size
    assert (tmp_path / "b.csv.checkpoint").stat().st_size < with_emb
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
