"""Stage 7 (reid): individual re-identification, as lynx-id does it, in the Rust core.

A :class:`KnowledgeBase` holds known pictures (filepath, individual, date, location) aligned
with their embeddings, and reads and writes lynx-id's files (``informations.csv`` +
``embeddings.safetensors``) so existing lynx-id bases work unchanged. :meth:`KnowledgeBase.query`
finds the exact nearest pictures by cosine distance and says whether each query is a known
individual or a new one; :meth:`KnowledgeBase.evaluate` measures how well that works.

>>> import numpy as np
>>> kb = KnowledgeBase(dim=3)
>>> kb.add(["a.jpg", "b.jpg"], ["Lynx1", "Lynx2"], np.eye(3, dtype=np.float32)[:2])
>>> res = kb.query(np.array([[1.0, 0.1, 0.0]], dtype=np.float32), k=2, distance_threshold=0.3)
>>> res.individual_predicted, bool(res.is_new[0])
(['Lynx1'], False)
"""

from __future__ import annotations

from ._core import (
    CosineIndex,
    Embedder,
    EmbeddingResult,
    Evaluation,
    KnowledgeBase,
    QueryResult,
    boxes_from_megadetector,
    clahe_rgb,
    knn_cosine,
)

#: The label lynx-id uses for a new individual (in truths and neighbour lists).
NEW = "New"

__all__ = [
    "NEW",
    "CosineIndex",
    "EmbeddingResult",
    "Embedder",
    "Evaluation",
    "KnowledgeBase",
    "QueryResult",
    "boxes_from_megadetector",
    "clahe_rgb",
    "knn_cosine",
]
