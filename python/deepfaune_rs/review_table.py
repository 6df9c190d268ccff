"""A results table reviewed without its run: DeepFaune's CSV/XLSX (its GUI's export) or ours
whose checkpoint is gone. The page shows the table's labels, scores, dates and sequences with
thumbnails of the images; relabelling and verifying write the same corrections journal
(``<table>.corrections.jsonl``) and the corrected CSV is the table with the corrected cells
replaced. What needs the run's logits (re-deciding) is not available; boxes are drawn only from
a MegaDetector file of the same run (``detections=``).

Only glue lives here: pandas reads an XLSX table. Reading a CSV, the rows (which classifier and
language its labels are, the paths, the videos, the boxes of the MegaDetector file, the journal
applied) and the corrected CSV are the core's (``_core.ResultTable``).
"""

from __future__ import annotations

import os
from typing import Any

from . import _core
from ._core import NO_BOXES, NO_REDECIDE  # noqa: F401 - this module's public names
from .errors import InvalidArgumentError


def _read_xlsx(path: str) -> list[tuple[str, list[str]]]:
    import pandas as pd

    try:
        df = pd.read_excel(path, dtype=str, keep_default_na=False)
    except Exception as e:  # noqa: BLE001 - any reader error is the user's file
        raise InvalidArgumentError(f"{path}: cannot read the table ({e})") from None
    return [(str(c), df[c].tolist()) for c in df.columns]


class ResultTable(_core.ResultTable):
    """A results table (CSV or XLSX, DeepFaune's columns, ``status`` optional) as the review
    page's source; ``detections``: a MegaDetector JSON of the same run for the boxes (its paths
    relative to its own folder)."""

    def __new__(
        cls, path: str | os.PathLike[str], detections: str | os.PathLike[str] | None = None
    ) -> Any:
        path = os.fspath(path)
        xlsx = path.lower().endswith((".xlsx", ".xls"))
        return super().__new__(cls, path, detections, _read_xlsx(path) if xlsx else None)
