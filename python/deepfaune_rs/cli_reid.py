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
``--boxes`` (a MegaDetector batch JSON), else the whole image with ``--whole-image``, else the
detector's animal crop (``--detector``).

The tables, the crops, the embedding and the files written are the core's
(``src/reid/table.rs``); this module holds the command line and its messages.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from . import _core

EXIT_OK, EXIT_ERROR, EXIT_FAILURES = 0, 1, 3
#: The ``reid`` extra's modules: pandas for the tables (``to_pandas``, imported by the core's
#: bindings), safetensors for the embedding files users read and write beside the commands.
EXTRA_MODULES = ("pandas", "safetensors")


def _embedding_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="yolox-embed", help="embedding manifest id or .toml")
    p.add_argument("--weights", default=None, help="the model's .onnx (else the model directory)")
    p.add_argument("--boxes", default=None, help="MegaDetector batch JSON with the animal boxes")
    p.add_argument("--detector", default="md-lite", help="detector for crops when no boxes")
    p.add_argument("--whole-image", action="store_true", help="embed whole images, no crops")
    p.add_argument("--batch-size", type=int, default=8)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds ``reid`` and its subcommands to the main parser's subparsers."""
    from .cli import _renamed_flag

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
    _renamed_flag(g, "--distance-threshold", "--threshold", "cosine distance for 'new'", float)
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
    _renamed_flag(e, "--distance-threshold", "--threshold", "fixed threshold (no sweep)", float)
    e.add_argument("--validation-fraction", type=float, default=0.5)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--query-embeddings", default=None, help="precomputed safetensors, same order")
    e.add_argument("-o", "--output", default=None, help="write the figures as JSON here")
    _embedding_args(e)
    return reid


def _embed(table: Any, args: argparse.Namespace) -> Any:
    """The table's embeddings (printing the pictures that failed)."""
    from .reid import Embedder

    res = Embedder(args.model, weights=args.weights).embed_table(
        table,
        boxes=args.boxes,
        detector=args.detector,
        whole_image=args.whole_image,
        batch_size=args.batch_size,
    )
    for i, reason in res.failures:
        print(f"  {res.paths[i]}: {reason}", file=sys.stderr)
    return res


def _cmd_build(args: argparse.Namespace) -> int:
    table = _core.ReidTable.read(args.labels)
    res = _embed(table, args)
    kb = _core.reid_build(table, res.embeddings)
    kb.save(args.output)
    print(f"{kb!r} -> {args.output}", file=sys.stderr)
    return EXIT_FAILURES if res.failures else EXIT_OK


def _cmd_query(args: argparse.Namespace) -> int:
    kb = _core.KnowledgeBase.load(args.kb)
    table = _core.ReidTable.read(args.inputs)
    res = _embed(table, args)
    n, n_new = _core.reid_query_to_files(
        kb,
        table,
        res.embeddings,
        args.output,
        k=args.k,
        distance_threshold=args.distance_threshold,
        gaussian=args.gaussian,
        seed=args.seed,
        embeddings_output=args.embeddings_output,
    )
    print(f"{n} queries, {n_new} new individual(s) -> {args.output}", file=sys.stderr)
    return EXIT_FAILURES if res.failures else EXIT_OK


def _cmd_update(args: argparse.Namespace) -> int:
    kb = _core.KnowledgeBase.load(args.kb)
    updated, added = _core.reid_update_from_files(kb, args.results, args.embeddings)
    kb.save(args.output or args.kb)
    print(f"{updated} updated, {added} added: {kb!r}", file=sys.stderr)
    return EXIT_OK


def _cmd_eval(args: argparse.Namespace) -> int:
    kb = _core.KnowledgeBase.load(args.kb)
    table = _core.ReidTable.read(args.labels)
    if args.query_embeddings:
        emb, failures = _core.reid_read_embeddings(args.query_embeddings), []
    else:
        res = _embed(table, args)
        emb, failures = res.embeddings, res.failures
    ev = _core.reid_evaluate_table(
        kb,
        table,
        emb,
        k=args.k,
        distance_threshold=args.distance_threshold,
        validation_fraction=args.validation_fraction,
        seed=args.seed,
    )
    text = json.dumps(ev.summary(), indent=1)
    print(text)
    if args.output:
        from ._files import atomic_open

        with atomic_open(args.output, "w") as f:
            f.write(text + "\n")
    return EXIT_FAILURES if failures else EXIT_OK


COMMANDS = {"build": _cmd_build, "query": _cmd_query, "update": _cmd_update, "eval": _cmd_eval}


class _Usage(Exception):
    """A usage error found before any work: one line, exit status 2."""


def _check(args: argparse.Namespace) -> None:
    """The extras the command needs, and its inputs, before any picture is embedded."""
    import importlib.util

    missing = [m for m in EXTRA_MODULES if importlib.util.find_spec(m) is None]
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
