"""Progress bars for terminals and notebooks: tqdm's when installed, else an ipywidgets bar in a
notebook, else the core's text bar (``src/progress.rs``)."""

from __future__ import annotations

import time
from typing import Callable, Union

from . import _core

ProgressArg = Union[bool, Callable[[int, int], object], None]


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
    return _core.TextBar(desc, unit)
