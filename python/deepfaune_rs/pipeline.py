"""The whole DeepFaune pipeline: detection, species classification, sequences, outputs."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import _core
from ._progress import ProgressArg, make_callback
from .detect import DetectionResult, Detector, Inputs, PathLike, _as_paths

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

#: DeepFaune's table columns, in order.
COLUMNS = [
    "filename",
    "date",
    "seqnum",
    "predictionbase",
    "scorebase",
    "prediction",
    "score",
    "top1",
    "count",
    "humancount",
]


class Pipeline:
    """DeepFaune 1.4.1's pipeline: detect, classify the best animal crop, group images into
    sequences per folder (``maxlag_s``), and average the logits over each sequence.

    ``detector`` is a :class:`Detector` or anything ``Detector(...)`` accepts (default
    ``"DFbsMDS"``, DeepFaune's default: needs the DF and MegaDetector weights; ``"md-lite"`` is
    embedded). ``classifier`` is a built-in id (``deepfaune-v14``, ``-v13``, ``-v11``), a manifest
    ``.toml`` or an ``.onnx`` file (with ``classifier_manifest=``). ``disabled_classes`` are class
    names (any language) dropped before the softmax.
    """

    def __init__(
        self,
        detector: Detector | PathLike | None = None,
        classifier: PathLike = "deepfaune-v14",
        *,
        detector_mode: str = "DFbsMDS",
        classifier_manifest: PathLike | None = None,
        threshold: float = 0.8,
        maxlag_s: float = 10,
        language: str = "en",
        disabled_classes: Sequence[str] = (),
        bird_head: bool = False,
        batch_size: int = 1,
    ) -> None:
        if detector is None:
            detector = Detector(detector_mode)
        elif not isinstance(detector, Detector):
            detector = Detector(detector)
        self.detector = detector
        self.language = language
        self._inner = _core.Pipeline(
            detector._inner,
            os.fspath(classifier),
            classifier_manifest=(
                None if classifier_manifest is None else os.fspath(classifier_manifest)
            ),
            threshold=threshold,
            maxlag_s=float(maxlag_s),
            language=language,
            disabled_classes=list(disabled_classes),
            bird_head=bird_head,
            batch_size=batch_size,
        )

    @property
    def class_names(self) -> list[str]:
        """The classifier's classes in the pipeline's language (the logits' columns)."""
        return self._inner.class_names

    def run(
        self, inputs: Inputs, progress: ProgressArg = True, keep_embeddings: bool = True
    ) -> PipelineResult:
        """Runs over image files and folders (walked recursively). Unreadable files are listed in
        ``result.detections.failures`` and treated as empty, as DeepFaune does."""
        paths = _as_paths(inputs)
        callback = make_callback(progress, "deepfaune")
        res = self._inner.run(paths, progress=callback, keep_embeddings=keep_embeddings)
        from pathlib import Path

        root = paths[0] if len(paths) == 1 and Path(paths[0]).is_dir() else None
        return PipelineResult(res, root)


class PipelineResult:
    """Results of :meth:`Pipeline.run`, one row per image in walk order.

    Columns: :attr:`seqnum`, :attr:`predictionbase`, :attr:`scorebase`, :attr:`prediction`,
    :attr:`score`, :attr:`top1`, :attr:`logits` ``[n, classes]`` and :attr:`embeddings`
    ``[n, d]`` (read-only numpy views, no copies), plus :attr:`detections` (boxes, counts,
    failures).
    """

    def __init__(self, inner: _core.PipelineResults, root: str | None) -> None:
        self._r = inner
        self.root = root
        self.detections = DetectionResult(inner.detections, root)

    def __len__(self) -> int:
        return len(self._r)

    def __repr__(self) -> str:
        from collections import Counter

        top = Counter(self.prediction).most_common(5)
        n_seq = int(self.seqnum.max(initial=0))
        return f"<PipelineResult {len(self)} images, {n_seq} sequences, {top}>"

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

    def to_pandas(self) -> pd.DataFrame:
        """DeepFaune's table: filename, date, seqnum, predictionbase, scorebase, prediction, score,
        top1, count, humancount; sorted by seqnum then filename."""
        import pandas as pd

        return pd.DataFrame(self._r.table(), columns=COLUMNS)

    def to_csv(self, path: PathLike) -> None:
        """Writes DeepFaune's CSV (atomically)."""
        self._r.to_csv(os.fspath(path))

    def to_excel(self, path: PathLike) -> None:
        """Writes DeepFaune's table as XLSX (needs ``openpyxl``), atomically."""
        import tempfile

        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(suffix=".xlsx", dir=folder)
        os.close(fd)
        try:
            self.to_pandas().to_excel(tmp, index=False)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def to_megadetector_json(self, path: PathLike, root: PathLike | None = None) -> None:
        """Writes MegaDetector batch JSON 1.6 (atomically) with the species: the classifier's
        classes as ``classification_categories`` (English names) and, on the classified box of
        each animal image, ``classifications``: the top 3 ``[class id, probability]`` by softmax of
        the image's logits at DeepFaune's single-image temperature (1.10), switched-off classes
        left out. File names are relative to ``root`` (default: the folder that was run)."""
        root = self.root if root is None else os.fspath(root)
        self._r.to_megadetector_json(os.fspath(path), root)

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

        ``deployments``: a CSV file (or rows) with ``deploymentID`` and any Camtrap DP deployment
        columns (``latitude``, ``longitude``, ``deploymentStart`` with its UTC offset, ...). An
        image belongs to the deployment named by its folder (path relative to the run's folder,
        or the folder's name), unless ``deployment_of`` maps that folder to another id.
        ``timezone`` (``"+02:00"``) is the camera clocks' zone; by default each deployment's
        ``deploymentStart`` offset, else UTC. ``undated``: ``"exclude"`` images without EXIF date
        (the standard requires a timestamp) or date them by file ``"mtime"``. ``metadata``: package
        fields (``title``, ``contributors``, ``licenses``, and ``project`` with ``title``,
        ``samplingDesign``, ``captureMethod``, which Camtrap DP requires).

        Nothing is invented: what the images cannot tell (coordinates, project facts) and is not
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
        Returns ``{"root", "placed": [(src, dst)], "failures": [(src, reason)]}``."""
        stamp = datetime.now().strftime("%d-%m-%Y_%H-%M-%S")
        root, placed, failures = self._r.sort_into(os.fspath(dest), mode, blur_humans, stamp)
        return {"root": root, "placed": placed, "failures": failures}
