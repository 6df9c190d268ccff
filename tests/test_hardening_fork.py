"""Fork safety (issue 17, part 4): after the parent has used the thread pools (loading a
knowledge base, reading a MegaDetector file), `kb.query` works in `multiprocessing` workers,
forked or spawned. Each case runs in a subprocess with a timeout: a hang fails, never blocks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import REPO

TIMEOUT = 60

SCRIPT = """
import json, multiprocessing as mp, sys
import numpy as np
import deepfaune_rs
from deepfaune_rs.reid import KnowledgeBase

method, folder, md_json, expected = sys.argv[1:5]
kb = KnowledgeBase.load(folder)                      # parallel inverse norms in the parent
deepfaune_rs.read_megadetector_json(md_json)         # parallel header reads in the parent
queries = np.load(folder + "/queries.npy")

def work(i):
    return kb.query(queries[i : i + 1], k=3).indices.tolist()

if __name__ == "__main__":
    # The parent queries too (several base blocks: the work really goes to the pool).
    assert kb.query(queries, k=3).indices.tolist() == json.loads(expected)
    ctx = mp.get_context(method)
    with ctx.Pool(2) as pool:
        got = pool.map(work, range(len(queries)))
    assert [g[0] for g in got] == json.loads(expected), got
    print("ok")
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory, testdata):
    from deepfaune_rs.reid import KnowledgeBase

    d = tmp_path_factory.mktemp("forkkb")
    rng = np.random.default_rng(7)
    base = rng.normal(size=(3000, 16)).astype(np.float32)
    kb = KnowledgeBase(16)
    kb.add([f"{i}.jpg" for i in range(3000)], [f"id{i % 9}" for i in range(3000)], base)
    kb.save(d)
    queries = base[[3, 1410, 2999]] + 0.01
    np.save(d / "queries.npy", queries)
    # Expected neighbours by numpy (cosine distance = 1 - cos).
    bn = base / np.linalg.norm(base, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    expected = np.argsort(1 - qn @ bn.T, axis=1, kind="stable")[:, :3].tolist()
    images = sorted((testdata / "southwest").glob("*.JPG"))[:2]
    md = d / "md.json"
    md.write_text(
        json.dumps(
            {
                "images": [{"file": str(p), "detections": []} for p in images],
                "detection_categories": {"1": "animal"},
            }
        )
    )
    (d / "script.py").write_text(textwrap.dedent(SCRIPT))
    return d, md, expected


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_query_in_multiprocessing_workers(setup, method):
    d, md, expected = setup
    try:
        p = subprocess.run(
            [sys.executable, str(d / "script.py"), method, str(d), str(md), json.dumps(expected)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            cwd=REPO,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{method} workers hung for {TIMEOUT} s")
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr
