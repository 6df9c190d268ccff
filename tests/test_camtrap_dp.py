"""Camtrap DP 1.0.2 export: validated with `frictionless` against the standard's schemas (local
copies served on loopback), read back with `camtrapdp` and pandas, values checked against
independent computations (Pillow's EXIF and sizes, hashlib, the manifest's TOML table)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import re
import shutil
import threading
import warnings
from pathlib import Path

import pytest

import deepfaune_rs
from conftest import REPO, shared_dir
from deepfaune_rs.errors import InvalidArgumentError

pd = pytest.importorskip("pandas")

STANDARD = "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2"
SCHEMA_FILES = (
    "camtrap-dp-profile.json",
    "deployments-table-schema.json",
    "media-table-schema.json",
    "observations-table-schema.json",
    "frictionless-data-package.json",
    "geojson.json",
)
WHO = [{"title": "deepfaune-rs tests", "role": "contact"}]
FOLDERS = ("buow", "ena24", "jaguar", "southwest")
PROJECT = {
    "title": "deepfaune-rs test data",
    "samplingDesign": "opportunistic",
    "captureMethod": ["activityDetection"],
}


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def validate_offline(package: Path, work: Path, monkeypatch):
    """frictionless report for `package`, with the profile and table schemas served from the
    local copies on 127.0.0.1 (the descriptor is rewritten only in a copy)."""
    frictionless = pytest.importorskip("frictionless")
    src = shared_dir() / "schemas" / "camtrap-dp-1.0.2"
    if not src.is_dir():
        pytest.skip(f"Camtrap DP schemas not found at {src}")
    schemas = work / "schemas"
    schemas.mkdir()
    for f in SCHEMA_FILES:
        shutil.copy(src / f, schemas)
    handler = functools.partial(_Quiet, directory=str(schemas))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{srv.server_address[1]}"
        prof = (schemas / "camtrap-dp-profile.json").read_text(encoding="utf-8")
        # The profile pins schema URLs to the 1.0.2 release: accept the loopback copies.
        prof = re.sub('"pattern": ".*"', '"pattern": "127.0.0.1"', prof)
        prof = prof.replace(
            "https://specs.frictionlessdata.io/schemas/data-package.json",
            f"{base}/frictionless-data-package.json",
        )
        prof = prof.replace("http://json.schemastore.org/geojson.json", f"{base}/geojson.json")
        (schemas / "relaxed.json").write_text(prof, encoding="utf-8")
        copy = work / "package"
        shutil.copytree(package, copy)
        desc = json.loads((copy / "datapackage.json").read_text(encoding="utf-8"))
        desc["profile"] = f"{base}/relaxed.json"
        for r in desc["resources"]:
            r["schema"] = f"{base}/{r['name']}-table-schema.json"
        monkeypatch.chdir(copy)
        return frictionless.validate(desc)
    finally:
        srv.shutdown()


def exif_date(path: Path) -> str | None:
    from PIL import Image

    with Image.open(path) as im:
        return im.getexif().get_ifd(0x8769).get(36867)


def image_size(path: Path) -> tuple[int, int]:
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).size


@pytest.fixture(scope="module")
def manifest_path():
    return REPO / "models" / "tiny-pixel-c38.toml"


@pytest.fixture(scope="module")
def result(shared_models, manifest_path, testdata):
    pipe = deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=manifest_path,
        threshold=0.5,
    )
    return pipe.run(testdata, progress=False)


@pytest.fixture(scope="module")
def deployments_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("dep") / "deployments.csv"
    rows = ["deploymentID,latitude,longitude,locationName,deploymentStart,deploymentEnd"]
    coords = {"buow": (33.1, -115.5), "ena24": (40.7, -74.0)}
    for name, (lat, lon) in coords.items():
        rows.append(f"{name},{lat},{lon},{name} site,,")
    # southwest gives its dates with a UTC offset: its media take that offset.
    rows.append(
        "southwest,32.2,-110.9,southwest site,2021-01-01T00:00:00-07:00,2022-12-31T00:00:00-07:00"
    )
    # jaguar's images have no EXIF date: the deployment stays, with the user's facts only.
    rows.append("jaguar,9.5,-83.7,jaguar site,2005-09-01T00:00:00-06:00,2005-11-01T00:00:00-06:00")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def package(result, deployments_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("camtrap") / "package"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = result.to_camtrap_dp(
            out,
            deployments_csv,
            metadata={"project": PROJECT, "title": "test export", "contributors": WHO},
        )
    assert [str(w.message) for w in caught] == [f"Camtrap DP: {w}" for w in found]
    return out, found


def test_package_validates_against_the_standard(package, tmp_path, monkeypatch):
    out, _ = package
    desc = json.loads((out / "datapackage.json").read_text(encoding="utf-8"))
    assert desc["profile"] == f"{STANDARD}/camtrap-dp-profile.json"
    assert {r["schema"] for r in desc["resources"]} == {
        f"{STANDARD}/{n}-table-schema.json" for n in ("deployments", "media", "observations")
    }
    report = validate_offline(out, tmp_path, monkeypatch)
    errors = report.flatten(["type", "message"])
    assert report.valid, errors[:10]


def test_broken_package_is_caught(package, tmp_path, monkeypatch):
    # The validation itself can fail: an observation with an unknown type.
    out, _ = package
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    obs = (broken / "observations.csv").read_text(encoding="utf-8")
    (broken / "observations.csv").write_text(obs.replace(",event,", ",episode,", 1), "utf-8")
    work = tmp_path / "work"
    work.mkdir()
    assert not validate_offline(broken, work, monkeypatch).valid


def test_media_rows_are_the_dated_readable_images(result, package, testdata):
    out, found = package
    media = pd.read_csv(out / "media.csv", dtype=str, keep_default_na=False)
    readable = [Path(p) for p, c in zip(result.paths, result.detections.category) if c != 255]
    dated = {p: exif_date(p) for p in readable}
    expected = sorted(str(p.relative_to(testdata)) for p, d in dated.items() if d)
    assert sorted(media["filePath"]) == expected
    undated = [p for p, d in dated.items() if not d]
    assert undated, "testdata has undated images: the warning path is exercised"
    assert any("left out" in w and str(undated[0]) in w for w in found)
    for _, row in media.iterrows():
        path = testdata / row["filePath"]
        assert row["mediaID"] == hashlib.sha256(row["filePath"].encode()).hexdigest()[:16]
        assert row["deploymentID"] == row["filePath"].split("/")[0]
        zone = "-07:00" if row["deploymentID"] == "southwest" else "Z"
        d = dated[path]
        assert row["timestamp"] == d[:10].replace(":", "-") + "T" + d[11:19] + zone
        assert row["filePublic"] == "false" and row["fileMediatype"] == "image/jpeg"


def test_events_are_the_sequences(result, package, testdata):
    out, _ = package
    media = pd.read_csv(out / "media.csv", dtype=str, keep_default_na=False)
    obs = pd.read_csv(out / "observations.csv", dtype=str, keep_default_na=False)
    seq_of = {
        str(Path(p).relative_to(testdata)): int(s) for p, s in zip(result.paths, result.seqnum)
    }
    media_seq = {m: seq_of[f] for m, f in zip(media["mediaID"], media["filePath"])}
    boxes = obs[obs["observationLevel"] == "media"]
    assert all(e == f"seq{media_seq[m]}" for m, e in zip(boxes["mediaID"], boxes["eventID"]))
    events = obs[obs["observationLevel"] == "event"]
    assert sorted(events["eventID"]) == sorted({f"seq{s}" for s in media_seq.values()})
    stamps = dict(zip(media["mediaID"], media["timestamp"]))
    table = tomllib_load(REPO / "models" / "tiny-pixel-c38.toml")["scientific_names"]
    index = {str(Path(p).relative_to(testdata)): i for i, p in enumerate(result.paths)}
    for _, ev in events.iterrows():
        seq = int(ev["eventID"][3:])
        members = [index[f] for f in media["filePath"] if seq_of[f] == seq]
        times = sorted(stamps[m] for m, s in media_seq.items() if s == seq)
        assert (ev["eventStart"], ev["eventEnd"]) == (times[0], times[-1])
        pred = result.prediction[members[0]]
        assert ev["classificationMethod"] == "machine"
        assert float(ev["classificationProbability"]) == pytest.approx(
            float(result.score[members[0]]), abs=1e-6
        )
        if pred in result.class_names:
            assert ev["observationType"] == "animal"
            assert ev["scientificName"] == table.get(pred, "")
            assert int(ev["count"]) == max(int(result.count[i]) for i in members)
        elif pred == "empty":
            assert (ev["observationType"], ev["count"]) == ("blank", "")
        elif pred == "undefined":
            assert (ev["observationType"], ev["scientificName"]) == ("animal", "")
        else:
            assert ev["observationType"] == pred
    assert (events["observationType"] == "animal").any()
    assert (events["scientificName"] != "").any()


def test_one_box_by_hand(result, package, testdata):
    out, _ = package
    obs = pd.read_csv(out / "observations.csv", dtype=str, keep_default_na=False)
    media = pd.read_csv(out / "media.csv", dtype=str, keep_default_na=False)
    det = result.detections
    id_of = dict(zip(media["filePath"], media["mediaID"]))
    checked = 0
    for k in range(len(det.image_index)):
        i = int(det.image_index[k])
        rel = str(Path(result.paths[i]).relative_to(testdata))
        if rel not in id_of:
            continue
        w, h = image_size(testdata / rel)
        x1, y1, x2, y2 = (float(v) for v in det.boxes[k])
        first = int((det.image_index[:k] == i).sum()) + 1
        row = obs[obs["observationID"] == f"{id_of[rel]}_{first}"].iloc[0]
        assert float(row["bboxX"]) == pytest.approx(max(x1, 0) / w, abs=1e-6)
        assert float(row["bboxY"]) == pytest.approx(max(y1, 0) / h, abs=1e-6)
        assert float(row["bboxWidth"]) == pytest.approx((min(x2, w) - max(x1, 0)) / w, abs=1e-6)
        assert float(row["bboxHeight"]) == pytest.approx((min(y2, h) - max(y1, 0)) / h, abs=1e-6)
        assert float(row["classificationProbability"]) == pytest.approx(
            det.confidences[k], abs=5e-4
        )
        checked += 1
    assert checked > 10


def test_read_back_with_camtrapdp(package):
    camtrapdp = pytest.importorskip("camtrapdp")
    out, _ = package
    deps = camtrapdp.Deployment.from_csv(str(out / "deployments.csv"))
    media = camtrapdp.Media.from_csv(str(out / "media.csv"))
    obs = camtrapdp.Observation.from_csv(str(out / "observations.csv"))
    assert sorted(d.deploymentID for d in deps) == sorted(FOLDERS)
    assert {m.deploymentID for m in media} <= set(FOLDERS)
    media_ids = {m.mediaID for m in media}
    assert all(o.mediaID in media_ids for o in obs if o.observationLevel == "media")
    jaguar = next(d for d in deps if d.deploymentID == "jaguar")
    assert (jaguar.latitude, jaguar.deploymentStart) == ("9.5", "2005-09-01T00:00:00-06:00")


def test_dates_filled_and_warnings(package):
    out, found = package
    deps = pd.read_csv(out / "deployments.csv", dtype=str, keep_default_na=False)
    media = pd.read_csv(out / "media.csv", dtype=str, keep_default_na=False)
    buow = media[media["deploymentID"] == "buow"]["timestamp"]
    row = deps[deps["deploymentID"] == "buow"].iloc[0]
    assert (row["deploymentStart"], row["deploymentEnd"]) == (min(buow), max(buow))
    text = "\n".join(found)
    assert "deployment 'buow': deploymentStart and deploymentEnd taken from" in text
    utc = [w for w in found if "taken as UTC" in w]
    assert len(utc) == 1 and "buow" in utc[0] and "southwest" not in utc[0]
    assert "latitude" not in text


def test_without_user_data_warns_and_invents_nothing(result, tmp_path, monkeypatch):
    out = tmp_path / "bare"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = result.to_camtrap_dp(out, timezone="+01:00")
    assert any("latitude, longitude" in str(w.message) for w in caught)
    text = "\n".join(found)
    assert "project title, samplingDesign, captureMethod missing" in text
    assert "spatial coverage left out" in text and "contributors missing" in text
    assert "jaguar" not in text, "no media, no deployment, nothing to warn about"
    deps = pd.read_csv(out / "deployments.csv", dtype=str, keep_default_na=False)
    readable = [Path(p) for p, c in zip(result.paths, result.detections.category) if c != 255]
    with_dates = {p.parent.name for p in readable if exif_date(p)}
    assert sorted(deps["deploymentID"]) == sorted(with_dates)
    assert (deps["latitude"] == "").all() and (deps["longitude"] == "").all()
    media = pd.read_csv(out / "media.csv", dtype=str, keep_default_na=False)
    assert media["timestamp"].str.endswith("+01:00").all()
    work = tmp_path / "work"
    work.mkdir()
    assert not validate_offline(out, work, monkeypatch).valid


def test_undated_images_dated_by_mtime(result, tmp_path, testdata):
    from datetime import datetime, timedelta, timezone

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result.to_camtrap_dp(tmp_path / "m", timezone="+01:00", undated="mtime")
    assert any("modification time" in str(w.message) for w in caught)
    media = pd.read_csv(tmp_path / "m" / "media.csv", dtype=str, keep_default_na=False)
    readable = [p for p, c in zip(result.paths, result.detections.category) if c != 255]
    assert len(media) == len(readable)
    stamps = dict(zip(media["filePath"], media["timestamp"]))
    zone = timezone(timedelta(hours=1))
    for p in readable:
        if not exif_date(Path(p)):
            when = datetime.fromtimestamp(int(Path(p).stat().st_mtime), zone)
            assert stamps[Path(p).relative_to(testdata).as_posix()] == when.isoformat()


def test_bad_arguments_raise(result, tmp_path):
    with pytest.raises(InvalidArgumentError, match="timezone"):
        result.to_camtrap_dp(tmp_path / "x", timezone="CEST")
    with pytest.raises(InvalidArgumentError, match="undated"):
        result.to_camtrap_dp(tmp_path / "x", undated="guess")


def test_cli_writes_the_package(shared_models, manifest_path, testdata, deployments_csv, tmp_path):
    import subprocess
    import sys

    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"project": PROJECT, "contributors": WHO}), encoding="utf-8")
    out = tmp_path / "pkg"
    cmd = [
        sys.executable, "-m", "deepfaune_rs.cli", "run", str(testdata / "southwest"),
        "-o", str(tmp_path / "r.csv"), "--detector", "md-lite",
        "--classifier", str(shared_models / "pixel_classifier_182_c38.onnx"),
        "--classifier-manifest", str(manifest_path), "--no-progress",
        "--camtrap-dp", str(out), "--deployments", str(deployments_csv), "--timezone=-07:00",
    ]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 3, p.stderr
    # error_img.JPG and error_vid.mp4 are 0-byte files: both left out of the package.
    empty = [f for f in (testdata / "southwest").iterdir() if f.stat().st_size == 0]
    assert "Camtrap DP package" in p.stderr and f"{len(empty)} unreadable" in p.stderr
    media = pd.read_csv(out / "media.csv", dtype=str, keep_default_na=False)
    assert len(media) > 0 and media["timestamp"].str.endswith("-07:00").all()
    # A single input folder is the root: the deployment is that folder itself.
    assert set(media["deploymentID"]) == {"southwest"}


def tomllib_load(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    with open(path, "rb") as f:
        return tomllib.load(f)
