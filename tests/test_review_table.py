"""The review page over a results table alone (ours without its checkpoint, DeepFaune 1.4.1's
CSV/XLSX), and a relabel applied incrementally equals the whole journal applied again."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import deepfaune_rs
from conftest import REPO
from deepfaune_rs.review import ReviewServer, ReviewState, journal_path
from deepfaune_rs.review_table import NO_BOXES, NO_REDECIDE, ResultTable

MANIFEST = REPO / "models" / "tiny-pixel-c38.toml"
CLI = [sys.executable, "-m", "deepfaune_rs.cli"]


@pytest.fixture(scope="module")
def files(testdata: Path) -> list[str]:
    return [str(p) for p in sorted((testdata / "buow").iterdir())[:8]]


@pytest.fixture(scope="module")
def grouped(shared_models, files):
    """A run of eight images, in sequences of several images."""
    pipe = deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=MANIFEST,
        maxlag_s=1e6,
    )
    return pipe.run(files, progress=False, keep_embeddings=False)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAUNE_RS_CACHE", str(tmp_path / "cache"))


def call(url: str, body: dict | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def api(server: ReviewServer, what: str) -> str:
    return server.url.replace("/?", f"/{what}?")


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# ---------------------------------------------------------------------------------------------
# Our own run's CSV, its checkpoint gone.


def test_our_csv_alone_is_shown_relabelled_and_exported(grouped, tmp_path):
    table = tmp_path / "r.csv"
    grouped.to_csv(table)
    original = rows_of(table.read_text())
    assert "status" in original[0]
    server = ReviewServer(ReviewState(ResultTable(table), journal_path(table))).start()
    try:
        info = json.loads(call(api(server, "api/info"))[1])
        assert info["images"] == len(grouped)
        assert info["unavailable"] == [NO_REDECIDE, NO_BOXES]
        assert set(grouped.labels) <= set(info["labels"])
        page = json.loads(call(api(server, "api/sequences") + "&limit=200")[1])
        shown = {im["id"]: (s, im) for s in page["items"] for im in s["images"]}
        assert sorted(shown) == list(range(len(original)))
        for i, r in enumerate(original):  # the table's rows, in its order
            s, im = shown[i]
            assert (s["prediction"], s["top1"], im["label"]) == (
                r["prediction"],
                r["top1"],
                r["predictionbase"],
            )
            assert s["score"] == pytest.approx(float(r["score"]), abs=0.005)
            assert im["boxes"] == []
        assert len(page["items"]) == len(set(np.asarray(grouped.seqnum).tolist()))
        # A thumbnail of the table's image (absolute paths as our run writes them).
        status, jpeg = call(api(server, "thumb/0"))
        assert status == 200
        w, h = Image.open(original[0]["filename"]).size
        t = Image.open(io.BytesIO(jpeg))
        assert max(t.size) == 256 and abs(t.size[0] / t.size[1] - w / h) < 0.02
        # Relabel a sequence of several images, verify another image.
        multi = next(s for s in page["items"] if len(s["images"]) > 1)
        ids = [im["id"] for im in multi["images"]]
        status, answer = call(
            api(server, "api/change"), {"ids": ids, "label": "lynx", "scope": "sequence"}
        )
        assert status == 200, answer
        other = next(i for i in range(len(original)) if i not in ids)
        assert call(api(server, "api/change"), {"ids": [other], "verified": True})[0] == 200
        status, answer = call(api(server, "api/redecide"), {"threshold": 0.5})
        assert status == 400 and b"no logits" in answer
        lynx = json.loads(call(api(server, "api/sequences") + "&class=lynx")[1])["items"]
        assert [s["seqnum"] for s in lynx] == [multi["seqnum"]]
        exported = rows_of(call(api(server, "api/export.csv"))[1].decode())
    finally:
        server.stop()
    journal = [json.loads(line) for line in Path(journal_path(table)).read_text().splitlines()]
    assert journal[0]["files"] == [original[i]["filename"] for i in ids]
    # The export: the table, the relabelled rows' labels and scores replaced, nothing else.
    assert [r["filename"] for r in exported] == [r["filename"] for r in original]
    for i, (got, was) in enumerate(zip(exported, original)):
        if i in ids:
            changed = {"predictionbase", "prediction", "top1", "scorebase", "score"}
            assert {k: got[k] for k in changed} == {
                "predictionbase": "lynx",
                "prediction": "lynx",
                "top1": "lynx",
                "scorebase": "1.0",
                "score": "1.0",
            }
            assert {k: v for k, v in got.items() if k not in changed} == {
                k: v for k, v in was.items() if k not in changed
            }
        else:
            assert got == was
    # The same journal applied by the core to the run gives the same labels (an independent
    # path: the run's own corrections).
    fixed = grouped.apply_corrections(journal_path(table))
    core = {p: (fixed.prediction[i], float(fixed.score[i])) for i, p in enumerate(fixed.paths)}
    for r in exported:
        label, score = core[r["filename"]]
        assert r["prediction"] == label and float(r["score"]) == pytest.approx(score, abs=5e-3)


# ---------------------------------------------------------------------------------------------
# DeepFaune 1.4.1's own CSV/XLSX: no status, relative names, its labels.

HEADER = "filename,dates,seqnum,predictionbase,scorebase,prediction,score,top1,count,humancount"


def deepfaune_table(tmp_path: Path, testdata: Path) -> tuple[Path, list[str]]:
    """A table as DeepFaune 1.4.1's GUI writes it, over copies of four test images in
    ``imgs/`` beside it, named relative to it."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    sources = sorted((testdata / "buow").iterdir())[:4]
    names = []
    for k, src in enumerate(sources):
        shutil.copy(src, imgs / f"c{k}{src.suffix}")
        names.append(f"imgs/c{k}{src.suffix}")
    lines = [
        HEADER,
        f"{names[0]},2021:05:01 10:00:00,1,chamois,0.87,chamois,0.91,chamois,1,0",
        f"{names[1]},2021:05:01 10:00:03,1,red deer,0.55,chamois,0.91,chamois,2,0",
        f"{names[2]},2021:06:02 11:00:00,2,empty,0.0,empty,0.0,empty,0,0",
        f"{names[3]},,3,human,0.96,human,0.96,human,0,1",
    ]
    table = tmp_path / "deepfaune.csv"
    table.write_text("\n".join(lines) + "\n")
    return table, names


def test_deepfaune_csv_without_status(tmp_path, testdata):
    table, names = deepfaune_table(tmp_path, testdata)
    t = ResultTable(table)
    assert t.settings["classifier"] == "deepfaune-v15" and t.settings["language"] == "en"
    server = ReviewServer(ReviewState(t, journal_path(table))).start()
    try:
        page = json.loads(call(api(server, "api/sequences"))[1])
        assert [(s["seqnum"], s["prediction"], len(s["images"])) for s in page["items"]] == [
            (1, "chamois", 2),
            (2, "empty", 1),
            (3, "human", 1),
        ]
        s1 = page["items"][0]
        assert [im["label"] for im in s1["images"]] == ["chamois", "red deer"]
        assert (s1["count"], s1["date"], s1["folder"]) == (
            2,
            "2021:05:01 10:00:00",
            str(tmp_path / "imgs"),
        )
        # Filters read the table's labels.
        for show, want in [("empty", [2]), ("human", [3])]:
            got = json.loads(call(api(server, "api/sequences") + f"&show={show}")[1])["items"]
            assert [s["seqnum"] for s in got] == want, show
        got = json.loads(call(api(server, "api/sequences") + "&from=2021-06-01")[1])["items"]
        assert [s["seqnum"] for s in got] == [2]
        # Relative names resolve beside the table.
        status, jpeg = call(api(server, "thumb/1"))
        assert status == 200 and Image.open(io.BytesIO(jpeg)).format == "JPEG"
        # "lynx" is one of DeepFaune 1.5's labels, though not in this table.
        status, _ = call(api(server, "api/change"), {"ids": [3], "label": "lynx"})
        assert status == 200
        status, answer = call(api(server, "api/change"), {"ids": [3], "label": "unicorn"})
        assert status == 400
        exported = call(api(server, "api/export.csv"))[1].decode()
    finally:
        server.stop()
    lines = table.read_text().splitlines()
    want = lines[:4] + [f"{names[3]},,3,lynx,1.0,lynx,1.0,lynx,0,1"]
    assert exported.splitlines() == want
    # Reloaded: the journal applied again gives the same state.
    again = ReviewState(ResultTable(table), journal_path(table)).row(3)
    assert again["prediction"] == "lynx" and again["reviewed"]["label"] == "lynx"


def test_deepfaune_xlsx_and_its_megadetector_boxes(tmp_path, testdata):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("openpyxl")
    table, names = deepfaune_table(tmp_path, testdata)
    xlsx = tmp_path / "deepfaune.xlsx"
    pd.read_csv(table).to_excel(xlsx, index=False)
    # The run's MegaDetector file: one animal box on the first image, relative to its folder.
    box = [0.1, 0.2, 0.3, 0.4]
    md = {
        "info": {"format_version": "1.4"},
        "detection_categories": {"1": "animal", "2": "person"},
        "images": [{"file": names[0], "detections": [{"category": "1", "conf": 0.9, "bbox": box}]}],
    }
    (tmp_path / "md.json").write_text(json.dumps(md))
    t = ResultTable(xlsx, detections=tmp_path / "md.json")
    assert t.unavailable == [NO_REDECIDE]
    items = ReviewState(t, journal_path(xlsx)).page({"limit": "200"})["items"]
    first = items[0]["images"][0]
    w, h = Image.open(tmp_path / names[0]).size
    x1, y1 = int(box[0] * w), int(box[1] * h)
    assert (first["w"], first["h"]) == (w, h)
    assert first["boxes"] == [[x1, y1, x1 + int(box[2] * w), y1 + int(box[3] * h), 0, 0.9, True]]
    assert [im["boxes"] for im in items[1]["images"]] == [[]]


def test_cli_reviews_a_table_alone_and_refuses_one_with_missing_columns(tmp_path, testdata):
    table, _ = deepfaune_table(tmp_path, testdata)
    env = {**os.environ, "DEEPFAUNE_RS_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [*CLI, "review", str(table)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("review page: http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[-1]
        assert json.loads(call(url.replace("/?", "/api/info?"))[1])["images"] == 4
        assert call(url.replace("/?", "/api/change?"), {"ids": [0], "label": "wolf"})[0] == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert json.loads(Path(journal_path(table)).read_text())["label"] == "wolf"
    bad = tmp_path / "bad.csv"
    bad.write_text("filename,seqnum,prediction\nx.jpg,1,wolf\n")
    p = subprocess.run([*CLI, "review", str(bad)], capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert "missing columns predictionbase, scorebase, score" in p.stderr


# ---------------------------------------------------------------------------------------------
# A change applied to the page's columns alone equals the whole journal applied again.

FIELDS = ("predictionbase", "prediction", "top1", "scorebase", "score", "reviewed")


def snapshot(state: ReviewState) -> dict[str, list]:
    rows = [state.row(i) for i in range(state.n_images)]
    return {k: [r[k] for r in rows] for k in FIELDS}


def sequences(state: ReviewState) -> list[list[int]]:
    """Each sequence's image numbers, as the page lists them."""
    items = state.page({"limit": "200"})["items"]
    return [[im["id"] for im in s["images"]] for s in items]


def test_incremental_changes_equal_the_journal_applied_again(grouped, tmp_path):
    journal = str(tmp_path / "r.csv.corrections.jsonl")
    state = ReviewState(grouped, journal, by="ann")
    before = snapshot(state)
    seqs = [s for s in sequences(state) if len(s) > 1]
    assert seqs, "the test needs a sequence of several images"
    a = seqs[0]
    b = next(s for s in reversed(sequences(state)) if s != a)
    changes = [
        {"ids": a, "label": "chamois", "scope": "sequence"},
        {"ids": a[:1], "label": "lynx"},  # one image of it again
        {"ids": a + b, "verified": True, "scope": "page"},  # verify only: labels stay
        {"ids": b, "label": "wolf", "verified": False, "scope": "sequence"},
        {"ids": a[1:], "label": "empty"},
    ]
    for body in changes:
        state.change(body)
    incremental = snapshot(state)
    assert incremental != before
    # Independent: the core applies the whole journal to the run.
    full = snapshot(ReviewState(grouped.apply_corrections(journal), str(tmp_path / "none")))
    assert incremental == full
    # And a reload (the whole journal, through the page's load path) agrees.
    assert snapshot(ReviewState(grouped, journal)) == full
    assert incremental["reviewed"][a[0]]["label"] == "lynx"
    assert incremental["reviewed"][b[0]] == {
        "label": "wolf",
        "verified": True,
        "by": "ann",
        "time": incremental["reviewed"][b[0]]["time"],
    }


# ---------------------------------------------------------------------------------------------
# Videos: a row with its keyframe's picture, relabelled like an image.


def make_video(path: Path, frames: list[np.ndarray], fps: int = 6) -> Path:
    av = pytest.importorskip("av")
    container = av.open(str(path), "w")
    stream = container.add_stream("mpeg4", rate=fps)
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = "yuv420p"
    stream.bit_rate = 20_000_000
    for frame in frames:
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


@pytest.fixture(scope="module")
def with_video(shared_models, testdata, tmp_path_factory):
    """A run over two images, a short video of a fox and a video that cannot be read."""
    folder = tmp_path_factory.mktemp("media")
    for src in sorted((testdata / "buow").iterdir())[:2]:
        shutil.copy(src, folder / src.name)
    fox = Image.open(testdata / "southwest" / "2021-08-08_RCNX0063_fox.JPG").convert("RGB")
    still = np.asarray(fox.resize((640, 480)))
    # The fox moves across: frames differ, so the keyframe is one frame among others.
    make_video(folder / "fox.mp4", [np.roll(still, 12 * k, axis=1) for k in range(18)])
    (folder / "broken.mp4").write_bytes(b"not a video" * 100)
    pipe = deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=MANIFEST,
    )
    return pipe.run(folder, progress=False, keep_embeddings=False)


def test_a_video_row_shows_its_keyframe_and_takes_a_relabel(with_video, tmp_path, monkeypatch):
    import av

    res = with_video
    assert [os.path.basename(v.path) for v in res.videos] == ["broken.mp4", "fox.mp4"]
    broken, video = res.videos
    assert broken.failure is not None
    assert video.failure is None and video.keyframe is not None
    journal = str(tmp_path / "r.csv.corrections.jsonl")
    # Without PyAV: the row is listed, with the reason instead of a picture.
    monkeypatch.setattr(deepfaune_rs.video, "_import_av", lambda: None)
    state = ReviewState(res, journal)
    vid = len(res) + 1
    (row,) = state.page({"limit": "200"})["items"][-1]["images"]
    assert (row["id"], row["video"], row["keyframe"]) == (vid, True, video.keyframe)
    assert "PyAV is not installed" in row["unavailable"]
    with pytest.raises(deepfaune_rs.video.VideoError, match="PyAV"):
        state.thumbnail(vid, 256)
    monkeypatch.undo()
    state = ReviewState(res, journal)
    (row,) = state.page({"limit": "200"})["items"][-2]["images"]
    assert row["unavailable"] == "no keyframe picture: the video could not be read"
    server = ReviewServer(state).start()
    try:
        page = json.loads(call(api(server, "api/sequences") + "&limit=200")[1])
        (row,) = page["items"][-1]["images"]
        assert row["unavailable"] is None and row["label"] == video.prediction
        assert (row["w"], row["h"]) == (640, 480)
        if video.box is not None:
            assert row["boxes"][0][:4] == [round(x, 1) for x in video.box]
        status, jpeg = call(api(server, f"thumb/{vid}"))
        assert status == 200
        # Independently: every frame decoded in order with PyAV, the keyframe shrunk by Pillow.
        with av.open(video.path) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        want = Image.fromarray(frames[video.keyframe]).resize((256, 192), Image.BILINEAR)
        for n in (video.keyframe, 0, 7, len(frames) - 1):  # a frame by number, as decoded
            np.testing.assert_array_equal(deepfaune_rs.video.read_frame(video.path, n), frames[n])
        got = Image.open(io.BytesIO(jpeg)).convert("RGB")
        assert got.size == want.size
        diff = np.abs(np.asarray(got, dtype=int) - np.asarray(want, dtype=int)).mean()
        assert diff < 3, diff
        status, _ = call(api(server, "api/change"), {"ids": [vid], "label": "wolf"})
        assert status == 200
        page = json.loads(call(api(server, "api/sequences") + "&class=wolf")[1])
        assert [im["id"] for s in page["items"] for im in s["images"]] == [vid]
        exported = rows_of(call(api(server, "api/export.csv"))[1].decode())
    finally:
        server.stop()
    (v_row,) = [r for r in exported if r["filename"] == video.path]
    assert (v_row["prediction"], v_row["score"], v_row["media_type"]) == ("wolf", "1.0", "video")
    # Reloaded, the journal applied again: the same.
    again = ReviewState(res, journal).row(vid)
    assert again["prediction"] == "wolf" and again["reviewed"]["label"] == "wolf"
    fixed = res.apply_corrections(journal).videos[1]
    assert (fixed.prediction, fixed.score, fixed.label_index) == (
        "wolf",
        1.0,
        res.class_names.index("wolf"),
    )
    # Our table of that run, reviewed alone: the video row is a video row.
    table = tmp_path / "r.csv"
    res.to_csv(table)
    t_state = ReviewState(ResultTable(table), journal_path(table))
    (t_row,) = t_state.page({"limit": "200"})["items"][-1]["images"]
    assert (t_row["video"], t_row["keyframe"]) == (True, video.keyframe)
