"""A small progress bar for terminals and notebooks (tqdm is used when installed)."""

from __future__ import annotations

import sys
import time
from typing import Callable, Union

ProgressArg = Union[bool, Callable[[int, int], object], None]


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


class _TextBar:
    def __init__(self, desc: str, unit: str = "img") -> None:
        self.desc, self.unit = desc, unit
        self.start = time.monotonic()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < 0.2:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        width = 30
        filled = int(width * done / total) if total else width
        eta = (total - done) / rate if rate > 0 else 0.0
        if self.unit == "B":
            counts = f"{_fmt_bytes(done)}/{_fmt_bytes(total)} {_fmt_bytes(rate)}/s"
        else:
            counts = f"{done}/{total} {rate:.2f} {self.unit}/s"
        bar = f"[{'#' * filled}{'.' * (width - filled)}]"
        sys.stderr.write(f"\r{self.desc} {bar} {counts} ETA {eta:.0f}s")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


class _TqdmBar:
    def __init__(self, desc: str, unit: str = "img") -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(desc=desc, unit=unit, unit_scale=unit == "B")

    def __call__(self, done: int, total: int) -> None:
        if self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()


class _WidgetBar:
    """An ipywidgets progress bar, for notebooks without tqdm."""

    def __init__(self, desc: str) -> None:
        import ipywidgets
        from IPython.display import display

        self.bar = ipywidgets.IntProgress(value=0, min=0, max=1, description=desc)
        self.text = ipywidgets.Label("")
        self.start = time.monotonic()
        display(ipywidgets.HBox([self.bar, self.text]))

    def __call__(self, done: int, total: int) -> None:
        self.bar.max = max(total, 1)
        self.bar.value = min(done, self.bar.max)
        rate = done / max(time.monotonic() - self.start, 1e-9)
        self.text.value = f"{done}/{total} {rate:.2f} img/s"
        if done >= total:
            self.bar.bar_style = "success"


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (a notebook), where a widget can be shown."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def make_callback(
    progress: ProgressArg, desc: str, unit: str = "img"
) -> Callable[[int, int], object] | None:
    """``True``: a bar on stderr; a callable ``f(done, total)``: used as is; ``False``/``None``:
    nothing. The bar is tqdm's when installed (a widget in notebooks), else an ipywidgets bar in
    a notebook where ipywidgets is installed, else text. Folders are walked as the run goes,
    while a second walk counts the images: until that count is complete (a second or so for
    100k files), ``total`` is a lower bound that grows; the last call has ``done == total``.
    ``unit="B"`` counts bytes (a download) instead of images."""
    if progress is None or progress is False:
        return None
    if callable(progress):
        return progress
    try:
        return _TqdmBar(desc, unit)
    except ImportError:
        pass
    if _in_notebook():
        try:
            return _WidgetBar(desc)
        except ImportError:
            pass
    return _TextBar(desc, unit)
