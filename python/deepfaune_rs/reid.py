"""Stage 7 (reid): individual re-identification, as lynx-id does it, the heavy parts in Rust.

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

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from . import _core

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

PathLike = Union[str, "os.PathLike[str]"]

#: The label lynx-id uses for a new individual (in truths and neighbour lists).
NEW = "New"

CosineIndex = _core.CosineIndex
clahe_rgb = _core.clahe_rgb


def _f32(a: Any, what: str) -> np.ndarray:
    arr = np.ascontiguousarray(a, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        from .errors import InvalidArgumentError

        raise InvalidArgumentError(f"{what} must be a 2-D array [rows, dim], got shape {arr.shape}")
    return arr


def knn_cosine(base: Any, queries: Any, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest rows of ``base`` for each query by cosine distance (``1 - cos``).

    Returns ``(distances, indices)``, each ``[n_queries, min(k, len(base))]``, nearest first;
    equal distances are ordered by row. ``base`` is used in place when it is already C-contiguous
    float32 (otherwise converted once).

    >>> d, i = knn_cosine(np.eye(3, dtype=np.float32), [[0.0, 2.0, 0.1]], k=2)
    >>> i.tolist()
    [[1, 2]]
    """
    return _core.knn_cosine(_f32(base, "base"), _f32(queries, "queries"), k)


@dataclass
class QueryResult:
    """lynx-id's answer for each query, plus the raw neighbours.

    ``distances`` and ``indices`` (rows of the knowledge base) are ``[n, k]`` numpy arrays,
    nearest first. ``neighbor_ids`` are the neighbours' individuals, with ``"New"`` first for a
    new individual (as lynx-id writes them).
    """

    distances: np.ndarray
    indices: np.ndarray
    individual_predicted: list[str]
    is_new: np.ndarray
    latest_picture_individual_predicted: list[str | None]
    location_closest_individual: list[str | None]
    neighbor_ids: list[list[str]]
    filepaths: list[str] | None = None
    neighbor_filepaths: list[list[str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.individual_predicted)

    def to_pandas(self) -> pd.DataFrame:
        """lynx-id's output table: ``filepath`` (when the queries had paths),
        ``individual_predicted``, ``is_new``, ``latest_picture_individual_predicted``,
        ``location_closest_individual``, ``neighbor_1`` .. ``neighbor_k``."""
        import pandas as pd

        cols: dict[str, Any] = {}
        if self.filepaths is not None:
            cols["filepath"] = self.filepaths
        cols["individual_predicted"] = self.individual_predicted
        cols["is_new"] = self.is_new.astype(bool)
        cols["latest_picture_individual_predicted"] = self.latest_picture_individual_predicted
        cols["location_closest_individual"] = self.location_closest_individual
        k = self.distances.shape[1] if self.distances.ndim == 2 else 0
        for j in range(k):
            cols[f"neighbor_{j + 1}"] = [row[j] for row in self.neighbor_ids]
        return pd.DataFrame(cols)


@dataclass
class Evaluation:
    """Retrieval figures on the test queries (see :meth:`KnowledgeBase.evaluate`).

    ``cmc`` and ``map`` map k = 1..K to CMC@k and mAP@k over the test queries whose individual
    is in the base; ``top1_accuracy`` and the "new" precision and recall use ``threshold``
    (NaN when undefined). ``sweep`` is the validation sweep (threshold, accuracy, new_precision,
    new_recall), or None when no sweep was run.
    """

    top1_accuracy: float
    cmc: dict[int, float]
    map: dict[int, float]
    new_precision: float
    new_recall: float
    threshold: float | None
    n_test: int
    n_validation: int
    sweep: dict[str, list[float]] | None = None

    def summary(self) -> dict[str, float]:
        """The figures as one flat dict (for printing or a DataFrame row)."""
        out: dict[str, float] = {"top1_accuracy": self.top1_accuracy}
        out.update({f"cmc@{k}": v for k, v in self.cmc.items()})
        out.update({f"map@{k}": v for k, v in self.map.items()})
        out["new_precision"] = self.new_precision
        out["new_recall"] = self.new_recall
        out["threshold"] = float("nan") if self.threshold is None else self.threshold
        out["n_test"] = self.n_test
        out["n_validation"] = self.n_validation
        return out


def _truths(kb: KnowledgeBase, true_ids: Sequence[str | None]) -> list[str | None]:
    """Truth per query: None when lynx-id would say "New" (no id, "New", or not in the base)."""
    known = set(kb.individuals())
    out: list[str | None] = []
    for t in true_ids:
        if t is None or (isinstance(t, float) and np.isnan(t)):
            out.append(None)
        else:
            s = str(t)
            out.append(s if s != NEW and s in known else None)
    return out


class KnowledgeBase:
    """Known pictures of known individuals and their embeddings (lynx-id's knowledge base).

    Rows are ``(filepath, individual_id, date, location)``; ``filepath`` is the key. The matrix
    lives in Rust; :meth:`embeddings` returns a copy.
    """

    def __init__(self, dim: int, *, _inner: Any = None) -> None:
        self._kb = _inner if _inner is not None else _core.KnowledgeBase(dim)

    @classmethod
    def load(cls, folder: PathLike) -> KnowledgeBase:
        """Reads lynx-id's ``informations.csv`` + ``embeddings.safetensors`` from a folder."""
        return cls(0, _inner=_core.KnowledgeBase.load(os.fspath(folder)))

    @classmethod
    def load_files(cls, informations: PathLike, embeddings: PathLike) -> KnowledgeBase:
        """Reads a lynx-id pair of files given by path."""
        return cls(
            0, _inner=_core.KnowledgeBase.load_files(os.fspath(informations), os.fspath(embeddings))
        )

    def save(self, folder: PathLike) -> None:
        """Writes both files into ``folder`` (created if needed), each atomically."""
        self._kb.save(os.fspath(folder))

    def save_files(self, informations: PathLike, embeddings: PathLike) -> None:
        """Writes both files at the given paths, each atomically."""
        self._kb.save_files(os.fspath(informations), os.fspath(embeddings))

    def __len__(self) -> int:
        return len(self._kb)

    def __repr__(self) -> str:
        n_ind = len(self.individuals())
        return f"KnowledgeBase({len(self)} pictures, {n_ind} individuals, dim={self.dim})"

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return self._kb.dim

    def individuals(self) -> list[str]:
        """Distinct individuals, in order of first appearance."""
        return self._kb.individuals()

    def individual_counts(self) -> dict[str, int]:
        """Pictures per individual."""
        return self._kb.individual_counts()

    def columns(self) -> dict[str, list[str | None]]:
        """The rows as a dict of lists."""
        return self._kb.columns()

    def embeddings(self) -> np.ndarray:
        """A copy of the ``[len, dim]`` float32 embeddings."""
        return self._kb.embeddings()

    def to_pandas(self) -> pd.DataFrame:
        """The rows with lynx-id's column names (``filepath, lynx_id, date, location``)."""
        import pandas as pd

        df = pd.DataFrame(self.columns())
        return df.rename(columns={"individual_id": "lynx_id"})

    def add(
        self,
        filepaths: Sequence[str],
        individual_ids: Sequence[str],
        embeddings: Any,
        dates: Sequence[str | None] | None = None,
        locations: Sequence[str | None] | None = None,
    ) -> None:
        """Appends rows; fails, changing nothing, if a filepath is already known."""
        self._kb.add(*self._rows(filepaths, individual_ids, embeddings, dates, locations))

    def update(
        self,
        filepaths: Sequence[str],
        individual_ids: Sequence[str],
        embeddings: Any,
        dates: Sequence[str | None] | None = None,
        locations: Sequence[str | None] | None = None,
    ) -> tuple[int, int]:
        """lynx-id's update: known filepaths get the new individual and embedding (and date and
        location when given), others are appended. Returns ``(updated, added)``."""
        return self._kb.update(*self._rows(filepaths, individual_ids, embeddings, dates, locations))

    @staticmethod
    def _rows(filepaths, individual_ids, embeddings, dates, locations) -> tuple:  # noqa: ANN001
        def strs(v: Sequence[Any] | None) -> list[str | None] | None:
            if v is None:
                return None
            return [
                None if x is None or (isinstance(x, float) and np.isnan(x)) else str(x) for x in v
            ]

        return (
            [os.fspath(p) for p in filepaths],
            [str(i) for i in individual_ids],
            _f32(embeddings, "embeddings"),
            strs(dates),
            strs(locations),
        )

    def remove(self, filepaths: Sequence[str]) -> int:
        """Removes rows by filepath (unknown ones ignored); returns how many went."""
        return self._kb.remove([os.fspath(p) for p in filepaths])

    def rename_individual(self, old: str, new: str) -> int:
        """Renames an individual (fails if ``new`` exists: merge instead); returns rows changed."""
        return self._kb.rename_individual(old, new)

    def merge_individuals(self, sources: Sequence[str], into: str) -> int:
        """Gives every picture of ``sources`` the id ``into``; returns rows changed."""
        return self._kb.merge_individuals(list(sources), into)

    def query(
        self,
        embeddings: Any,
        k: int = 5,
        distance_threshold: float | None = None,
        *,
        gaussian: bool = False,
        confidence: float = 0.997,
        success_percentage: float = 100.0,
        filepaths: Sequence[str] | None = None,
        seed: int | None = None,
        threshold: float | None = None,
    ) -> QueryResult:
        """The k nearest pictures of each query embedding and lynx-id's verdict.

        Open set: with ``distance_threshold`` (a cosine distance; ``threshold`` is its old name,
        deprecated), a query whose nearest distance is above it is a new individual; with
        ``gaussian=True``, lynx-id's per-dimension Gaussian test decides (``confidence``,
        ``success_percentage``); with neither, the nearest individual is always the answer.
        New individuals get a fresh random 10-character id (``seed`` makes it reproducible).
        """
        from ._renamed import renamed

        threshold = renamed("distance_threshold", distance_threshold, "threshold", threshold)
        q = _f32(embeddings, "embeddings")
        if filepaths is not None and len(filepaths) != q.shape[0]:
            from .errors import InvalidArgumentError

            raise InvalidArgumentError(f"{len(filepaths)} filepaths for {q.shape[0]} embeddings")
        d = self._kb.query(
            q,
            k=k,
            threshold=threshold,
            gaussian=gaussian,
            confidence=confidence,
            success_percentage=success_percentage,
            seed=seed,
        )
        paths = self.columns()["filepath"]
        return QueryResult(
            distances=d["distances"],
            indices=d["indices"],
            individual_predicted=d["individual_predicted"],
            is_new=d["is_new"],
            latest_picture_individual_predicted=d["latest_picture_individual_predicted"],
            location_closest_individual=d["location_closest_individual"],
            neighbor_ids=d["neighbor_ids"],
            filepaths=None if filepaths is None else [os.fspath(p) for p in filepaths],
            neighbor_filepaths=[[paths[i] for i in row] for row in d["indices"].tolist()],
        )

    def evaluate(
        self,
        embeddings: Any,
        true_ids: Sequence[str | None],
        *,
        k: int = 5,
        distance_threshold: float | None = None,
        thresholds: Sequence[float] | None = None,
        validation_fraction: float = 0.5,
        seed: int = 0,
        threshold: float | None = None,
    ) -> Evaluation:
        """Top-1 accuracy, CMC@1..k, mAP@1..k and precision/recall of "new" for labelled queries.

        ``true_ids`` gives each query's individual; None, ``"New"`` or an individual absent from
        the base means the right answer is "new individual". With ``distance_threshold=None``
        (``threshold``: its old name, deprecated) the threshold is chosen by a sweep
        (``thresholds``, default 0 to 2 by 0.01) on a random ``validation_fraction`` of the
        queries, and the figures are reported on the others;
        with a given ``distance_threshold``, all queries are test queries.
        """
        from ._renamed import renamed
        from .errors import InvalidArgumentError

        threshold = renamed("distance_threshold", distance_threshold, "threshold", threshold)

        q = _f32(embeddings, "embeddings")
        if len(true_ids) != q.shape[0]:
            raise InvalidArgumentError(f"{len(true_ids)} true ids for {q.shape[0]} embeddings")
        truth = _truths(self, true_ids)
        res = self.query(q, k=k)  # closed set: raw neighbours
        nearest_d = res.distances[:, 0].astype(np.float32)
        nearest_id = [row[0] for row in res.neighbor_ids]
        n = len(truth)
        if threshold is None:
            if not 0.0 < validation_fraction < 1.0:
                raise InvalidArgumentError(
                    "validation_fraction must be within (0, 1) to sweep thresholds"
                )
            perm = np.random.default_rng(seed).permutation(n)
            n_val = int(round(n * validation_fraction))
            if n_val == 0 or n_val == n:
                raise InvalidArgumentError(
                    f"{n} queries are too few to split for a threshold sweep"
                )
            val, test = np.sort(perm[:n_val]), np.sort(perm[n_val:])
            grid = (
                np.round(np.arange(0.0, 2.0 + 1e-9, 0.01), 6) if thresholds is None else thresholds
            )
            sw = _core.reid_threshold_sweep(
                [truth[i] for i in val],
                [float(nearest_d[i]) for i in val],
                [nearest_id[i] for i in val],
                [float(t) for t in grid],
            )
            threshold = sw["best_threshold"]
            sweep = {
                key: sw[key] for key in ("thresholds", "accuracy", "new_precision", "new_recall")
            }
        else:
            val, test = np.array([], dtype=np.int64), np.arange(n)
            sweep = None
        t_truth = [truth[i] for i in test]
        pred_new = [bool(nearest_d[i] > threshold or np.isnan(nearest_d[i])) for i in test]
        pred = [None if new else nearest_id[i] for new, i in zip(pred_new, test)]
        counts = self.individual_counts()
        cmc, mapk = _core.reid_cmc_map(t_truth, [res.neighbor_ids[i] for i in test], counts, k)
        precision, recall = _core.reid_new_precision_recall([t is None for t in t_truth], pred_new)
        return Evaluation(
            top1_accuracy=_core.reid_top1_accuracy(t_truth, pred),
            cmc={j + 1: v for j, v in enumerate(cmc)},
            map={j + 1: v for j, v in enumerate(mapk)},
            new_precision=precision,
            new_recall=recall,
            threshold=float(threshold),
            n_test=len(test),
            n_validation=len(val),
            sweep=sweep,
        )


@dataclass
class EmbeddingResult:
    """One embedding per input file: ``embeddings[i]`` belongs to ``paths[i]``; failed files
    have NaN rows and are listed in ``failures`` as ``(index, reason)``."""

    paths: list[str]
    embeddings: np.ndarray
    failures: list[tuple[int, str]]

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of the files that were embedded."""
        mask = np.ones(len(self.paths), dtype=bool)
        mask[[i for i, _ in self.failures]] = False
        return mask


class Embedder:
    """An embedding model described by a manifest: a built-in id (``"yolox-embed"``,
    ``"deepfaune-cls"``, ``"lynx-id-dinov2"``) or a ``.toml`` path; ``weights`` overrides where
    the ONNX file is looked for.

    Crops come from given boxes (``box_format="xyxy"`` pixels, or ``"megadetector"``
    normalised ``[x, y, w, h]``), from a :class:`~deepfaune_rs.Detector` (its square animal
    crops, as DeepFaune classifies them), or are the whole images.
    """

    def __init__(
        self,
        model: PathLike = "yolox-embed",
        weights: PathLike | None = None,
        intra_threads: int = 0,
    ) -> None:
        w = None if weights is None else os.fspath(weights)
        self._inner = _core.Embedder(os.fspath(model), weights=w, intra_threads=intra_threads)

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest's main facts (id, size, dim, ...)."""
        return self._inner.manifest

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        return int(self.manifest["dim"])

    def embed(
        self,
        paths: Sequence[PathLike],
        boxes: Any = None,
        *,
        box_format: str = "xyxy",
        square: bool = False,
        detector: Any = None,
        batch_size: int = 8,
    ) -> EmbeddingResult:
        """Embeds one crop per file.

        ``boxes`` is ``[n, 4]`` (a row of -1 or NaN: no box, the file fails); with no boxes and
        a ``detector`` (a :class:`~deepfaune_rs.Detector`, or ``True`` for the embedded one),
        the detector's animal crop of each image is used; with neither, the whole image.
        """
        p = [os.fspath(x) for x in paths]
        if boxes is None and detector is not None:
            if detector is True:
                from .detect import Detector

                detector = Detector()
            det = detector.detect(p, progress=False)
            boxes, box_format, square = det.crop_boxes, "xyxy", False
        b = None if boxes is None else np.ascontiguousarray(boxes, dtype=np.float64)
        emb, failures = self._inner.embed_files(
            p, boxes=b, box_format=box_format, square=square, batch_size=batch_size
        )
        return EmbeddingResult(paths=p, embeddings=emb, failures=list(failures))

    def prepare(self, image: np.ndarray, box: Sequence[float] | None = None) -> np.ndarray:
        """The model input ``[3, size, size]`` for one crop of an ``HxWx3`` uint8 image."""
        b = None if box is None else [float(v) for v in box]
        return self._inner.prepare(np.ascontiguousarray(image, dtype=np.uint8), b)

    def embed_tensors(self, tensors: np.ndarray) -> np.ndarray:
        """Runs prepared inputs ``[n, 3, size, size]``; returns ``[n, dim]``."""
        return self._inner.embed_tensors(np.ascontiguousarray(tensors, dtype=np.float32))


def boxes_from_megadetector(
    path: PathLike, *, category: str = "1", min_conf: float = 0.0
) -> tuple[list[str], np.ndarray]:
    """Reads a MegaDetector batch JSON: per image, the most confident box of ``category``
    (``"1"`` = animal) with confidence at least ``min_conf``, as normalised ``[x, y, w, h]``
    (NaN row when none). Returns ``(file names, boxes[n, 4])``; embed them with
    ``box_format="megadetector"``."""
    import json

    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    files, boxes = [], []
    for im in data.get("images", []):
        best = None
        for d in im.get("detections") or []:
            if str(d.get("category")) == category and d.get("conf", 0.0) >= min_conf:
                if best is None or d["conf"] > best["conf"]:
                    best = d
        files.append(im["file"])
        boxes.append(best["bbox"] if best is not None else [np.nan] * 4)
    return files, np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


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
