"""Type stubs of the compiled core (``deepfaune_rs._core``), checked with ``mypy.stubtest``."""

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Callable, final

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

__version__: str
__all__ = [
    "StandIn",
    "VIT_BACKBONES",
    "VIT_HEAD_DIM",
    "build_bird_head",
    "build_classifier",
    "build_model_file",
    "dinov3_rope_tables",
    "read_checkpoint",
    "resample_pos_embed",
    "Classifier",
    "CosineIndex",
    "Embedder",
    "EmbeddingResult",
    "Evaluation",
    "KnowledgeBase",
    "QueryResult",
    "ReidTable",
    "reid_build",
    "reid_evaluate_table",
    "reid_query_to_files",
    "reid_read_embeddings",
    "reid_update_from_files",
    "agreement_report",
    "box_iou",
    "boxes_from_megadetector",
    "clahe_gray",
    "clahe_rgb",
    "knn_cosine",
    "reid_cmc_map",
    "reid_new_precision_recall",
    "reid_threshold_sweep",
    "reid_top1_accuracy",
    "DetectionResults",
    "Detector",
    "Pipeline",
    "PipelineResults",
    "ReviewRows",
    "ResultTable",
    "ReviewState",
    "RunPlan",
    "VideoResult",
    "IMAGE_EXTENSIONS",
    "UNSUPPORTED_VIDEO_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "media_type",
    "__version__",
    "available_devices",
    "builtin_models",
    "check_model_spec",
    "detector_input",
    "embedded_detector",
    "DEFAULT_TARGET",
    "FETCH_STATES",
    "LOCK_NAME",
    "fetch_artifacts",
    "FETCH_BACKOFF_MAX_S",
    "FETCH_BACKOFF_S",
    "FETCH_ENV_BASE_URL",
    "FETCH_RETRIES",
    "FETCH_TIMEOUT_S",
    "FetchedFile",
    "FileStatus",
    "copy_into_model_dir",
    "fetch_check",
    "fetch_classifier_id",
    "fetch_detector_ids",
    "fetch_download",
    "fetch_files",
    "fetch_missing",
    "fetch_require",
    "fetch_sources",
    "fetch_status",
    "fetch_targets",
    "read_onnx_stamp",
    "sha256_file",
    "CONVERTER_VERSION",
    "build_detector",
    "checkpoint_kind",
    "convert",
    "detector_layout",
    "int8_manifest",
    "int8_plan",
    "checkpoint_is_complete",
    "run_of_checkpoint",
    "init_runtime",
    "model_dir",
    "read_image",
    "read_megadetector_json",
    "resize_cv2_linear",
    "resize_pil",
    "runtime_path",
    "append_correction",
    "thumbnail",
    "thumbnail_rgb",
    "read_corrections",
    "table_labels",
    "NO_REDECIDE",
    "NO_BOXES",
    "BOX_COLOURS",
    "presets_dir",
    "save_preset",
    "load_preset",
    "list_presets",
    "cache_dir",
    "_error_kinds",
    "_raise_error_kind",
]

_Path = str | PathLike[str]
_Progress = Callable[[int, int], object] | None

def init_runtime(path: _Path) -> None: ...
def runtime_path() -> str | None: ...

# Every error kind of the core: ([(kind, debug form, exception class name)], number of kinds).
def _error_kinds() -> tuple[list[tuple[int, str, str]], int]: ...
def _raise_error_kind(i: int) -> None: ...

# One dict per built-in manifest (detectors, then classifiers newest first): id, kind, name,
# version (str, or None for detectors), file, url, url_format, mirrors (list[str]), url_size
# (int | None), url_md5, url_sha256, sha256, license, embedded, expected_path, available,
# input_size, threshold, and bird_head: None, or for a classifier with one a dict with file, url,
# url_format, mirrors, url_size, url_md5, url_sha256, expected_path, available.
def builtin_models() -> list[dict[str, Any]]: ...
def model_dir() -> Path: ...
def check_model_spec(kind: str, spec: str) -> None: ...

IMAGE_EXTENSIONS: list[str]
VIDEO_EXTENSIONS: list[str]
UNSUPPORTED_VIDEO_EXTENSIONS: list[str]

def media_type(name: str) -> str: ...

# The official weights (src/fetch/): `artifact` is a `fetch.Artifact`, `expect` has `_Expect`'s
# fields (read by attribute); artifacts come back as dicts of `fetch.Artifact`'s fields. `hooks`
# is a `fetch._Hooks` (say, bytes, sleep, convert).
LOCK_NAME: str
FETCH_ENV_BASE_URL: str
FETCH_RETRIES: int
FETCH_BACKOFF_S: float
FETCH_BACKOFF_MAX_S: float
FETCH_TIMEOUT_S: float
DEFAULT_TARGET: str
FETCH_STATES: list[str]

def fetch_artifacts(
    ids: Sequence[str] | None = None, bird_head: bool = True
) -> list[dict[str, Any]]: ...
def fetch_sources(artifact: Any, base: str | None = None) -> tuple[str, list[str]]: ...
def fetch_targets(targets: Sequence[str]) -> list[str]: ...
def fetch_detector_ids(model: _Path | None = None, secondary: _Path | None = None) -> list[str]: ...
def fetch_classifier_id(classifier: _Path | None = None) -> str | None: ...
def fetch_missing(
    detectors: Sequence[str],
    classifier: str | None,
    bird_head: bool,
    given: Sequence[str],
    folder: _Path,
) -> tuple[list[tuple[dict[str, Any], str]], str]: ...
def fetch_check(path: _Path, name: str, expect: Any, lock_path: _Path) -> str: ...
def sha256_file(path: _Path) -> str: ...
def read_onnx_stamp(path: _Path) -> dict[str, str]: ...

CONVERTER_VERSION: str

def convert(
    src: _Path,
    dest: _Path | None = None,
    *,
    kind: str | None = None,
    size: int | None = None,
    check: bool = True,
    converter_version: str | None = None,
) -> dict[str, Any]: ...
def build_detector(ckpt: Any) -> bytes: ...
def detector_layout(ckpt: Any) -> str: ...
def checkpoint_kind(ckpt: Any) -> str: ...
def fetch_status(
    artifacts: Sequence[Any], folder: _Path, converter_version: str | None = None
) -> list[FileStatus]: ...

@final
class FetchedFile:
    """What `fetch()` did for one file."""

    @property
    def model_id(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def path(self) -> Path: ...
    @property
    def source(self) -> Path | None: ...
    @property
    def sha256(self) -> str | None: ...
    @property
    def source_sha256(self) -> str | None: ...
    @property
    def url(self) -> str | None: ...
    @property
    def converted(self) -> bool: ...
    @property
    def notes(self) -> list[str]: ...
    @property
    def label(self) -> str: ...

@final
class FileStatus:
    """Where one model file stands (embedded, missing, downloaded, converted, verified)."""

    @property
    def model_id(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def path(self) -> Path: ...
    @property
    def source(self) -> Path | None: ...
    @property
    def detail(self) -> str: ...
    @property
    def sha256(self) -> str | None: ...
    @property
    def label(self) -> str: ...

def fetch_files(
    artifacts: Sequence[Any],
    folder: _Path,
    hooks: Any,
    convert: bool,
    accept_new_hash: bool,
    converter_version: str | None,
    retries: int,
    timeout: float,
) -> list[FetchedFile]: ...
def fetch_download(
    name: str,
    urls: Sequence[str],
    folder: _Path,
    hooks: Any,
    sha256: str = "",
    retries: int | None = None,
    timeout: float | None = None,
) -> tuple[Path, str, str]: ...
def fetch_require(
    detectors: Sequence[str],
    classifier: str | None,
    bird_head: bool,
    given: Sequence[str],
    fetch_first: bool,
) -> list[str]: ...
def copy_into_model_dir(path: _Path) -> Path: ...
def available_devices() -> list[str]: ...

# kind, id, source (fp32 ONNX path or None for the embedded detector), output, manifest.
def int8_plan(spec: str) -> dict[str, Any]: ...
def int8_manifest(spec: str, int8_file: str, sha256: str, method: str) -> str: ...
def embedded_detector() -> bytes: ...
def detector_input(model: str, path: _Path) -> npt.NDArray[np.float32]: ...
def read_image(
    path: _Path, max_pixels: int | None = None
) -> tuple[npt.NDArray[np.uint8], str | None, int]: ...
def resize_pil(
    image: npt.NDArray[np.uint8],
    size: tuple[int, int],
    box_: tuple[int, int, int, int] | None = None,
    filter: str = "bicubic",
) -> npt.NDArray[np.uint8]: ...
def read_megadetector_json(
    path: _Path, root: _Path | None = None, threshold: float = 0.4, rules: str = "corrected"
) -> DetectionResults: ...
def resize_cv2_linear(
    image: npt.NDArray[np.uint8], size: tuple[int, int]
) -> npt.NDArray[np.uint8]: ...

@final
class Detector:
    def __new__(
        cls,
        model: str = "md-lite",
        *,
        secondary: str | None = None,
        mode: str | None = None,
        threshold: float | None = None,
        manifest: str | None = None,
        weights: dict[str, _Path] | None = None,
        intra_threads: int = 0,
        threads: int = 0,
        batch_size: int = 1,
        spinning: bool = False,
        device: str = "cpu",
        precision: str = "fp32",
        cache_dir: _Path | None = None,
    ) -> Detector: ...
    @property
    def models(self) -> list[str]: ...
    @property
    def threshold(self) -> float: ...
    @property
    def finds_people(self) -> bool: ...
    def detect(
        self,
        paths: Sequence[_Path],
        progress: _Progress = None,
        max_pixels: int | None = None,
        outputs: Sequence[_Path] = ...,
    ) -> DetectionResults: ...

@final
class DetectionResults:
    def __len__(self) -> int: ...
    @property
    def paths(self) -> list[str]: ...
    @property
    def dates(self) -> list[str | None]: ...
    @property
    def category(self) -> npt.NDArray[np.uint8]: ...
    @property
    def count(self) -> npt.NDArray[np.uint32]: ...
    @property
    def humancount(self) -> npt.NDArray[np.uint32]: ...
    @property
    def sizes(self) -> npt.NDArray[np.uint32]: ...
    @property
    def crop_boxes(self) -> npt.NDArray[np.int32]: ...
    @property
    def best_detection(self) -> npt.NDArray[np.int64]: ...
    @property
    def image_index(self) -> npt.NDArray[np.uint32]: ...
    @property
    def boxes(self) -> npt.NDArray[np.float32]: ...
    @property
    def confidences(self) -> npt.NDArray[np.float32]: ...
    @property
    def classes(self) -> npt.NDArray[np.uint8]: ...
    @property
    def failures(self) -> list[dict[str, Any]]: ...
    @property
    def detector(self) -> str: ...
    @property
    def json_rules(self) -> str | None: ...
    @property
    def classification_categories(self) -> list[tuple[str, str]]: ...
    @property
    def classifications(self) -> list[list[tuple[str, float]]]: ...
    def to_megadetector_json(self, path: _Path, root: _Path | None = None) -> None: ...

# (logits [n, classes], embeddings [n, d], bird_logits [n, groups], [(index, reason)])
_Classified = tuple[
    npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32], list[tuple[int, str]]
]

@final
class Classifier:
    def __new__(
        cls,
        classifier: str = "deepfaune-v15",
        *,
        classifier_manifest: str | None = None,
        language: str = "en",
        bird_head: bool = False,
        batch_size: int = 8,
        intra_threads: int = 0,
        device: str = "cpu",
        precision: str = "fp32",
        cache_dir: _Path | None = None,
    ) -> Classifier: ...
    @property
    def class_names(self) -> list[str]: ...
    @property
    def input_size(self) -> int: ...
    @property
    def temperature(self) -> float: ...
    def classify(
        self,
        images: Sequence[npt.NDArray[np.uint8]],
        boxes: Sequence[tuple[float, float, float, float] | None],
        box_format: str = "xyxy",
        square: bool = True,
        keep_embeddings: bool = True,
    ) -> _Classified: ...
    def classify_files(
        self,
        paths: Sequence[_Path],
        boxes: Sequence[tuple[float, float, float, float] | None],
        box_format: str = "xyxy",
        square: bool = True,
        keep_embeddings: bool = True,
    ) -> _Classified: ...

@final
class Pipeline:
    def __new__(
        cls,
        detector: Detector | None,
        classifier: str = "deepfaune-v15",
        *,
        classifier_manifest: str | None = None,
        score_threshold: float | None = None,
        maxlag_s: float = 10.0,
        language: str = "en",
        disabled_classes: Sequence[str] = ...,
        bird_head: bool = False,
        batch_size: int = 1,
        intra_threads: int = 0,
        class_thresholds: Mapping[str, float] = ...,
        device: str = "cpu",
        precision: str = "fp32",
        cache_dir: _Path | None = None,
    ) -> Pipeline: ...
    @property
    def class_names(self) -> list[str]: ...
    def run(
        self,
        paths: Sequence[_Path],
        progress: _Progress = None,
        keep_embeddings: bool = True,
        checkpoint: _Path | None = None,
        detections: DetectionResults | None = None,
        outputs: Sequence[_Path] = ...,
    ) -> PipelineResults: ...
    def run_frames(
        self,
        frames: Sequence[npt.NDArray[np.uint8]],
        slots: Sequence[int | None],
        source: _Path,
        keep_embeddings: bool = False,
    ) -> VideoResult: ...
    def merge(self, plan: RunPlan, parts: Sequence[str]) -> PipelineResults: ...

@final
class RunPlan:
    def __new__(cls, paths: Sequence[_Path]) -> RunPlan: ...
    def __len__(self) -> int: ...
    @property
    def units(self) -> list[tuple[str, list[str], list[str]]]: ...
    @property
    def videos(self) -> list[str]: ...
    @property
    def unsupported_videos(self) -> list[str]: ...

def checkpoint_is_complete(path: _Path) -> bool: ...
def run_of_checkpoint(results: _Path) -> dict[str, Any]: ...

@final
class PipelineResults:
    def __len__(self) -> int: ...
    @property
    def detections(self) -> DetectionResults: ...
    @property
    def failures(self) -> list[dict[str, Any]]: ...
    @property
    def changed_since_checkpoint(self) -> list[str]: ...
    @property
    def skipped_metadata(self) -> int: ...
    @property
    def logits(self) -> npt.NDArray[np.float32]: ...
    @property
    def embeddings(self) -> npt.NDArray[np.float32]: ...
    @property
    def bird_logits(self) -> npt.NDArray[np.float32]: ...
    @property
    def classified(self) -> list[bool]: ...
    @property
    def seqnum(self) -> npt.NDArray[np.uint32]: ...
    @property
    def scorebase(self) -> npt.NDArray[np.float32]: ...
    @property
    def score(self) -> npt.NDArray[np.float32]: ...
    @property
    def predictionbase(self) -> list[str]: ...
    @property
    def prediction(self) -> list[str]: ...
    @property
    def top1(self) -> list[str]: ...
    @property
    def class_names(self) -> list[str]: ...
    def redecide(
        self,
        score_threshold: float | None = None,
        class_thresholds: Mapping[str, float] | None = None,
        disabled_classes: Sequence[str] | None = None,
        maxlag_s: float | None = None,
    ) -> PipelineResults: ...
    def with_corrections(self, path: _Path) -> PipelineResults: ...
    def with_videos(
        self, records: Sequence[str], unsupported: Sequence[_Path] = ...
    ) -> PipelineResults: ...
    @property
    def video_records(self) -> list[str]: ...
    @property
    def reviewed(self) -> list[dict[str, Any] | None]: ...
    @property
    def video_reviewed(self) -> list[dict[str, Any] | None]: ...
    @property
    def unknown_corrections(self) -> int: ...
    def review_rows(self, videos: bool = True) -> ReviewRows: ...
    @property
    def settings(self) -> dict[str, Any]: ...
    @property
    def labels(self) -> list[str]: ...
    def table(self) -> dict[str, list[Any]]: ...
    def to_part(self) -> str: ...
    def to_csv(self, path: _Path, csv_safe: bool = False) -> None: ...
    def to_megadetector_json(self, path: _Path, root: _Path | None = None) -> None: ...
    def to_camtrap_dp(
        self,
        folder: _Path,
        deployments: Sequence[Mapping[str, str]] | None = None,
        deployment_of: Mapping[str, str] | None = None,
        timezone: str | None = None,
        root: _Path | None = None,
        undated: str = "exclude",
        metadata: str | None = None,
    ) -> list[str]: ...
    def sort_into(
        self,
        dest: _Path,
        mode: str = "copy",
        blur_humans: bool = False,
        timestamp: str | None = None,
    ) -> tuple[str, list[tuple[str, str]], list[tuple[str, str]]]: ...

@final
class VideoResult:
    @property
    def detections(self) -> DetectionResults: ...
    @property
    def logits(self) -> npt.NDArray[np.float32]: ...
    @property
    def embeddings(self) -> npt.NDArray[np.float32]: ...
    @property
    def slots(self) -> list[int | None]: ...
    @property
    def prediction(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def top1(self) -> str: ...
    @property
    def label_index(self) -> int: ...
    @property
    def top1_index(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def humancount(self) -> int: ...
    @property
    def keyframe_slot(self) -> int | None: ...

# --- re-identification (src/python/reid.rs, src/python/reid_embed.rs) ---

_F32 = npt.NDArray[np.float32]
_I64 = npt.NDArray[np.int64]

_ArrayLike = npt.ArrayLike

def knn_cosine(base: _ArrayLike, queries: _ArrayLike, k: int = 5) -> tuple[_F32, _I64]: ...
def boxes_from_megadetector(
    path: _Path, *, category: str = "1", min_conf: float = 0.0
) -> tuple[list[str], npt.NDArray[np.float64]]: ...
def reid_top1_accuracy(truth: list[str | None], predicted: list[str | None]) -> float: ...
def reid_cmc_map(
    truth: list[str | None], neighbours: list[list[str]], n_relevant: dict[str, int], k: int
) -> tuple[list[float], list[float]]: ...
def reid_new_precision_recall(
    truth_new: list[bool], predicted_new: list[bool]
) -> tuple[float, float]: ...
def reid_threshold_sweep(
    truth: list[str | None],
    nearest_distance: list[float],
    nearest_individual: list[str],
    thresholds: list[float],
) -> dict[str, Any]: ...
def clahe_rgb(
    image: npt.NDArray[np.uint8], clip_limit: float = 4.0, tile_grid: int = 4
) -> npt.NDArray[np.uint8]: ...
def clahe_gray(
    image: npt.NDArray[np.uint8], clip_limit: float = 4.0, tile_grid: int = 4
) -> npt.NDArray[np.uint8]: ...

@final
class CosineIndex:
    def __new__(cls, base: _F32) -> CosineIndex: ...
    def __len__(self) -> int: ...
    @property
    def dim(self) -> int: ...
    def search(
        self, queries: _F32, k: int = 5, query_batch: int = 1024, base_block: int = 1024
    ) -> tuple[_F32, _I64]: ...

@final
class KnowledgeBase:
    def __new__(cls, dim: int) -> KnowledgeBase: ...
    @staticmethod
    def load(folder: _Path) -> KnowledgeBase: ...
    @staticmethod
    def load_files(informations: _Path, embeddings: _Path) -> KnowledgeBase: ...
    def save(self, folder: _Path) -> None: ...
    def save_files(self, informations: _Path, embeddings: _Path) -> None: ...
    def __len__(self) -> int: ...
    @property
    def dim(self) -> int: ...
    def columns(self) -> dict[str, list[Any]]: ...
    def to_pandas(self) -> Any: ...
    def embeddings(self) -> _F32: ...
    def individuals(self) -> list[str]: ...
    def individual_counts(self) -> dict[str, int]: ...
    def position(self, filepath: _Path) -> int | None: ...
    def add(
        self,
        filepaths: Sequence[_Path],
        individual_ids: Sequence[Any],
        embeddings: _ArrayLike,
        dates: Sequence[Any] | None = None,
        locations: Sequence[Any] | None = None,
    ) -> None: ...
    def update(
        self,
        filepaths: Sequence[_Path],
        individual_ids: Sequence[Any],
        embeddings: _ArrayLike,
        dates: Sequence[Any] | None = None,
        locations: Sequence[Any] | None = None,
    ) -> tuple[int, int]: ...
    def remove(self, filepaths: Sequence[_Path]) -> int: ...
    def rename_individual(self, old: str, new: str) -> int: ...
    def merge_individuals(self, sources: Sequence[str], into: str) -> int: ...
    def query(
        self,
        embeddings: _ArrayLike,
        k: int = 5,
        distance_threshold: float | None = None,
        *,
        gaussian: bool = False,
        confidence: float = 0.997,
        success_percentage: float = 100.0,
        filepaths: Sequence[_Path] | None = None,
        seed: int | None = None,
        threshold: float | None = None,
    ) -> QueryResult: ...
    def evaluate(
        self,
        embeddings: _ArrayLike,
        true_ids: Sequence[Any],
        *,
        k: int = 5,
        distance_threshold: float | None = None,
        thresholds: Sequence[float] | None = None,
        validation_fraction: float = 0.5,
        seed: int = 0,
        threshold: float | None = None,
    ) -> Evaluation: ...

@final
class QueryResult:
    @property
    def distances(self) -> _F32: ...
    @property
    def indices(self) -> _I64: ...
    @property
    def individual_predicted(self) -> list[str]: ...
    @property
    def is_new(self) -> npt.NDArray[np.bool_]: ...
    @property
    def latest_picture_individual_predicted(self) -> list[str | None]: ...
    @property
    def location_closest_individual(self) -> list[str | None]: ...
    @property
    def neighbor_ids(self) -> list[list[str]]: ...
    @property
    def filepaths(self) -> list[str] | None: ...
    @property
    def neighbor_filepaths(self) -> list[list[str]]: ...
    def __len__(self) -> int: ...
    def to_pandas(self) -> Any: ...

@final
class Evaluation:
    @property
    def top1_accuracy(self) -> float: ...
    @property
    def cmc(self) -> dict[int, float]: ...
    @property
    def map(self) -> dict[int, float]: ...
    @property
    def new_precision(self) -> float: ...
    @property
    def new_recall(self) -> float: ...
    @property
    def threshold(self) -> float | None: ...
    @property
    def n_test(self) -> int: ...
    @property
    def n_validation(self) -> int: ...
    @property
    def sweep(self) -> dict[str, list[float]] | None: ...
    def summary(self) -> dict[str, float]: ...

@final
class Embedder:
    def __new__(
        cls, model: _Path = "yolox-embed", weights: _Path | None = None, intra_threads: int = 0
    ) -> Embedder: ...
    @property
    def manifest(self) -> dict[str, Any]: ...
    @property
    def dim(self) -> int: ...
    def embed(
        self,
        paths: Sequence[_Path],
        boxes: _ArrayLike | None = None,
        *,
        box_format: str = "xyxy",
        square: bool = False,
        detector: Any = None,
        batch_size: int = 8,
    ) -> EmbeddingResult: ...
    def embed_table(
        self,
        table: ReidTable,
        *,
        boxes: _Path | None = None,
        detector: str = "md-lite",
        whole_image: bool = False,
        batch_size: int = 8,
    ) -> EmbeddingResult: ...
    def prepare(self, image: _ArrayLike, box: Sequence[float] | None = None) -> _F32: ...
    def embed_tensors(self, tensors: _ArrayLike) -> _F32: ...

@final
class EmbeddingResult:
    @property
    def paths(self) -> list[str]: ...
    @property
    def embeddings(self) -> _F32: ...
    @property
    def failures(self) -> list[tuple[int, str]]: ...
    @property
    def ok(self) -> npt.NDArray[np.bool_]: ...

@final
class ReidTable:
    @staticmethod
    def read(path: _Path) -> ReidTable: ...
    def __len__(self) -> int: ...
    @property
    def headers(self) -> list[str]: ...
    @property
    def filepaths(self) -> list[str]: ...
    def column(self, name: str) -> list[str | None] | None: ...

def reid_build(table: ReidTable, embeddings: _ArrayLike) -> KnowledgeBase: ...
def reid_query_to_files(
    kb: KnowledgeBase,
    table: ReidTable,
    embeddings: _ArrayLike,
    output: _Path,
    *,
    k: int = 5,
    distance_threshold: float | None = None,
    gaussian: bool = False,
    seed: int | None = None,
    embeddings_output: _Path | None = None,
) -> tuple[int, int]: ...
def reid_update_from_files(
    kb: KnowledgeBase, results: _Path, embeddings: _Path
) -> tuple[int, int]: ...
def reid_read_embeddings(path: _Path) -> _F32: ...
def reid_evaluate_table(
    kb: KnowledgeBase,
    table: ReidTable,
    embeddings: _ArrayLike,
    *,
    k: int = 5,
    distance_threshold: float | None = None,
    validation_fraction: float = 0.5,
    seed: int = 0,
) -> Evaluation: ...

# --- comparison of two runs (src/python/agreement.rs) ---

def box_iou(a: _ArrayLike, b: _ArrayLike) -> npt.NDArray[np.float64]: ...
def agreement_report(
    fp32: tuple[Any, Any],
    int8: tuple[Any, Any],
    detector: str,
    classifier: str | None,
    fp32_seconds: float,
    int8_seconds: float,
) -> dict[str, Any]: ...
def append_correction(
    path: _Path,
    files: Sequence[str],
    label: str | None = None,
    verified: bool = False,
    scope: str = "image",
    by: str | None = None,
) -> dict[str, Any]: ...
def thumbnail(path: _Path, max_side: int, cache_dir: _Path) -> bytes: ...

# The review page's rows (rows as JSON text) and the notebooks' HTML of them.
@final
class ReviewRows:
    def __len__(self) -> int: ...
    def row(self, i: int) -> str: ...
    def pick(
        self, prediction: str | None = None, kind: str | None = None, n: int = 12
    ) -> list[int]: ...
    def find(self, name: str) -> int | None: ...
    def figure_html(self, i: int, width: int, cache_dir: _Path, label_px: float = 14.0) -> str: ...
    def gallery_html(self, picks: Sequence[int], width: int, cache_dir: _Path) -> str: ...
    def summary_html(self, videos: int, failures: int, cache_dir: _Path) -> str: ...

# A results table read without its run (a CSV read by the core, an XLSX's cells given).
@disjoint_base
class ResultTable:
    def __new__(
        cls,
        path: _Path,
        detections: _Path | None = None,
        columns: Sequence[tuple[str, Sequence[str]]] | None = None,
    ) -> ResultTable: ...
    @property
    def path(self) -> str: ...
    @property
    def detections(self) -> str | None: ...
    @property
    def labels(self) -> list[str]: ...
    @property
    def settings(self) -> dict[str, Any]: ...
    @property
    def unavailable(self) -> list[str]: ...

# The review server's state: a run's results or a ResultTable, the journal, the rows shown.
@disjoint_base
class ReviewState:
    def __new__(
        cls,
        source: Any,
        journal: _Path,
        by: str | None = None,
        no_video_picture: str | None = None,
    ) -> ReviewState: ...
    @property
    def journal(self) -> str: ...
    @property
    def by(self) -> str | None: ...
    @property
    def n_images(self) -> int: ...
    def refresh(self) -> None: ...
    def row(self, i: int) -> dict[str, Any]: ...
    def picture(self, i: int) -> tuple[str, bool, int | None]: ...
    def info(self) -> dict[str, Any]: ...
    def page(self, query: Mapping[str, Any]) -> dict[str, Any]: ...
    def change(self, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def redecide(self, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def export_csv(self) -> bytes: ...

NO_REDECIDE: str
NO_BOXES: str
BOX_COLOURS: list[str]

def presets_dir() -> str: ...
def save_preset(name: str, disabled_classes: Sequence[str]) -> str: ...
def load_preset(name: str) -> list[str]: ...
def list_presets() -> list[str]: ...
def cache_dir() -> str: ...
def thumbnail_rgb(image: npt.NDArray[np.uint8], max_side: int) -> bytes: ...
def read_corrections(path: _Path) -> list[dict[str, Any]]: ...

# The built-in classifier, language and bird-head wording naming every text given: classifier,
# language, bird_head, labels, empty, human, vehicle, undefined; None when none does.
def table_labels(texts: Sequence[str]) -> dict[str, Any] | None: ...

# The converter (src/convert/): a torch.save file read without running its pickle, and the ViT
# builders' ONNX bytes.
@final
class StandIn:
    """Stands in for a pickled object of a class that is not imported (nothing of it ran).

    ``classname`` is ``module.qualname``; ``args`` what the constructor was given; ``state``
    what the pickle set on the object (for a ``torch.nn.Module``, its ``__dict__``:
    ``_parameters``, ``_buffers``, ``_modules`` and plain attributes); ``items`` what APPENDS /
    SETITEMS gave a list or dict subclass. Attributes read through to ``state``."""

    @property
    def classname(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def args(self) -> tuple[Any, ...]: ...
    @property
    def state(self) -> Any: ...
    @property
    def items(self) -> list[Any]: ...
    def get(self, key: str, default: Any = None) -> Any: ...

VIT_BACKBONES: dict[str, dict[str, Any]]
VIT_HEAD_DIM: int

def read_checkpoint(path: _Path) -> Any: ...
def build_classifier(
    ckpt: Any, size: int | None = None, metadata: Sequence[tuple[str, str]] = ...
) -> bytes: ...
def build_bird_head(ckpt: Any, metadata: Sequence[tuple[str, str]] = ...) -> bytes: ...
def build_model_file(
    path: _Path, kind: str, size: int | None = None, metadata: Sequence[tuple[str, str]] = ...
) -> bytes: ...
def resample_pos_embed(
    grid: npt.NDArray[np.float32], new_size: tuple[int, int]
) -> npt.NDArray[np.float32]: ...
def dinov3_rope_tables(
    grid: tuple[int, int], head_dim: int, temperature: float = 100.0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
