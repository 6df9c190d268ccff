"""Stage 10 (review): seeing and correcting results: the review page (a local web server),
notebook pictures, and the saved class presets.

Only glue lives here: the HTTP server, the notebook HTML wrapper and PyAV's video keyframes.
The page's rows, filters, paging and changes (``_core.ReviewRows``), thumbnails, presets, the
notebook figures (SVG boxes, HTML escaped), a table read without its run
(``_core.ResultTable``), the corrections journal and re-deciding are the Rust core's.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import tempfile
import threading
import urllib.parse
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _core
from ._core import (  # noqa: F401 - this module's public names
    BOX_COLOURS,
    cache_dir,
    list_presets,
    load_preset,
    presets_dir,
    save_preset,
)

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import PipelineResult
    from .review_table import ResultTable

#: Longest side of the page's thumbnails and of the full-size view, in pixels.
THUMB_SIDE = 256
FULL_SIDE = 1600
#: The page (HTML, CSS and script in one file beside this module).
PAGE = Path(__file__).with_name("review_page.html").read_text(encoding="utf-8")


def journal_path(results: str | os.PathLike[str]) -> str:
    """The corrections journal beside a results file: ``<results>.corrections.jsonl``."""
    return os.fspath(results) + ".corrections.jsonl"


def _rows(res: PipelineResult) -> _core.ReviewRows:
    return getattr(res, "_r", res).review_rows(videos=False)


def image_rows(res: PipelineResult) -> list[dict[str, Any]]:
    """One dict per image: index, path, size, date, category, boxes (``[x1, y1, x2, y2,
    category, confidence, classified]`` in upright pixels), labels and review state."""
    rows = _rows(res)
    return [json.loads(rows.row(i)) for i in range(len(rows))]


class Html:
    """HTML that Jupyter shows (``_repr_html_``); ``str()`` gives the markup."""

    def __init__(self, markup: str) -> None:
        self.markup = markup

    def _repr_html_(self) -> str:
        return self.markup

    def __str__(self) -> str:
        return self.markup


def show(res: PipelineResult, which: int | str | os.PathLike[str], width: int = 640) -> Html:
    """One image (its index, or its file name or path) with its boxes and labels."""
    rows = _rows(res)
    if isinstance(which, int) and not isinstance(which, bool):
        if not -len(rows) <= which < len(rows):
            raise IndexError(f"image {which} out of range ({len(rows)} images)")
        return Html(rows.figure_html(which % len(rows), width, cache_dir()))
    if (i := rows.find(os.fspath(which))) is None:
        raise KeyError(f"no image named {os.fspath(which)!r} in these results")
    return Html(rows.figure_html(i, width, cache_dir()))


def gallery(
    res: PipelineResult,
    prediction: str | None = None,
    n: int = 12,
    width: int = 240,
    kind: str | None = None,
) -> Html:
    """Up to ``n`` images with boxes and labels: those predicted ``prediction`` (sequence
    label), or of detection ``kind`` (``animal``, ``person``, ``vehicle``, ``empty``,
    ``failed``), else the first ones."""
    rows = _rows(res)
    return Html(rows.gallery_html(rows.pick(prediction, kind, n), width, cache_dir()))


def summary_html(res: PipelineResult) -> str:
    """``_repr_html_`` of a result: counts per prediction and a few pictures."""
    return _rows(res).summary_html(len(res.videos), len(res.failures), cache_dir())


# ---------------------------------------------------------------------------------------------
# The review server.


def _no_video_picture() -> str | None:
    """Why no video row has a picture here (PyAV is missing), else None."""
    from .video import INSTALL_HINT, _import_av

    return INSTALL_HINT if _import_av() is None else None


class ReviewState(_core.ReviewState):
    """What the server holds (the core's state: info, page, change, redecide, export_csv):
    its source (a :class:`PipelineResult`, or a results table read without its run:
    :class:`deepfaune_rs.review_table.ResultTable`) and the rows the page shows, the journal
    applied. Here only the video keyframes PyAV reads for the page."""

    def __new__(cls, res: Any, journal: str | os.PathLike[str], by: str | None = None) -> Any:
        return super().__new__(cls, res, os.fspath(journal), by, _no_video_picture())

    def __init__(self, res: Any, journal: str | os.PathLike[str], by: str | None = None) -> None:
        self._video_thumbs: dict[tuple, bytes] = {}

    def thumbnail(self, i: int, side: int) -> bytes:
        """Row ``i``'s picture fitting ``side``: an image's made (and cached on disk) by the
        core; a video's is its keyframe, read with PyAV, shrunk by the core, kept in memory."""
        path, video, keyframe = self.picture(i)
        if not video:
            return _core.thumbnail(path, side, cache_dir())
        key = (path, keyframe, side)
        if (jpeg := self._video_thumbs.get(key)) is None:
            from .video import read_frame

            jpeg = _core.thumbnail_rgb(read_frame(path, keyframe or 0), side)
            if len(self._video_thumbs) >= 512:
                self._video_thumbs.clear()
            self._video_thumbs[key] = jpeg
        return jpeg


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store" if ctype != "image/jpeg" else "max-age=3600")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _serve(self, post: bool) -> None:
        url = urllib.parse.urlsplit(self.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        token = (q.get("token") or self.headers.get("X-Token") or "").encode()
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost") or not hmac.compare_digest(
            token, self.server.token.encode()
        ):
            return self._send(403, b"forbidden: open the URL with its token\n", "text/plain")
        st, path = self.server.state, url.path
        kind, _, num = path[1:].partition("/")
        try:
            if post:
                n = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
                body = json.loads(self.rfile.read(n) or b"{}")
                do = {"/api/change": st.change, "/api/redecide": st.redecide}.get(path)
                if do is not None:
                    return self._json(do(body))
            elif path == "/":
                return self._send(200, PAGE.encode(), "text/html; charset=utf-8")
            elif path in ("/api/info", "/api/sequences"):
                return self._json(st.info() if path == "/api/info" else st.page(q))
            elif kind in ("thumb", "full"):
                # Only image numbers of these results: no path ever comes from the request.
                if not (num.isascii() and num.isdigit()) or int(num) >= st.n_images:
                    return self._send(404, b"no such image\n", "text/plain")
                side = THUMB_SIDE if kind == "thumb" else FULL_SIDE
                return self._send(200, st.thumbnail(int(num), side), "image/jpeg")
            elif path == "/api/export.csv":
                attachment = {"Content-Disposition": 'attachment; filename="corrected.csv"'}
                return self._send(200, st.export_csv(), "text/csv; charset=utf-8", attachment)
            self._send(404, b"not found\n", "text/plain")
        except Exception as e:  # noqa: BLE001 - the page shows the reason, the server goes on
            self._json({"error": str(e)}, 400)

    def do_GET(self) -> None:  # noqa: N802 - http.server's names
        self._serve(post=False)

    def do_POST(self) -> None:  # noqa: N802
        self._serve(post=True)


class ReviewServer(ThreadingHTTPServer):
    """The review page's server, on 127.0.0.1 only, on a free port; every request needs the
    token of :attr:`url`."""

    daemon_threads = True

    def __init__(self, state: ReviewState, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.state = state
        self.token = secrets.token_urlsafe(24)
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/?token={self.token}"

    def start(self) -> ReviewServer:
        """Serves on a background thread (notebooks, tests); :meth:`shutdown` stops it."""
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def review(
    res: PipelineResult | ResultTable,
    results: str | os.PathLike[str] | None = None,
    *,
    journal: str | os.PathLike[str] | None = None,
    open_browser: bool = False,
    block: bool = False,
    port: int = 0,
    by: str | None = None,
) -> ReviewServer:
    """Starts the review page for ``res`` (a :class:`PipelineResult`, or a results table read
    without its run: :class:`deepfaune_rs.review_table.ResultTable`); corrections go to
    ``journal`` (default ``<results>.corrections.jsonl``; for a table, beside the table).
    Returns the running server (``.url``, ``.stop()``); ``block=True`` serves until Ctrl-C."""
    if journal is None and results is None and isinstance(res, _core.ResultTable):
        results = res.path
    if journal is None:
        if results is None:
            from .errors import InvalidArgumentError

            raise InvalidArgumentError(
                "review: name the results file (review('results.csv')) or journal= for the "
                "corrections journal"
            )
        journal = journal_path(results)
    server = ReviewServer(ReviewState(res, os.fspath(journal), by=by), port=port)
    print(f"review page: {server.url}", flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(server.url)
    if block:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
        return server
    return server.start()


def load_for_review(
    results: str | os.PathLike[str],
    *,
    detector: str | None = None,
    classifier: str | None = None,
    classifier_manifest: str | None = None,
    score_threshold: float | None = None,
    maxlag_s: float | None = None,
    language: str | None = None,
    disabled_classes: Sequence[str] = (),
    bird_head: bool = False,
    threshold: float | None = None,
) -> PipelineResult:
    """The :class:`PipelineResult` of a finished run, from its checkpoint (``run --resume``
    keeps ``<output>.checkpoint`` beside the table; ``results`` is the table or the checkpoint):
    the run resumed on a copy of the checkpoint, so every image is restored and no model runs,
    and nothing is written beside the results. The models are those the checkpoint names
    (built-in ids) unless given; settings not given are the checkpoint's (``threshold``: the
    old name of ``score_threshold``, deprecated)."""
    import shutil

    from ._renamed import renamed
    from .pipeline import Pipeline

    score_threshold = renamed("score_threshold", score_threshold, "threshold", threshold)
    run = _core.run_of_checkpoint(os.fspath(results))
    pipe = Pipeline(
        run["detector"] if detector is None else detector,
        (run["classifier"] if classifier is None else classifier) or "deepfaune-v15",
        detector_mode=None,
        classifier_manifest=classifier_manifest,
        score_threshold=run["score_threshold"] if score_threshold is None else score_threshold,
        maxlag_s=float(run["maxlag_s"] if maxlag_s is None else maxlag_s),
        language=str(run["language"] if language is None else language),
        disabled_classes=list(disabled_classes),
        bird_head=bird_head,
    )
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "run.checkpoint")
        shutil.copyfile(run["checkpoint"], copy)  # its video lines included
        return pipe.run(
            run["inputs"], progress=False, keep_embeddings=run["keep_embeddings"], checkpoint=copy
        )
