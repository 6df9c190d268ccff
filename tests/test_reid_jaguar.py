"""Real images: jaguars photographed by two stations at the same minute are the same animal.

The YOLOX backbone embedding is not trained for re-identification, so the figures are weak; this
checks that the real code path (detector boxes -> crops -> ONNX -> knowledge base -> search ->
open set -> metrics) runs end to end and that its retrieval figures equal a numpy computation.
Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import collections
import json

import numpy as np
import pandas as pd
import pytest

from deepfaune_rs.reid import Embedder, KnowledgeBase


def jaguar_split(d):
    df = pd.read_csv(d / "reid_manifest.csv")
    df = df[[(d / f).is_file() for f in df["filename"]]].sort_values("filename")
    # "STATION_YYYYMMDD_HHMM.jpg": the date and minute name the animal.
    df["individual"] = df["filename"].str.extract(r"_(\d{8}_\d{4})\.")[0]
    groups = collections.defaultdict(list)
    for row in df.itertuples():
        groups[row.individual].append(row)
    pairs = [g for g in groups.values() if len(g) >= 2]
    singles = [g[0] for g in groups.values() if len(g) == 1]
    gallery = [g[0] for g in pairs] + singles[::2]
    probes = [r for g in pairs for r in g[1:]] + singles[1::2]
    return gallery, probes


def test_jaguar_retrieval_figures(testdata, shared_models, tmp_path):
    d = testdata / "jaguar"
    model = shared_models / "yolox_tiny_backbone_embed.onnx"
    if not (d / "reid_manifest.csv").is_file() or not model.is_file():
        pytest.skip("jaguar images or the embedding model are missing from ../shared")
    gallery, probes = jaguar_split(d)
    assert len(gallery) >= 5 and len(probes) >= 5
    emb = Embedder("yolox-embed", weights=model)
    cols = ["bbox_x", "bbox_y", "bbox_w", "bbox_h"]

    def embed(rows):
        boxes = np.array([[getattr(r, c) for c in cols] for r in rows], np.float64)
        res = emb.embed([d / r.filename for r in rows], boxes, box_format="megadetector")
        assert res.failures == []
        return res.embeddings

    g, p = embed(gallery), embed(probes)
    kb = KnowledgeBase(g.shape[1])
    kb.add(
        [r.filename for r in gallery],
        [r.individual for r in gallery],
        g,
        dates=[r.individual for r in gallery],
    )
    kb.save(tmp_path / "kb")
    kb = KnowledgeBase.load(tmp_path / "kb")
    truth = [r.individual for r in probes]
    known = {r.individual for r in gallery}

    # Independent numpy computation of CMC@k over the probes whose individual is in the base.
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    pn = p / np.linalg.norm(p, axis=1, keepdims=True)
    order = np.argsort(1 - pn @ gn.T, axis=1, kind="stable")
    ids = np.array([r.individual for r in gallery])
    k = 5
    hits = [(ids[order[i, :k]] == t).cumsum() > 0 for i, t in enumerate(truth) if t in known]
    cmc_np = np.mean(hits, axis=0)

    closed = kb.evaluate(p, truth, k=k, threshold=2.0)
    np.testing.assert_allclose([closed.cmc[j] for j in range(1, k + 1)], cmc_np)
    swept = kb.evaluate(p, truth, k=k, validation_fraction=0.5, seed=0)
    res = kb.query(
        p, k=k, threshold=swept.threshold, filepaths=[r.filename for r in probes], seed=0
    )
    table = res.to_pandas()
    assert list(table.columns)[:5] == [
        "filepath",
        "individual_predicted",
        "is_new",
        "latest_picture_individual_predicted",
        "location_closest_individual",
    ]
    figures = {
        "gallery": len(gallery),
        "probes": len(probes),
        "known_probes": int(sum(t in known for t in truth)),
        "closed_set": closed.summary(),
        "threshold_swept_on_validation": swept.summary(),
    }
    print("\njaguar re-identification (yolox-embed):\n" + json.dumps(figures, indent=1))
    for v in list(closed.cmc.values()) + list(closed.map.values()):
        assert 0.0 <= v <= 1.0
    assert closed.cmc[k] >= closed.cmc[1]
