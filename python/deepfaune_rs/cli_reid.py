"""``deepfaune-rs reid build|query|update|eval``: lynx-id's workflow on the command line.

- ``build``: embed labelled pictures (a CSV ``filepath,lynx_id[,date,location]``) into a new
  knowledge base folder (``informations.csv`` + ``embeddings.safetensors``).
- ``query``: embed new pictures and write lynx-id's results table (``individual_predicted``,
  ``is_new``, ``latest_picture_individual_predicted``, ``location_closest_individual``,
  ``neighbor_1..5``) plus their embeddings, as lynx-id's ``infer`` does.
- ``update``: merge a (checked) results table and its embeddings into the base on ``filepath``,
  as lynx-id's ``knowledge_base`` script does.
- ``eval``: retrieval figures for labelled queries (top-1, CMC@k, mAP@k, "new" precision/recall),
  the threshold chosen on a validation split.

Crops: MegaDetector-style columns ``bbox_x,bbox_y,bbox_w,bbox_h`` (normalised) in the CSV, else
``--boxes`` (a MegaDetector batch JSON), else the detector's animal crop (``--detector``), else
the whole image with ``--whole-image``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

EXIT_OK, EXIT_ERROR, EXIT_FAILURES = 0, 1, 3
BBOX = ["bbox_x", "bbox_y", "bbox_w", "bbox_h"]


def _embedding_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="yolox-embed", help="embedding manifest id or .toml")
    p.add_argument("--weights", default=None, help="the model's .onnx (else the model directory)")
    p.add_argument("--boxes", default=None, help="MegaDetector batch JSON with the animal boxes")
    p.add_argument("--detector", default="md-lite", help="detector for crops when no boxes")
    p.add_argument("--whole-image", action="store_true", help="embed whole images, no crops")
    p.add_argument("--batch-size", type=int, default=8)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds ``reid`` and its subcommands to the main parser's subparsers."""
    reid = sub.add_parser("reid", help="individual re-identification (lynx-id)")
    rs = reid.add_subparsers(dest="reid_command", required=True)

    b = rs.add_parser("build", help="create a knowledge base from labelled pictures")
    b.add_argument("labels", help="CSV with filepath, lynx_id (optional date, location, bbox_*)")
    b.add_argument("-o", "--output", required=True, help="knowledge base folder to write")
    _embedding_args(b)

    q = rs.add_parser("query", help="identify new pictures against a knowledge base")
    q.add_argument("kb", help="knowledge base folder")
    q.add_argument("inputs", help="CSV with filepath (optional date, location, bbox_*) or a folder")
    q.add_argument("-o", "--output", required=True, help="results CSV (lynx-id's columns)")
    q.add_argument("--embeddings-output", default=None, help="safetensors of the query embeddings")
    q.add_argument("-k", type=int, default=5, help="neighbours per query")
    g = q.add_mutually_exclusive_group()
    g.add_argument("--threshold", type=float, default=None, help="cosine distance for 'new'")
    g.add_argument("--gaussian", action="store_true", help="lynx-id's per-dimension Gaussian test")
    q.add_argument("--seed", type=int, default=None, help="seed for the ids of new individuals")
    _embedding_args(q)

    u = rs.add_parser("update", help="merge checked results into a knowledge base")
    u.add_argument("kb", help="knowledge base folder")
    u.add_argument("results", help="CSV with filepath and individual_predicted (or lynx_id)")
    u.add_argument("embeddings", help="safetensors with the results' embeddings (key embeddings)")
    u.add_argument("-o", "--output", default=None, help="write here instead of over the base")

    e = rs.add_parser("eval", help="retrieval figures for labelled queries")
    e.add_argument("kb", help="knowledge base folder")
    e.add_argument("labels", help="CSV with filepath, lynx_id ('New' or absent id = new)")
    e.add_argument("-k", type=int, default=5)
    e.add_argument("--threshold", type=float, default=None, help="fixed threshold (no sweep)")
    e.add_argument("--validation-fraction", type=float, default=0.5)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--query-embeddings", default=None, help="precomputed safetensors, same order")
    e.add_argument("-o", "--output", default=None, help="write the figures as JSON here")
    _embedding_args(e)
    return reid


def _read_table(path: str) -> Any:
    import pandas as pd

    p = Path(path)
    if p.is_dir():
        exts = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
        files = sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in exts)
        return pd.DataFrame({"filepath": files})
    df = pd.read_csv(p)
    if "filepath" not in df.columns:
        raise SystemExit(f"deepfaune-rs: error: {path} has no 'filepath' column")
    base = p.parent
    df["filepath"] = [
        f if os.path.isabs(f) or os.path.exists(f) else str(base / f) for f in df["filepath"]
    ]
    return df


def _embed(df: Any, args: argparse.Namespace) -> tuple[np.ndarray, list[tuple[int, str]]]:
    from .reid import Embedder, boxes_from_megadetector

    emb = Embedder(args.model, weights=args.weights)
    paths = df["filepath"].tolist()
    if all(c in df.columns for c in BBOX):
        res = emb.embed(
            paths,
            df[BBOX].to_numpy(np.float64),
            box_format="megadetector",
            batch_size=args.batch_size,
        )
    elif args.boxes:
        files, boxes = boxes_from_megadetector(args.boxes)
        by_name = {os.path.normpath(f): b for f, b in zip(files, boxes)}
        nan = np.full(4, np.nan, np.float64)
        rows = [by_name.get(os.path.normpath(p), by_name.get(Path(p).name, nan)) for p in paths]
        res = emb.embed(
            paths, np.stack(rows), box_format="megadetector", batch_size=args.batch_size
        )
    elif args.whole_image:
        res = emb.embed(paths, batch_size=args.batch_size)
    else:
        from .detect import Detector

        res = emb.embed(paths, detector=Detector(args.detector), batch_size=args.batch_size)
    for i, reason in res.failures:
        print(f"  {paths[i]}: {reason}", file=sys.stderr)
    return res.embeddings, res.failures


def _col(df: Any, name: str) -> list | None:
    if name not in df.columns:
        return None
    return [
        None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in df[name]
    ]


def _ids(df: Any) -> list:
    for c in ("lynx_id", "individual_id", "individual_predicted"):
        if c in df.columns:
            return _col(df, c)
    raise SystemExit("deepfaune-rs: error: no lynx_id / individual_predicted column")


def _cmd_build(args: argparse.Namespace) -> int:
    from .reid import KnowledgeBase

    df = _read_table(args.labels)
    emb, failures = _embed(df, args)
    ok = np.isfinite(emb).all(axis=1)
    kb = KnowledgeBase(emb.shape[1])
    ids = _ids(df)
    keep = [i for i in range(len(df)) if ok[i]]
    pick = lambda v: None if v is None else [v[i] for i in keep]  # noqa: E731
    kb.add(
        pick(df["filepath"].tolist()),
        pick(ids),
        emb[ok],
        dates=pick(_col(df, "date")),
        locations=pick(_col(df, "location")),
    )
    kb.save(args.output)
    print(f"{kb!r} -> {args.output}", file=sys.stderr)
    return EXIT_FAILURES if failures else EXIT_OK


def _cmd_query(args: argparse.Namespace) -> int:
    from safetensors.numpy import save_file

    from .reid import KnowledgeBase

    kb = KnowledgeBase.load(args.kb)
    df = _read_table(args.inputs)
    emb, failures = _embed(df, args)
    ok = np.isfinite(emb).all(axis=1)
    paths = [p for p, good in zip(df["filepath"], ok) if good]
    res = kb.query(
        emb[ok],
        k=args.k,
        threshold=args.threshold,
        gaussian=args.gaussian,
        filepaths=paths,
        seed=args.seed,
    )
    table = res.to_pandas()
    for c in ("date", "location"):
        if c in df.columns:
            table[c] = df.loc[ok, c].to_numpy()
    _write_csv(table, args.output)
    if args.embeddings_output:
        save_file({"embeddings": np.ascontiguousarray(emb[ok])}, args.embeddings_output)
    n_new = int(res.is_new.sum())
    print(f"{len(res)} queries, {n_new} new individual(s) -> {args.output}", file=sys.stderr)
    return EXIT_FAILURES if failures else EXIT_OK


def _write_csv(df: Any, path: str) -> None:
    tmp = Path(path).with_name(f".{Path(path).name}.tmp-{os.getpid()}")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


def _cmd_update(args: argparse.Namespace) -> int:
    import pandas as pd
    from safetensors.numpy import load_file

    from .reid import KnowledgeBase

    kb = KnowledgeBase.load(args.kb)
    df = pd.read_csv(args.results)
    emb = load_file(args.embeddings)["embeddings"]
    if len(emb) != len(df):
        raise SystemExit(f"deepfaune-rs: error: {len(emb)} embeddings for {len(df)} result rows")
    updated, added = kb.update(
        df["filepath"].astype(str).tolist(),
        _ids(df),
        emb,
        dates=_col(df, "date"),
        locations=_col(df, "location"),
    )
    kb.save(args.output or args.kb)
    print(f"{updated} updated, {added} added: {kb!r}", file=sys.stderr)
    return EXIT_OK


def _cmd_eval(args: argparse.Namespace) -> int:
    from .reid import KnowledgeBase

    kb = KnowledgeBase.load(args.kb)
    df = _read_table(args.labels)
    if args.query_embeddings:
        from safetensors.numpy import load_file

        emb, failures = load_file(args.query_embeddings)["embeddings"], []
    else:
        emb, failures = _embed(df, args)
    ok = np.isfinite(emb).all(axis=1)
    truth = [t for t, good in zip(_ids(df), ok) if good]
    ev = kb.evaluate(
        emb[ok],
        truth,
        k=args.k,
        threshold=args.threshold,
        validation_fraction=args.validation_fraction,
        seed=args.seed,
    )
    text = json.dumps(ev.summary(), indent=1)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    return EXIT_FAILURES if failures else EXIT_OK


COMMANDS = {"build": _cmd_build, "query": _cmd_query, "update": _cmd_update, "eval": _cmd_eval}


class _Usage(Exception):
    """A usage error found before any work: one line, exit status 2."""


def _check(args: argparse.Namespace) -> None:
    """The extras the command needs, and its inputs, before any picture is embedded."""
    import importlib.util

    missing = [m for m in ("pandas", "safetensors") if importlib.util.find_spec(m) is None]
    if missing:
        raise _Usage(
            f"reid {args.reid_command} needs {' and '.join(missing)}: "
            "pip install 'deepfaune-rs[reid]'"
        )
    for name in ("kb", "labels", "inputs", "results", "embeddings", "query_embeddings"):
        path = getattr(args, name, None)
        if path is not None and not os.path.exists(path):
            raise _Usage(f"{path}: no such file or folder")
    if getattr(args, "kb", None) is not None and not os.path.isdir(args.kb):
        raise _Usage(f"{args.kb}: a knowledge base is a folder (reid build -o FOLDER makes one)")


def main(args: argparse.Namespace) -> int:
    """Runs the ``reid`` subcommand chosen in ``args``; usage errors exit with status 2."""
    try:
        _check(args)
    except _Usage as e:
        print(f"deepfaune-rs: error: {e}", file=sys.stderr)
        return 2
    return COMMANDS[args.reid_command](args)
