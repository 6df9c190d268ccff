"""The whole DeepFaune pipeline, stages 1 to 9: detection, species classification, sequences,
outputs."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import _core
from ._files import atomic_open
from ._progress import ProgressArg, make_callback
from ._renamed import renamed
from .detect import DetectionResult, Detector, Inputs, PathLike, _as_paths
from .errors import Failure
from .videos import VideoRecord

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

#: The classifier of DeepFaune's default setup (``Pipeline()``, ``deepfaune-rs run``, and what
#: ``deepfaune-rs models fetch deepfaune`` fetches): DeepFaune's current release, 1.5.
DEFAULT_CLASSIFIER = "deepfaune-v15"
#: DeepFaune's language codes (Swedish is ``se``; 1.4 and older have the first five only).
LANGUAGES = ("en", "fr", "it", "de", "es", "no", "se", "pt")
#: Other accepted codes: ISO 639-1 ``sv`` for DeepFaune's Swedish ``se``.
LANGUAGE_ALIASES = {"sv": "se"}
#: The detector mode of DeepFaune's default setup.
DEFAULT_DETECTOR_MODE = "DFbsMDS"


class Pipeline:
    """DeepFaune's pipeline: detect, classify the best animal crop, group images into
    sequences per folder (``maxlag_s``), and average the logits over each sequence with the
    classifier version's temperatures.

    ``detector`` is a :class:`Detector` or anything ``Detector(...)`` accepts (default
    ``"DFbsMDS"``, DeepFaune's default: needs the DF and MegaDetector weights; ``"md-lite"`` is
    embedded). With ``detector=None, detector_mode=None`` no detector is loaded: the pipeline
    then only classifies given boxes (``run(..., detections=...)``). ``classifier`` is a
    built-in id (``deepfaune-v15``, the default and DeepFaune's current release;
    ``deepfaune-v14``, ``-v13``, ``-v11``), a manifest ``.toml`` or an ``.onnx`` file (with
    ``classifier_manifest=``, by default the v1.5 manifest). ``language``: one of
    :data:`LANGUAGES` that the classifier has (``no``, ``se`` and ``pt`` since 1.5; ``sv`` is
    accepted for ``se``). ``disabled_classes`` are class names (any language) dropped before the
    softmax. ``score_threshold``: a sequence whose score is below it is ``undefined`` (default:
    the classifier manifest's ``[postprocess] threshold``, 0.8 for DeepFaune's classifiers;
    ``threshold`` is its old name, deprecated).

    Before anything is loaded, the weights of every built-in model the pipeline needs are
    checked: missing ones raise one :class:`~deepfaune_rs.WeightsNotFoundError` naming them all
    and the ``deepfaune-rs models fetch ...`` command that gets them; ``fetch=True`` fetches
    them first (nothing is ever downloaded otherwise).

    ``device``, ``precision`` and ``cache_dir`` are :class:`Detector`'s, for the detector named
    here and the classifier (``precision="int8"``: every model's int8 variant, made by
    ``deepfaune-rs models quantize ID``); ``intra_threads`` is the classifier's ONNX Runtime
    thread count (0 = one per core).
    """

    def __init__(
        self,
        detector: Detector | PathLike | None = None,
        classifier: PathLike = DEFAULT_CLASSIFIER,
        *,
        detector_mode: str | None = DEFAULT_DETECTOR_MODE,
        classifier_manifest: PathLike | None = None,
        score_threshold: float | None = None,
        maxlag_s: float = 10,
        language: str = "en",
        disabled_classes: Sequence[str] = (),
        bird_head: bool = False,
        batch_size: int = 1,
        fetch: bool = False,
        class_thresholds: Mapping[str, float] | None = None,
        device: str = "cpu",
        precision: str = "fp32",
        intra_threads: int = 0,
        cache_dir: PathLike | None = None,
        threshold: float | None = None,
    ) -> None:
        score_threshold = renamed("score_threshold", score_threshold, "threshold", threshold)
        if language not in LANGUAGES and language not in LANGUAGE_ALIASES:
            from .errors import InvalidArgumentError

            aliases = ", ".join(f"{a} for {c}" for a, c in LANGUAGE_ALIASES.items())
            raise InvalidArgumentError(
                f"unknown language '{language}': use one of {', '.join(LANGUAGES)} ({aliases})"
            )
        from .fetch import classifier_id, detector_ids, require

        needed = [] if isinstance(detector, Detector) else detector_ids(detector or detector_mode)
        if precision == "fp32":  # an int8 variant's own absence is the core's error
            require(needed, classifier_id(classifier), bird_head, fetch_first=fetch)
        models = {"device": device, "precision": precision, "cache_dir": cache_dir}
        if detector is None and detector_mode is not None:
            detector = Detector(detector_mode, **models)
        elif detector is not None and not isinstance(detector, Detector):
            detector = Detector(detector, **models)
        self.detector: Detector | None = detector
        self.language = language
        self._inner = _core.Pipeline(
            None if detector is None else detector._inner,
            os.fspath(classifier),
            classifier_manifest=(
                None if classifier_manifest is None else os.fspath(classifier_manifest)
            ),
            score_threshold=score_threshold,
            maxlag_s=float(maxlag_s),
            language=language,
            disabled_classes=list(disabled_classes),
            bird_head=bird_head,
            batch_size=batch_size,
            class_thresholds={str(k): float(v) for k, v in (class_thresholds or {}).items()},
            intra_threads=intra_threads,
            device=device,
            precision=precision,
            cache_dir=None if cache_dir is None else os.fspath(cache_dir),
        )

    @property
    def class_names(self) -> list[str]:
        """The classifier's classes in the pipeline's language (the logits' columns)."""
        return self._inner.class_names

    def run(
        self,
        inputs: Inputs | None = None,
        progress: ProgressArg = True,
        keep_embeddings: bool = True,
        checkpoint: PathLike | None = None,
        detections: DetectionResult | PathLike | None = None,
        json_rules: str | None = None,
        outputs: Sequence[PathLike] = (),
    ) -> PipelineResult:
        """Runs over image and video files and folders (walked recursively). Images go through
        DeepFaune's image path (sequences per folder); each video is sampled (12 frames, see
        :func:`deepfaune_rs.video.frame_indices`) and judged as one sequence of its own
        (:attr:`PipelineResult.videos`). Unreadable files are listed in
        :attr:`PipelineResult.failures` and treated as empty, as DeepFaune does; so is every
        other file the walk meets (``.webp``, ``.txt``...: stage ``walk``, kind
        ``unsupported``), except the run's own files: ``checkpoint``, ``outputs`` (the files
        the results will be written to) and their sidecars (``NAME.checkpoint``,
        ``NAME.corrections.jsonl``).

        ``checkpoint``: a file where every processed image is recorded as soon as it is done. If
        the run is interrupted (crash, sleep, Ctrl-C), calling ``run`` again with the same
        checkpoint skips the images already done and gives the same results as one uninterrupted
        run. Videos are recorded in the same file and skipped the same way. A
        checkpoint written with other models, settings or boxes is refused
        (``InvalidArgumentError``).

        ``detections``: someone else's boxes as the detection step, nothing is detected again (the
        pipeline needs no detector). A MegaDetector batch file (MegaDetector v5/v1000,
        SpeciesNet's MegaDetector-format output, ours), read with
        :func:`~deepfaune_rs.read_megadetector_json` (its relative paths are relative to
        ``inputs``, one folder, or by default to the JSON file's folder), or results that
        function or :meth:`Detector.detect` already gave. The images it lists are classified in
        its order, put into sequences and exported as usual, with progress, ``checkpoint`` and
        failures; ``inputs`` is not walked.

        ``json_rules`` (with ``detections``): ``"corrected"`` (default for a file) keeps the
        package's rules, ``"deepfaune"`` reproduces DeepFaune 1.4.1's ``PredictorJSON`` exactly.
        Differences, ``"deepfaune"`` against ``"corrected"``: the most confident box of any
        category decides the image (a more confident person box makes it ``human`` and the
        animal is not classified; corrected: the best animal box is classified); ``count``
        counts boxes of every category, ``humancount`` is 0 (corrected: animals and people
        apart); no EXIF orientation (corrected: boxes and crops on the upright image); rows the
        file marks as failed are dropped (corrected: failure rows); category ids are read as
        numbers, not by name. Every quirk is listed in
        :func:`~deepfaune_rs.read_megadetector_json`. Results read already keep their rules;
        asking for other rules is an error."""
        callback = make_callback(progress, "deepfaune")
        if detections is not None:
            return self._run_detections(
                inputs, detections, json_rules, callback, keep_embeddings, checkpoint
            )
        if json_rules is not None:
            from .errors import InvalidArgumentError

            raise InvalidArgumentError("json_rules applies to detections= only")
        if inputs is None:
            from .errors import InvalidArgumentError

            raise InvalidArgumentError("give the files or folders to run over")
        paths = _as_paths(inputs)
        # The core walks the folders lazily (results start at once), runs the images, then the
        # videos (given ones first), reading their frames through video.sample_video (PyAV),
        # and records both in the checkpoint.
        res = self._inner.run(
            paths,
            progress=callback,
            keep_embeddings=keep_embeddings,
            checkpoint=None if checkpoint is None else os.fspath(checkpoint),
            outputs=[os.fspath(o) for o in outputs],
        )
        root = paths[0] if len(paths) == 1 and os.path.isdir(paths[0]) else None
        return PipelineResult(res, root)

    def _run_detections(
        self,
        inputs: Inputs | None,
        detections: DetectionResult | PathLike,
        json_rules: str | None,
        callback: Any,
        keep_embeddings: bool,
        checkpoint: PathLike | None,
    ) -> PipelineResult:
        from .errors import InvalidArgumentError
        from .megadetector import JSON_RULES, read_megadetector_json

        if json_rules is not None and json_rules not in JSON_RULES:
            raise InvalidArgumentError(
                f"json_rules '{json_rules}': use {' or '.join(repr(r) for r in JSON_RULES)}"
            )
        root: str | None = None
        if inputs is not None:
            paths = _as_paths(inputs)
            if len(paths) != 1 or not os.path.isdir(paths[0]):
                raise InvalidArgumentError(
                    "with detections=, inputs is the one folder the file's paths are relative to"
                )
            root = paths[0]
        if isinstance(detections, DetectionResult):
            given = detections.json_rules or "corrected"
            if json_rules is not None and json_rules != given:
                raise InvalidArgumentError(
                    f"these detections were decided with the '{given}' rules; read the file "
                    f"again with read_megadetector_json(..., rules='{json_rules}')"
                )
            result = detections
            root = root if root is not None else detections.root
        else:
            result = read_megadetector_json(detections, root=root, rules=json_rules or "corrected")
            root = result.root
        res = self._inner.run(
            [] if root is None else [root],
            progress=callback,
            keep_embeddings=keep_embeddings,
            checkpoint=None if checkpoint is None else os.fspath(checkpoint),
            detections=result._r,
        )
        return PipelineResult(res, root)


class PipelineResult:
    """Results of :meth:`Pipeline.run`, one row per image, plus :attr:`videos`.

    One row order for everything: row ``i`` of every column and array (:attr:`paths`,
    :attr:`logits`, :attr:`embeddings`, :attr:`detections`...) is row ``i`` of :meth:`to_pandas`
    and of the CSV, DeepFaune's order (by sequence number, then file name); the videos' rows
    follow the images'. So ``t = res.to_pandas().iloc[:len(res)]`` then
    ``t["logits"] = list(res.logits)`` puts each image's logits on its own row.

    Image columns: :attr:`seqnum`, :attr:`predictionbase`, :attr:`scorebase`, :attr:`prediction`,
    :attr:`score`, :attr:`top1`, :attr:`logits` ``[n, classes]`` and :attr:`embeddings`
    ``[n, d]`` (read-only numpy views, no copies), plus :attr:`detections` (boxes, counts,
    failures). ``len()`` counts images; each video is one :class:`VideoRecord` and one row of the
    table (:meth:`to_pandas`, :meth:`to_csv`), numbered as a sequence of its own after the images'
    sequences.
    """

    def __init__(
        self,
        inner: _core.PipelineResults,
        root: str | None,
    ) -> None:
        self._r = inner
        self.root = root
        self.detections = DetectionResult(inner.detections, root)
        #: One record per video (the core's, corrections applied), in the table's order.
        self.videos: list[VideoRecord] = [VideoRecord.from_json(r) for r in inner.video_records]

    def __len__(self) -> int:
        return len(self._r)

    def __repr__(self) -> str:
        from collections import Counter

        top = Counter(list(self.prediction) + [v.prediction for v in self.videos]).most_common(5)
        n_seq = int(self.seqnum.max(initial=0))
        return (
            f"<PipelineResult {len(self)} images, {n_seq} sequences, "
            f"{len(self.videos)} videos, {top}>"
        )

    @property
    def failures(self) -> list[Failure]:
        """Every file that could not be processed (images, videos, unsupported video formats):
        path, stage, kind, reason, index (:class:`~deepfaune_rs.errors.Failure`)."""
        return self._r.failures  # type: ignore[return-value]

    @property
    def changed_since_checkpoint(self) -> list[str]:
        """Images and videos the checkpoint held under their path but whose file changed since
        (another size, modification time or content at either end): processed again, not
        restored. Images first, then videos."""
        return list(self._r.changed_since_checkpoint)

    @property
    def skipped_metadata(self) -> int:
        """NAS and operating-system metadata the walk skipped (``@eaDir``, ``__MACOSX``
        folders; ``._*``, ``.DS_Store``, ``Thumbs.db`` files): neither processed nor failed."""
        return self._r.skipped_metadata

    paths = property(lambda self: self.detections.paths, doc="File path of each image.")
    dates = property(lambda self: self.detections.dates, doc="EXIF DateTimeOriginal or None.")
    count = property(lambda self: self.detections.count, doc="Animal boxes per image.")
    humancount = property(lambda self: self.detections.humancount, doc="Person boxes per image.")
    seqnum = property(lambda self: self._r.seqnum, doc="Sequence number per image (1..N).")
    predictionbase = property(lambda self: self._r.predictionbase, doc="Per-image prediction.")
    scorebase = property(lambda self: self._r.scorebase, doc="Per-image score.")
    prediction = property(lambda self: self._r.prediction, doc="Per-sequence prediction.")
    score = property(lambda self: self._r.score, doc="Per-sequence score.")
    top1 = property(lambda self: self._r.top1, doc="Per-sequence best class, whatever the score.")
    class_names = property(lambda self: self._r.class_names, doc="Logit columns.")
    classified = property(lambda self: self._r.classified, doc="Rows the classifier filled.")

    @property
    def logits(self) -> np.ndarray:
        """Raw logits ``[n, classes]`` (zeros where no animal was classified)."""
        return self._r.logits

    @property
    def embeddings(self) -> np.ndarray:
        """Classifier embeddings ``[n, d]`` (the CLS token; zeros where nothing was classified)."""
        return self._r.embeddings

    @property
    def bird_logits(self) -> np.ndarray:
        """Bird-head logits ``[n, 8]`` when the bird head ran."""
        return self._r.bird_logits

    def _with(self, inner: _core.PipelineResults) -> PipelineResult:
        """The same run (failures) with other predictions; ``inner`` holds the videos."""
        return PipelineResult(inner, self.root)

    def redecide(
        self,
        score_threshold: float | None = None,
        class_thresholds: Mapping[str, float] | None = None,
        disabled_classes: Sequence[str] | None = None,
        maxlag_s: float | None = None,
        preset: str | None = None,
        threshold: float | None = None,
    ) -> PipelineResult:
        """The images decided again from the stored logits, boxes and dates, with other
        settings, without running any model: the same answers as a new run with those settings
        (the core's sequence step runs on the stored rows). ``None`` keeps the run's setting.
        ``class_thresholds`` (``{class: threshold}``) replace ``score_threshold`` for those
        classes (``threshold``: its old name, deprecated);
        ``disabled_classes`` replaces the run's list; ``preset`` names a saved list of classes
        to switch off (:func:`deepfaune_rs.review.save_preset`: the species absent from a
        region). Corrections applied so far stay applied. Videos keep their answers."""
        score_threshold = renamed("score_threshold", score_threshold, "threshold", threshold)
        if preset is not None:
            from .review import load_preset

            if disabled_classes is not None:
                from .errors import InvalidArgumentError

                raise InvalidArgumentError("give disabled_classes or preset, not both")
            disabled_classes = load_preset(preset)
        inner = self._r.redecide(
            score_threshold=score_threshold,
            class_thresholds=None
            if class_thresholds is None
            else {str(k): float(v) for k, v in class_thresholds.items()},
            disabled_classes=None if disabled_classes is None else list(disabled_classes),
            maxlag_s=None if maxlag_s is None else float(maxlag_s),
        )
        return self._with(inner)

    def apply_corrections(self, path: PathLike) -> PipelineResult:
        """These results with the corrections journal at ``path`` applied (what the review page
        writes: ``<results>.corrections.jsonl``; a missing file changes nothing). A relabelled
        image takes the label with score 1.0 (as DeepFaune's GUI does) in every output: the
        table, CSV/XLSX, sorting, MegaDetector JSON (the label alone, probability 1.0) and
        Camtrap DP (``classificationMethod`` ``human``, ``classifiedBy``,
        ``classificationTimestamp``). A relabelled video takes the label with score 1.0 as
        its prediction and top1 (:attr:`videos` too) in every output, Camtrap DP's
        ``classificationMethod`` ``human`` included. The results themselves are never
        edited."""
        return self._with(self._r.with_corrections(os.fspath(path)))

    @property
    def reviewed(self) -> list[dict | None]:
        """Per image, what the applied corrections say: None, or ``{label, verified, by,
        time}`` (``label`` None: verified as predicted)."""
        return self._r.reviewed

    @property
    def video_reviewed(self) -> list[dict | None]:
        """The same per video (:attr:`videos`)."""
        return self._r.video_reviewed

    @property
    def settings(self) -> dict:
        """The settings the predictions were decided with (threshold, class_thresholds,
        disabled_classes, maxlag_s, language, bird_head)."""
        return self._r.settings

    @property
    def labels(self) -> list[str]:
        """Every label a prediction can take, in the results' language."""
        return self._r.labels

    def review(self, results: PathLike | None = None, **kwargs: Any) -> Any:
        """Starts the review page on 127.0.0.1 (see :func:`deepfaune_rs.review.review`);
        corrections go to ``<results>.corrections.jsonl``. Returns the running server
        (``.url``, ``.stop()``)."""
        from .review import review

        return review(self, results, **kwargs)

    def show(self, which: int | PathLike, width: int = 640) -> Any:
        """One image (index, file name or path) with its boxes and labels, for a notebook."""
        from .review import show

        return show(self, which, width=width)

    def gallery(self, prediction: str | None = None, n: int = 12, **kwargs: Any) -> Any:
        """Up to ``n`` images predicted ``prediction`` (or of ``kind=``) with boxes and labels."""
        from .review import gallery

        return gallery(self, prediction, n=n, **kwargs)

    def _repr_html_(self) -> str:
        from .review import summary_html

        return summary_html(self)

    def save_embeddings(self, path: PathLike) -> None:
        """Writes the images' crop embeddings to an ``.npz`` file (atomically): ``filename`` (the
        image paths, in the table's order) and ``embedding`` (``[n, d]``, zeros where no animal was
        classified). Needs ``keep_embeddings=True`` in :meth:`Pipeline.run`."""
        import numpy as np

        emb = self.embeddings
        if emb.shape[1] == 0:
            raise ValueError("the run did not keep embeddings (Pipeline.run(keep_embeddings=True))")
        with atomic_open(path, "wb") as f:
            names = np.array([os.fspath(p) for p in self.paths], dtype=str)
            np.savez(f, filename=names, embedding=emb)

    def table(self) -> dict[str, list]:
        """DeepFaune's table as columns (see :meth:`to_pandas`)."""
        return self._r.table()

    def to_pandas(self) -> pd.DataFrame:
        """DeepFaune's table: filename, date, seqnum, predictionbase, scorebase, prediction, score,
        top1, count, humancount; sorted by seqnum then filename. Then ``status``: ``ok``, or
        ``failed: <reason>`` for a file that could not be processed (DeepFaune's columns call it
        ``empty``: never delete "empty" rows without looking at this column). With videos, one
        row per video (its prediction in both the base and sequence columns, counts = most boxes
        in a frame) and two more columns: ``media_type`` (image/video) and ``keyframe`` (frame
        number)."""
        import pandas as pd

        t = self.table()
        return pd.DataFrame(t, columns=list(t))

    def to_csv(self, path: PathLike, csv_safe: bool = False) -> None:
        """Writes DeepFaune's CSV (atomically); see :meth:`to_pandas` for videos.

        ``csv_safe=True`` puts a single quote in front of text cells a spreadsheet would run as
        a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return), e.g. an
        image named ``=HYPERLINK(...).jpg``. DeepFaune writes names unchanged, hence the
        default."""
        self._r.to_csv(os.fspath(path), csv_safe)

    def to_excel(self, path: PathLike, csv_safe: bool = False) -> None:
        """Writes DeepFaune's table as XLSX (needs ``openpyxl``), atomically. Text is always
        stored as text cells, never as formulas (whatever it starts with); numbers stay numbers.
        ``csv_safe=True`` also puts a single quote in front of text a spreadsheet would run as a
        formula once copied or exported back to CSV (see :meth:`to_csv`)."""
        from openpyxl import Workbook

        t = self.table()
        columns = list(t)
        wb = Workbook(write_only=True)
        ws = wb.create_sheet("Sheet1")  # pandas' default sheet name
        ws.append([_text_cell(ws, c, False) for c in columns])
        for i in range(len(t["filename"])):
            ws.append([_text_cell(ws, t[name][i], csv_safe) for name in columns])
        with atomic_open(path, "wb") as f:
            wb.save(f)

    def to_megadetector_json(self, path: PathLike, root: PathLike | None = None) -> None:
        """Writes MegaDetector batch JSON 1.6 (atomically) with the species: the classifier's
        classes as ``classification_categories`` (English names) and, on the classified box of
        each animal image, ``classifications``: the top 3 ``[class id, probability]`` by softmax of
        the image's logits at the classifier's single-image temperature (DeepFaune 1.5: 1.12,
        1.4: 1.10), switched-off classes left out. A video's entry has ``frame_rate``,
        ``frames_processed`` and a ``frame_number`` on each detection. File names are relative
        to ``root`` (default: the folder that was run)."""
        self._r.to_megadetector_json(
            os.fspath(path), self.root if root is None else os.fspath(root)
        )

    def to_camtrap_dp(
        self,
        folder: PathLike,
        deployments: PathLike | Sequence[Mapping[str, Any]] | None = None,
        *,
        deployment_of: Mapping[str, str] | None = None,
        timezone: str | None = None,
        undated: str = "exclude",
        metadata: Mapping[str, Any] | None = None,
        root: PathLike | None = None,
    ) -> list[str]:
        """Writes a Camtrap DP 1.0.2 package (``datapackage.json``, ``deployments.csv``,
        ``media.csv``, ``observations.csv``) into ``folder``, each file atomically.

        Sequences become events (``eventID`` ``seq<seqnum>``, ``observationLevel`` event, the
        sequence's prediction and the most animals seen in one image); every detection box is a
        media-level observation (bbox as fractions of the image), the classified one with the
        species. Scientific names come from the classifier manifest's ``scientific_names``.

        Each readable video (:attr:`videos`) is a media row (``fileMediatype`` ``video/mp4``,
        ...; ``timestamp`` its ``creation_time``, read as the camera's clock like an EXIF date)
        and an event of its own, numbered as in :meth:`table`: from its timestamp to its timestamp
        plus its whole seconds, with the video's prediction and counts; its keyframe is a
        media-level observation with the deciding box (as fractions of the frame), the species,
        and the frame number in ``observationComments``. Videos that could not be read are left
        out like unreadable images.

        ``deployments``: a CSV file (or rows) with ``deploymentID`` and any Camtrap DP deployment
        columns (``latitude``, ``longitude``, ``deploymentStart`` with its UTC offset, ...). An
        image or video belongs to the deployment named by its folder (path relative to the run's
        folder, or the folder's name), unless ``deployment_of`` maps that folder to another id.
        ``timezone`` (``"+02:00"``) is the camera clocks' zone; by default each deployment's
        ``deploymentStart`` offset, else UTC. ``undated``: ``"exclude"`` images without EXIF date
        and videos without ``creation_time`` (the standard requires a timestamp) or date them by
        file ``"mtime"``. ``metadata``: package fields (``title``, ``contributors``, ``licenses``,
        and ``project`` with ``title``, ``samplingDesign``, ``captureMethod``, which Camtrap DP
        requires).

        Nothing is invented: what the media cannot tell (coordinates, project facts) and is not
        given is left out and reported. Returns those warnings (also emitted with
        :func:`warnings.warn`).
        """
        import json
        import warnings

        rows = None
        if deployments is not None:
            if isinstance(deployments, (str, os.PathLike)):
                import csv

                with open(os.fspath(deployments), newline="", encoding="utf-8-sig") as f:
                    rows = [dict(r) for r in csv.DictReader(f)]
            else:
                rows = [{str(k): str(v) for k, v in r.items()} for r in deployments]
        found = self._r.to_camtrap_dp(
            os.fspath(folder),
            deployments=rows,
            deployment_of=None if deployment_of is None else dict(deployment_of),
            timezone=timezone,
            root=self.root if root is None else os.fspath(root),
            undated=undated,
            metadata=None if metadata is None else json.dumps(dict(metadata)),
        )
        for w in found:
            warnings.warn(f"Camtrap DP: {w}", UserWarning, stacklevel=2)
        return found

    def sort_into(self, dest: PathLike, mode: str = "copy", blur_humans: bool = False) -> dict:
        """Sorts the images into ``<dest>/deepfaune_<timestamp>/<prediction>/`` as DeepFaune does
        (``mode``: copy, move or symlink; name clashes get ``_2``, ``_3``; nothing is overwritten).
        Returns ``{"root", "placed": [(src, dst)], "failures": [(src, reason)]}``. Ctrl-C stops
        it between two files (``KeyboardInterrupt``; the files already placed stay, each whole).
        Moving a symbolic link places a link to the same file (a relative link stays valid)."""
        stamp = datetime.now().strftime("%d-%m-%Y_%H-%M-%S")
        root, placed, failures = self._r.sort_into(os.fspath(dest), mode, blur_humans, stamp)
        return {"root": root, "placed": placed, "failures": failures}


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _text(value: object, csv_safe: bool) -> object:
    """``value`` with a single quote in front when ``csv_safe`` and a spreadsheet would run it
    as a formula (the same rule as the core's ``formula_safe``)."""
    if csv_safe and isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _text_cell(ws: Any, value: object, csv_safe: bool) -> object:
    """An XLSX cell: text stays text (openpyxl would make ``=...`` a formula), other values
    as they are."""
    value = _text(value, csv_safe)
    if not isinstance(value, str):
        return value
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(ws, value=value)
    cell.data_type = "s"
    return cell
