"""Knowledge base: lynx-id's files, both directions, with the safetensors package and pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file, save_file

from deepfaune_rs import errors
from deepfaune_rs.reid import KnowledgeBase


def lynx_id_style_base(folder, n=50, dim=16, seed=0):
    """Writes a base exactly as lynx-id's scripts do (pandas to_csv, safetensors save_file)."""
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, dim)).astype(np.float32)
    df = pd.DataFrame(
        {
            "filepath": [f"/data/site {i % 3}/IMG_{i:04d}, copy.JPG" for i in range(n)],
            "lynx_id": [f"B{i % 7}_Name" for i in range(n)],
            "date": [
                None if i % 5 == 0 else f"2021-0{1 + i % 9}-1{i % 10} 0{i % 10}:11:00"
                for i in range(n)
            ],
            "location": [None if i % 4 == 0 else f'Forêt "{i % 3}"' for i in range(n)],
        }
    )
    df.to_csv(folder / "informations.csv", index=False)
    save_file({"embeddings": emb}, str(folder / "embeddings.safetensors"))
    return df, emb


def test_reads_a_base_written_by_lynx_id_tools(tmp_path):
    df, emb = lynx_id_style_base(tmp_path)
    kb = KnowledgeBase.load(tmp_path)
    assert len(kb) == len(df) and kb.dim == emb.shape[1]
    np.testing.assert_array_equal(kb.embeddings(), emb)
    got = kb.to_pandas()
    assert list(got.columns) == ["filepath", "lynx_id", "date", "location"]
    pd.testing.assert_frame_equal(got.fillna("<na>"), df.fillna("<na>"))


def test_base_written_by_us_reads_back_with_safetensors_and_pandas(tmp_path):
    df, emb = lynx_id_style_base(tmp_path)
    kb = KnowledgeBase.load(tmp_path)
    out = tmp_path / "saved"
    kb.add(["new.jpg"], ["Z"], np.ones((1, emb.shape[1]), np.float32), dates=["2024-01-01"])
    kb.save(out)
    tensors = load_file(str(out / "embeddings.safetensors"))
    assert list(tensors) == ["embeddings"]
    assert tensors["embeddings"].dtype == np.float32
    np.testing.assert_array_equal(tensors["embeddings"][:-1], emb)
    np.testing.assert_array_equal(tensors["embeddings"][-1], np.ones(emb.shape[1]))
    back = pd.read_csv(out / "informations.csv")
    assert list(back.columns) == ["filepath", "lynx_id", "date", "location"]
    pd.testing.assert_frame_equal(back.iloc[:-1].fillna("<na>"), df.fillna("<na>"))
    assert back.iloc[-1].tolist()[:3] == ["new.jpg", "Z", "2024-01-01"]
    assert sorted(p.name for p in out.iterdir()) == ["embeddings.safetensors", "informations.csv"]


def test_torch_style_float64_and_extra_columns_are_kept(tmp_path):
    emb = np.arange(12, dtype=np.float64).reshape(3, 4) + 1
    pd.DataFrame(
        {"filepath": ["a", "b", "c"], "lynx_id": ["x", "y", "x"], "sex": ["F", "M", "F"]}
    ).to_csv(tmp_path / "informations.csv", index=False)
    save_file({"embeddings": emb}, str(tmp_path / "embeddings.safetensors"))
    kb = KnowledgeBase.load(tmp_path)
    np.testing.assert_array_equal(kb.embeddings(), emb.astype(np.float32))
    kb.save(tmp_path / "out")
    back = pd.read_csv(tmp_path / "out" / "informations.csv")
    assert back["sex"].tolist() == ["F", "M", "F"]


def test_update_remove_rename_merge_match_pandas_semantics(tmp_path):
    kb = KnowledgeBase(2)
    kb.add(
        ["a", "b", "c"],
        ["A", "B", "A"],
        np.eye(2, dtype=np.float32)[[0, 1, 0]],
        dates=["2020-01-01", None, "2021-06-01"],
        locations=["north", None, None],
    )
    # lynx-id's knowledge_base update: "a" known (relabelled, location kept), "d" appended.
    assert kb.update(
        ["a", "d"], ["B", "D"], [[0.5, 0.5], [1.0, 1.0]], locations=[None, "east"]
    ) == (1, 1)
    cols = kb.columns()
    assert cols["individual_id"] == ["B", "B", "A", "D"]
    assert cols["location"] == ["north", None, None, "east"]
    np.testing.assert_array_equal(kb.embeddings()[0], [0.5, 0.5])
    assert kb.remove(["b", "zzz"]) == 1
    assert kb.columns()["filepath"] == ["a", "c", "d"]
    with pytest.raises(errors.InvalidArgumentError):
        kb.rename_individual("B", "A")
    assert kb.rename_individual("B", "Bob") == 1
    assert kb.merge_individuals(["Bob", "D"], "A") == 2
    assert kb.individuals() == ["A"]
    with pytest.raises(errors.InvalidArgumentError):
        kb.add(["a"], ["A"], [[1.0, 0.0]])  # duplicate filepath


def test_bad_inputs(tmp_path):
    kb = KnowledgeBase(3)
    with pytest.raises(errors.InvalidArgumentError):
        kb.add(["a", "b"], ["A", "B"], np.ones((1, 3)))  # row count
    with pytest.raises(errors.InvalidArgumentError):
        kb.add(["a"], ["A"], np.ones((1, 4)))  # dimension
    with pytest.raises(errors.InvalidArgumentError):
        kb.add(["a"], ["A"], [[np.nan, 0, 0]])
    assert len(kb) == 0
    with pytest.raises(errors.KnowledgeBaseNotFoundError):
        KnowledgeBase.load(tmp_path / "missing")
    lynx_id_style_base(tmp_path, n=5)
    save_file(
        {"embeddings": np.ones((4, 16), np.float32)}, str(tmp_path / "embeddings.safetensors")
    )
    with pytest.raises(errors.KnowledgeBaseError, match="4 embeddings but 5 rows"):
        KnowledgeBase.load(tmp_path)
    save_file({"other": np.ones((5, 16), np.float32)}, str(tmp_path / "embeddings.safetensors"))
    with pytest.raises(errors.KnowledgeBaseError, match="no tensor named"):
        KnowledgeBase.load(tmp_path)


CRASHER = """
import sys, numpy as np
from deepfaune_rs.reid import KnowledgeBase
kb = KnowledgeBase.load(sys.argv[1])
rng = np.random.default_rng(0)
i = 0
while True:
    kb.add([f"extra{i}.jpg"], ["X"], rng.standard_normal((1, kb.dim)).astype(np.float32))
    kb.save(sys.argv[1])
    i += 1
"""


def test_killed_mid_save_never_leaves_a_torn_file(tmp_path):
    """Kill a process that keeps saving a 40 MB base: each file is always a complete old or new
    version; a load gives the old base, or the new one once the save's commit marker is written
    (its pending files then stand in for those not yet renamed), never a mix."""
    import signal
    import subprocess
    import sys
    import time

    kb = KnowledgeBase(256)
    rng = np.random.default_rng(0)
    n = 40_000
    kb.add([f"{i}.jpg" for i in range(n)], ["A"] * n, rng.standard_normal((n, 256)))
    kb.save(tmp_path)
    marker = tmp_path / ".informations.csv.commit"
    outcomes = set()
    for delay in (0.3, 0.7, 1.1, 1.6, 2.2):
        p = subprocess.Popen([sys.executable, "-c", CRASHER, str(tmp_path)])
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        emb = load_file(str(tmp_path / "embeddings.safetensors"))["embeddings"]
        rows = pd.read_csv(tmp_path / "informations.csv")
        assert emb.shape[0] >= n and len(rows) >= n
        committed = marker.exists()
        back = KnowledgeBase.load(tmp_path)
        if emb.shape[0] == len(rows):
            assert len(back) in (len(rows), len(rows) + 1)  # the pair, or a committed newer one
            outcomes.add("consistent")
        else:
            # Killed between the two renames: the commit marker was written first, so the load
            # takes the pending file of the newer version (one row more), never the mix.
            assert committed and abs(emb.shape[0] - len(rows)) == 1
            assert len(back) == max(emb.shape[0], len(rows))
            outcomes.add("rolled forward")
        assert back.columns()["filepath"][:n] == [f"{i}.jpg" for i in range(n)]
    assert outcomes
