"""The two result files Python's libraries write: XLSX (openpyxl) and ``.npz`` (numpy), each
atomically; :class:`~deepfaune_rs.PipelineResult` hands them its columns."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ._files import PathLike, atomic_open

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _text_cell(ws: Any, value: object, csv_safe: bool) -> object:
    """An XLSX cell: text stays text (openpyxl would make ``=...`` a formula), other values
    as they are; ``csv_safe`` quotes text a spreadsheet would run as a formula (the same rule
    as the core's ``formula_safe``)."""
    if not isinstance(value, str):
        return value
    if csv_safe and value.startswith(_FORMULA_STARTS):
        value = "'" + value
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(ws, value=value)
    cell.data_type = "s"
    return cell


def write_excel(table: dict[str, list], path: PathLike, csv_safe: bool) -> None:
    """Writes ``table`` (columns) as an XLSX sheet named like pandas' default, atomically."""
    from openpyxl import Workbook

    columns = list(table)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Sheet1")  # pandas' default sheet name
    ws.append([_text_cell(ws, c, False) for c in columns])
    for i in range(len(table["filename"])):
        ws.append([_text_cell(ws, table[name][i], csv_safe) for name in columns])
    with atomic_open(path, "wb") as f:
        wb.save(f)


def save_embeddings(path: PathLike, paths: Sequence[str], embeddings: Any) -> None:
    """Writes ``filename`` and ``embedding`` arrays to an ``.npz`` file, atomically."""
    import numpy as np

    with atomic_open(path, "wb") as f:
        names = np.array([os.fspath(p) for p in paths], dtype=str)
        np.savez(f, filename=names, embedding=embeddings)
