"""Atomic output files: written beside their destination, synced, then renamed over it.

The temporary file has a random name and is created exclusively (``tempfile.mkstemp``:
``O_CREAT | O_EXCL | O_NOFOLLOW``, so a planted file or link is never written through), gets the
mode any new file gets (0666 minus the umask, not mkstemp's 0600), and is removed on every error
path: in the caller's code, in the flush, the sync or the rename."""

from __future__ import annotations

import os
import tempfile
from typing import IO, Any, Union

PathLike = Union[str, "os.PathLike[str]"]


def current_umask() -> int:
    """The process's umask (from /proc when it says, else by setting and restoring it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class atomic_open:  # noqa: N801 (used like open())
    """Opens a temporary file next to ``path`` and renames it over ``path`` on success; on an
    error the temporary file is removed and ``path`` is left as it was."""

    def __init__(self, path: PathLike, mode: str, **kwargs: Any) -> None:
        if "w" not in mode:
            raise ValueError(f"atomic_open writes a new file: mode {mode!r} has no 'w'")
        self.path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(self.path))
        name = os.path.basename(self.path)
        fd, self.tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o666 & ~current_umask())
            self.f: IO[Any] = os.fdopen(fd, mode, **kwargs)
        except BaseException:
            os.close(fd)
            _remove(self.tmp)
            raise

    def __enter__(self) -> IO[Any]:
        return self.f

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        committed = False
        try:
            try:
                if exc_type is None:
                    self.f.flush()
                    os.fsync(self.f.fileno())
            finally:
                self.f.close()
            if exc_type is None:
                os.replace(self.tmp, self.path)
                committed = True
        finally:
            if not committed:
                _remove(self.tmp)
