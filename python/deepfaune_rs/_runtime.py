"""Finding the ONNX Runtime shared library: the ``onnxruntime`` wheel's ``capi/`` folder, or the
path in ``DEEPFAUNE_ORT_DYLIB`` (or ``ORT_DYLIB_PATH``). onnxruntime's Python module is never
imported: only its library file is loaded."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from .errors import RuntimeNotFoundError

ENV_VARS = ("DEEPFAUNE_ORT_DYLIB", "ORT_DYLIB_PATH")
INSTALL_HINT = (
    'deepfaune-rs needs the ONNX Runtime library: `pip install "onnxruntime>=1.31"` '
    "(or onnxruntime-gpu), or set DEEPFAUNE_ORT_DYLIB to the path of libonnxruntime"
)


def _library_patterns() -> tuple[str, ...]:
    if sys.platform == "win32":
        return ("onnxruntime.dll",)
    if sys.platform == "darwin":
        return ("libonnxruntime.*.dylib", "libonnxruntime.dylib")
    return ("libonnxruntime.so.*", "libonnxruntime.so")


def find_library() -> Path:
    """Returns the path of the ONNX Runtime library to load, or raises RuntimeNotFoundError."""
    for var in ENV_VARS:
        value = os.environ.get(var)
        if value:
            path = Path(value)
            if not path.is_file():
                raise RuntimeNotFoundError(f"{var}={value} is not a file. {INSTALL_HINT}")
            return path
    spec = importlib.util.find_spec("onnxruntime")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        capi = Path(folder) / "capi"
        for pattern in _library_patterns():
            found = sorted(p for p in capi.glob(pattern) if "providers" not in p.name)
            if found:
                return found[-1]
    where = f" (looked in {', '.join(str(Path(f) / 'capi') for f in folders)})" if folders else ""
    raise RuntimeNotFoundError(f"ONNX Runtime library not found{where}. {INSTALL_HINT}")
