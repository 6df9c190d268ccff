"""A results table reviewed without its run: DeepFaune's CSV/XLSX (its GUI's export) or ours
whose checkpoint is gone. The page shows the table's labels, scores, dates and sequences with
thumbnails of the images; relabelling and verifying write the same corrections journal
(``<table>.corrections.jsonl``) and the corrected CSV is the table with the corrected cells
replaced. What needs the run's logits (re-deciding) is not available; boxes are drawn only from
a MegaDetector file of the same run (``detections=``), read by the core.

Only glue lives here (pandas reads the table); which classifier and language the table's labels
are is the core's answer (``_core.table_labels``), and so are the journal and the thumbnails.
"""

from __future__ import annotations

import io
import os
from typing import Any

from . import _core
from .errors import InvalidArgumentError
from .review import Columns

#: Columns a table needs: what the page shows and what a relabel changes.
REQUIRED = ("filename", "seqnum", "predictionbase", "scorebase", "prediction", "score")
#: Columns written over by a relabel (``top1`` only when the table has it).
RELABELLED = ("predictionbase", "prediction", "top1")
RESCORED = ("scorebase", "score")
NO_REDECIDE = (
    "re-deciding: a table has no logits (review the run's .checkpoint: run --resume keeps it)"
)
NO_BOXES = "boxes: a table has none (give the run's MegaDetector JSON: --detections FILE)"


def _read(path: str):
    import pandas as pd

    try:
        if path.lower().endswith((".xlsx", ".xls")):
            return pd.read_excel(path, dtype=str, keep_default_na=False)
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:  # noqa: BLE001 - any reader error is the user's file
        raise InvalidArgumentError(f"{path}: cannot read the table ({e})") from None


def _resolve(name: str, folder: str) -> str:
    """A table's file name as a path to read: as written when absolute; else beside the table,
    or (a run given a relative folder writes names relative to where it ran) from here."""
    if os.path.isabs(name):
        return name
    beside = os.path.join(folder, name)
    if not os.path.exists(beside) and os.path.exists(name):
        return os.path.abspath(name)
    return beside


def _numbers(values: list[str], kind: type) -> list[Any]:
    out = []
    for v in values:
        try:
            out.append(kind(float(v)) if v != "" else kind(0))
        except ValueError:
            out.append(kind(0))
    return out


class ResultTable:
    """A results table (CSV or XLSX, DeepFaune's columns, ``status`` optional) as the review
    page's source; ``detections``: a MegaDetector JSON of the same run for the boxes (its paths
    relative to its own folder)."""

    def __init__(
        self, path: str | os.PathLike[str], detections: str | os.PathLike[str] | None = None
    ) -> None:
        self.path = os.fspath(path)
        df = _read(self.path)
        missing = [c for c in REQUIRED if c not in df.columns]
        if missing:
            raise InvalidArgumentError(
                f"{self.path}: not a results table, missing columns {', '.join(missing)} "
                "(give the CSV/XLSX of a DeepFaune or deepfaune-rs run, or its .checkpoint)"
            )
        self.df = df
        self.detections = None if detections is None else os.fspath(detections)
        col = {c: df[c].tolist() for c in df.columns}
        self.keys = [str(f) for f in col["filename"]]
        folder = os.path.dirname(os.path.abspath(self.path))
        paths = [_resolve(f, folder) for f in self.keys]
        texts = sorted(
            set(col["predictionbase"]) | set(col["prediction"]) | set(col.get("top1", []))
        )
        found = _core.table_labels(texts)
        if found is None:  # a model that is not built in: the table's own labels
            self.labels = [t for t in texts if t]
            empty, human, vehicle = "empty", "human", "vehicle"
            self.settings: dict[str, Any] = {"classifier": None, "language": None}
        else:
            self.labels = found["labels"]
            empty, human, vehicle = found["empty"], found["human"], found["vehicle"]
            self.settings = {k: found[k] for k in ("classifier", "language", "bird_head")}
        self.settings |= {"threshold": "", "maxlag_s": "", "table": self.path}
        n = len(self.keys)
        status = col.get("status", [""] * n)
        failed = [str(s).startswith("failed") for s in status]
        kinds = {empty: 0, human: 2, vehicle: 3}
        dates = col.get("date", col.get("dates", [""] * n))
        import numpy as np

        self._fields: dict[str, Any] = {
            "n": n,
            "keys": self.keys,
            "paths": paths,
            "folders": [os.path.dirname(p) for p in paths],
            "dates": [str(d) or None for d in dates],
            "category": np.array(
                [0 if f else kinds.get(p, 1) for p, f in zip(col["predictionbase"], failed)],
                dtype=np.uint8,
            ),
            "sizes": np.zeros((n, 2), dtype=np.uint32),
            "xyxy": np.zeros((0, 4), dtype=np.float32),
            "conf": np.zeros(0, dtype=np.float32),
            "cls": np.zeros(0, dtype=np.uint8),
            "best": np.full(n, -1, dtype=np.int64),
            "first": np.zeros(n + 1, dtype=np.int64),
            "failed": failed,
            "seqnum": np.array(_numbers(col["seqnum"], int), dtype=np.int64),
            "predictionbase": col["predictionbase"],
            "prediction": col["prediction"],
            "top1": col.get("top1", col["prediction"]),
            "scorebase": np.array(_numbers(col["scorebase"], float)),
            "score": np.array(_numbers(col["score"], float)),
            "count": np.array(_numbers(col.get("count", ["0"] * n), int)),
            "humancount": np.array(_numbers(col.get("humancount", ["0"] * n), int)),
        }
        # Our table's videos (media_type, keyframe): the rows after the images.
        media = col.get("media_type", ["image"] * n)
        videos = [k for k, m in enumerate(media) if m == "video"]
        if videos and videos == list(range(n - len(videos), n)):
            self._fields["video_from"] = n - len(videos)
            self._fields["keyframe"] = [
                int(float(k)) if k not in ("", None) else None
                for k in col.get("keyframe", [""] * n)
            ]
        self.unavailable = [NO_REDECIDE]
        if self.detections is None:
            self.unavailable.append(NO_BOXES)
        else:
            self._boxes(self.detections)

    def _boxes(self, md: str) -> None:
        """The boxes, sizes and categories of a MegaDetector file, matched to the table's rows
        by path (the core reads the file and the images' headers)."""
        import numpy as np

        if not os.path.isfile(md):
            raise InvalidArgumentError(f"--detections {md}: no such file")
        try:
            det = _core.read_megadetector_json(md)
        except ValueError as e:
            raise InvalidArgumentError(f"--detections {md}: {e}") from None

        def norm(p: str) -> str:
            return os.path.normpath(os.path.abspath(p))

        row_of = {norm(p): i for i, p in enumerate(self._fields["paths"])}
        image = np.asarray(det.image_index)
        first = np.searchsorted(image, np.arange(len(det) + 1), side="left")
        xyxy, conf, cls = (
            np.asarray(det.boxes),
            np.asarray(det.confidences),
            np.asarray(det.classes),
        )
        f = self._fields
        boxes: list[list[int]] = [[] for _ in range(f["n"])]
        best = np.asarray(det.best_detection)
        category = np.asarray(det.category)
        sizes = np.asarray(det.sizes)
        classified = np.full(f["n"], -1, dtype=np.int64)
        for j, p in enumerate(det.paths):
            i = row_of.get(norm(p))
            if i is None:
                continue
            boxes[i] = list(range(int(first[j]), int(first[j + 1])))
            f["sizes"][i] = sizes[j]
            if not f["failed"][i]:
                f["category"][i] = category[j]
            classified[i] = best[j]
        order = [k for b in boxes for k in b]
        f["xyxy"] = xyxy[order].reshape(-1, 4)
        f["conf"], f["cls"] = conf[order], cls[order]
        f["first"] = np.concatenate([[0], np.cumsum([len(b) for b in boxes])]).astype(np.int64)
        # The classified box, renumbered into the rows' order.
        f["best"] = np.array(
            [
                int(f["first"][i]) + b.index(int(classified[i])) if int(classified[i]) in b else -1
                for i, b in enumerate(boxes)
            ],
            dtype=np.int64,
        )

    def columns(self, journal: str) -> Columns:
        """The table with the journal at ``journal`` applied, line by line."""
        f = self._fields
        cols = Columns.from_fields(
            **f
            | {
                k: list(f[k]) if isinstance(f[k], list) else f[k].copy()
                for k in ("predictionbase", "prediction", "top1", "scorebase", "score")
            },
            reviewed=[None] * f["n"],
        )
        labels = set(self.labels)
        for entry in _core.read_corrections(journal):
            if entry["label"] is not None and entry["label"] not in labels:
                raise InvalidArgumentError(
                    f"correction at {entry['time']}: '{entry['label']}' is not a label of "
                    f"{self.settings.get('classifier') or 'this table'}"
                )
            cols.apply(entry)
        return cols

    def export_csv(self, journal: str, cols: Columns) -> bytes:
        """The table with the relabelled rows' labels and scores replaced (score 1.0, as the
        run's corrected CSV has them); every other cell as read."""
        df = self.df.copy()
        rows = [i for i, r in enumerate(cols.reviewed) if r and r.get("label") is not None]
        for c in (*RELABELLED, *RESCORED):
            if c in df.columns and rows:
                values = getattr(cols, c)
                df.loc[df.index[rows], c] = [
                    repr(float(values[i])) if c in RESCORED else values[i] for i in rows
                ]
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        return buf.getvalue().encode("utf-8")
