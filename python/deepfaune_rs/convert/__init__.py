"""Official PyTorch checkpoints to ONNX without torch: the core's converter (``src/convert/``).

:func:`convert` reads a ``.pt`` file with a restricted reader (nothing in the pickle runs, torch
is never imported), recognises what it holds (:func:`checkpoint_kind`), builds the ONNX graph the
manifests expect (DeepFaune's classifiers and bird heads, ultralytics and YOLOv5 detectors), runs
it once in ONNX Runtime and writes it atomically, stamped with :data:`CONVERTER_VERSION` and the
source file's sha256 (:func:`read_stamp`), so a stale conversion is noticed and redone.
"""

from .._core import CONVERTER_VERSION, checkpoint_kind, convert
from .._core import read_onnx_stamp as read_stamp
from ..errors import CheckpointError

__all__ = ["CONVERTER_VERSION", "CheckpointError", "checkpoint_kind", "convert", "read_stamp"]
