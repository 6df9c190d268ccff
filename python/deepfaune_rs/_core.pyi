"""Type stubs of the compiled core (``deepfaune_rs._core``), checked with ``mypy.stubtest``."""

from os import PathLike
from typing import Any, Callable, Mapping, Optional, Sequence, Union, final

import numpy as np
import numpy.typing as npt

__version__: str
__all__ = [
    "DetectionResults",
    "Detector",
    "Pipeline",
    "PipelineResults",
    "__version__",
    "builtin_models",
    "init_runtime",
    "model_dir",
    "read_image",
    "resize_cv2_linear",
    "resize_pil",
    "runtime_path",
]

_Path = Union[str, PathLike[str]]
_Progress = Optional[Callable[[int, int], object]]

def init_runtime(path: _Path) -> None: ...
def runtime_path() -> Optional[str]: ...
def builtin_models() -> list[dict[str, Any]]: ...
def model_dir() -> str: ...
def read_image(
    path: _Path, max_pixels: Optional[int] = None
) -> tuple[npt.NDArray[np.uint8], Optional[str], int]: ...
def resize_pil(
    image: npt.NDArray[np.uint8],
    size: tuple[int, int],
    box_: Optional[tuple[int, int, int, int]] = None,
    filter: str = "bicubic",
) -> npt.NDArray[np.uint8]: ...
def resize_cv2_linear(
    image: npt.NDArray[np.uint8], size: tuple[int, int]
) -> npt.NDArray[np.uint8]: ...

@final
class Detector:
    def __new__(
        cls,
        model: str = "md-lite",
        *,
        secondary: Optional[str] = None,
        mode: Optional[str] = None,
        threshold: Optional[float] = None,
        manifest: Optional[str] = None,
        weights: Optional[dict[str, _Path]] = None,
        intra_threads: int = 0,
        threads: int = 0,
        batch_size: int = 1,
        spinning: bool = False,
    ) -> Detector: ...
    @property
    def models(self) -> list[str]: ...
    @property
    def threshold(self) -> float: ...
    def detect(
        self,
        paths: Sequence[_Path],
        progress: _Progress = None,
        max_pixels: Optional[int] = None,
    ) -> DetectionResults: ...

@final
class DetectionResults:
    def __len__(self) -> int: ...
    @property
    def paths(self) -> list[str]: ...
    @property
    def dates(self) -> list[Optional[str]]: ...
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
    def to_megadetector_json(self, path: _Path, root: Optional[_Path] = None) -> None: ...

@final
class Pipeline:
    def __new__(
        cls,
        detector: Detector,
        classifier: str = "deepfaune-v14",
        *,
        classifier_manifest: Optional[str] = None,
        threshold: float = 0.8,
        maxlag_s: float = 10.0,
        language: str = "en",
        disabled_classes: Sequence[str] = ...,
        bird_head: bool = False,
        batch_size: int = 1,
        intra_threads: int = 0,
    ) -> Pipeline: ...
    @property
    def class_names(self) -> list[str]: ...
    def run(
        self, paths: Sequence[_Path], progress: _Progress = None, keep_embeddings: bool = True
    ) -> PipelineResults: ...

@final
class PipelineResults:
    def __len__(self) -> int: ...
    @property
    def detections(self) -> DetectionResults: ...
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
    def table(self) -> dict[str, list[Any]]: ...
    def to_csv(self, path: _Path) -> None: ...
    def to_megadetector_json(self, path: _Path, root: Optional[_Path] = None) -> None: ...
    def to_camtrap_dp(
        self,
        folder: _Path,
        deployments: Optional[Sequence[Mapping[str, str]]] = None,
        deployment_of: Optional[Mapping[str, str]] = None,
        timezone: Optional[str] = None,
        root: Optional[_Path] = None,
        undated: str = "exclude",
        metadata: Optional[str] = None,
    ) -> list[str]: ...
    def sort_into(
        self,
        dest: _Path,
        mode: str = "copy",
        blur_humans: bool = False,
        timestamp: Optional[str] = None,
    ) -> tuple[str, list[tuple[str, str]], list[tuple[str, str]]]: ...
