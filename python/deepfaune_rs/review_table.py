"""A results table reviewed without its run: DeepFaune's CSV/XLSX (its GUI's export) or ours
whose checkpoint is gone. The page shows the table's labels, scores, dates and sequences with
thumbnails of the images; relabelling and verifying write the same corrections journal
(``<table>.corrections.jsonl``) and the corrected CSV is the table with the corrected cells
replaced. What needs the run's logits (re-deciding) is not available; boxes are drawn only from
a MegaDetector file of the same run (``detections=``).

Only glue lives here: pandas reads the table and writes the corrected one. Its rows (which
classifier and language its labels are, the paths, the videos, the boxes of the MegaDetector
file, the journal applied) are the core's (``_core.ReviewRows.of_table``).
"""

from __future__ import annotations

import io
import os
from typing import Any

from . import _core
from .errors import InvalidArgumentError

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


class ResultTable:
    """A results table (CSV or XLSX, DeepFaune's columns, ``status`` optional) as the review
    page's source; ``detections``: a MegaDetector JSON of the same run for the boxes (its paths
    relative to its own folder)."""

    def __init__(
        self, path: str | os.PathLike[str], detections: str | os.PathLike[str] | None = None
    ) -> None:
        self.path = os.fspath(path)
        self.df = _read(self.path)
        self.detections = None if detections is None else os.fspath(detections)
        columns = {str(c): self.df[c].tolist() for c in self.df.columns}  # text: dtype=str
        #: The rows as read, before any correction (each load copies them).
        self._rows = _core.ReviewRows.of_table(self.path, columns, self.detections)
        self.labels: list[str] = self._rows.labels
        self.settings: dict[str, Any] = self._rows.table_settings
        self.settings |= {"threshold": "", "maxlag_s": "", "table": self.path}
        self.unavailable = [NO_REDECIDE] + ([NO_BOXES] if self.detections is None else [])

    def rows(self, journal: str) -> _core.ReviewRows:
        """The table's rows with the journal at ``journal`` applied, line by line."""
        rows = self._rows.copy()
        rows.apply_journal(journal)
        return rows

    def export_csv(self, journal: str, rows: _core.ReviewRows) -> bytes:
        """The table with the relabelled rows' labels and scores replaced (score 1.0, as the
        run's corrected CSV has them); every other cell as read."""
        df = self.df.copy()
        changed = rows.relabelled()
        if changed:
            at = df.index[[c[0] for c in changed]]
            for k, c in enumerate((*RELABELLED, *RESCORED), start=1):
                if c in df.columns:
                    df.loc[at, c] = [repr(r[k]) if c in RESCORED else r[k] for r in changed]
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        return buf.getvalue().encode("utf-8")
