"""Stage 10 (review): seeing and correcting results: the review page (a local web server),
notebook pictures, and the saved class presets.

Only glue lives here: the HTTP server, the page, and the notebook HTML. Thumbnails
(``_core.thumbnail``: decode with EXIF orientation, resize, disk cache), the corrections journal
(``_core.append_correction``; applied by ``PipelineResult.apply_corrections``) and re-deciding
(``PipelineResult.redecide``) are the Rust core's.
"""

from __future__ import annotations

import base64
import hmac
import html
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

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import PipelineResult
    from .review_table import ResultTable

#: Longest side of the page's thumbnails and of the full-size view, in pixels.
THUMB_SIDE = 256
FULL_SIDE = 1600
#: The page (HTML, CSS and script in one file beside this module).
PAGE = Path(__file__).with_name("review_page.html").read_text(encoding="utf-8")
#: Box colours by detection category (animal, person, vehicle).
BOX_COLOURS = ("#ff3b30", "#0a84ff", "#bf5af2")


def journal_path(results: str | os.PathLike[str]) -> str:
    """The corrections journal beside a results file: ``<results>.corrections.jsonl``."""
    return os.fspath(results) + ".corrections.jsonl"


def cache_dir() -> str:
    """Where thumbnails are cached (``$DEEPFAUNE_RS_CACHE`` or ``~/.cache/deepfaune-rs``,
    then ``thumbnails/``): never beside the images or the results."""
    base = os.environ.get("DEEPFAUNE_RS_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "deepfaune-rs"
    )
    return os.path.join(base, "thumbnails")


# ---------------------------------------------------------------------------------------------
# Presets: a region's species list as the classes to switch off.


def presets_dir() -> str:
    """Where presets are saved (``$DEEPFAUNE_RS_PRESETS`` or ``~/.config/deepfaune-rs/presets``)."""
    return os.environ.get("DEEPFAUNE_RS_PRESETS") or os.path.join(
        os.path.expanduser("~"), ".config", "deepfaune-rs", "presets"
    )


def _preset_file(name: str) -> str:
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        from .errors import InvalidArgumentError

        raise InvalidArgumentError(
            f"preset name '{name}': use letters, digits, '-', '_' and '.' only"
        )
    return os.path.join(presets_dir(), name + ".json")


def save_preset(name: str, disabled_classes: Sequence[str]) -> str:
    """Saves ``disabled_classes`` (say, the species absent from a region) as preset ``name``;
    returns the file. Use it with ``result.redecide(preset=name)``."""
    from ._files import atomic_open

    path = _preset_file(name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump({"disabled_classes": list(disabled_classes)}, f, indent=1)
    return path


def load_preset(name: str) -> list[str]:
    """The ``disabled_classes`` of a saved preset."""
    path = _preset_file(name)
    try:
        with open(path, encoding="utf-8") as f:
            return [str(c) for c in json.load(f)["disabled_classes"]]
    except FileNotFoundError:
        from .errors import InvalidArgumentError

        raise InvalidArgumentError(
            f"no preset '{name}' in {presets_dir()} (save one with save_preset)"
        ) from None


def list_presets() -> list[str]:
    """Names of the saved presets."""
    try:
        return sorted(f[:-5] for f in os.listdir(presets_dir()) if f.endswith(".json"))
    except FileNotFoundError:
        return []


# ---------------------------------------------------------------------------------------------
# What the page and the notebooks show of a result: the core's rows (``_core.ReviewRows``).


def _no_video_picture() -> str | None:
    """Why no video row has a picture here (PyAV is missing), else None."""
    from .video import INSTALL_HINT, _import_av

    return INSTALL_HINT if _import_av() is None else None


def image_rows(res: PipelineResult) -> list[dict[str, Any]]:
    """One dict per image: index, path, size, date, category, boxes (``[x1, y1, x2, y2,
    category, confidence, classified]`` in upright pixels), labels and review state."""
    rows = res.review_rows(videos=False)
    return [json.loads(rows.row(i)) for i in range(len(rows))]


def _svg_boxes(row: dict[str, Any], label_px: float) -> str:
    """SVG boxes over an image in a ``viewBox`` of its upright pixels; the classified box carries
    the image's label and every box its confidence, in text ``label_px`` screen pixels high
    whatever the picture's size (the overlay's own coordinate system is the image's)."""
    w, h = max(row["w"], 1), max(row["h"], 1)
    parts = [
        f'<svg class="boxes" viewBox="0 0 {w} {h}" preserveAspectRatio="none" '
        'style="position:absolute;left:0;top:0;width:100%;height:100%;overflow:visible">'
    ]
    for x1, y1, x2, y2, cat, _conf, _classified in row["boxes"]:
        colour = BOX_COLOURS[cat] if 0 <= cat < len(BOX_COLOURS) else "#ffffff"
        parts.append(
            f'<rect x="{x1:.1f}" y="{y1:.1f}" width="{x2 - x1:.1f}" height="{y2 - y1:.1f}" '
            f'fill="none" stroke="{colour}" stroke-width="3" vector-effect="non-scaling-stroke"/>'
        )
    parts.append("</svg>")
    # Labels as HTML over the SVG: sharp and readable at any picture size.
    for x1, y1, _x2, _y2, cat, conf, classified in row["boxes"]:
        colour = BOX_COLOURS[cat] if 0 <= cat < len(BOX_COLOURS) else "#ffffff"
        kind = ("animal", "person", "vehicle")[cat] if 0 <= cat < 3 else "?"
        text = f"{row['predictionbase']} {row['scorebase']:.2f}" if classified else kind
        text += f" ({conf:.2f})"
        parts.append(
            f'<span class="boxlabel" style="position:absolute;left:{100 * x1 / w:.2f}%;'
            f"top:{100 * y1 / h:.2f}%;transform:translateY(-100%);background:{colour};"
            f"color:#fff;font:600 {label_px}px/1.25 sans-serif;padding:0 3px;"
            f'white-space:nowrap">{html.escape(text)}</span>'
        )
    return "".join(parts)


def figure_html(row: dict[str, Any], jpeg: bytes, width_px: int, label_px: float = 14) -> str:
    """An image with its boxes and labels as self-contained HTML (notebooks)."""
    data = base64.b64encode(jpeg).decode("ascii")
    caption = (
        f"{html.escape(row['name'])}: {html.escape(row['prediction'])} "
        f"{row['score']:.2f} (image: {html.escape(row['predictionbase'])} "
        f"{row['scorebase']:.2f}), seq {row['seqnum']}, {row['date'] or 'no date'}"
    )
    return (
        f'<figure style="display:inline-block;margin:4px;width:{width_px}px">'
        f'<div style="position:relative;width:{width_px}px">'
        f'<img src="data:image/jpeg;base64,{data}" style="display:block;width:100%"/>'
        f"{_svg_boxes(row, label_px)}</div>"
        f'<figcaption style="font:13px sans-serif">{caption}</figcaption></figure>'
    )


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
    rows = res.review_rows(videos=False)
    if isinstance(which, int) and not isinstance(which, bool):
        if not -len(rows) <= which < len(rows):
            raise IndexError(f"image {which} out of range ({len(rows)} images)")
        i: int | None = which % len(rows)
    else:
        i = rows.find(os.fspath(which))
        if i is None:
            raise KeyError(f"no image named {os.fspath(which)!r} in these results")
    row = json.loads(rows.row(i))
    jpeg = _core.thumbnail(row["path"], max(width, 64), cache_dir())
    return Html(figure_html(row, jpeg, width))


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
    rows = res.review_rows(videos=False)
    parts = []
    for i in rows.pick(prediction, kind, n):
        r = json.loads(rows.row(i))
        try:
            jpeg = _core.thumbnail(r["path"], max(width, 64), cache_dir())
        except Exception as e:  # noqa: BLE001 - an unreadable image is shown as such
            parts.append(f"<div>{html.escape(r['name'])}: {html.escape(str(e))}</div>")
            continue
        parts.append(figure_html(r, jpeg, width, label_px=12))
    return Html(f"<div>{''.join(parts) or 'no image matches'}</div>")


def summary_html(res: PipelineResult) -> str:
    """``_repr_html_`` of a result: counts per prediction and a few pictures."""
    from collections import Counter

    counts = Counter(res.prediction)
    table = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in counts.most_common()
    )
    n_seq = int(res.seqnum.max(initial=0))
    head = (
        f"<b>PipelineResult</b>: {len(res)} images, {n_seq} sequences, "
        f"{len(res.videos)} videos, {len(res.failures)} failures"
    )
    pictures = gallery(res, n=4, width=200, kind="animal").markup if len(res) else ""
    return (
        f"<div>{head}<table><tr><th>prediction</th><th>images</th></tr>{table}</table>"
        f"{pictures}</div>"
    )


# ---------------------------------------------------------------------------------------------
# The review server.


class _RunSource:
    """A :class:`PipelineResult` as the page's source: the run as loaded (``loaded``) and
    re-decided on request (``base``); the journal is applied by the core."""

    unavailable: list[str] = []

    def __init__(self, base: PipelineResult, loaded: PipelineResult | None = None) -> None:
        self.base = base
        self.loaded = base if loaded is None else loaded
        self.labels = base.labels
        self.settings = base.settings

    def corrected(self, journal: str) -> PipelineResult:
        return self.base.apply_corrections(journal) if os.path.exists(journal) else self.base

    def rows(self, journal: str) -> _core.ReviewRows:
        return self.corrected(journal).review_rows()

    def redecide(self, **kwargs: Any) -> _RunSource:
        return _RunSource(self.loaded.redecide(**kwargs), self.loaded)

    def export_csv(self, journal: str, rows: _core.ReviewRows) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "corrected.csv")
            self.corrected(journal).to_csv(out)
            with open(out, "rb") as f:
                return f.read()


class ReviewState:
    """What the server holds: its source (a :class:`PipelineResult`, or a results table read
    without its run: :class:`deepfaune_rs.review_table.ResultTable`) and the rows the page
    shows, the journal applied (``rows``, the core's ``ReviewRows``: filtering, paging and
    counting are theirs). Loading (and re-deciding) applies the whole journal; a change
    applies its own line only."""

    def __init__(self, res: Any, journal: str, by: str | None = None) -> None:
        from .review_table import ResultTable

        self.source: Any = res if isinstance(res, ResultTable) else _RunSource(res)
        self.journal = journal
        self.by = by
        self.lock = threading.Lock()
        self._video_thumbs: dict[tuple, bytes] = {}
        self.refresh()

    def refresh(self) -> None:
        """The whole journal applied again to the source (load, reload, re-decide)."""
        self.rows = self.source.rows(self.journal)
        self.rows.set_no_video_picture(_no_video_picture())

    @property
    def n_images(self) -> int:
        return len(self.rows)

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i`` as the page shows it (its JSON)."""
        return json.loads(self.rows.row(i))

    def thumbnail(self, i: int, side: int) -> bytes:
        """Row ``i``'s picture fitting ``side``: an image's made (and cached on disk) by the
        core; a video's is its keyframe, read with PyAV, shrunk by the core, kept in memory."""
        path, video, keyframe = self.rows.picture(i)
        if not video:
            return _core.thumbnail(path, side, cache_dir())
        key = (path, keyframe, side)
        jpeg = self._video_thumbs.get(key)
        if jpeg is None:
            from .video import read_frame

            jpeg = _core.thumbnail_rgb(read_frame(path, keyframe or 0), side)
            if len(self._video_thumbs) >= 512:
                self._video_thumbs.clear()
            self._video_thumbs[key] = jpeg
        return jpeg

    def info(self) -> dict[str, Any]:
        return {
            "images": len(self.rows),
            "sequences": self.rows.n_sequences,
            "labels": self.source.labels,
            "predictions": self.rows.predictions,
            "folders": self.rows.folders,
            "settings": self.source.settings,
            "presets": list_presets(),
            "journal": self.journal,
            "unavailable": self.source.unavailable,
        }

    def page(self, q: dict[str, str]) -> dict[str, Any]:
        """A page of the sequences the query's filter keeps (``offset``, ``limit``)."""
        return json.loads(self.rows.page({k: str(v) for k, v in q.items()}))

    def change(self, body: dict[str, Any]) -> dict[str, Any]:
        label = body.get("label")
        return self.rows.change(
            self.journal,
            [int(i) for i in body.get("ids", [])],
            label=label,
            verified=bool(body.get("verified", label is not None)),
            scope=str(body.get("scope", "image")),
            by=self.by,
        )

    def redecide(self, body: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        # The page's "threshold" is the score threshold.
        for k, name in (("threshold", "score_threshold"), ("maxlag_s", "maxlag_s")):
            if body.get(k) not in (None, ""):
                kwargs[name] = float(body[k])
        if body.get("preset"):
            kwargs["disabled_classes"] = load_preset(str(body["preset"]))
        elif body.get("disabled_classes") is not None:
            kwargs["disabled_classes"] = [str(c) for c in body["disabled_classes"]]
        if body.get("class_thresholds") is not None:
            kwargs["class_thresholds"] = {
                str(k): float(v) for k, v in dict(body["class_thresholds"]).items()
            }
        if body.get("save_preset"):
            save_preset(str(body["save_preset"]), kwargs.get("disabled_classes", []))
        if self.source.unavailable and self.source.unavailable[0].startswith("re-deciding"):
            raise ValueError(self.source.unavailable[0])
        self.source = self.source.redecide(**kwargs)
        self.refresh()
        return self.info()

    def export_csv(self) -> bytes:
        return self.source.export_csv(self.journal, self.rows)


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass

    def _allowed(self, query: dict[str, str]) -> bool:
        token = query.get("token") or self.headers.get("X-Token") or ""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        return host in ("127.0.0.1", "localhost") and hmac.compare_digest(
            token.encode(), self.server.token.encode()
        )

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

    def _route(self) -> tuple[str, dict[str, str]] | None:
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        if not self._allowed(query):
            self._send(403, b"forbidden: open the URL with its token\n", "text/plain")
            return None
        return url.path, query

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        routed = self._route()
        if routed is None:
            return
        path, q = routed
        st = self.server.state
        try:
            if path == "/":
                self._send(200, PAGE.encode(), "text/html; charset=utf-8")
            elif path == "/api/info":
                with st.lock:
                    self._json(st.info())
            elif path == "/api/sequences":
                with st.lock:
                    self._json(st.page(q))
            elif path.startswith("/thumb/") or path.startswith("/full/"):
                kind, _, num = path[1:].partition("/")
                # Only image numbers of these results: no path ever comes from the request.
                if not (num.isascii() and num.isdigit()) or int(num) >= st.n_images:
                    self._send(404, b"no such image\n", "text/plain")
                    return
                side = THUMB_SIDE if kind == "thumb" else FULL_SIDE
                self._send(200, st.thumbnail(int(num), side), "image/jpeg")
            elif path == "/api/export.csv":
                with st.lock:
                    body = st.export_csv()
                self._send(
                    200,
                    body,
                    "text/csv; charset=utf-8",
                    {"Content-Disposition": 'attachment; filename="corrected.csv"'},
                )
            else:
                self._send(404, b"not found\n", "text/plain")
        except Exception as e:  # noqa: BLE001 - the page shows the reason, the server goes on
            self._json({"error": str(e)}, 400)

    def do_POST(self) -> None:  # noqa: N802
        routed = self._route()
        if routed is None:
            return
        path, _ = routed
        st = self.server.state
        try:
            n = min(int(self.headers.get("Content-Length") or 0), 1 << 20)
            body = json.loads(self.rfile.read(n) or b"{}")
            with st.lock:
                if path == "/api/change":
                    self._json(st.change(body))
                elif path == "/api/redecide":
                    self._json(st.redecide(body))
                else:
                    self._send(404, b"not found\n", "text/plain")
        except Exception as e:  # noqa: BLE001
            self._json({"error": str(e)}, 400)


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
    from .review_table import ResultTable

    if journal is None and results is None and isinstance(res, ResultTable):
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
