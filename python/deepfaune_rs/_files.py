"""Atomic output files: written beside their destination, synced, then renamed over it."""

from __future__ import annotations

import os
import tempfile
from typing import Union

PathLike = Union[str, "os.PathLike[str]"]


class atomic_open:  # noqa: N801 (used like open())
    """Opens a temporary file next to ``path`` and renames it over ``path`` on success; on an
    error the temporary file is removed and ``path`` is left as it was."""

    def __init__(self, path: PathLike, mode: str, **kwargs: object) -> None:
        self.path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(self.path))
        fd, self.tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        os.close(fd)
        self.f = open(self.tmp, mode, **kwargs)  # noqa: SIM115

    def __enter__(self):  # noqa: ANN204
        return self.f

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        try:
            if exc_type is None:
                self.f.flush()
                os.fsync(self.f.fileno())
        finally:
            self.f.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        elif os.path.exists(self.tmp):
            os.unlink(self.tmp)
