"""Outputs that must not mislead (issue 15): each case was first seen failing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO


def _cli(*args):
    cmd = [sys.executable, "-m", "deepfaune_rs.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_detect_on_one_file_names_the_file(testdata, tmp_path):
    """`detect FILE` wrote `"file": ""` (paths were made relative to the file itself)."""
    image = sorted((testdata / "buow").iterdir())[0]
    out = tmp_path / "one.json"
    p = _cli("detect", image, "-o", out, "--no-progress")
    assert p.returncode == 0, p.stderr
    files = [i["file"] for i in json.loads(out.read_text())["images"]]
    assert files == [str(image)]


def test_run_on_one_file_names_the_file_in_the_json(shared_models, testdata, tmp_path):
    image = sorted((testdata / "buow").iterdir())[0]
    out = tmp_path / "one.csv"
    p = _cli(
        "run", image, "-o", out, "--json", tmp_path / "one.json", "--no-progress",
        "--detector", "md-lite",
        "--classifier", shared_models / "pixel_classifier_182_c38.onnx",
        "--classifier-manifest", REPO / "models" / "tiny-pixel-c38.toml",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    files = [i["file"] for i in json.loads((tmp_path / "one.json").read_text())["images"]]
    assert files == [str(image)]


def _run_args(shared_models, *args):
    return (
        "run", *args, "--no-progress", "--detector", "md-lite",
        "--classifier", shared_models / "pixel_classifier_182_c38.onnx",
        "--classifier-manifest", REPO / "models" / "tiny-pixel-c38.toml",
    )  # fmt: skip


def _usage_error(p) -> str:
    """Exit status 2 and one line on stderr, never a traceback."""
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deepfaune-rs: error: "), p.stderr
    return lines[0]


def test_a_missing_input_folder_is_a_usage_error(shared_models, tmp_path):
    """A folder that does not exist was processed as a file: exit 3 and a row "empty 1.0"."""
    out = tmp_path / "r.csv"
    line = _usage_error(_cli(*_run_args(shared_models, tmp_path / "nope", "-o", out)))
    assert "nope: no such file or folder" in line and not out.exists()
    line = _usage_error(_cli("detect", tmp_path / "nope", "-o", tmp_path / "r.json"))
    assert "no such file or folder" in line


@pytest.mark.parametrize(
    "output, says",
    [
        ("missing_dir/r.csv", "does not exist"),
        ("a_folder", "is a folder"),
        ("r.txt", "ending in .csv or .xlsx"),
    ],
)
def test_outputs_are_checked_before_the_run(shared_models, testdata, tmp_path, output, says):
    """The output path was checked only after the whole run (a missing folder, an existing
    folder), and `-o a.txt` silently wrote JSON."""
    (tmp_path / "a_folder").mkdir()
    p = _cli(*_run_args(shared_models, testdata / "buow", "-o", tmp_path / output, "--resume"))
    assert says in _usage_error(p)
    assert not list(tmp_path.glob("*.checkpoint")), "the run started"


def test_detect_output_must_be_json(testdata, tmp_path):
    line = _usage_error(_cli("detect", testdata / "buow", "-o", tmp_path / "a.txt"))
    assert "ending in .json" in line and not (tmp_path / "a.txt").exists()


def test_an_output_naming_an_input_never_overwrites_it(shared_models, testdata, tmp_path):
    """`-o` naming an input image overwrote the photo; also two options naming one file."""
    photo = tmp_path / "photo.csv"  # an input file that a careless -o names
    photo.write_bytes(b"not results")
    line = _usage_error(_cli(*_run_args(shared_models, photo, "-o", photo)))
    assert "is one of the inputs" in line and photo.read_bytes() == b"not results"
    run = _cli(*_run_args(shared_models, testdata / "buow", "-o", tmp_path / "r.csv",
                          "--json", tmp_path / "r.csv"))  # fmt: skip
    assert "ending in .json" in _usage_error(run)


@pytest.mark.parametrize(
    "option, says",
    [
        (("--threshold", "1.5"), "outside 0..1"),
        (("--threshold", "nan"), "outside 0..1"),
        (("--detection-threshold", "-0.1"), "outside 0..1"),
        (("--maxlag", "-5"), "seconds >= 0"),
    ],
)
def test_out_of_range_numbers_are_usage_errors(shared_models, testdata, tmp_path, option, says):
    """`--threshold 1.5` said "invalid manifest md-lite"; `--maxlag -5` exited 1, not 2."""
    p = _cli(*_run_args(shared_models, testdata / "buow", "-o", tmp_path / "r.csv", *option))
    assert says in _usage_error(p)
    p = _cli("detect", testdata / "buow", "-o", tmp_path / "r.json", "--threshold", "1.5")
    assert "outside 0..1" in _usage_error(p)


def test_typos_list_the_valid_names(shared_models, testdata, tmp_path):
    """A typo in a model or class name got no list of valid names."""
    line = _usage_error(_cli("detect", testdata / "buow", "--model", "md-lit",
                             "-o", tmp_path / "r.json"))  # fmt: skip
    assert "unknown model 'md-lit'" in line and "md-lite" in line and "DFbsMDS" in line
    p = _cli("run", testdata / "buow", "-o", tmp_path / "r.csv", "--detector", "md-lite",
             "--classifier", "deepfaune-v16", "--no-progress")  # fmt: skip
    line = _usage_error(p)
    assert "deepfaune-v15" in line and "deepfaune-v14" in line
    p = _cli(*_run_args(shared_models, testdata / "buow", "-o", tmp_path / "r.csv",
                        "--disable", "chamoix"))  # fmt: skip
    line = _usage_error(p)
    assert "chamoix" in line and "chamois" in line and "badger" in line


def test_a_typo_is_named_before_missing_weights(testdata, tmp_path, monkeypatch):
    """With the official weights not fetched yet, `--detector md-lit` or `--classifier
    deepfaune-v16` said "weights not found" for the other models and nothing of the typo."""
    monkeypatch.setenv("DEEPFAUNE_RS_MODELS", str(tmp_path / "no-weights"))
    out = tmp_path / "r.csv"
    line = _usage_error(_cli("run", testdata / "buow", "-o", out, "--detector", "md-lit"))
    assert "unknown model 'md-lit'" in line and "md-lite" in line and "DFbsMDS" in line
    line = _usage_error(_cli("run", testdata / "buow", "-o", out, "--classifier", "deepfaune-v16"))
    assert "unknown model 'deepfaune-v16'" in line and "deepfaune-v15" in line
    line = _usage_error(_cli("detect", testdata / "buow", "-o", tmp_path / "r.json",
                             "--model", "dfbsmd"))  # fmt: skip
    assert "unknown model 'dfbsmd'" in line and "DFbsMDS" in line


def test_disable_does_not_swallow_the_folder(shared_models, testdata, tmp_path):
    """`--disable chamois FOLDER` took FOLDER as a class name (and ran on nothing)."""
    out = tmp_path / "r.csv"
    p = _cli(*_run_args(shared_models, "--disable", "chamois,badger", testdata / "buow",
                        "-o", out))  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert len(out.read_text().splitlines()) == 1 + len(list((testdata / "buow").iterdir()))
    p = _cli(*_run_args(shared_models, "--disable", "chamois", "badger", testdata / "buow",
                        "-o", out))  # fmt: skip
    assert "badger: no such file or folder (several classes to --disable" in _usage_error(p)


def test_blurring_people_is_refused_without_a_person_class(shared_models, testdata, tmp_path):
    """`--blur-humans` with md-lite (no person class) copied people unblurred, silently."""
    dest = tmp_path / "sorted"
    p = _cli(*_run_args(shared_models, testdata / "buow", "-o", tmp_path / "r.csv",
                        "--sort-into", dest, "--blur-humans"))  # fmt: skip
    line = _usage_error(p)
    assert "no person class" in line and "md-lite" in line and not dest.exists()

    import deepfaune_rs

    assert not deepfaune_rs.Detector("md-lite").finds_people
    pipe = deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
    )
    res = pipe.run(sorted((testdata / "buow").iterdir())[:1], progress=False)
    with pytest.raises(deepfaune_rs.InvalidArgumentError, match="no person class"):
        res.sort_into(dest, blur_humans=True)
    assert not dest.exists()
    assert res.sort_into(dest)["placed"]  # without blurring: sorted as usual


def test_reid_commands_check_their_extras_and_inputs(tmp_path):
    """`reid query` / `reid update` crashed with a traceback when safetensors was missing;
    `reid query kb missing_folder` ended in a pandas traceback."""
    kb = tmp_path / "kb"
    kb.mkdir()
    line = _usage_error(_cli("reid", "query", kb, tmp_path / "missing", "-o", tmp_path / "r.csv"))
    assert "missing: no such file or folder" in line
    line = _usage_error(
        _cli("reid", "query", tmp_path / "nokb", tmp_path, "-o", tmp_path / "r.csv")
    )
    assert "nokb: no such file or folder" in line
    # Without safetensors (blocked in the child), the one line names the extra.
    block = (
        "import sys, importlib.abc\n"
        "class B(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'safetensors': raise ImportError(name)\n"
        "sys.meta_path.insert(0, B())\n"
        "import importlib.util\n"
        "_find = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n == 'safetensors' else _find(n, *a)\n"
        "from deepfaune_rs.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    cmd = [sys.executable, "-c", block, "reid", "update", str(kb), str(tmp_path), str(tmp_path)]
    line = _usage_error(subprocess.run(cmd, capture_output=True, text=True))
    assert "safetensors" in line and "deepfaune-rs[reid]" in line


def test_scores_hold_deepfaunes_two_decimal_values(shared_models, testdata):
    """Scores were float32: `to_pandas().score` held 0.3899999857 where DeepFaune gives 0.39,
    so `score >= 0.39` was False."""
    import numpy as np

    import deepfaune_rs

    pipe = deepfaune_rs.Pipeline(
        "md-lite",
        shared_models / "pixel_classifier_182_c38.onnx",
        classifier_manifest=REPO / "models" / "tiny-pixel-c38.toml",
        score_threshold=0.0,
    )
    res = pipe.run(testdata / "buow", progress=False)
    t = res.to_pandas()
    for column in ("score", "scorebase"):
        values = t[column].to_numpy()
        assert values.dtype == np.float64
        assert [round(v, 2) for v in values] == list(values), column
        assert getattr(res, column).dtype == np.float64
    assert any(v not in (0.0, 0.5, 1.0) for v in t["scorebase"])  # not only exact binaries


def test_the_runs_own_files_in_the_input_folder_are_not_failures(shared_models, testdata, tmp_path):
    """With ``-o`` inside the folder it reads, a run listed its own checkpoint (and, run again,
    its own table, checkpoint and corrections journal) as files that "could not be processed",
    and exited 3 on a clean run. A file the user put there is still listed."""
    import shutil

    folder = tmp_path / "cam"
    folder.mkdir()
    for image in sorted((testdata / "southwest").glob("*.jpg"))[:2]:
        shutil.copy(image, folder)
    out = folder / "results.csv"
    for _ in range(2):
        args = (folder, "-o", out, "--resume", "--json", folder / "r.json")
        p = _cli(*_run_args(shared_models, *args))
        assert p.returncode == 0, p.stderr
        assert "could not be processed" not in p.stderr, p.stderr
    (folder / "results.csv.corrections.jsonl").write_text("")
    (folder / "notes.txt").write_text("not an image")
    p = _cli(*_run_args(shared_models, folder, "-o", out, "--json", folder / "r.json"))
    assert p.returncode == 3, p.stderr
    listed = [line.strip() for line in p.stderr.splitlines() if line.startswith("  ")]
    assert len(listed) == 1, p.stderr
    assert listed[0].startswith(f"{folder / 'notes.txt'}: unsupported"), p.stderr


def test_detect_passes_over_its_own_json_in_the_folder(testdata, tmp_path):
    """``detect FOLDER -o FOLDER/d.json`` run again listed its own JSON as a file it could not
    process (exit 3)."""
    import shutil

    folder = tmp_path / "cam"
    folder.mkdir()
    for image in sorted((testdata / "southwest").glob("*.jpg"))[:2]:
        shutil.copy(image, folder)
    for _ in range(2):
        p = _cli("detect", folder, "-o", folder / "d.json", "--no-progress")
        assert p.returncode == 0, p.stderr
        assert "could not be processed" not in p.stderr, p.stderr
