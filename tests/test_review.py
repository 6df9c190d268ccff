"""Seeing and correcting results: re-deciding from stored logits, the corrections journal and
the outputs that follow it, the review server's security, notebook pictures."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import deepfaune_rs
from conftest import REPO
from deepfaune_rs import _core
from deepfaune_rs.review import ReviewServer, ReviewState, image_rows, journal_path

MANIFEST = REPO / "models" / "tiny-pixel-c38.toml"
COLUMNS = ("seqnum", "predictionbase", "scorebase", "prediction", "score", "top1")


def pipeline(shared_models: Path, **settings) -> deepfaune_rs.Pipeline:
    return deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=MANIFEST,
        **settings,
    )


@pytest.fixture(scope="module")
def folder(testdata: Path) -> Path:
    return testdata / "buow"


@pytest.fixture(scope="module")
def files(folder: Path) -> list[str]:
    """Ten images of one folder (their dates span three years): enough to group and quick."""
    return [str(p) for p in sorted(folder.iterdir())[:10]]


@pytest.fixture(scope="module")
def result(shared_models, files):
    return pipeline(shared_models).run(files, progress=False, keep_embeddings=False)


@pytest.fixture(scope="module")
def grouped(result):
    """The same images in longer sequences (the test folder's are one image each)."""
    return result.redecide(maxlag_s=1e6)


def columns(r) -> dict[str, list]:
    return {c: [float(v) if c.startswith("score") else v for v in getattr(r, c)] for c in COLUMNS}


# ---------------------------------------------------------------------------------------------
# Re-deciding without running the models again.

REDECIDE = [
    {"threshold": 0.3, "maxlag_s": 3e6, "disabled_classes": ["bison", "badger", "ibex", "fox"]},
    # fox (0.93) falls below 0.95; raccoon dog (0.62) and beaver (0.42) pass their own.
    {"threshold": 0.95, "maxlag_s": 0.0, "class_thresholds": {"raccoon dog": 0.6, "beaver": 0.4}},
]


@pytest.mark.parametrize("settings", REDECIDE, ids=lambda s: ",".join(s))
def test_redecide_equals_a_fresh_run_with_those_settings(shared_models, files, result, settings):
    again = result.redecide(**settings)
    fresh = pipeline(shared_models, **settings).run(files, progress=False, keep_embeddings=False)
    assert columns(again) == columns(fresh)
    assert again.to_pandas().equals(fresh.to_pandas())
    # No model ran: the stored logits are the run's, shared.
    np.testing.assert_array_equal(again.logits, result.logits)
    assert again.settings["threshold"] == pytest.approx(settings["threshold"])


def test_redecide_changes_what_the_settings_change(result):
    """The settings above do change the answers of these images (so equality means something)."""
    base = columns(result)
    changed = [columns(result.redecide(**s)) != base for s in REDECIDE]
    assert all(changed), changed
    # And class thresholds act on their class only: a class threshold of 0 for the best class
    # of every undefined image makes each of them that class.
    undefined = [i for i, p in enumerate(result.predictionbase) if p == "undefined"]
    assert undefined, "the test folder needs undefined images"
    wanted = {result.class_names[int(np.argmax(result.logits[i]))] for i in undefined}
    low = result.redecide(class_thresholds={c: 0.0 for c in wanted}, maxlag_s=0)
    for i in undefined:
        assert low.predictionbase[i] == result.class_names[int(np.argmax(result.logits[i]))]


def test_redecide_refuses_bad_settings(result):
    with pytest.raises(ValueError, match="unknown classes"):
        result.redecide(disabled_classes=["unicorn"])
    with pytest.raises(ValueError, match="within 0..1"):
        result.redecide(class_thresholds={"wolf": 2.0})
    with pytest.raises(ValueError, match="maxlag_s"):
        result.redecide(maxlag_s=-1)


def test_presets_save_a_regions_species_list(result, tmp_path, monkeypatch):
    from deepfaune_rs.review import list_presets, load_preset, save_preset

    monkeypatch.setenv("DEEPFAUNE_RS_PRESETS", str(tmp_path / "presets"))
    absent = ["bison", "reindeer", "moose"]
    save_preset("alps", absent)
    assert list_presets() == ["alps"] and load_preset("alps") == absent
    by_preset = result.redecide(preset="alps")
    assert columns(by_preset) == columns(result.redecide(disabled_classes=absent))
    # Stored as indices: given back in class order.
    assert by_preset.settings["disabled_classes"] == [c for c in result.class_names if c in absent]
    with pytest.raises(ValueError, match="preset name"):
        save_preset("../x", [])


# ---------------------------------------------------------------------------------------------
# Corrections: a journal, applied to every output.


def first_multi_sequence(res) -> tuple[int, list[int]]:
    seq = np.asarray(res.seqnum)
    for s in sorted(set(seq.tolist())):
        members = np.flatnonzero(seq == s).tolist()
        if len(members) > 1 and res.detections.category[members[0]] == 1:
            return s, members
    pytest.skip("no sequence of several animal images in the test folder")


def test_journal_is_appended_synced_and_applied_later_lines_winning(grouped, tmp_path):
    result = grouped
    journal = tmp_path / "r.csv.corrections.jsonl"
    seq, members = first_multi_sequence(result)
    files = [result.paths[i] for i in members]
    e1 = _core.append_correction(str(journal), files, label="chamois", scope="sequence", by="ann")
    e2 = _core.append_correction(str(journal), files[:1], label="lynx", verified=True, by="bob")
    lines = journal.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [e1, e2]
    assert e1["time"].endswith("Z") and e1["time"] <= e2["time"]
    fixed = result.apply_corrections(journal)
    assert fixed.prediction[members[0]] == "lynx" and fixed.predictionbase[members[0]] == "lynx"
    for i in members[1:]:
        assert (fixed.prediction[i], float(fixed.score[i]), fixed.top1[i]) == (
            "chamois",
            1.0,
            "chamois",
        )
    assert fixed.reviewed[members[0]] == {
        "label": "lynx",
        "verified": True,
        "by": "bob",
        "time": e2["time"],
    }
    others = [i for i in range(len(result)) if i not in members]
    assert [fixed.prediction[i] for i in others] == [result.prediction[i] for i in others]
    assert all(fixed.reviewed[i] is None for i in others)
    # The original results are untouched; a missing journal changes nothing.
    assert result.prediction[members[1]] != "chamois" or result.score[members[1]] != 1.0
    assert columns(result.apply_corrections(tmp_path / "none.jsonl")) == columns(result)
    # Re-deciding keeps the corrections.
    assert fixed.redecide(threshold=0.1).prediction[members[1]] == "chamois"
    with pytest.raises(ValueError, match="not a label"):
        _core.append_correction(str(tmp_path / "bad.jsonl"), files, label="unicorn")
        result.apply_corrections(tmp_path / "bad.jsonl")


def test_corrected_outputs(grouped, folder, tmp_path):
    result = grouped
    pytest.importorskip("openpyxl")
    import pandas as pd

    journal = tmp_path / "j.jsonl"
    seq, members = first_multi_sequence(result)
    files = [result.paths[i] for i in members]
    _core.append_correction(str(journal), files, label="lynx", scope="sequence", by="ann")
    fixed = result.apply_corrections(journal)
    # CSV and XLSX.
    fixed.to_csv(tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as f:
        rows = {r["filename"]: r for r in csv.DictReader(f)}
    for p in files:
        assert (rows[p]["prediction"], rows[p]["score"], rows[p]["predictionbase"]) == (
            "lynx",
            "1.0",
            "lynx",
        )
    fixed.to_excel(tmp_path / "r.xlsx")
    x = pd.read_excel(tmp_path / "r.xlsx").set_index("filename")
    assert list(x.loc[files, "prediction"]) == ["lynx"] * len(files)
    # MegaDetector JSON: the label alone, probability 1.0, on the classified box.
    fixed.to_megadetector_json(tmp_path / "r.json", root=folder)
    doc = json.loads((tmp_path / "r.json").read_text())
    lynx = str(result.class_names.index("lynx"))
    by_file = {im["file"]: im for im in doc["images"]}
    for i in members:
        im = by_file[os.path.relpath(result.paths[i], folder)]
        got = [d["classifications"] for d in im["detections"] if "classifications" in d]
        animal = result.detections.category[i] == 1
        assert got == ([[[lynx, 1.0]]] if animal else []), got
    # Sorting follows.
    report = fixed.sort_into(tmp_path / "sorted")
    placed = dict(report["placed"])
    assert all(Path(placed[p]).parent.name == "lynx" for p in files)
    # Camtrap DP: the event and the classified boxes are a person's.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fixed.to_camtrap_dp(tmp_path / "dp", timezone="+00:00")
    with open(tmp_path / "dp" / "observations.csv", newline="") as f:
        obs = list(csv.DictReader(f))
    event = [o for o in obs if o["observationLevel"] == "event" and o["eventID"] == f"seq{seq}"]
    assert len(event) == 1
    e = event[0]
    assert (e["classificationMethod"], e["classifiedBy"]) == ("human", "ann")
    assert e["classificationTimestamp"].endswith("Z") and e["scientificName"] == "Lynx"
    human_media = [
        o for o in obs if o["observationLevel"] == "media" and o["classificationMethod"] == "human"
    ]
    animals = [i for i in members if result.detections.category[i] == 1]
    assert len(human_media) == len(animals)
    other = [o for o in obs if o["observationLevel"] == "event" and o["eventID"] != f"seq{seq}"]
    assert other and all(o["classificationMethod"] == "machine" for o in other)


def test_cli_run_applies_corrections(shared_models, files, result, tmp_path):
    journal = tmp_path / "j.jsonl"
    _core.append_correction(str(journal), [result.paths[0]], label="wolf")
    out = tmp_path / "r.csv"
    cmd = [sys.executable, "-m", "deepfaune_rs.cli", "run", *files, "-o", str(out)]
    cmd += [
        "--detector",
        "md-lite",
        "--classifier",
        str(shared_models / "pixel_classifier_182_c38.onnx"),
    ]
    cmd += ["--classifier-manifest", str(MANIFEST), "--no-progress", "--corrections", str(journal)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode in (0, 3), p.stderr
    with open(out, newline="") as f:
        rows = {r["filename"]: r for r in csv.DictReader(f)}
    assert rows[result.paths[0]]["predictionbase"] == "wolf"


# ---------------------------------------------------------------------------------------------
# The server: loopback, token, only the results' images, nothing written but the journal.


def files_under(d: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in d.rglob("*")}


@pytest.fixture()
def server(grouped, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAUNE_RS_CACHE", str(tmp_path / "cache"))
    results = tmp_path / "out" / "r.csv"
    results.parent.mkdir()
    results.write_text("stand-in for the run's table\n")
    srv = ReviewServer(ReviewState(grouped, journal_path(results))).start()
    yield srv
    srv.stop()


def get(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_server_listens_on_loopback_only_and_needs_the_token(server):
    host, port = server.server_address[:2]
    assert host == "127.0.0.1"
    base = f"http://127.0.0.1:{port}"
    for path in ["/", "/api/info", "/api/sequences", "/thumb/0", "/api/export.csv"]:
        assert get(base + path)[0] == 403, path
        assert get(base + path + "?token=wrong")[0] == 403, path
    assert get(base + "/api/change", data=b'{"ids": [0], "label": "wolf"}')[0] == 403
    assert not os.path.exists(server.state.journal)
    status, body = get(server.url)
    assert status == 200 and b"deepfaune-rs review" in body
    # A Host header naming another site (DNS rebinding) is refused too.
    assert get(server.url, headers={"Host": "evil.example:80"})[0] == 403


def test_image_urls_serve_only_the_results_images(server, grouped):
    result = grouped
    port = server.server_address[1]
    tok = server.token
    base = f"http://127.0.0.1:{port}"
    status, body = get(f"{base}/thumb/0?token={tok}")
    assert status == 200 and body[:2] == b"\xff\xd8"
    for path in [
        "/thumb/../../../../etc/passwd",
        "/thumb/%2e%2e/%2e%2e/etc/passwd",
        "/thumb/..%2f..%2fetc%2fpasswd",
        "/full//etc/passwd",
        f"/thumb/{len(result)}",
        "/thumb/-1",
        "/etc/passwd",
        "/../../etc/passwd",
        "/file?path=/etc/passwd",
        f"/thumb/0{os.sep}..{os.sep}..{os.sep}etc{os.sep}passwd",
    ]:
        status, body = get(f"{base}{path}{'&' if '?' in path else '?'}token={tok}")
        assert status in (400, 403, 404), (path, status)
        assert b"root:" not in body, path


def test_changes_go_to_the_journal_only(server, grouped, folder, tmp_path):
    result = grouped
    before_images = files_under(folder)
    results_dir = Path(server.state.journal).parent
    before = files_under(results_dir)
    url = server.url.replace("/?", "/api/change?")
    seq, members = first_multi_sequence(result)
    body = json.dumps({"ids": members, "label": "wolf", "scope": "sequence"}).encode()
    status, answer = get(url, data=body, headers={"Content-Type": "application/json"})
    assert status == 200, answer
    status, answer = get(url, data=json.dumps({"ids": [0], "label": "unicorn"}).encode())
    assert status == 400 and b"not one of the labels" in answer
    after = files_under(results_dir)
    assert set(after) - set(before) == {server.state.journal}
    assert all(after[p] == t for p, t in before.items())
    assert files_under(folder) == before_images
    journal = [json.loads(line) for line in Path(server.state.journal).read_text().splitlines()]
    assert len(journal) == 1 and journal[0]["label"] == "wolf"
    assert journal[0]["files"] == [result.paths[i] for i in members]
    # The page's list follows.
    status, page = get(server.url.replace("/?", "/api/sequences?") + "&class=wolf")
    items = json.loads(page)["items"]
    assert [s["seqnum"] for s in items] == [seq]


def test_filters_and_paging(server, grouped):
    result = grouped
    q = server.url.replace("/?", "/api/sequences?")
    everything = json.loads(get(q + "&limit=200")[1])
    n_seq = len(set(np.asarray(result.seqnum).tolist()))
    assert everything["total"] == n_seq
    pages = [json.loads(get(q + f"&limit=3&offset={o}")[1])["items"] for o in range(0, n_seq, 3)]
    assert [s["seqnum"] for p in pages for s in p] == [s["seqnum"] for s in everything["items"]]
    empty = json.loads(get(q + "&show=empty&limit=200")[1])["items"]
    expected = {
        s
        for s in set(np.asarray(result.seqnum).tolist())
        if all(
            result.detections.category[i] == 0
            for i in np.flatnonzero(np.asarray(result.seqnum) == s)
        )
    }
    assert {s["seqnum"] for s in empty} == expected
    hi = json.loads(get(q + "&min=0.9&limit=200")[1])["items"]
    assert all(s["score"] >= 0.9 for s in hi)
    assert {s["seqnum"] for s in hi} == {
        int(result.seqnum[i]) for i in range(len(result)) if result.score[i] >= 0.9
    }


# ---------------------------------------------------------------------------------------------
# Notebooks.


def test_show_and_repr_html_draw_boxes_and_readable_labels(result, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAUNE_RS_CACHE", str(tmp_path / "cache"))
    rows = image_rows(result)
    i = next(r["id"] for r in rows if any(b[6] for b in r["boxes"]))
    h = result.show(i)._repr_html_()
    assert h.count("<rect") == len(rows[i]["boxes"])
    assert f"{result.predictionbase[i]} " in h and "font:600 14px" in h
    assert "data:image/jpeg;base64," in h
    assert result.show(os.path.basename(result.paths[i]))._repr_html_() == h
    with pytest.raises(KeyError):
        result.show("nope.jpg")
    summary = result._repr_html_()
    assert f"{len(result)} images" in summary and "<rect" in summary
    g = result.gallery(result.prediction[i], n=2)._repr_html_()
    assert 1 <= g.count("<figure") <= 2


def test_progress_is_a_widget_in_a_notebook_and_text_in_a_terminal():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipywidgets")
    code = "from deepfaune_rs._progress import make_callback\ncb = make_callback(True, 'run')\n"
    code += "cb(1, 2)\ncb(2, 2)\n"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code)]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    widget = "application/vnd.jupyter.widget-view+json"
    assert any(widget in o.get("data", {}) for o in outputs), outputs
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "2/2" in p.stderr and widget not in p.stdout, p.stderr


def test_cli_review_serves_a_runs_checkpoint_and_writes_only_the_journal(
    shared_models, files, tmp_path
):
    out = tmp_path / "r.csv"
    models = ["--detector", "md-lite"]
    models += ["--classifier", str(shared_models / "pixel_classifier_182_c38.onnx")]
    models += ["--classifier-manifest", str(MANIFEST)]
    cli = [sys.executable, "-m", "deepfaune_rs.cli"]
    run = cli + ["run", *files, "-o", str(out), "--resume", "--no-progress", *models]
    p = subprocess.run(run, capture_output=True, text=True)
    assert p.returncode in (0, 3), p.stderr
    checkpoint = Path(str(out) + ".checkpoint")
    before = {f: f.stat().st_mtime_ns for f in tmp_path.iterdir()}
    env = {**os.environ, "DEEPFAUNE_RS_CACHE": str(tmp_path / "cache")}
    args = cli + ["review", str(out), *models[2:]]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("review page: http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[-1]
        info = json.loads(get(url.replace("/?", "/api/info?"))[1])
        with open(out, newline="") as f:
            table = list(csv.DictReader(f))
        assert info["images"] == len(table)
        ids = json.dumps({"ids": [0], "label": "wolf"}).encode()
        assert get(url.replace("/?", "/api/change?"), data=ids)[0] == 200
        exported = get(url.replace("/?", "/api/export.csv?"))[1].decode()
        assert sum(",wolf," in r for r in exported.splitlines()) >= 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    after = {f: f.stat().st_mtime_ns for f in tmp_path.iterdir() if f.name != "cache"}
    journal = Path(str(out) + ".corrections.jsonl")
    assert set(after) == set(before) | {journal}
    assert all(after[f] == t for f, t in before.items()), "the results were not touched"
    assert checkpoint.exists()
    # No such file, or a table that is not one: one line, exit status 2.
    p = subprocess.run(cli + ["review", str(tmp_path / "none.csv")], capture_output=True, text=True)
    assert p.returncode == 2 and "no such file" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "alone.csv").write_text("filename\n")
    p = subprocess.run(
        cli + ["review", str(tmp_path / "alone.csv")], capture_output=True, text=True
    )
    assert p.returncode == 2 and "missing columns" in p.stderr and "Traceback" not in p.stderr


def test_page_redecides_and_saves_a_preset(server, grouped, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAUNE_RS_PRESETS", str(tmp_path / "presets"))
    url = server.url.replace("/?", "/api/redecide?")
    body = {"threshold": "0.3", "disabled_classes": ["fox"], "save_preset": "south"}
    status, answer = get(url, data=json.dumps(body).encode())
    assert status == 200, answer
    info = json.loads(answer)
    assert info["settings"]["threshold"] == pytest.approx(0.3) and "south" in info["presets"]
    want = grouped.redecide(threshold=0.3, disabled_classes=["fox"])
    page = json.loads(get(server.url.replace("/?", "/api/sequences?") + "&limit=200")[1])
    got = {im["id"]: s["prediction"] for s in page["items"] for im in s["images"]}
    assert got == dict(enumerate(want.prediction))
    # The preset is the list just applied; the page applies it by name.
    status, answer = get(url, data=json.dumps({"preset": "south"}).encode())
    assert status == 200 and json.loads(answer)["settings"]["disabled_classes"] == ["fox"]
