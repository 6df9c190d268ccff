"""The ``deepfaune-rs`` command line.

Exit status: 0 = every file processed; 3 = the run finished but some files failed (listed on
stderr and in the output); 1 = the run could not be done (bad or missing model weights,
download or checksum failure, a write that failed); 2 = usage, found before any image is
processed (bad option or value, unknown model or class with the valid names, missing input,
an output that cannot be written or would clobber an input, a checkpoint of other settings).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:  # pragma: no cover
    from .detect import Detector
    from .pipeline import PipelineResult

from .pipeline import DEFAULT_CLASSIFIER, DEFAULT_DETECTOR_MODE, LANGUAGE_ALIASES, LANGUAGES

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_FAILURES = 3


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the message and where to look, exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"deepfaune-rs: error: {message} (see {self.prog} --help)\n")


def _fraction(text: str) -> float:
    """A threshold: a number within 0..1 (NaN refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"{text} is outside 0..1")
    return value


def _renamed_flag(
    p: argparse.ArgumentParser, new: str, old: str, help: str, type: object = _fraction
) -> None:
    """Option ``new`` and its old name ``old``, accepted for one release (a notice on stderr,
    see :func:`_take_renamed`)."""
    dest = new.lstrip("-").replace("-", "_")
    p.add_argument(new, type=type, default=None, help=help)
    p.add_argument(old, dest=f"old_{dest}", type=type, default=None, help=f"deprecated: {new}")
    p.set_defaults(_renamed=[*(p.get_default("_renamed") or ()), (new, old, dest)])


def _take_renamed(args: argparse.Namespace) -> None:
    """Options given under their old name: a one-line notice each; both names is a usage error."""
    for new, old, dest in getattr(args, "_renamed", ()):
        value = getattr(args, f"old_{dest}")
        if value is None:
            continue
        if getattr(args, dest) is not None:
            raise _Usage(f"give {new} or {old} (its old name), not both")
        print(f"deepfaune-rs: warning: {old} is deprecated, use {new}", file=sys.stderr)
        setattr(args, dest, value)


def _seconds(text: str) -> float:
    """A duration in seconds: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a number of seconds >= 0")
    return value


def _names(text: str) -> list[str]:
    """One or more comma-separated class names."""
    return [n.strip() for n in text.split(",") if n.strip()]


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
    _renamed_flag(p, "--detection-threshold", "--threshold", "detector confidence (0-1)")
    p.add_argument("--manifest", default=None, help="manifest for a bare .onnx model")
    p.add_argument("--threads", type=int, default=0, help="decode threads (default: cores)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--fetch", action="store_true", help=FETCH_HELP)
    _add_speed_options(p)


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="the whole DeepFaune pipeline: species, sequences, table")
    p.add_argument("inputs", nargs="+", help="image/video files or folders (walked recursively)")
    p.add_argument("-o", "--output", required=True, help="table to write: .csv or .xlsx")
    p.add_argument(
        "--detector",
        default=None,
        help=f"detector or mode (default {DEFAULT_DETECTOR_MODE}; none with --detections)",
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
    _renamed_flag(p, "--detection-threshold", "--detector-threshold", "detector confidence (0-1)")
    p.add_argument(
        "--classifier",
        default=DEFAULT_CLASSIFIER,
        help=f"id (default {DEFAULT_CLASSIFIER}), manifest .toml or .onnx",
    )
    p.add_argument("--classifier-manifest", default=None, help="manifest for a bare .onnx")
    _renamed_flag(
        p,
        "--score-threshold",
        "--threshold",
        "class score below it = undefined (0-1; default: the classifier's, 0.8 for DeepFaune)",
    )
    p.add_argument(
        "--maxlag", type=_seconds, default=10, help="seconds between images of a sequence"
    )
    p.add_argument(
        "--language",
        default="en",
        choices=[*LANGUAGES, *LANGUAGE_ALIASES],
        help="labels' language; no, se (or sv) and pt need DeepFaune 1.5's classifier",
    )
    p.add_argument(
        "--disable",
        type=_names,
        action="extend",
        default=[],
        metavar="CLASS[,CLASS...]",
        help="classes to ignore: comma-separated, or the option repeated",
    )
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
    p.add_argument(
        "--csv-safe",
        action="store_true",
        help="put a single quote in front of table cells a spreadsheet would run as formulas "
        "(names starting with =, +, -, @); DeepFaune writes them unchanged",
    )
    p.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run on a Ray cluster (extra [ray]): 'auto', HOST:PORT or ray://HOST:PORT; one work "
        "unit per folder, the same outputs as one machine",
    )
    p.add_argument("--actors", type=int, default=1, help="with --ray: pipelines run at once")
    p.add_argument(
        "--checkpoint-dir",
        default=None,
        metavar="DIR",
        help="with --ray: one checkpoint per folder here (storage every node sees); a job started "
        "again skips the folders already done",
    )
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--fetch", action="store_true", help=FETCH_HELP)
    p.add_argument(
        "--corrections",
        default=None,
        metavar="JSONL",
        help="apply a corrections journal (what `deepfaune-rs review` writes) before writing "
        "the outputs",
    )

    _add_speed_options(p)


DEVICE_HELP = (
    "where the models run: cpu (default), cuda, directml, coreml, or auto (the first "
    "accelerator of the installed ONNX Runtime build); `deepfaune-rs devices` lists them"
)


def _add_speed_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p.add_argument(
        "--int8",
        action="store_true",
        help="use the models' int8 variants (made by `deepfaune-rs models quantize ID`; check "
        "them on your images with `deepfaune-rs agreement FOLDER`)",
    )


def _add_agreement(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "agreement",
        help="run fp32 and int8 side by side on a sample of your images and report agreement",
        description="Runs the same sample of images at fp32 and with the int8 variants (`models "
        "quantize`) and reports how often they agree: the per-image decision, the deciding "
        "box's IoU, the top-1 class and the sequence prediction, and each run's seconds.",
    )
    p.add_argument("inputs", nargs="+", help="image files or folders (walked recursively)")
    p.add_argument(
        "--sample", type=int, default=200, help="images, evenly spread (0 = all; default 200)"
    )
    p.add_argument("--detector", default=DEFAULT_DETECTOR_MODE, help="detector or mode")
    p.add_argument("--classifier", default=DEFAULT_CLASSIFIER, help="classifier id")
    p.add_argument("--no-classifier", action="store_true", help="compare the detector alone")
    p.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")


def _add_devices(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("devices", help="list the devices the installed ONNX Runtime build can use")


def _add_review(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "review",
        help="look at and correct a run's results in the browser (local page)",
        description="Starts a page on 127.0.0.1 (a free port, a secret token in the URL) to see "
        "the sequences with their boxes, filter them, relabel and verify them with the "
        "keyboard, and re-decide with other settings. Corrections go to "
        "RESULTS.corrections.jsonl; the results are never edited. With the run's checkpoint "
        "(run ... --resume keeps OUTPUT.checkpoint) everything works; a table alone (ours or "
        "DeepFaune's CSV/XLSX) is shown and corrected but cannot be re-decided, and its boxes "
        "come from --detections.",
    )
    p.add_argument("results", help="the run's table (.csv/.xlsx) or its .checkpoint")
    p.add_argument("--open", action="store_true", help="open the page in the browser")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--by", default=None, help="your name, recorded with each correction")
    p.add_argument(
        "--detections",
        default=None,
        metavar="JSON",
        help="for a table without its checkpoint: the run's MegaDetector JSON, to draw boxes",
    )
    p.add_argument("--detector", default=None, help="default: the checkpoint's")
    p.add_argument("--classifier", default=None, help="default: the checkpoint's")
    p.add_argument("--classifier-manifest", default=None)
    _renamed_flag(p, "--score-threshold", "--threshold", "default: the run's", type=_fraction)
    p.add_argument("--maxlag", type=float, default=None, help="default: the run's")
    p.add_argument("--language", default=None, choices=[*LANGUAGES, *LANGUAGE_ALIASES])
    p.add_argument(
        "--disable", type=_names, action="extend", default=[], metavar="CLASS[,CLASS...]"
    )
    p.add_argument("--bird-head", action="store_true")


def _add_export(sub: argparse._SubParsersAction) -> None:
    for what in ("classifier", "detector"):
        p = sub.add_parser(
            f"export-{what}",
            help=f"convert official {what} weights (.pt) to ONNX (needs the [export] extra)",
        )
        p.add_argument("weights")
        p.add_argument("-o", "--output", required=True)


FETCH_HELP = (
    "download, check and convert the official weights the run needs when they are missing "
    "(otherwise a missing model is an error naming the `deepfaune-rs models fetch` command)"
)

STATES_HELP = """states of a model file:
  embedded    inside the package (md-lite): nothing to fetch
  missing     neither the ONNX file nor the downloaded source (.pt) is in the model directory
  downloaded  the source .pt is there but no usable ONNX (none yet, or one converted from another
              source or by another converter version): `models fetch` converts it
  converted   an ONNX file is there (the core can load it) but is not verified: not recorded in
              deepfaune-rs.lock.json (exported by hand) or its sha256 differs from the record
  verified    the ONNX's sha256 is the one the lock file recorded when it was converted, from a
              source whose sha256 is the lock file's (checked against the published size and
              checksums when it was downloaded; re-checked if the .pt is still there), by the
              current converter version
Every file present is hashed, so listing takes a few seconds with the big classifiers.
"""


def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the models, the state of their weights; `models fetch` downloads them",
        description="The built-in models and the state of their weights in the model directory.",
        epilog=STATES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--folder", default=None, help="model directory (default $DEEPFAUNE_RS_MODELS)")
    msub = p.add_subparsers(dest="models_command")
    f = msub.add_parser(
        "fetch",
        help="download, check and convert official weights (default: deepfaune)",
        description="Downloads the official weights of TARGETs into the model directory, checks "
        "them (published size and checksums; the lock file deepfaune-rs.lock.json where none "
        "is published), and converts PyTorch checkpoints to ONNX (no torch needed). An "
        "interrupted download resumes. $DEEPFAUNE_RS_BASE_URL replaces every URL: file NAME is "
        "then fetched from $DEEPFAUNE_RS_BASE_URL/NAME.",
        epilog=STATES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="a model id (df, mds, mdr, deepfaune-v14, ...; a classifier comes with its bird "
        "head), a mode (DF, MDS, DFbsMDS, DFMDS, MDR), or deepfaune = DeepFaune's default "
        "setup (the default)",
    )
    f.add_argument("--folder", default=None, help="model directory (default $DEEPFAUNE_RS_MODELS)")
    f.add_argument("--no-progress", action="store_true", help="no progress bars")
    f.add_argument("--no-convert", action="store_true", help="download only (no ONNX conversion)")
    f.add_argument(
        "--accept-new-hash",
        action="store_true",
        help="take a download whose sha256 differs from the one recorded in the lock file "
        "(when the publisher really changed the file)",
    )
    q = msub.add_parser(
        "quantize",
        help="write a model's int8 variant (its own file and manifest) for --int8",
        description="Writes MODEL's int8 variant into the model directory with ONNX Runtime's "
        "quantisation tools: <file>.int8.onnx and its manifest <id>-int8.toml. Detectors: "
        "static QDQ calibrated on your own images (--images); classifiers: dynamic int8 "
        "MatMuls. Check the result with `deepfaune-rs agreement FOLDER`.",
    )
    q.add_argument("model", help="a built-in id: md-lite, df, mds, mdr, deepfaune-v15, ...")
    q.add_argument(
        "--images",
        nargs="+",
        default=[],
        metavar="PATH",
        help="calibration images (files or folders) for static quantisation",
    )
    q.add_argument("--method", choices=["static", "dynamic"], default=None)
    q.add_argument("--sample", type=int, default=64, help="calibration images used (default 64)")


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a DeepFaune / ultralytics / YOLOv5 PyTorch checkpoint to ONNX (no torch)",
    )
    p.add_argument("checkpoint", metavar="FILE.pt")
    p.add_argument("-o", "--output", default=None, help="ONNX to write (default FILE.onnx)")
    p.add_argument("--kind", choices=["classifier", "bird_head", "detector"], default=None)
    p.add_argument("--size", type=int, default=None, help="classifier input size (pixels)")


class _Usage(Exception):
    """A usage error found before any work: one line, exit status 2."""


def _check_inputs(inputs: Sequence[str], disabled: Sequence[str] = ()) -> None:
    import os

    for path in inputs:
        if not os.path.exists(path):
            hint = " (several classes to --disable: --disable a,b)" if disabled else ""
            raise _Usage(f"{path}: no such file or folder{hint}")


def _check_output(
    path: str, option: str, suffixes: Sequence[str], inputs: Sequence[str], others: dict[str, str]
) -> None:
    """Refuses, before any image is processed, an output that could not be written or would
    clobber something: a wrong extension, an existing folder, a missing or unwritable parent
    folder, one of the inputs, another output of the run."""
    import os

    where = f"{option} {path}"
    if os.path.isdir(path):
        raise _Usage(f"{where}: is a folder; give a file name in it")
    if suffixes and not path.lower().endswith(tuple(suffixes)):
        raise _Usage(f"{where}: give a file name ending in {' or '.join(suffixes)}")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise _Usage(f"{where}: folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise _Usage(f"{where}: folder {parent} is not writable")
    for i in inputs:
        if os.path.exists(path) and os.path.exists(i) and os.path.samefile(path, i):
            raise _Usage(f"{where}: is one of the inputs; write the results elsewhere")
    for other_option, other in others.items():
        if os.path.abspath(other) == os.path.abspath(path):
            raise _Usage(f"{where}: also given to {other_option}; give each output its own file")
    others[option] = path


def _check_run_outputs(args: argparse.Namespace) -> None:
    import os

    outputs: dict[str, str] = {}
    _check_output(args.output, "-o", (".csv", ".xlsx"), args.inputs, outputs)
    if args.output.lower().endswith(".xlsx"):
        try:
            import openpyxl  # noqa: F401
        except ImportError:
            raise _Usage(
                "-o .xlsx needs openpyxl: pip install 'deepfaune-rs[excel]' (or write .csv)"
            ) from None
    if args.json:
        _check_output(args.json, "--json", (".json",), args.inputs, outputs)
    if args.embeddings:
        _check_output(args.embeddings, "--embeddings", (".npz",), args.inputs, outputs)
    for option, folder in (("--camtrap-dp", args.camtrap_dp), ("--sort-into", args.sort_into)):
        if folder is None:
            continue
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise _Usage(f"{option} {folder}: is a file; give a folder")
        parent = os.path.dirname(os.path.abspath(folder))
        if not os.path.isdir(parent):
            raise _Usage(f"{option} {folder}: folder {parent} does not exist; create it first")
    for option, file in (
        ("--deployments", args.deployments),
        ("--camtrap-metadata", args.camtrap_metadata),
    ):
        if file is not None and not os.path.isfile(file):
            raise _Usage(f"{option} {file}: no such file")
    if args.detections is not None and not os.path.isfile(args.detections):
        raise _Usage(f"--detections {args.detections}: no such file")


def _cmd_detect(args: argparse.Namespace) -> int:
    from . import Detector
    from .fetch import detector_ids, require

    _check_inputs(args.inputs)
    _check_output(args.output, "-o", (".json",), args.inputs, {})
    if not args.int8:
        require(detector_ids(args.model), fetch_first=args.fetch, progress=not args.no_progress)
    det = Detector(
        args.model,
        detection_threshold=args.detection_threshold,
        manifest=args.manifest,
        threads=args.threads,
        device=args.device,
        precision="int8" if args.int8 else "fp32",
    )
    res = det.detect(args.inputs, progress=not args.no_progress, outputs=[args.output])
    # Names relative to the folder run (the result's root); a file given by name keeps its path.
    res.to_megadetector_json(args.output)
    cats = Counter(res.category_names)
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(cats.items()))
    print(
        f"{len(res)} images ({summary}){_skipped(res.failures)} -> {args.output}", file=sys.stderr
    )
    return _report_failures(res.failures)


def _cmd_run(args: argparse.Namespace) -> int:
    import os

    from .fetch import classifier_id, detector_ids, require

    if args.detections is not None and len(args.inputs) != 1:
        raise _Usage("with --detections, give the one folder its paths are relative to")
    if args.ray is not None or args.checkpoint_dir is not None:
        wrong = _ray_usage(args)
        if wrong is not None:
            raise _Usage(wrong)
    _check_inputs(args.inputs, args.disable)
    _check_run_outputs(args)
    if args.corrections is not None and not os.path.isfile(args.corrections):
        raise _Usage(
            f"--corrections {args.corrections}: no such file (the journal the review page writes "
            "is RESULTS.corrections.jsonl)"
        )
    # With --detections the file's boxes are the detection step: no detector unless one is named.
    detector = args.detector
    if detector is None and args.detections is None:
        detector = DEFAULT_DETECTOR_MODE
    # All the models of the run at once, before anything is loaded.
    if not args.int8:
        require(
            detector_ids(detector),
            classifier_id(args.classifier),
            args.bird_head,
            fetch_first=args.fetch,
            progress=not args.no_progress,
        )
    on_ray = args.ray is not None
    res = _run_on_ray(args, detector) if on_ray else _run_here(args, detector)
    return _finish_run(res, args)


def _ray_usage(args: argparse.Namespace) -> str | None:
    """What is wrong with the options of a run on Ray (one line with its hint), or None."""
    wrong = None
    if args.ray is None:
        wrong = "--checkpoint-dir goes with --ray ADDRESS (on one machine, use --resume)"
    elif args.detections is not None or args.resume:
        wrong = "--ray runs detection itself: no --detections; --checkpoint-dir DIR, not --resume"
    elif args.actors < 1:
        wrong = "--actors must be at least 1"
    else:
        try:
            import ray  # noqa: F401
        except ImportError:
            wrong = "--ray needs Ray Data: pip install 'deepfaune-rs[ray]'"
    return wrong


def _check_blur(args: argparse.Namespace, det: Detector | None) -> None:
    if args.blur_humans and det is not None and not det.finds_people:
        raise _Usage(
            f"--blur-humans: the detector ({'+'.join(det.models)}) has no person class, so "
            "people would be copied unblurred; use --detector DFbsMDS, MDS or DF"
        )


def _run_on_ray(args: argparse.Namespace, detector: str | None) -> PipelineResult:
    from . import Detector, distributed

    precision = "int8" if args.int8 else "fp32"
    det = {
        "model": detector,
        "detection_threshold": args.detection_threshold,
        "device": args.device,
        "precision": precision,
    }
    if args.blur_humans:  # the actors load the detector; the driver only to check this
        _check_blur(args, Detector(**det))

    stats: dict = {}
    res = distributed.run(
        args.inputs,
        pipeline={
            "detector": det,
            "classifier": args.classifier,
            "detector_mode": None,
            "classifier_manifest": args.classifier_manifest,
            "score_threshold": args.score_threshold,
            "maxlag_s": args.maxlag,
            "language": args.language,
            "disabled_classes": list(args.disable),
            "bird_head": args.bird_head,
            "device": args.device,
            "precision": precision,
        },
        address=args.ray,
        actors=args.actors,
        checkpoint_dir=args.checkpoint_dir,
        keep_embeddings=args.embeddings is not None,
        progress=not args.no_progress,
        stats=stats,
    )
    where = f" taken whole from {args.checkpoint_dir}" if args.checkpoint_dir else " restored"
    print(
        f"{stats['units']} folders: {stats['ran']} run, {stats['restored']}{where}",
        file=sys.stderr,
    )
    return res


def _run_here(args: argparse.Namespace, detector: str | None) -> PipelineResult:
    from . import Detector, Pipeline

    precision = "int8" if args.int8 else "fp32"
    det = (
        None
        if detector is None
        else Detector(
            detector,
            detection_threshold=args.detection_threshold,
            device=args.device,
            precision=precision,
        )
    )
    _check_blur(args, det)
    pipe = Pipeline(
        det,
        args.classifier,
        detector_mode=None,
        classifier_manifest=args.classifier_manifest,
        score_threshold=args.score_threshold,
        maxlag_s=args.maxlag,
        language=args.language,
        disabled_classes=args.disable,
        bird_head=args.bird_head,
        device=args.device,
        precision=precision,
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
        outputs = [args.output, args.json, args.embeddings]
        res = pipe.run(
            args.inputs,
            progress=not args.no_progress,
            keep_embeddings=args.embeddings is not None,
            checkpoint=checkpoint,
            outputs=[o for o in outputs if o is not None],
        )
    return res


def _finish_run(res: PipelineResult, args: argparse.Namespace) -> int:
    if args.corrections:
        res = res.apply_corrections(args.corrections)
    if args.output.lower().endswith(".xlsx"):
        res.to_excel(args.output, csv_safe=args.csv_safe)
    else:
        res.to_csv(args.output, csv_safe=args.csv_safe)
    if args.json:
        res.to_megadetector_json(args.json)
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
    if res.skipped_metadata:
        print(
            f"{res.skipped_metadata} NAS/OS metadata file(s) or folder(s) skipped "
            "(@eaDir, ._*, .DS_Store, Thumbs.db, __MACOSX)",
            file=sys.stderr,
        )
    changed = res.changed_since_checkpoint
    if changed:
        print(
            f"{len(changed)} image(s) changed since the checkpoint, processed again:",
            file=sys.stderr,
        )
        for p in changed:
            print(f"  {p}", file=sys.stderr)
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
    if args.models_command == "fetch":
        return _cmd_models_fetch(args)
    if args.models_command == "quantize":
        return _cmd_models_quantize(args)
    from pathlib import Path

    from .models import list_models, model_dir, status

    folder = Path(args.folder) if args.folder else model_dir()
    print(f"model directory: {folder} (set DEEPFAUNE_RS_MODELS to change it)")
    names = {m["id"]: m for m in list_models()}
    states = status(folder=folder)
    for st in states:
        m = names[st.model_id]
        if st.role == "model":
            print(f"{st.model_id:<15} {m['kind']:<10} {st.state:<10} {m['name']}")
        else:
            print(f"{'  + bird head':<15} {'':<10} {st.state:<10}")
        if st.state != "embedded":
            print(f"{'':<16}{st.path}")
        if st.detail and st.state != "embedded":
            print(f"{'':<16}({st.detail})")
    todo = sorted({s.model_id for s in states if s.state in ("missing", "downloaded")})
    print("states: embedded, missing, downloaded, converted, verified (deepfaune-rs models -h)")
    if todo:
        print("fetch DeepFaune's default setup: deepfaune-rs models fetch deepfaune")
    return EXIT_OK


def _cmd_models_fetch(args: argparse.Namespace) -> int:
    from .errors import UnknownModelError
    from .models import fetch

    try:
        done = fetch(
            *args.targets,
            folder=args.folder,
            progress=not args.no_progress,
            convert=not args.no_convert,
            accept_new_hash=args.accept_new_hash,
        )
    except UnknownModelError as e:
        print(f"deepfaune-rs: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    for d in done:
        how = []
        if d.url:
            how.append(f"downloaded from {d.url}")
        if d.converted:
            how.append("converted")
        print(f"{d.label:<24} {d.state:<10} {d.path}" + (f" ({', '.join(how)})" if how else ""))
        for note in d.notes:
            print(f"  note: {note}")
    return EXIT_OK


def _cmd_models_quantize(args: argparse.Namespace) -> int:
    from .quantize import quantize

    _check_inputs(args.images)
    # An unknown model or a bad method is InvalidArgumentError / UnknownModelError: main()'s
    # one line and exit 2.
    info = quantize(args.model, args.images, method=args.method, sample=args.sample)
    for k, v in info.items():
        print(f"{k}: {v}")
    return EXIT_OK


def _cmd_agreement(args: argparse.Namespace) -> int:
    import json

    from .agreement import agreement, format_report
    from .errors import WeightsNotFoundError

    _check_inputs(args.inputs)
    try:
        r = agreement(
            args.inputs,
            sample=args.sample or None,
            detector=args.detector,
            classifier=None if args.no_classifier else args.classifier,
            device=args.device,
        )
    except WeightsNotFoundError as e:  # no int8 variant yet: the user's to make (exit 2)
        raise _Usage(str(e)) from None
    print(format_report(r))
    if args.json:
        from ._files import atomic_open

        with atomic_open(args.json, "w") as f:
            json.dump(r, f, indent=1)
    return EXIT_OK


def _cmd_devices(args: argparse.Namespace) -> int:
    from . import available_devices

    print(", ".join(available_devices()))
    return EXIT_OK


def _cmd_convert(args: argparse.Namespace) -> int:
    import os

    from .convert import convert

    if not os.path.isfile(args.checkpoint):
        raise _Usage(f"{args.checkpoint}: no such file (give the path of a .pt checkpoint)")
    try:
        info = convert(args.checkpoint, args.output, kind=args.kind, size=args.size)
    except OSError as e:
        print(f"deepfaune-rs: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:  # noqa: BLE001 - one line, never a traceback
        print(
            f"deepfaune-rs: error: cannot convert {args.checkpoint}: {e} (is it a DeepFaune, "
            "ultralytics or YOLOv5 checkpoint?)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    for k, v in info.items():
        print(f"{k}: {v:.1f}" if isinstance(v, float) else f"{k}: {v}")
    return EXIT_OK


def _cmd_review(args: argparse.Namespace) -> int:
    import os

    from .errors import InvalidArgumentError
    from .review import load_for_review, review
    from .review_table import ResultTable

    if not os.path.exists(args.results):
        raise _Usage(f"{args.results}: no such file (give the table or the .checkpoint of a run)")
    results = args.results
    if results.endswith(".checkpoint"):
        results = results[: -len(".checkpoint")]
    has_checkpoint = os.path.isfile(results + ".checkpoint")
    if has_checkpoint and args.detections is not None:
        raise _Usage(
            "--detections: only for a table without its checkpoint (the checkpoint has the boxes)"
        )
    try:
        if has_checkpoint:
            res: object = load_for_review(
                results,
                detector=args.detector,
                classifier=args.classifier,
                classifier_manifest=args.classifier_manifest,
                score_threshold=args.score_threshold,
                maxlag_s=args.maxlag,
                language=args.language,
                disabled_classes=args.disable,
                bird_head=args.bird_head,
            )
        else:
            res = ResultTable(results, detections=args.detections)
    except InvalidArgumentError as e:
        raise _Usage(str(e)) from None
    review(res, results, open_browser=args.open, block=True, port=args.port, by=args.by)
    return EXIT_OK


def _cmd_reid(args: argparse.Namespace) -> int:
    from .cli_reid import main as reid_main

    return reid_main(args)


COMMANDS = {
    "detect": _cmd_detect,
    "run": _cmd_run,
    "models": _cmd_models,
    "convert": _cmd_convert,
    "export-classifier": _cmd_export,
    "export-detector": _cmd_export,
    "reid": _cmd_reid,
    "agreement": _cmd_agreement,
    "devices": _cmd_devices,
    "review": _cmd_review,
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="deepfaune-rs",
        description="Sort camera-trap images like DeepFaune, without torch.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"deepfaune-rs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_detect(sub)
    _add_run(sub)
    _add_models(sub)
    _add_convert(sub)
    _add_export(sub)
    from .cli_reid import add_parser as _add_reid

    _add_reid(sub)
    _add_agreement(sub)
    _add_devices(sub)
    _add_review(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .errors import DeepfauneError, InvalidArgumentError, UnknownModelError

    try:
        _take_renamed(args)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except _Usage as e:
        print(f"deepfaune-rs: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (InvalidArgumentError, UnknownModelError) as e:  # the user's to correct (devices too)
        print(f"deepfaune-rs: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except DeepfauneError as e:
        print(f"deepfaune-rs: error: {e}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
