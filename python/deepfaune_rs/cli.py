"""The ``deepfaune-rs`` command line.

The command line is the core's (``src/cli/``: arguments, the checks made before any image is
processed, the commands, their messages and exit statuses); :class:`_Hooks` gives it what only
Python does. Exit status: 0 = every file processed; 3 = some files failed (listed); 1 = the run
could not be done; 2 = usage, found before any image is processed; 130 = interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from . import _core

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_FAILURES = 0, 1, 2, 3


class _Hooks:
    """What the core's command line asks of Python (called by ``src/python/cli*.rs``)."""

    def out(self, text: str) -> None:
        print(text, flush=True)

    def err(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def progress(self, desc: str, unit: str) -> Callable[[int, int], object] | None:
        from ._progress import make_callback

        return make_callback(True, desc, unit)

    def has_module(self, name: str) -> bool:
        import importlib.util

        return importlib.util.find_spec(name) is not None

    # --- admin ---
    def sleep(self, seconds: float) -> None:
        from . import fetch

        fetch._sleep(seconds)  # Ctrl-C stops it

    def quantize(self, model: str, images: list[str], method: str | None, sample: int) -> list:
        from .quantize import quantize

        return [
            (k, str(v)) for k, v in quantize(model, images, method=method, sample=sample).items()
        ]

    def review(
        self, results: str, settings: dict | None, detections: str | None, serve: dict
    ) -> None:
        from . import review
        from .review_table import ResultTable

        if settings is None:  # a table without its checkpoint
            res: object = ResultTable(results, detections=detections)
        else:
            res = review.load_for_review(results, **settings)
        review.review(res, results, block=True, **serve)

    # --- run/detect ---
    def write_excel(self, table: dict, path: str, csv_safe: bool) -> None:
        from ._outputs import write_excel

        write_excel(table, path, csv_safe)

    def save_embeddings(self, path: str, paths: list, embeddings: object) -> None:
        from ._outputs import save_embeddings

        save_embeddings(path, paths, embeddings)

    def run_on_ray(self, inputs: list[str], pipeline: dict, options: dict) -> tuple:
        from .distributed import run

        stats: dict = {}
        res = run(inputs, pipeline, **options, stats=stats)
        return res, stats["units"], stats["ran"], stats["restored"]

    def fetch_models(self, ids: list[str], progress: bool) -> None:
        from .fetch import fetch

        fetch(*ids, progress=progress)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line (``sys.argv[1:]`` by default) and returns its exit status."""
    return _core.cli_main(list(sys.argv[1:] if argv is None else argv), _Hooks())


if __name__ == "__main__":
    sys.exit(main())
