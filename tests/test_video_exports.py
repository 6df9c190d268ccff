"""A run's videos in its outputs, written by the Rust exporters (issue 15 item 2): the table's
video rows, DeepFaune's CSV, MegaDetector JSON 1.6 and Camtrap DP, sorting and corrections.

The expected table, CSV and MegaDetector video entries are computed here from the
:class:`~deepfaune_rs.videos.VideoRecord` s by the Python code that wrote them before the
exporters moved to Rust (the table rows, Python's ``csv`` module, ``json.dump``): the outputs
must stay byte for byte what they were."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import warnings
from pathlib import Path

import pytest
from test_camtrap_dp import PROJECT, WHO, validate_offline
from test_video import _testdata_frames, make_video

import deepfaune_rs
from conftest import REPO

pd = pytest.importorskip("pandas")

WHEN = "2026-01-02T03:04:05.678Z"


@pytest.fixture(scope="module")
def run(shared_models, testdata, tmp_path_factory):
    """Two images and five videos over two folders: two dated readable videos (one with a name a
    CSV must quote and a spreadsheet would run), an undated one, a 0-byte one, a garbage one."""
    root = tmp_path_factory.mktemp("vexp")
    for cam in ("cam1", "cam2"):
        (root / cam).mkdir()
    for name in ("2021-08-08_RCNX0063_fox.JPG", "2021-05-28_SYFR0041_deer.JPG"):
        shutil.copy(testdata / "southwest" / name, root / "cam1" / name)
    make_video(root / "cam1" / "clip.mp4", _testdata_frames(testdata, 90), 30)
    odd = root / "cam1" / '=odd, "name".mp4'
    make_video(odd, _testdata_frames(testdata, 20), 7.5, created="2022-06-04T23:59:58.000000Z")
    make_video(root / "cam2" / "nodate.avi", _testdata_frames(testdata, 30), 15, created=None)
    (root / "cam2" / "zero.mp4").write_bytes(b"")
    (root / "cam2" / "garbage.mp4").write_bytes(b"not a video" * 100)
    pipe = deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
        score_threshold=0.0,  # the tiny classifier is unsure: no threshold, so videos get a species
    )
    res = pipe.run(root, progress=False)
    assert len(res.videos) == 5 and sum(v.failure is not None for v in res.videos) == 2
    return root, res


def _journal(tmp_path: Path, *lines: dict) -> Path:
    path = tmp_path / "r.csv.corrections.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def _video(res, root: Path, name: str):
    (rec,) = [v for v in res.videos if Path(v.path) == root / name]
    return rec


# The reference: what the Python package wrote before the Rust exporters took the videos.


def reference_table(res) -> dict[str, list]:
    """The images' rows (the core's, tested elsewhere), then one row per video, its own
    sequence after the images', then ``media_type`` and ``keyframe``."""
    t = res.table()
    n = len(res)
    ref = {name: list(col[:n]) for name, col in t.items() if name not in ("media_type", "keyframe")}
    first = max(ref["seqnum"], default=0) + 1
    columns = list(ref)
    for k, v in enumerate(res.videos):
        status = "ok" if v.failure is None else f"failed: {v.failure['reason']}"
        row = [v.path, v.date, first + k, v.prediction, v.score, v.prediction, v.score]
        row += [v.top1, v.count, v.humancount, status]
        for name, value in zip(columns, row):
            ref[name].append(value)
    ref["media_type"] = ["image"] * n + ["video"] * len(res.videos)
    ref["keyframe"] = [None] * n + [v.keyframe for v in res.videos]
    return ref


def reference_csv(table: dict[str, list], csv_safe: bool) -> str:
    def cell(column: str, value: object) -> object:
        if value is None:
            value = "NA" if column == "date" else ""
        elif column in ("score", "scorebase"):
            value = repr(float(value))  # type: ignore[arg-type]
        if (
            csv_safe
            and isinstance(value, str)
            and value.startswith(("=", "+", "-", "@", "\t", "\r"))
        ):
            value = "'" + value
        return value

    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(list(table))
    for i in range(len(table["filename"])):
        w.writerow([cell(name, table[name][i]) for name in table])
    return out.getvalue()


def reference_megadetector_entry(rec, name: str) -> dict:
    if rec.failure is not None:
        return {
            "file": name,
            "failure": rec.failure["reason"],
            "frame_rate": round(float(rec.frame_rate or 0.0), 3),
            "frames_processed": [],
            "detections": None,
        }
    w, h = rec.frame_size
    dets = []
    for d in rec.detections:
        x1, y1, x2, y2 = d["xyxy"]
        dets.append(
            {
                "category": str(d["category"] + 1),
                "conf": round(d["conf"], 3),
                "bbox": [
                    round(x1 / w, 4),
                    round(y1 / h, 4),
                    round((x2 - x1) / w, 4),
                    round((y2 - y1) / h, 4),
                ],
                "frame_number": d["frame_number"],
            }
        )
    return {
        "file": name,
        "frame_rate": round(rec.frame_rate, 3),
        "frames_processed": rec.frames_processed,
        "detections": dets,
    }


def reference_megadetector_json(res, written: str, root: Path) -> str:
    """The images' entries as written (the core's, tested elsewhere), the videos' as Python
    made them, dumped as Python did."""
    doc = json.loads(written)
    n = len(res)
    assert len(doc["images"]) == n + len(res.videos)
    doc["images"] = doc["images"][:n]
    for v in res.videos:
        name = os.path.relpath(v.path, root)
        name = v.path if name.startswith("..") else name
        doc["images"].append(reference_megadetector_entry(v, name.replace("\\", "/")))
    return json.dumps(doc, indent=2, ensure_ascii=False)


# The tests.


@pytest.mark.parametrize("corrected", [False, True])
def test_table_rows_of_the_videos(run, tmp_path, corrected):
    root, res = run
    if corrected:
        res = res.apply_corrections(
            _journal(
                tmp_path, {"time": WHEN, "files": [str(root / "cam1/clip.mp4")], "label": "loup"}
            )
        )
    t = res.table()
    assert list(t)[-3:] == ["status", "media_type", "keyframe"]
    assert t == reference_table(res)
    # The video rows' sequences follow the images' ones, one each.
    assert t["seqnum"][len(res) :] == list(range(max(res.seqnum) + 1, max(res.seqnum) + 6))


@pytest.mark.parametrize("csv_safe", [False, True])
def test_csv_is_byte_for_byte_the_python_writers(run, tmp_path, csv_safe):
    root, res = run
    path = tmp_path / "r.csv"
    res.to_csv(path, csv_safe=csv_safe)
    text = path.read_bytes().decode("utf-8")
    assert text == reference_csv(reference_table(res), csv_safe)
    odd = str(root / "cam1" / '=odd, "name".mp4')
    quoted = '"' + ("'" if csv_safe else "") + odd.replace('"', '""') + '"'
    assert ("\n" + quoted + ",") in text or (csv_safe and odd[0] != "=")


def test_megadetector_json_is_byte_for_byte_the_python_writers(run, tmp_path):
    root, res = run
    for given_root in (None, root, root / "cam2"):
        path = tmp_path / "md.json"
        res.to_megadetector_json(path, root=given_root)
        written = path.read_text(encoding="utf-8")
        assert written == reference_megadetector_json(res, written, given_root or root)
    doc = json.loads((tmp_path / "md.json").read_text(encoding="utf-8"))
    by_file = {e["file"]: e for e in doc["images"]}
    # Relative to cam2 only for what is below it.
    assert {"zero.mp4", "garbage.mp4", "nodate.avi"} <= set(by_file)
    assert str(root / "cam1" / "clip.mp4") in by_file


def test_megadetector_json_validates(run, tmp_path):
    _, res = run
    pytest.importorskip("megadetector")
    from megadetector.postprocessing.validate_batch_results import (
        ValidateBatchResultsOptions,
        validate_batch_results,
    )

    path = tmp_path / "md.json"
    res.to_megadetector_json(path)
    report = validate_batch_results(str(path), ValidateBatchResultsOptions())
    assert report["validation_results"]["errors"] == []


def test_a_relabelled_video_is_a_human_classification_in_camtrap_dp(run, tmp_path, monkeypatch):
    root, res = run
    clip = root / "cam1" / "clip.mp4"
    journal = _journal(
        tmp_path,
        {"time": "2026-01-01T00:00:00.000Z", "files": [str(clip)], "label": "chamois"},
        {"time": WHEN, "files": [str(clip)], "label": "loup", "verified": True, "by": "anna"},
    )
    fixed = res.apply_corrections(journal)
    rec = _video(fixed, root, "cam1/clip.mp4")
    wolf = list(res.class_names).index("wolf")
    assert (rec.prediction, rec.top1, rec.score, rec.label_index) == ("wolf", "wolf", 1.0, wolf)
    k = fixed.videos.index(rec)
    anna = {"label": "wolf", "verified": True, "by": "anna", "time": WHEN}
    assert fixed.video_reviewed[k] == anna
    assert [r for i, r in enumerate(fixed.video_reviewed) if i != k] == [None] * 4
    out = tmp_path / "pkg"
    meta = {"project": PROJECT, "title": "videos", "contributors": WHO}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # cam2 has no dated readable media: no deployment of its own.
        deployments = [{"deploymentID": "cam1", "latitude": 45.1, "longitude": 6.5}]
        fixed.to_camtrap_dp(out, deployments, timezone="+02:00", metadata=meta)
    media = pd.read_csv(out / "media.csv", dtype=str, keep_default_na=False)
    obs = pd.read_csv(out / "observations.csv", dtype=str, keep_default_na=False)
    (media_id,) = media[media["filePath"] == "cam1/clip.mp4"]["mediaID"]
    seq = fixed.table()["seqnum"][fixed.table()["filename"].index(str(clip))]
    events = obs[(obs["eventID"] == f"seq{seq}") & (obs["observationLevel"] == "event")]
    (event,) = [r for _, r in events.iterrows()]
    assert event["scientificName"] == "Canis lupus"
    # The person's answer: as for an image (milliseconds dropped: Camtrap DP's format).
    want = ("human", "anna", "2026-01-02T03:04:05Z", "")
    got = ("classificationMethod", "classifiedBy", "classificationTimestamp")
    assert tuple(event[c] for c in got) + (event["classificationProbability"],) == want
    for _, r in obs[(obs["mediaID"] == media_id) & (obs["observationLevel"] == "media")].iterrows():
        assert tuple(r[c] for c in got) == want[:3]
    # The other videos stay the machine's.
    others = obs[
        (obs["eventID"] != f"seq{seq}")
        & obs["eventID"].isin({f"seq{s}" for s in fixed.table()["seqnum"][len(fixed) :]})
    ]
    assert len(others) and set(others["classificationMethod"]) == {"machine"}
    report = validate_offline(out, tmp_path, monkeypatch)
    assert report.valid, report.flatten(["type", "message"])[:10]


def test_sorting_places_readable_videos_by_prediction(run, tmp_path):
    root, res = run
    fixed = res.apply_corrections(
        _journal(
            tmp_path, {"time": WHEN, "files": [str(root / "cam2/nodate.avi")], "label": "chamois"}
        )
    )
    report = fixed.sort_into(tmp_path / "sorted")
    placed = {
        os.path.relpath(src, root): os.path.relpath(dst, report["root"])
        for src, dst in report["placed"]
    }
    for v in fixed.videos:
        name = os.path.relpath(v.path, root)
        if v.failure is not None:
            assert name not in placed
        else:
            assert placed[name] == os.path.join(v.prediction, os.path.basename(v.path))
    assert placed["cam2/nodate.avi"] == os.path.join("chamois", "nodate.avi")
    assert len(placed) == len(res) + 3
