"""Every output of a DeepFaune 1.5 run speaks 1.5: the table (CSV, XLSX, pandas) and the sorting
folders in the run's language, the MegaDetector JSON's 40 English categories and its top-3 at
1.5's single-image temperature (1.12, numpy reference), Camtrap DP's scientific names of the new
classes; and a checkpoint written with 1.5 is refused by 1.4 (Python and CLI).

Expected names come from tests/reference/deepfaune_15_labels.py (written out from
../shared/deepfaune-1.5.md) and, for the scientific names, from the issue (mongoose: Herpestes
ichneumon; arctic fox: Vulpes lagopus).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from deepfaune_v15_models import build, build_v14

import deepfaune_rs
from reference.deepfaune_15_labels import TXT_ANIMALCLASSES, label_names

NEW = {"mongoose": "Herpestes ichneumon", "arctic fox": "Vulpes lagopus"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = build_v14(build(tmp_path_factory.mktemp("v15-models")))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEEPFAUNE_RS_MODELS", str(folder))
        yield folder


@pytest.fixture(scope="module")
def new_classes_only(models, testdata):
    """A Norwegian run where every class but the two new ones is switched off (threshold 0):
    every animal image is a mongoose or an arctic fox."""
    disabled = [c for c in TXT_ANIMALCLASSES["en"] if c not in NEW]
    pipe = deepfaune_rs.Pipeline(
        "md-lite", "deepfaune-v15", language="no", disabled_classes=disabled, threshold=0.0
    )
    return pipe.run(testdata / "southwest", progress=False)


def test_table_csv_xlsx_and_pandas_use_the_languages_labels(new_classes_only, tmp_path):
    res = new_classes_only
    allowed = set(label_names("no", bird_head=False))
    new_no = {TXT_ANIMALCLASSES["no"][TXT_ANIMALCLASSES["en"].index(c)] for c in NEW}
    assert new_no == {"mangust", "fjellrev"}
    frame = res.to_pandas()
    res.to_csv(tmp_path / "t.csv")
    with open(tmp_path / "t.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    tables = {"pandas": frame.to_dict("records"), "csv": rows}
    try:
        import openpyxl  # noqa: F401
        import pandas as pd

        res.to_excel(tmp_path / "t.xlsx")
        tables["xlsx"] = pd.read_excel(tmp_path / "t.xlsx").to_dict("records")
    except ImportError:
        pass
    for name, records in tables.items():
        assert len(records) == len(res) + len(res.videos), name
        for column in ("predictionbase", "prediction", "top1"):
            values = {str(r[column]) for r in records}
            assert values <= allowed, (name, column, values - allowed)
            assert values & new_no, (name, column)
        assert "tom" in {str(r["prediction"]) for r in records}, name


def test_sorting_folders_are_named_in_the_language(new_classes_only, tmp_path):
    report = new_classes_only.sort_into(tmp_path / "sorted", mode="symlink")
    assert not report["failures"]
    folders = {Path(dst).parent.name for _, dst in report["placed"]}
    assert folders & {"mangust", "fjellrev"} and "tom" in folders
    assert folders <= set(label_names("no", bird_head=False))


def _top3(logits: np.ndarray, temperature: float) -> list[tuple[str, float]]:
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    order = sorted(range(len(z)), key=lambda j: (-p[j], j))[:3]
    return [(str(j), round(float(p[j]), 3)) for j in order]


def test_megadetector_json_has_the_40_classes_and_1_12(models, testdata, tmp_path):
    pipe = deepfaune_rs.Pipeline("md-lite", "deepfaune-v15", language="pt")
    res = pipe.run(testdata / "southwest", progress=False)
    res.to_megadetector_json(tmp_path / "md.json", root=testdata)
    doc = json.loads((tmp_path / "md.json").read_text(encoding="utf-8"))
    # English names whatever the run's language, as MegaDetector readers expect.
    assert doc["classification_categories"] == dict(
        (str(i), n) for i, n in enumerate(TXT_ANIMALCLASSES["en"])
    )
    by_file = {im["file"]: im for im in doc["images"]}
    checked = differs = 0
    for i, path in enumerate(res.paths):
        if not res.classified[i]:
            continue
        im = by_file[Path(path).relative_to(testdata).as_posix()]
        (box,) = [d for d in im["detections"] if "classifications" in d]
        got = [(c, p) for c, p in box["classifications"]]
        assert got == _top3(res.logits[i], 1.12), path
        differs += got != _top3(res.logits[i], 1.10)
        checked += 1
    assert checked >= 3 and differs, "1.4.1's 1.10 would give other probabilities"


def test_camtrap_dp_scientific_names_of_the_new_classes(new_classes_only, tmp_path):
    out = tmp_path / "package"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no deployments given: warned, not invented
        new_classes_only.to_camtrap_dp(out)
    with open(out / "observations.csv", newline="", encoding="utf-8") as f:
        obs = list(csv.DictReader(f))
    animal = [o for o in obs if o["observationType"] == "animal" and o["scientificName"]]
    names = {o["scientificName"] for o in animal}
    assert names and names <= set(NEW.values()), names
    desc = json.loads((out / "datapackage.json").read_text(encoding="utf-8"))
    vernacular = {t["scientificName"]: t["vernacularNames"] for t in desc["taxonomic"]}
    for en, sci in NEW.items():
        if sci in names:
            i = TXT_ANIMALCLASSES["en"].index(en)
            want = {"eng": en, "nor": TXT_ANIMALCLASSES["no"][i], "swe": TXT_ANIMALCLASSES["se"][i]}
            want["por"] = TXT_ANIMALCLASSES["pt"][i]
            assert {k: vernacular[sci][k] for k in want} == want


def test_a_v15_checkpoint_is_refused_by_v14(models, testdata, tmp_path):
    ckpt = tmp_path / "run.checkpoint"
    v15 = deepfaune_rs.Pipeline("md-lite", "deepfaune-v15")
    first = v15.run(testdata / "buow", progress=False, checkpoint=ckpt)
    size = ckpt.stat().st_size
    v14 = deepfaune_rs.Pipeline("md-lite", "deepfaune-v14")
    with pytest.raises(deepfaune_rs.InvalidArgumentError) as e:
        v14.run(testdata / "buow", progress=False, checkpoint=ckpt)
    msg = str(e.value)
    assert "another model or other settings" in msg
    assert '"version":"1.5"' in msg and '"version":"1.4"' in msg, msg
    assert ckpt.stat().st_size == size, "the refused run wrote nothing"
    # The same version resumes from it.
    again = v15.run(testdata / "buow", progress=False, checkpoint=ckpt)
    assert again.to_pandas().equals(first.to_pandas())


def test_cli_default_is_v15_and_resume_refuses_v14(models, testdata, tmp_path):
    base = [sys.executable, "-m", "deepfaune_rs.cli", "run", str(testdata / "buow")]
    base += ["--detector", "md-lite", "--no-progress"]
    env = dict(os.environ, DEEPFAUNE_RS_MODELS=str(models))

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*base, *args], capture_output=True, text=True, env=env)

    p = cli("-o", str(tmp_path / "sv.csv"), "--language", "sv")
    assert p.returncode == 0, p.stderr
    with open(tmp_path / "sv.csv", newline="", encoding="utf-8") as f:
        predictions = {r["prediction"] for r in csv.DictReader(f)}
    assert predictions <= set(label_names("se", bird_head=False))
    assert predictions - set(label_names("en", bird_head=False)), "Swedish labels"

    out = str(tmp_path / "resumed.csv")
    p = cli("-o", out, "--resume")
    assert p.returncode == 0, p.stderr
    p = cli("-o", out, "--resume", "--classifier", "deepfaune-v14")
    assert p.returncode == 2, p.stderr  # the user's to correct: a usage error
    assert "another model or other settings" in p.stderr and '"version":"1.5"' in p.stderr
    p = cli("-o", out, "--language", "xx")
    assert p.returncode == 2 and "invalid choice" in p.stderr and "'pt'" in p.stderr
