"""Independent reference of DeepFaune's sequences and aggregation (SPEC 2.4 for 1.4.1,
../shared/deepfaune-1.5.md section 3 for 1.5), for parity tests.

Plain Python and numpy, written from SPEC 2.4 and from reading DeepFaune's ``fileManager.py``
(``findSequences``, ``reorderBySeqnum``) and ``predictTools.py`` (``__averageLogitInSequence``).
It never imports ``deepfaune_rs`` nor reads its model manifests: tests compare the two.

The versions differ only by their temperatures (:class:`Rules`: :data:`DEEPFAUNE_141`,
:data:`DEEPFAUNE_15`); 1.5's class and label names are in ``deepfaune_15_labels.py``.

It works the way DeepFaune does, not the way the Rust core is organised:

- one float32 row per image in DeepFaune's layout: animal logits, bird-group logits (when the bird
  head is on), then human, vehicle, empty; empty = 15 by default, 0 once something was detected,
  human/vehicle = 15 for such images, and image kinds are read back from those columns;
- dates are EXIF strings (``"YYYY:MM:DD HH:MM:SS"``) or ``None``; like DeepFaune, a missing date is
  the string ``"NA"``, which sorts after every real date, and a pair of dates that ``strptime``
  cannot read starts a new sequence;
- means, temperatures and the softmax are computed with numpy float32 arrays like DeepFaune.

Label indices follow DeepFaune's label list: classes ``0..C``, bird groups ``C..C+G``, then human
``C+G``, vehicle ``C+G+1``, empty ``C+G+2``, undefined ``C+G+3`` (the same numbering as the Rust
``Label::index``).

Differences with the Rust core that parity tests must avoid: NaN or overflowing logits and all
classes disabled make DeepFaune (and this reference) return NaN or fail; the Rust core answers
instead. The Rust core treats a present but unparsable date as no date; pass ``None`` here for
those images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

DEFAULT_LOGIT = 15.0
MISSING_DATE = "NA"
KIND_CODES = {"empty": 0, "animal": 1, "human": 2, "vehicle": 3}


@dataclass(frozen=True)
class Rules:
    """The temperatures of one DeepFaune version's ``__averageLogitInSequence``: the mean logits
    are divided by ``temperature_image`` when the group has one animal image (every per-image
    result too), by ``temperature_sequence`` when it has several, and the bird head's mean
    logits by ``temperature_bird``."""

    version: str
    temperature_image: float
    temperature_sequence: float
    temperature_bird: float


# 1.4.1: `temperature = 1.10 if predinseq.shape[0] == 1 else 1.04`, bird stage `temperature = 0.9`.
DEEPFAUNE_141 = Rules("1.4.1", 1.10, 1.04, 0.9)
# 1.5: `temperature = 1.12 if predinseq.shape[0] == 1 else 1.10`, bird stage `temperature = 1.00`.
DEEPFAUNE_15 = Rules("1.5", 1.12, 1.10, 1.00)


@dataclass(frozen=True)
class Layout:
    """Column layout of DeepFaune's per-image rows."""

    n_classes: int
    n_groups: int = 0

    @property
    def human(self) -> int:
        return self.n_classes + self.n_groups

    @property
    def vehicle(self) -> int:
        return self.human + 1

    @property
    def empty(self) -> int:
        return self.human + 2

    @property
    def undefined(self) -> int:
        return self.human + 3

    @property
    def width(self) -> int:
        return self.n_classes + self.n_groups + 3


def kind_code(kind) -> int:
    """``"animal"`` or ``1`` -> 1, etc.; unknown codes (failed files) count as empty."""
    if isinstance(kind, str):
        return KIND_CODES[kind]
    kind = int(kind)
    return kind if kind in (0, 1, 2, 3) else 0


def build_rows(kinds: Sequence, logits, bird_logits=None) -> tuple[np.ndarray, Layout]:
    """DeepFaune's float32 ``prediction`` matrix for a list of images."""
    logits = np.asarray(logits, dtype=np.float32)
    n, n_classes = logits.shape
    n_groups = 0 if bird_logits is None else np.asarray(bird_logits).shape[1]
    layout = Layout(n_classes, n_groups)
    rows = np.zeros((n, layout.width), dtype=np.float32)
    rows[:, layout.empty] = DEFAULT_LOGIT
    for i, kind in enumerate(kinds):
        code = kind_code(kind)
        if code > 0:
            rows[i, layout.empty] = 0.0
        if code == 1:
            rows[i, :n_classes] = logits[i]
            if bird_logits is not None:
                rows[i, n_classes : layout.human] = np.asarray(bird_logits, dtype=np.float32)[i]
        elif code == 2:
            rows[i, layout.human] = DEFAULT_LOGIT
        elif code == 3:
            rows[i, layout.vehicle] = DEFAULT_LOGIT
    return rows, layout


def _softmax_top(mean_logits: np.ndarray, temperature: float) -> tuple[int, np.float32]:
    scaled = mean_logits / np.float32(temperature)
    best = int(np.argmax(scaled))
    exps = np.exp(scaled)
    total = np.float32(0)
    for e in exps:  # DeepFaune sums with Python's sum(): one float32 addition after the other
        total = total + e
    return best, exps[best] / total


def average_logits(
    rows: np.ndarray,
    layout: Layout,
    threshold: float,
    forbidden: Sequence[int] = (),
    bird_index: int | None = None,
    rules: Rules = DEEPFAUNE_141,
) -> tuple[int, float, int]:
    """(label, truncated score, top1) of a group of rows, as DeepFaune ``rules.version``
    aggregates a sequence."""
    rows = np.asarray(rows, dtype=np.float32)
    is_empty = rows[:, layout.empty] > 0
    is_human = rows[:, layout.human] > 0
    is_vehicle = rows[:, layout.vehicle] > 0
    is_animal = ~(is_empty | is_human | is_vehicle)
    if is_empty.sum() == rows.shape[0]:
        return layout.empty, 1.0, layout.empty
    if is_animal.any():
        classes = [c for c in range(layout.n_classes) if c not in set(forbidden)]
        animal_rows = rows[is_animal]
        mean = np.mean(animal_rows[:, classes], axis=0)
        one = animal_rows.shape[0] == 1
        temperature = rules.temperature_image if one else rules.temperature_sequence
        pos, score = _softmax_top(mean, temperature)
        best = classes[pos]
        use_birds = layout.n_groups > 0 and bird_index is not None
        if use_birds and best == bird_index and score >= np.float32(threshold):
            groups = list(range(layout.n_classes, layout.human))
            bird_mean = np.mean(animal_rows[:, groups], axis=0)
            gpos, gscore = _softmax_top(bird_mean, rules.temperature_bird)
            if gscore >= np.float32(threshold):
                best, score = groups[gpos], gscore
    else:
        best = layout.human if is_human.sum() >= is_vehicle.sum() else layout.vehicle
        score = np.float32(1.0)
    label = layout.undefined if score < np.float32(threshold) else best
    return label, int(score * np.float32(100)) / 100.0, best


def _lag_within(earlier: str, later: str, maxlag: float) -> bool:
    try:
        a = datetime.strptime(earlier, "%Y:%m:%d %H:%M:%S")
        b = datetime.strptime(later, "%Y:%m:%d %H:%M:%S")
    except (TypeError, ValueError):
        return False
    return b - a <= timedelta(seconds=maxlag)


def find_sequences(
    filenames: Sequence[str], dates: Sequence[str | None], maxlag: float
) -> list[int]:
    """Sequence number (1..N) of each image, in input order."""
    folders: dict[str, list[int]] = {}
    for i, name in enumerate(filenames):
        folders.setdefault(os.path.dirname(str(name)), []).append(i)
    texts = [MISSING_DATE if d is None else str(d) for d in dates]
    seqnum = [0] * len(filenames)
    current = 0
    for members in folders.values():  # dicts keep first-appearance order
        ordered = sorted(members, key=lambda i: texts[i])  # stable
        previous = None
        for i in ordered:
            if previous is None or not _lag_within(texts[previous], texts[i], maxlag):
                current += 1
            seqnum[i] = current
            previous = i
    return seqnum


def predict(
    filenames: Sequence[str],
    dates: Sequence[str | None],
    kinds: Sequence,
    logits,
    counts: Sequence[int] | None = None,
    humancounts: Sequence[int] | None = None,
    *,
    threshold: float = 0.8,
    maxlag: float = 10.0,
    forbidden: Sequence[int] = (),
    bird_logits=None,
    bird_index: int | None = None,
    rules: Rules = DEEPFAUNE_141,
) -> dict[str, list]:
    """Per-image columns in input order: seqnum, predictionbase, scorebase, prediction, score, top1
    (labels as indices, see the module docstring), and the counts passed through. ``rules``: the
    DeepFaune version's temperatures."""
    rows, layout = build_rows(kinds, logits, bird_logits)
    n = len(filenames)
    seqnum = find_sequences(filenames, dates, maxlag)
    out: dict[str, list] = {
        key: [None] * n for key in ("predictionbase", "scorebase", "prediction", "score", "top1")
    }
    out["seqnum"] = seqnum
    for i in range(n):
        label, score, _ = average_logits(
            rows[i : i + 1], layout, threshold, forbidden, bird_index, rules
        )
        out["predictionbase"][i], out["scorebase"][i] = label, score
    for num in sorted(set(seqnum)):
        members = [i for i in range(n) if seqnum[i] == num]
        label, score, top1 = average_logits(
            rows[members], layout, threshold, forbidden, bird_index, rules
        )
        for i in members:
            out["prediction"][i], out["score"][i], out["top1"][i] = label, score, top1
    out["count"] = list(counts) if counts is not None else [0] * n
    out["humancount"] = list(humancounts) if humancounts is not None else [0] * n
    return out


def table_order(filenames: Sequence[str], seqnum: Sequence[int]) -> list[int]:
    """Row order of DeepFaune's CSV: by seqnum, then filename."""
    return sorted(range(len(filenames)), key=lambda i: (seqnum[i], str(filenames[i])))
