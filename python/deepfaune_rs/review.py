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
#: Sequences per page of the review list.
PAGE_SIZE = 25
#: The page (HTML, CSS and script in one file beside this module).
PAGE = Path(__file__).with_name("review_page.html").read_text(encoding="utf-8")
#: The page's filters (query parameters of ``/api/sequences``).
FILTERS = ("class", "show", "min", "max", "folder", "from", "to")
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
# What the page and the notebooks show of a result.


class Columns:
    """A result's columns as the page and the notebooks read them, taken once (numpy arrays and
    lists); :meth:`row` builds one image's dict on demand, so a page of 100k images only pays
    for the rows it shows."""

    def __init__(self, res: PipelineResult, videos: bool = False) -> None:
        import numpy as np

        det = res.detections
        self.n = len(res)
        self.paths = [os.fspath(p) for p in res.paths]
        #: Each image's name in the journal: its path as the results hold it.
        self.keys = self.paths
        self.folders = [os.path.dirname(p) for p in self.paths]
        self.dates = res.dates
        self.category = np.asarray(det.category)
        self.sizes = np.asarray(det.sizes)
        self.xyxy = np.asarray(det.boxes)
        self.conf = np.asarray(det.confidences)
        self.cls = np.asarray(det.classes)
        self.best = np.asarray(det.best_detection)
        image = np.asarray(det.image_index)
        # Boxes are stored image by image, in order: image i's are first[i]:first[i + 1].
        self.first = np.searchsorted(image, np.arange(self.n + 1), side="left")
        failed = {f["path"] for f in det.failures}
        self.failed = [p in failed for p in self.paths]
        self.seqnum = np.asarray(res.seqnum)
        # Lists and writable copies: a correction changes them in place (apply).
        self.predictionbase, self.prediction, self.top1 = (
            list(res.predictionbase),
            list(res.prediction),
            list(res.top1),
        )
        self.scorebase = np.array(res.scorebase)
        self.score = np.array(res.score)
        self.count = np.asarray(res.count)
        self.humancount = np.asarray(res.humancount)
        self.reviewed = list(res.reviewed)
        #: Rows from ``video_from`` on are videos (``videos=True``), with their keyframes.
        self.video_from = self.n
        self.keyframe: list[int | None] = [None] * self.n
        if videos and res.videos:
            self._add_videos(res.videos, res.video_reviewed)

    def _add_videos(self, videos: Sequence[Any], reviewed: Sequence[dict | None]) -> None:
        """One row per video after the images, each its own sequence (as in the run's table):
        its prediction, its keyframe (the frame the decision came from) and that frame's
        deciding box."""
        import numpy as np

        first_seq = int(self.seqnum.max(initial=0)) + 1
        m = len(videos)
        self.paths = self.keys = self.paths + [v.path for v in videos]
        self.folders = self.folders + [os.path.dirname(v.path) for v in videos]
        self.dates = list(self.dates) + [v.date for v in videos]

        def kind(v: Any) -> int:
            if v.failure is not None or (v.count == 0 and v.humancount == 0):
                return 0
            return 1 if v.count else 2

        boxes, confs, best = [], [], []
        n_boxes = len(self.xyxy)
        for v in videos:
            if v.box is None or v.failure is not None:
                best.append(-1)
                continue
            conf = [
                d.get("conf", 0.0)
                for d in v.detections
                if d.get("frame_number") == v.keyframe
                and [round(float(x), 1) for x in d.get("xyxy", ())]
                == [round(float(x), 1) for x in v.box]
            ]
            best.append(n_boxes + len(boxes))
            boxes.append([float(x) for x in v.box])
            confs.append(float(conf[0]) if conf else 0.0)
        has_box = [b >= 0 for b in best]
        self.category = np.concatenate(
            [self.category, np.array([kind(v) for v in videos], dtype=np.uint8)]
        )
        self.sizes = np.concatenate(
            [self.sizes.reshape(-1, 2), np.array([v.frame_size for v in videos]).reshape(-1, 2)]
        ).astype(np.uint32)
        self.xyxy = np.concatenate([self.xyxy.reshape(-1, 4), np.array(boxes).reshape(-1, 4)])
        self.conf = np.concatenate([self.conf, np.array(confs, dtype=np.float32)])
        self.cls = np.concatenate([self.cls, np.zeros(len(boxes), dtype=self.cls.dtype)])
        self.best = np.concatenate([self.best, np.array(best, dtype=np.int64)])
        self.first = np.concatenate([self.first, self.first[-1] + np.cumsum(has_box)])
        self.failed = self.failed + [v.failure is not None for v in videos]
        self.seqnum = np.concatenate([self.seqnum, first_seq + np.arange(m)])
        self.predictionbase = self.predictionbase + [v.prediction for v in videos]
        self.prediction = self.prediction + [v.prediction for v in videos]
        self.top1 = self.top1 + [v.top1 for v in videos]
        scores = np.array([v.score for v in videos], dtype=self.score.dtype)
        self.scorebase = np.concatenate([self.scorebase, scores])
        self.score = np.concatenate([self.score, scores])
        self.count = np.concatenate([self.count, np.array([v.count for v in videos])])
        self.humancount = np.concatenate(
            [self.humancount, np.array([v.humancount for v in videos])]
        )
        self.reviewed = self.reviewed + list(reviewed)
        self.keyframe = self.keyframe + [v.keyframe for v in videos]
        self.n += m

    @classmethod
    def from_fields(cls, /, **fields: Any) -> Columns:
        """Columns given one by one (a table read without its run: review_table.py)."""
        self = cls.__new__(cls)
        self.__dict__.update(fields)
        return self

    def apply(self, entry: dict[str, Any], start: int = 0) -> list[int]:
        """One journal line (``_core.append_correction``'s answer) applied to these columns in
        place, as the core's ``apply_corrections`` applies it: each named image relabelled gets
        the label with score 1.0 as its own, its sequence's and its top1; its review state
        merges (a label or a verification stays until replaced). Costs the size of the
        change, not of the run (the page's relabel); rows before ``start`` are left alone.
        Returns the row numbers changed."""
        index = self.__dict__.get("_index")
        if index is None:
            index = self._index = {k: i for i, k in enumerate(self.keys)}
        label = entry.get("label")
        changed = []
        for f in entry["files"]:
            i = index.get(f)
            if i is None or i < start:
                continue
            before = self.reviewed[i] or {}
            if label is not None:
                self.predictionbase[i] = self.prediction[i] = self.top1[i] = label
                self.scorebase[i] = self.score[i] = 1.0
            self.reviewed[i] = {
                "label": label if label is not None else before.get("label"),
                "verified": bool(entry.get("verified")) or bool(before.get("verified")),
                "by": entry.get("by"),
                "time": entry["time"],
            }
            changed.append(i)
        return changed

    def row_is_video(self, i: int) -> bool:
        return i >= self.__dict__.get("video_from", self.n)

    def boxes(self, i: int) -> list[list[Any]]:
        out = []
        for k in range(int(self.first[i]), int(self.first[i + 1])):
            b = [round(float(v), 1) for v in self.xyxy[k]]
            out.append(
                [*b, int(self.cls[k]), round(float(self.conf[k]), 3), bool(self.best[i] == k)]
            )
        return out

    def row(self, i: int) -> dict[str, Any]:
        p = self.paths[i]
        return {
            "id": i,
            "path": p,
            "name": os.path.basename(p),
            "folder": self.folders[i],
            "w": int(self.sizes[i][0]),
            "h": int(self.sizes[i][1]),
            "date": self.dates[i],
            "category": int(self.category[i]),
            "failed": self.failed[i],
            "boxes": self.boxes(i),
            "seqnum": int(self.seqnum[i]),
            "predictionbase": self.predictionbase[i],
            "scorebase": round(float(self.scorebase[i]), 2),
            "prediction": self.prediction[i],
            "score": round(float(self.score[i]), 2),
            "top1": self.top1[i],
            "count": int(self.count[i]),
            "humancount": int(self.humancount[i]),
            "reviewed": self.reviewed[i],
            "video": self.row_is_video(i),
            "keyframe": self.keyframe[i] if self.row_is_video(i) else None,
            "unavailable": _video_unavailable(self.failed[i]) if self.row_is_video(i) else None,
        }


def _video_unavailable(failed: bool) -> str | None:
    """Why a video row has no picture (PyAV missing here, or the video could not be read),
    else None."""
    from .video import INSTALL_HINT, _import_av

    if _import_av() is None:
        return f"no keyframe picture: {INSTALL_HINT}"
    return "no keyframe picture: the video could not be read" if failed else None


def image_rows(res: PipelineResult) -> list[dict[str, Any]]:
    """One dict per image: index, path, size, date, category, boxes (``[x1, y1, x2, y2,
    category, confidence, classified]`` in upright pixels), labels and review state."""
    cols = Columns(res)
    return [cols.row(i) for i in range(cols.n)]


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
    cols = Columns(res)
    row = cols.row(_find(cols, which))
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
    kinds = {"empty": 0, "animal": 1, "person": 2, "vehicle": 3}
    if kind is not None and kind not in kinds and kind != "failed":
        raise ValueError(f"kind '{kind}': use {', '.join(kinds)} or failed")
    cols = Columns(res)
    picked = []
    for i in range(cols.n):
        if prediction is not None and cols.prediction[i] != prediction:
            continue
        if kind == "failed" and not cols.failed[i]:
            continue
        if kind in kinds and (cols.category[i] != kinds[kind] or cols.failed[i]):
            continue
        picked.append(i)
        if len(picked) == n:
            break
    parts = []
    for i in picked:
        r = cols.row(i)
        try:
            jpeg = _core.thumbnail(r["path"], max(width, 64), cache_dir())
        except Exception as e:  # noqa: BLE001 - an unreadable image is shown as such
            parts.append(f"<div>{html.escape(r['name'])}: {html.escape(str(e))}</div>")
            continue
        parts.append(figure_html(r, jpeg, width, label_px=12))
    return Html(f"<div>{''.join(parts) or 'no image matches'}</div>")


def _find(cols: Columns, which: int | str | os.PathLike[str]) -> int:
    if isinstance(which, (int,)) and not isinstance(which, bool):
        if not -cols.n <= which < cols.n:
            raise IndexError(f"image {which} out of range ({cols.n} images)")
        return which % cols.n
    w = os.fspath(which)
    for i, p in enumerate(cols.paths):
        if p == w or os.path.basename(p) == w:
            return i
    raise KeyError(f"no image named {w!r} in these results")


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

    def columns(self, journal: str) -> Columns:
        return Columns(self.corrected(journal), videos=True)

    def redecide(self, **kwargs: Any) -> _RunSource:
        return _RunSource(self.loaded.redecide(**kwargs), self.loaded)

    def export_csv(self, journal: str, cols: Columns) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "corrected.csv")
            self.corrected(journal).to_csv(out)
            with open(out, "rb") as f:
                return f.read()


class ReviewState:
    """What the server holds: its source (a :class:`PipelineResult`, or a results table read
    without its run: :class:`deepfaune_rs.review_table.ResultTable`) and the columns the page
    shows, the journal applied (``cols``), its images grouped into sequences. Loading (and
    re-deciding) applies the whole journal; a change applies its own line only
    (:meth:`Columns.apply`)."""

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
        import numpy as np

        self.cols = cols = self.source.columns(self.journal)
        order = np.argsort(cols.seqnum, kind="stable").tolist()
        seqnum = cols.seqnum.tolist()
        self.sequences: list[list[int]] = []
        last = None
        for i in order:
            if seqnum[i] != last:
                self.sequences.append([])
                last = seqnum[i]
            self.sequences[-1].append(i)
        self._predictions = set(cols.prediction)
        self._folders = sorted(set(cols.folders))
        self._picked: dict[tuple, list[list[int]]] = {}

    @property
    def n_images(self) -> int:
        return self.cols.n

    def thumbnail(self, i: int, side: int) -> bytes:
        """Row ``i``'s picture fitting ``side``: an image's made (and cached on disk) by the
        core; a video's is its keyframe, read with PyAV, shrunk by the core, kept in memory."""
        if not self.cols.row_is_video(i):
            return _core.thumbnail(self.cols.paths[i], side, cache_dir())
        key = (self.cols.paths[i], self.cols.keyframe[i], side)
        jpeg = self._video_thumbs.get(key)
        if jpeg is None:
            from .video import read_frame

            frame = read_frame(self.cols.paths[i], self.cols.keyframe[i] or 0)
            jpeg = _core.thumbnail_rgb(frame, side)
            if len(self._video_thumbs) >= 512:
                self._video_thumbs.clear()
            self._video_thumbs[key] = jpeg
        return jpeg

    def path(self, i: int) -> str:
        return self.cols.paths[i]

    def info(self) -> dict[str, Any]:
        return {
            "images": self.cols.n,
            "sequences": len(self.sequences),
            "labels": self.source.labels,
            "predictions": sorted(self._predictions),
            "folders": self._folders,
            "settings": self.source.settings,
            "presets": list_presets(),
            "journal": self.journal,
            "unavailable": self.source.unavailable,
        }

    def page(self, q: dict[str, str]) -> dict[str, Any]:
        offset = max(int(q.get("offset", 0) or 0), 0)
        limit = min(max(int(q.get("limit", PAGE_SIZE) or PAGE_SIZE), 1), 200)
        key = tuple("" if q.get(k) in (None, "all") else q[k] for k in FILTERS)
        if key not in self._picked:  # paging through one filter tests the sequences once
            if any(key):
                test = _matcher(self.cols, q)
                self._picked = {key: [s for s in self.sequences if test(s)]}
            else:
                self._picked = {key: self.sequences}
        picked = self._picked[key]
        items = [self._sequence_json(s) for s in picked[offset : offset + limit]]
        return {"total": len(picked), "offset": offset, "limit": limit, "items": items}

    def _sequence_json(self, members: list[int]) -> dict[str, Any]:
        rows = [self.cols.row(i) for i in members]
        first = rows[0]
        dates = [r["date"] for r in rows if r["date"]]
        return {
            "seqnum": first["seqnum"],
            "prediction": first["prediction"],
            "score": first["score"],
            "top1": first["top1"],
            "count": max(r["count"] for r in rows),
            "date": min(dates) if dates else None,
            "folder": first["folder"],
            "verified": all((r["reviewed"] or {}).get("verified") for r in rows),
            "images": [
                {
                    k: r[k]
                    for k in (
                        *("id", "name", "w", "h", "boxes", "date", "failed", "reviewed"),
                        *("video", "keyframe", "unavailable"),
                    )
                }
                | {
                    "label": r["predictionbase"],
                    "score": r["scorebase"],
                    "prediction": r["prediction"],
                }
                for r in rows
            ],
        }

    def change(self, body: dict[str, Any]) -> dict[str, Any]:
        ids = [int(i) for i in body.get("ids", [])]
        if not ids or any(not 0 <= i < self.cols.n for i in ids):
            raise ValueError("ids: give image numbers of these results")
        label = body.get("label")
        if label is not None and label not in self.source.labels:
            raise ValueError(f"'{label}' is not one of the labels")
        scope = body.get("scope", "image")
        if scope not in ("image", "sequence", "page"):
            raise ValueError("scope: image, sequence or page")
        entry = _core.append_correction(
            self.journal,
            [self.cols.keys[i] for i in ids],
            label=label,
            verified=bool(body.get("verified", label is not None)),
            scope=scope,
            by=self.by,
        )
        # This line only, applied to the columns shown: a relabel costs its own size.
        self.cols.apply(entry)
        if label is not None:
            self._predictions.add(label)
        self._picked = {}
        return entry

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
        return self.source.export_csv(self.journal, self.cols)


def _norm_date(d: str | None) -> str | None:
    """EXIF ``YYYY:MM:DD HH:MM:SS`` as ``YYYY-MM-DD HH:MM:SS`` (comparable to a date input)."""
    return None if d is None else d[:10].replace(":", "-") + d[10:]


def _matcher(c: Columns, q: dict[str, str]) -> Any:
    """The filter of the page's query: a test on a sequence (its image numbers)."""
    cls = q.get("class") or ""
    show = q.get("show") or "all"
    lo, hi = q.get("min") or "", q.get("max") or ""
    lo_f, hi_f = (float(lo) if lo else None), (float(hi) if hi else None)
    folder = q.get("folder") or ""
    start, end = q.get("from") or "", q.get("to") or ""

    def test(seq: list[int]) -> bool:
        i = seq[0]
        pred = c.prediction[i]
        if cls and pred != cls:
            return False
        if show == "undefined" and c.top1[i] == pred:
            return False
        if show == "empty" and any(c.category[k] != 0 for k in seq):
            return False
        if show == "human" and not any(c.category[k] == 2 for k in seq):
            return False
        if show == "failed" and not any(c.failed[k] for k in seq):
            return False
        if show == "unverified" and all((c.reviewed[k] or {}).get("verified") for k in seq):
            return False
        score = round(float(c.score[i]), 2)
        if lo_f is not None and score < lo_f:
            return False
        if hi_f is not None and score > hi_f:
            return False
        if folder and c.folders[i] != folder:
            return False
        if start or end:
            dates = [d for d in (_norm_date(c.dates[k]) for k in seq) if d]
            if not dates:
                return False
            if start and max(dates) < start:
                return False
            if end and min(dates)[:10] > end:
                return False
        return True

    return test


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
    from .errors import InvalidArgumentError
    from .pipeline import Pipeline

    score_threshold = renamed("score_threshold", score_threshold, "threshold", threshold)
    path = os.fspath(results)
    checkpoint = path if path.endswith(".checkpoint") else path + ".checkpoint"
    if not os.path.isfile(checkpoint):
        raise InvalidArgumentError(
            f"{checkpoint}: no checkpoint of the run; review needs the run's logits and boxes: "
            "run it with --resume (which keeps OUTPUT.checkpoint)"
        )
    with open(checkpoint, encoding="utf-8") as f:
        try:
            header = json.loads(f.readline())
            fp = header["fingerprint"]
        except (ValueError, KeyError, TypeError):
            raise InvalidArgumentError(f"{checkpoint} is not a deepfaune-rs checkpoint") from None
    if "detections" in fp:
        raise InvalidArgumentError(
            f"{checkpoint}: a run over a MegaDetector file (--detections) cannot be reviewed "
            "from its checkpoint yet"
        )
    settings = fp.get("settings") or {}
    if detector is None:
        ids = [fp["detector"]["id"]] + ([fp["secondary"]["id"]] if fp.get("secondary") else [])
        modes = {("Backstop", "df", "mds"): "DFbsMDS", ("Ensemble", "df", "mds"): "DFMDS"}
        detector = modes.get((fp.get("mode"), *ids), ids[0]) if len(ids) > 1 else ids[0]
    if classifier is None:
        classifier = (fp.get("classifier") or {}).get("id")
    pipe = Pipeline(
        detector,
        classifier or "deepfaune-v15",
        detector_mode=None,
        classifier_manifest=classifier_manifest,
        # The checkpoint records the score threshold as "threshold"; without it, the manifest's.
        score_threshold=settings.get("threshold") if score_threshold is None else score_threshold,
        maxlag_s=float(settings.get("maxlag_s", 10) if maxlag_s is None else maxlag_s),
        language=str(settings.get("language", "en") if language is None else language),
        disabled_classes=list(disabled_classes),
        bird_head=bird_head,
    )
    inputs = [str(p) for p in settings.get("inputs", [])]
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "run.checkpoint")
        shutil.copyfile(checkpoint, copy)  # its video lines included
        return pipe.run(
            inputs,
            progress=False,
            keep_embeddings=bool(settings.get("keep_embeddings", True)),
            checkpoint=copy,
        )
