"""Output files (issue 17, parts 6 and 7): temporary files removed on every error, never written
through a planted link, outputs with the usual file mode; XLSX text never becomes a formula;
``csv_safe`` / ``--csv-safe`` quote cells a spreadsheet would run."""

from __future__ import annotations

import csv
import glob
import os
import signal
import stat
import time

import pytest

import deepfaune_rs
from conftest import REPO
from deepfaune_rs import _files

HOSTILE = ["=1+1.JPG", "+2.JPG", "-3.JPG", "@SUM(A1).JPG", "\tx.JPG", "plain.JPG"]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, testdata):
    d = tmp_path_factory.mktemp("hostile")
    src = sorted((testdata / "southwest").glob("*.JPG"))
    for name, s in zip(HOSTILE, src):
        os.symlink(s, d / name)
    return d


@pytest.fixture(scope="module")
def result(hostile, shared_models):
    pipe = deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
    )
    old = os.getcwd()
    os.chdir(hostile)  # relative names: the filename column starts with the hostile character
    try:
        return pipe.run(HOSTILE, progress=False)
    finally:
        os.chdir(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def _usual_mode(folder) -> int:
    p = os.path.join(folder, "usual-new-file")
    with open(p, "w"):
        pass
    m = _mode(p)
    os.unlink(p)
    return m


def test_xlsx_text_is_never_a_formula(result, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    for safe in (False, True):
        out = tmp_path / f"t{safe}.xlsx"
        result.to_excel(out, csv_safe=safe)
        ws = openpyxl.load_workbook(out).active
        header = [c.value for c in ws[1]]
        col = header.index("filename")
        names = []
        for row in ws.iter_rows(min_row=2):
            for c in row:
                assert c.data_type != "f", (c.coordinate, c.value)
            assert row[col].data_type == "s"
            names.append(row[col].value)
        want = ["'" + n if safe and n[0] in "=+-@\t" else n for n in HOSTILE]
        assert sorted(names) == sorted(want)
        assert all(isinstance(row[header.index("count")].value, int) for row in ws.iter_rows(2))


def test_csv_safe_quotes_formula_cells(result, tmp_path):
    plain, safe = tmp_path / "plain.csv", tmp_path / "safe.csv"
    result.to_csv(plain)
    result.to_csv(safe, csv_safe=True)
    with open(plain, newline="") as f:
        names = [r["filename"] for r in csv.DictReader(f)]
    assert sorted(names) == sorted(HOSTILE)  # DeepFaune's default: unchanged
    with open(safe, newline="") as f:
        names = [r["filename"] for r in csv.DictReader(f)]
    assert sorted(names) == sorted("'" + n if n[0] in "=+-@\t" else n for n in HOSTILE)


def test_cli_csv_safe(hostile, shared_models, tmp_path, monkeypatch):
    from deepfaune_rs.cli import main

    out = tmp_path / "cli.csv"
    monkeypatch.chdir(hostile)
    argv = [
        "run", "-o", str(out), "--detector", "md-lite",
        "--classifier", str(shared_models / "pixel_classifier_182_c38.onnx"),
        "--classifier-manifest", str(REPO / "models" / "tiny-pixel-c38.toml"),
        "--no-progress", "--csv-safe", "--", *HOSTILE,
    ]  # fmt: skip
    assert main(argv) == 0
    with open(out, newline="") as f:
        names = sorted(r["filename"] for r in csv.DictReader(f))
    assert names == sorted("'" + n if n[0] in "=+-@\t" else n for n in HOSTILE)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_keep_the_usual_file_mode(result, tmp_path, umask):
    pytest.importorskip("openpyxl")
    old = os.umask(umask)
    try:
        usual = _usual_mode(tmp_path)
        assert usual == 0o666 & ~umask
        outs = {
            "xlsx": lambda p: result.to_excel(p),
            "npz": lambda p: result.save_embeddings(p),
            "csv": lambda p: result.to_csv(p),
            "json": lambda p: result.to_megadetector_json(p),
        }
        for ext, write in outs.items():
            p = tmp_path / f"out.{ext}"
            write(p)
            assert _mode(p) == usual, (ext, oct(_mode(p)), oct(usual))
    finally:
        os.umask(old)


def _entries(folder) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("fail_in", ["body", "fsync", "replace", "open"])
def test_atomic_open_removes_the_temporary_file_on_every_error(tmp_path, monkeypatch, fail_in):
    target = tmp_path / "out.csv"
    target.write_text("old")

    def boom(*a, **k):
        raise OSError(28, "injected: no space left on device")

    if fail_in == "fsync":
        monkeypatch.setattr(_files.os, "fsync", boom)
    elif fail_in == "replace":
        monkeypatch.setattr(_files.os, "replace", boom)
    elif fail_in == "open":
        monkeypatch.setattr(_files.os, "fdopen", boom)
    with pytest.raises(OSError, match="injected"):
        with _files.atomic_open(target, "w") as f:
            f.write("new")
            if fail_in == "body":
                boom()
    assert target.read_text() == "old"
    assert _entries(tmp_path) == ["out.csv"]


def test_a_planted_link_is_never_written_through(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out.csv"
    os.symlink(victim, out)
    with _files.atomic_open(out, "w") as f:
        f.write("output")
    assert victim.read_text() == "precious"
    assert not out.is_symlink() and out.read_text() == "output"
    assert _entries(tmp_path) == ["out.csv", "victim.txt"]


def test_sort_into_stops_on_ctrl_c(result, hostile, tmp_path, monkeypatch):
    # A SIGALRM handler raising KeyboardInterrupt stands for Ctrl-C: the signal arrives while the
    # sort copies its first files. Before the fix the sort went on to the end (every file
    # placed) and the KeyboardInterrupt only came afterwards.
    monkeypatch.chdir(hostile)  # the result's paths are relative to it
    total = len(result)
    for attempt in range(10):
        dest = tmp_path / f"sorted{attempt}"
        fired: list[int] = []

        def handler(signum, frame, fired=fired):  # noqa: ARG001
            if not fired:
                fired.append(1)
                signal.setitimer(signal.ITIMER_REAL, 0)
                raise KeyboardInterrupt

        old = signal.signal(signal.SIGALRM, handler)
        signal.siginterrupt(signal.SIGALRM, False)  # restart system calls: no EINTR failures
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.0003, 0.0003)
            with pytest.raises(KeyboardInterrupt):
                result.sort_into(dest)
                time.sleep(1)  # the sort ended first: the pending signal comes here
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        roots = glob.glob(str(dest / "deepfaune_*"))
        if not roots:
            continue  # interrupted before the sort started: try again
        placed = glob.glob(roots[0] + "/*/*")
        if len(placed) < total:
            return  # stopped part-way
    pytest.fail("the sort never stopped before placing every file")
