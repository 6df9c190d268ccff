"""The ``deepfaune-rs`` command line.

Exit status: 0 = every file processed; 3 = the run finished but some files failed (listed on
stderr and in the output); 1 = the run could not be done (bad model, unwritable output); 2 = usage.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import PipelineResult

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_FAILURES = 3


def _add_detect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "detect", help="detect animals, people and vehicles; write MegaDetector JSON"
    )
    p.add_argument("inputs", nargs="+", help="image/video files or folders (walked recursively)")
    p.add_argument("-o", "--output", required=True, help="MegaDetector batch JSON 1.6 to write")
    p.add_argument(
        "--model",
        default="md-lite",
        help="built-in id (md-lite = embedded default, df, mds, mdr), a DeepFaune mode "
        "(DF, MDS, MDR, DFbsMDS, DFMDS), a manifest .toml, or an .onnx file",
    )
    p.add_argument("--threshold", type=float, default=None, help="confidence threshold (0-1)")
    p.add_argument("--manifest", default=None, help="manifest for a bare .onnx model")
    p.add_argument("--threads", type=int, default=0, help="decode threads (default: cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the whole DeepFaune pipeline: species, sequences, table")
    p.add_argument("inputs", nargs="+", help="image/video files or folders (walked recursively)")
    p.add_argument("-o", "--output", required=True, help="table to write: .csv or .xlsx")
    p.add_argument(
        "--detector",
        default=None,
        help="detector or mode (default DFbsMDS; none with --detections)",
    )
    p.add_argument(
        "--detections",
        default=None,
        metavar="JSON",
        help="someone else's boxes as the detection step: a MegaDetector batch file "
        "(MegaDetector v5/v1000, SpeciesNet, ours) whose images are classified and sequenced "
        "without detecting again; its relative paths are relative to the one input folder",
    )
    p.add_argument(
        "--json-rules",
        default="corrected",
        choices=["corrected", "deepfaune"],
        help="with --detections: the package's rules (default) or DeepFaune's PredictorJSON "
        "exactly (most confident box of any category decides, no EXIF rotation, ...)",
    )
    p.add_argument("--detector-threshold", type=float, default=None)
    p.add_argument("--classifier", default="deepfaune-v14", help="id, manifest .toml or .onnx")
    p.add_argument("--classifier-manifest", default=None, help="manifest for a bare .onnx")
    p.add_argument("--threshold", type=float, default=0.8, help="score below it = undefined")
    p.add_argument("--maxlag", type=float, default=10, help="seconds between images of a sequence")
    p.add_argument("--language", default="en", choices=["en", "fr", "it", "de", "es"])
    p.add_argument("--disable", nargs="*", default=[], metavar="CLASS", help="classes to ignore")
    p.add_argument("--bird-head", action="store_true", help="refine birds into 8 groups")
    p.add_argument(
        "--json", default=None, help="also write MegaDetector batch JSON (with species) here"
    )
    p.add_argument(
        "--camtrap-dp", default=None, metavar="FOLDER", help="write a Camtrap DP package"
    )
    p.add_argument(
        "--deployments",
        default=None,
        metavar="CSV",
        help="Camtrap DP deployments (deploymentID = folder name, latitude, longitude, ...)",
    )
    p.add_argument(
        "--timezone",
        default=None,
        help="camera clocks' UTC offset for Camtrap DP: +02:00, or --timezone=-05:00 when negative",
    )
    p.add_argument(
        "--camtrap-metadata",
        default=None,
        metavar="JSON",
        help="Camtrap DP package metadata (title, contributors, project: title, samplingDesign, "
        "captureMethod)",
    )
    p.add_argument(
        "--sort-into", default=None, metavar="DEST", help="sort images and videos into folders"
    )
    p.add_argument("--sort-mode", default="copy", choices=["copy", "move", "symlink"])
    p.add_argument("--blur-humans", action="store_true", help="blur people in sorted copies")
    p.add_argument(
        "--resume",
        action="store_true",
        help="record progress in OUTPUT.checkpoint and resume from it after an interruption",
    )
    p.add_argument(
        "--embeddings",
        default=None,
        metavar="NPZ",
        help="also write the classifier's crop embeddings (for re-identification) to this .npz "
        "(arrays filename and embedding; not kept otherwise, which saves memory and checkpoint "
        "space)",
    )
    p.add_argument("--no-progress", action="store_true")


def _add_export(sub: argparse._SubParsersAction) -> None:
    for what in ("classifier", "detector"):
        p = sub.add_parser(
            f"export-{what}",
            help=f"convert official {what} weights (.pt) to ONNX (needs the [export] extra)",
        )
        p.add_argument("weights")
        p.add_argument("-o", "--output", required=True)


def _add_models(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("models", help="list model manifests and where their weights are expected")


def _cmd_detect(args: argparse.Namespace) -> int:
    from . import Detector

    det = Detector(
        args.model, threshold=args.threshold, manifest=args.manifest, threads=args.threads
    )
    res = det.detect(args.inputs, progress=not args.no_progress)
    root = args.inputs[0] if len(args.inputs) == 1 else None
    res.to_megadetector_json(args.output, root=root)
    cats = Counter(res.category_names)
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(cats.items()))
    print(
        f"{len(res)} images ({summary}){_skipped(res.failures)} -> {args.output}", file=sys.stderr
    )
    return _report_failures(res.failures)


def _cmd_run(args: argparse.Namespace) -> int:
    from . import Detector, Pipeline

    if args.detections is not None and len(args.inputs) != 1:
        print(
            "deepfaune-rs: error: with --detections, give the one folder its paths are relative to",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.detections is not None and args.detector is None:
        det = None  # the file's boxes are the detection step: no detector to load
    else:
        det = Detector(args.detector or "DFbsMDS", threshold=args.detector_threshold)
    pipe = Pipeline(
        det,
        args.classifier,
        detector_mode=None,
        classifier_manifest=args.classifier_manifest,
        threshold=args.threshold,
        maxlag_s=args.maxlag,
        language=args.language,
        disabled_classes=args.disable,
        bird_head=args.bird_head,
    )
    checkpoint = args.output + ".checkpoint" if args.resume else None
    if args.detections is not None:
        res = pipe.run(
            args.inputs[0],
            progress=not args.no_progress,
            keep_embeddings=args.embeddings is not None,
            checkpoint=checkpoint,
            detections=args.detections,
            json_rules=args.json_rules,
        )
    else:
        res = pipe.run(
            args.inputs,
            progress=not args.no_progress,
            keep_embeddings=args.embeddings is not None,
            checkpoint=checkpoint,
        )
    if args.output.lower().endswith(".xlsx"):
        res.to_excel(args.output)
    else:
        res.to_csv(args.output)
    if args.json:
        res.to_megadetector_json(args.json, root=args.inputs[0] if len(args.inputs) == 1 else None)
    if args.camtrap_dp:
        _write_camtrap_dp(res, args)
    if args.embeddings:
        res.save_embeddings(args.embeddings)
    n_seq = int(res.seqnum.max(initial=0))
    print(
        f"{len(res)} images, {n_seq} sequences, {len(res.videos)} videos"
        f"{_skipped(res.failures)} -> {args.output}",
        file=sys.stderr,
    )
    status = _report_failures(res.failures)
    if args.sort_into:
        report = res.sort_into(args.sort_into, mode=args.sort_mode, blur_humans=args.blur_humans)
        print(f"sorted {len(report['placed'])} files into {report['root']}", file=sys.stderr)
        for src, reason in report["failures"]:
            print(f"  not sorted: {src}: {reason}", file=sys.stderr)
        if report["failures"]:
            status = EXIT_FAILURES
    return status


def _write_camtrap_dp(res: PipelineResult, args: argparse.Namespace) -> None:
    import json
    import warnings

    metadata = None
    if args.camtrap_metadata:
        with open(args.camtrap_metadata, encoding="utf-8") as f:
            metadata = json.load(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = res.to_camtrap_dp(
            args.camtrap_dp,
            args.deployments,
            timezone=args.timezone,
            metadata=metadata,
            root=args.inputs[0] if len(args.inputs) == 1 else None,
        )
    print(f"Camtrap DP package -> {args.camtrap_dp}", file=sys.stderr)
    for w in found:
        print(f"  warning: {w}", file=sys.stderr)


def _cmd_export(args: argparse.Namespace) -> int:
    try:
        from . import export
    except ImportError as e:  # pragma: no cover
        print(f"deepfaune-rs: {e}", file=sys.stderr)
        return EXIT_ERROR
    try:
        if args.command == "export-classifier":
            info = export.export_classifier(args.weights, args.output)
        else:
            info = export.export_detector(args.weights, args.output)
    except ImportError as e:
        print(
            f"deepfaune-rs: the export needs torch and timm/ultralytics ({e}): "
            'pip install "deepfaune-rs[export]"',
            file=sys.stderr,
        )
        return EXIT_ERROR
    for k, v in info.items():
        print(f"{k}: {v}")
    return EXIT_OK


def _skipped(failures: Sequence[dict]) -> str:
    """The summary's note on files the walk skipped (their type is not one DeepFaune reads)."""
    n = sum(1 for f in failures if f["stage"] == "walk" and f["kind"] == "unsupported")
    return f", {n} file(s) skipped (unsupported type, listed below)" if n else ""


def _report_failures(failures: Sequence[dict]) -> int:
    if not failures:
        return EXIT_OK
    print(f"{len(failures)} file(s) could not be processed:", file=sys.stderr)
    for f in failures:
        print(f"  {f['path']}: {f['reason']}", file=sys.stderr)
    return EXIT_FAILURES


def _cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models, model_dir

    print(f"model directory: {model_dir()} (set DEEPFAUNE_RS_MODELS to change it)")
    for m in list_models():
        if m["embedded"]:
            where = "embedded"
        else:
            where = ("found: " if m["available"] else "missing: ") + str(m["expected_path"])
        print(f"{m['id']:<10} {m['kind']:<10} {m['name']}\n{'':<21} {where}")
        if m["url"] and not m["available"]:
            print(f"{'':<21} official weights: {m['url']}")
    return EXIT_OK


def _cmd_reid(args: argparse.Namespace) -> int:
    from .cli_reid import main as reid_main

    return reid_main(args)


COMMANDS = {
    "detect": _cmd_detect,
    "run": _cmd_run,
    "models": _cmd_models,
    "export-classifier": _cmd_export,
    "export-detector": _cmd_export,
    "reid": _cmd_reid,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfaune-rs",
        description="Sort camera-trap images like DeepFaune, without torch.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"deepfaune-rs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_detect(sub)
    _add_run(sub)
    _add_models(sub)
    _add_export(sub)
    from .cli_reid import add_parser as _add_reid

    _add_reid(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .errors import DeepfauneError

    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except DeepfauneError as e:
        print(f"deepfaune-rs: error: {e}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
