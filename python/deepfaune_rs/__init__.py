"""deepfaune-rs: DeepFaune's camera-trap pipeline with a Rust core and ONNX Runtime, no torch.

>>> import deepfaune_rs
>>> det = deepfaune_rs.Detector()          # embedded detector, no download
>>> isinstance(deepfaune_rs.__version__, str)
True
"""

from ._runtime import find_library as _find_library
from .errors import *  # noqa: F403
from .errors import __all__ as _errors_all

from . import _core  # isort: skip

_core.init_runtime(str(_find_library()))

from ._core import (  # noqa: E402
    Classification,
    Classifier,
    DetectionResult,
    Detector,
    Pipeline,
    PipelineResult,
    read_megadetector_json,
)
from .models import list_models  # noqa: E402

available_devices = _core.available_devices
read_image = _core.read_image
resize_pil = _core.resize_pil
resize_cv2_linear = _core.resize_cv2_linear
__version__ = _core.__version__

__all__ = [
    "available_devices",
    "Classification",
    "Classifier",
    "DetectionResult",
    "Detector",
    "list_models",
    "Pipeline",
    "PipelineResult",
    "read_image",
    "read_megadetector_json",
    "resize_cv2_linear",
    "resize_pil",
    *_errors_all,
]
