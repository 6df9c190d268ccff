"""Camtrap DP with videos (issue 6): real videos written with PyAV from test images, run with
images in one folder, exported and checked against what was written (creation_time, frame rate,
frame count, frame size) and against each video's own record; validated offline with
`frictionless` like the image-only package."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from test_camtrap_dp import PROJECT, WHO, tomllib_load, validate_offline
from test_video import _testdata_frames, make_video

import deepfaune_rs
from conftest import REPO

pd = pytest.importorskip("pandas")

ZONE = timezone(timedelta(hours=2))
EXTRA_LABELS = ["human", "vehicle", "empty", "undefined"]
# name -> (fps, frames, codec, creation_time written into the container)
VIDEOS = {
    "cam1/clip.mp4": (30, 90, "mpeg4", "2022-06-03T07:08:09.000000Z"),
    "cam2/walk.mov": (7.5, 20, "mpeg4", "2022-06-04T23:59:58.000000Z"),
    "cam2/nodate.avi": (15, 30, "mpeg4", None),  # AVI keeps no creation_time
}
BROKEN = ("cam2/zero.mp4", "cam2/garbage.mp4")


@pytest.fixture(scope="module")
def run(shared_models, testdata, tmp_path_factory):
    root = tmp_path_factory.mktemp("camvideo")
    for cam in ("cam1", "cam2"):
        (root / cam).mkdir()
    for name in ("2021-08-08_RCNX0063_fox.JPG", "2021-05-28_SYFR0041_deer.JPG"):
        shutil.copy(testdata / "southwest" / name, root / "cam1" / name)
    for name, (fps, n, codec, created) in VIDEOS.items():
        make_video(root / name, _testdata_frames(testdata, n), fps, codec, created=created)
    (root / BROKEN[0]).write_bytes(b"")
    (root / BROKEN[1]).write_bytes(b"not a video" * 100)
    pipe = deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
        threshold=0.0,  # the tiny classifier is unsure: no threshold, so videos get a species
    )
    return root, pipe.run(root, progress=False)


def _export(res, out: Path, **kwargs) -> list[str]:
    deployments = [
        {"deploymentID": cam, "latitude": lat, "longitude": 6.5}
        for cam, lat in (("cam1", 45.1), ("cam2", 45.2))
    ]
    meta = {"project": PROJECT, "title": "videos", "contributors": WHO}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return res.to_camtrap_dp(out, deployments, timezone="+02:00", metadata=meta, **kwargs)


@pytest.fixture(scope="module")
def package(run, tmp_path_factory):
    root, res = run
    out = tmp_path_factory.mktemp("pkg") / "package"
    found = _export(res, out)
    media = pd.read_csv(out / "media.csv", dtype=str, keep_default_na=False)
    obs = pd.read_csv(out / "observations.csv", dtype=str, keep_default_na=False)
    return out, found, media, obs


def _camera_time(created: str) -> datetime:
    """The creation_time as written, read as the camera's clock in the deployment's zone."""
    return datetime.fromisoformat(created.replace("Z", "")).replace(tzinfo=ZONE)


def _record(res, root: Path, name: str):
    (rec,) = [v for v in res.videos if Path(v.path) == root / name]
    return rec


def test_the_run_has_the_videos_and_their_failures(run):
    root, res = run
    names = sorted(Path(v.path).relative_to(root).as_posix() for v in res.videos)
    assert names == sorted([*VIDEOS, *BROKEN])
    failed = {Path(f["path"]).relative_to(root).as_posix() for f in res.failures}
    assert failed == set(BROKEN)
    assert all(c != 255 for c in res.detections.category), "the images are readable"


def test_label_indices_name_the_prediction(run):
    _, res = run
    labels = list(res.class_names) + EXTRA_LABELS  # the manifest has no bird head
    for v in res.videos:
        assert (labels[v.label_index], labels[v.top1_index]) == (v.prediction, v.top1)


def test_package_with_videos_validates(package, tmp_path, monkeypatch):
    out, _, media, _ = package
    assert media["fileMediatype"].str.startswith("video/").any()
    report = validate_offline(out, tmp_path, monkeypatch)
    assert report.valid, report.flatten(["type", "message"])[:10]


def test_one_media_row_per_dated_readable_video(run, package):
    root, _ = run
    _, found, media, _ = package
    videos = media[media["fileMediatype"].str.startswith("video/")]
    dated = {n: v for n, v in VIDEOS.items() if v[3]}
    assert sorted(videos["filePath"]) == sorted(dated)
    types = {".mp4": "video/mp4", ".mov": "video/quicktime"}
    for _, row in videos.iterrows():
        created = dated[row["filePath"]][3]
        assert row["timestamp"] == _camera_time(created).isoformat()
        assert row["fileMediatype"] == types[Path(row["filePath"]).suffix]
        assert row["mediaID"] == hashlib.sha256(row["filePath"].encode()).hexdigest()[:16]
        assert row["deploymentID"] == row["filePath"].split("/")[0]
    text = "\n".join(found)
    assert f"{len(BROKEN)} unreadable file(s) left out" in text
    undated = [w for w in found if "video(s) have no creation_time and were left out" in w]
    assert len(undated) == 1 and str(root / "cam2" / "nodate.avi") in undated[0]


def test_each_video_is_an_event_with_its_prediction_and_length(run, package):
    root, res = run
    _, _, media, obs = package
    table = res.table()
    seq_of = dict(zip(table["filename"], table["seqnum"]))
    names = tomllib_load(REPO / "models" / "tiny-pixel-c38.toml")["scientific_names"]
    events = obs[obs["observationLevel"] == "event"]
    for name, (fps, n, _, created) in VIDEOS.items():
        rec = _record(res, root, name)
        rows = events[events["eventID"] == f"seq{seq_of[rec.path]}"]
        if created is None:
            assert rows.empty
            continue
        (ev,) = [r for _, r in rows.iterrows()]
        start = _camera_time(created)
        assert ev["eventStart"] == start.isoformat()
        assert ev["eventEnd"] == (start + timedelta(seconds=int(n / fps))).isoformat()
        assert ev["deploymentID"] == name.split("/")[0]
        assert float(ev["classificationProbability"]) == pytest.approx(rec.score, abs=1e-6)
        if rec.prediction in res.class_names:
            assert ev["observationType"] == "animal"
            assert ev["scientificName"] == names.get(rec.prediction, "")
            assert ev["count"] == (str(rec.count) if rec.count else "")
        elif rec.prediction == "empty":
            assert (ev["observationType"], ev["count"]) == ("blank", "")
        elif rec.prediction == "undefined":
            assert (ev["observationType"], ev["scientificName"]) == ("animal", "")
        else:
            assert ev["observationType"] == rec.prediction
    video_events = events[events["eventID"].isin({f"seq{seq_of[v.path]}" for v in res.videos})]
    assert (video_events["scientificName"] != "").any(), "the species branch above ran"
    # The videos' events follow the images' sequences, in the table's numbering.
    image_events = {f"seq{s}" for s in res.seqnum}
    assert set(events["eventID"]) - image_events == {
        f"seq{seq_of[str(root / n)]}" for n, v in VIDEOS.items() if v[3]
    }


def test_keyframe_observation_carries_the_box(run, package):
    root, res = run
    _, _, media, obs = package
    id_of = dict(zip(media["filePath"], media["mediaID"]))
    names = tomllib_load(REPO / "models" / "tiny-pixel-c38.toml")["scientific_names"]
    boxes = 0
    for name, (_, _, _, created) in VIDEOS.items():
        rec = _record(res, root, name)
        if created is None:
            continue
        rows = obs[(obs["observationLevel"] == "media") & (obs["mediaID"] == id_of[name])]
        if rec.keyframe is None:
            assert rows.empty
            continue
        (row,) = [r for _, r in rows.iterrows()]
        assert f"frame {rec.keyframe}" in row["observationComments"]
        assert rec.prediction in row["observationComments"]
        if rec.prediction in res.class_names:
            assert row["scientificName"] == names.get(rec.prediction, "")
        if rec.box is None:
            continue
        # The frames were written at 640 x 480 (see _testdata_frames).
        assert rec.frame_size == (640, 480)
        x1, y1, x2, y2 = rec.box
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, 640), min(y2, 480)
        got = [float(row[c]) for c in ("bboxX", "bboxY", "bboxWidth", "bboxHeight")]
        want = [x1 / 640, y1 / 480, (x2 - x1) / 640, (y2 - y1) / 480]
        assert got == pytest.approx(want, abs=1e-6)
        boxes += 1
    assert boxes > 0, "some video shows a box: the check above ran"


def test_deployments_and_coverage_include_the_videos(package):
    out, _, _, obs = package
    deps = pd.read_csv(out / "deployments.csv", dtype=str, keep_default_na=False)
    for _, dep in deps.iterrows():
        ends = obs[obs["deploymentID"] == dep["deploymentID"]]["eventEnd"]
        assert dep["deploymentEnd"] == max(ends, key=datetime.fromisoformat)
    desc = json.loads((out / "datapackage.json").read_text(encoding="utf-8"))
    taxa = {t["scientificName"] for t in desc["taxonomic"]}
    assert taxa == set(obs["scientificName"]) - {""}


def test_undated_video_dated_by_mtime(run, tmp_path):
    root, res = run
    found = _export(res, tmp_path / "m", undated="mtime")
    assert any("video(s) have no creation_time and were dated by" in w for w in found)
    media = pd.read_csv(tmp_path / "m" / "media.csv", dtype=str, keep_default_na=False)
    stamps = dict(zip(media["filePath"], media["timestamp"]))
    path = root / "cam2" / "nodate.avi"
    when = datetime.fromtimestamp(int(path.stat().st_mtime), ZONE)
    assert stamps["cam2/nodate.avi"] == when.isoformat()
    assert "cam2/zero.mp4" not in stamps
