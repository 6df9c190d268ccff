"""``deepfaune-rs reid build|query|update|eval`` on the jaguar pictures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from deepfaune_rs.cli import main
from deepfaune_rs.reid import KnowledgeBase


@pytest.fixture(scope="module")
def jaguar_tables(testdata, shared_models, tmp_path_factory):
    d = testdata / "jaguar"
    model = shared_models / "yolox_tiny_backbone_embed.onnx"
    if not (d / "reid_manifest.csv").is_file() or not model.is_file():
        pytest.skip("jaguar images or the embedding model are missing from ../shared")
    df = pd.read_csv(d / "reid_manifest.csv")
    df = df[[(d / f).is_file() for f in df["filename"]]].sort_values("filename")
    df["filepath"] = [str(d / f) for f in df["filename"]]
    df["lynx_id"] = df["filename"].str.extract(r"_(\d{8}_\d{4})\.")[0]
    df["date"] = df["lynx_id"]
    first = ~df["lynx_id"].duplicated()
    cols = ["filepath", "lynx_id", "date", "bbox_x", "bbox_y", "bbox_w", "bbox_h"]
    out = tmp_path_factory.mktemp("cli")
    df[first][cols].to_csv(out / "gallery.csv", index=False)
    df[~first][cols].to_csv(out / "probes.csv", index=False)
    return out, model, len(df[first]), len(df[~first])


def test_build_query_update_eval(jaguar_tables):
    out, model, n_gallery, n_probes = jaguar_tables
    w = ["--weights", str(model)]
    kb_dir = out / "kb"
    assert main(["reid", "build", str(out / "gallery.csv"), "-o", str(kb_dir), *w]) == 0
    kb = KnowledgeBase.load(kb_dir)
    assert len(kb) == n_gallery and kb.dim == 672

    res_csv, res_emb = out / "results.csv", out / "results.safetensors"
    argv = ["reid", "query", str(kb_dir), str(out / "probes.csv"), "-o", str(res_csv)]
    assert (
        main([*argv, "--embeddings-output", str(res_emb), "--distance-threshold", "0.05", *w]) == 0
    )
    res = pd.read_csv(res_csv)
    assert list(res.columns)[:10] == [
        "filepath",
        "individual_predicted",
        "is_new",
        "latest_picture_individual_predicted",
        "location_closest_individual",
        "neighbor_1",
        "neighbor_2",
        "neighbor_3",
        "neighbor_4",
        "neighbor_5",
    ]
    assert len(res) == n_probes and load_file(str(res_emb))["embeddings"].shape == (n_probes, 672)

    assert main(["reid", "update", str(kb_dir), str(res_csv), str(res_emb)]) == 0
    after = KnowledgeBase.load(kb_dir)
    assert len(after) == n_gallery + n_probes
    np.testing.assert_array_equal(
        after.embeddings()[n_gallery:], load_file(str(res_emb))["embeddings"]
    )

    figures = out / "eval.json"
    argv = ["reid", "eval", str(out / "gallery.csv"), str(out / "probes.csv")]
    argv[2] = str(kb_dir)
    assert main([*argv, "--distance-threshold", "0.3", "-o", str(figures), *w]) == 0
    summary = json.loads(figures.read_text())
    assert summary["n_test"] == n_probes and 0.0 <= summary["cmc@5"] <= 1.0


def test_missing_base_is_an_error_not_a_traceback(tmp_path, capsys):
    assert (
        main(["reid", "update", str(tmp_path), str(tmp_path / "r.csv"), str(tmp_path / "e")]) == 2
    )
    assert "error" in capsys.readouterr().err


def test_eval_sweep_prints_what_json_dumps_gives_for_the_bindings_figures(jaguar_tables, capsys):
    """The core's eval (threshold swept on numpy's seeded split, drawn through the CLI's hook)
    writes, byte for byte, Python's ``json.dumps(summary, indent=1)`` of the same figures
    computed through the bindings."""
    from deepfaune_rs import _core
    from deepfaune_rs.reid import Embedder

    out, model, _, _ = jaguar_tables
    kb_dir, labels = out / "kb_sweep", out / "probes.csv"
    w = ["--weights", str(model)]
    assert main(["reid", "build", str(out / "gallery.csv"), "-o", str(kb_dir), *w]) == 0
    capsys.readouterr()
    assert main(["reid", "eval", str(kb_dir), str(labels), "--seed", "3", *w]) == 0
    printed = capsys.readouterr().out

    kb, table = _core.KnowledgeBase.load(kb_dir), _core.ReidTable.read(labels)
    emb = Embedder("yolox-embed", weights=model).embed_table(table).embeddings
    ev = _core.reid_evaluate_table(kb, table, emb, seed=3)
    assert printed == json.dumps(ev.summary(), indent=1) + "\n"
    assert json.loads(printed)["n_validation"] > 0


def test_build_without_boxes_crops_as_the_embedder_with_its_detector(
    testdata, shared_models, tmp_path
):
    """No bbox columns and no --boxes: the core's detector crops, as the Python ``Embedder``
    crops with ``Detector`` (pictures without an animal fail alike, exit status 3)."""
    from deepfaune_rs import _core
    from deepfaune_rs.reid import Embedder

    model = shared_models / "yolox_tiny_backbone_embed.onnx"
    if not model.is_file():
        pytest.skip("the embedding model is missing from ../shared")
    files = sorted((testdata / "buow").glob("*.JPG"))[:5]
    labels = tmp_path / "owls.csv"
    pd.DataFrame({"filepath": [str(f) for f in files], "lynx_id": list("abcde")}).to_csv(
        labels, index=False
    )
    res = Embedder("yolox-embed", weights=model).embed_table(_core.ReidTable.read(labels))
    expected = 3 if res.failures else 0
    kb_dir = tmp_path / "kb"
    assert (
        main(["reid", "build", str(labels), "-o", str(kb_dir), "--weights", str(model)]) == expected
    )
    kb = KnowledgeBase.load(kb_dir)
    assert 0 < len(kb) == int(res.ok.sum())
    np.testing.assert_allclose(kb.embeddings(), np.asarray(res.embeddings)[res.ok], atol=1e-6)
