"""Official PyTorch checkpoints to ONNX without torch.

:func:`convert` reads a ``.pt`` file with a restricted reader (nothing in the pickle runs, torch
is never imported), recognises what it holds, and writes the ONNX graph the manifests expect: the
core builds DeepFaune's classifiers and bird heads (``src/convert/vit.rs``), :mod:`.yolo` the
ultralytics and YOLOv5 detectors. The ONNX records the converter's version and the
source file's sha256 in its metadata, so a stale conversion is noticed and redone.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from .. import _core
from ..errors import CheckpointError
from .checkpoint import Stub, load_checkpoint

__all__ = ["CONVERTER_VERSION", "CheckpointError", "convert", "checkpoint_kind", "sha256_file"]

# Bumped whenever a builder's output changes: conversions stamped with another version are redone.
CONVERTER_VERSION = "1"

KINDS = ("classifier", "bird_head", "detector")


def sha256_file(path: os.PathLike | str, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def checkpoint_kind(obj: Any) -> str:
    """``classifier`` (DeepFaune: ``{"args", "state_dict"}``), ``bird_head`` (a state dict of
    ``bird_model.*``) or ``detector`` (ultralytics / YOLOv5: a pickled model under ``model`` or
    ``ema``)."""
    if isinstance(obj, dict):
        if "args" in obj and "state_dict" in obj:
            return "classifier"
        if obj and all(str(k).startswith("bird_model.") for k in obj):
            return "bird_head"
        for key in ("ema", "model"):
            if isinstance(obj.get(key), (Stub, _core.StandIn)):
                return "detector"
    if isinstance(obj, (Stub, _core.StandIn)):
        return "detector"
    raise CheckpointError(
        "not a DeepFaune classifier, DeepFaune bird head or ultralytics/YOLOv5 detector checkpoint"
    )


def _build(obj: Any, kind: str, size: int | None) -> Any:
    from .yolo import build_detector

    return build_detector(obj)


def _check_runs(path: Path, kind: str) -> None:
    """Loads the written model in ONNX Runtime and runs one small input: a graph that does not
    load or gives non-finite values is not kept."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = []
    for i, d in enumerate(inp.shape):
        if isinstance(d, int) and d > 0:
            shape.append(d)
        elif i == 0:
            shape.append(1)
        else:
            shape.append(64)  # dynamic detector height / width: any multiple of the stride
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    for out in sess.run(None, {inp.name: x}):
        if not np.all(np.isfinite(out)):
            raise CheckpointError(f"the converted {kind} gives non-finite values; not written")


def convert(
    src: os.PathLike | str,
    dest: os.PathLike | str | None = None,
    *,
    kind: str | None = None,
    size: int | None = None,
    check: bool = True,
) -> dict[str, Any]:
    """Converts the PyTorch checkpoint ``src`` to ONNX at ``dest`` (default: ``src`` with the
    ``.onnx`` suffix), atomically (a temporary file in the same folder, then a rename).

    ``kind`` is found from the file when not given; ``size`` is a classifier's input size
    (default: the backbone's DeepFaune size, 182 for DINOv2, 224 for DINOv3). With ``check`` the
    written model is loaded and run once in ONNX Runtime before it takes its final name.
    Returns ``output``, ``kind``, ``sha256`` (of the ONNX), ``source_sha256``,
    ``converter_version`` and ``seconds``."""
    t0 = time.perf_counter()
    src = Path(src)
    dest = Path(dest) if dest is not None else src.with_suffix(".onnx")
    if src.resolve() == dest.resolve():
        raise ValueError(f"{dest}: the output would overwrite the checkpoint")
    source_sha = sha256_file(src)
    obj = load_checkpoint(src)
    found = checkpoint_kind(obj)
    if kind is not None and kind != found:
        raise CheckpointError(f"{src}: holds a {found}, not a {kind}")
    stamp = [
        ("converter", "deepfaune-rs"),
        ("converter_version", CONVERTER_VERSION),
        ("source_file", src.name),
        ("source_sha256", source_sha),
        ("kind", found),
    ]
    if found in ("classifier", "bird_head"):
        del obj  # the core reads the file itself and returns the model's bytes
        data = _core.build_model_file(src, found, size, stamp)
    else:
        model = _build(obj, found, size)
        del obj  # the memory-mapped tensors: the graph holds its own copy now
        for k, v in stamp:
            entry = model.metadata_props.add()
            entry.key, entry.value = k, v
        data = model.SerializeToString()
        del model
    digest = hashlib.sha256(data).hexdigest()
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        del data
        if check:
            _check_runs(tmp, found)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {
        "output": str(dest),
        "kind": found,
        "sha256": digest,
        "source_sha256": source_sha,
        "converter_version": CONVERTER_VERSION,
        "seconds": time.perf_counter() - t0,
    }


def read_stamp(onnx_path: os.PathLike | str) -> dict[str, str]:
    """The metadata :func:`convert` wrote into an ONNX file (empty for other files)."""
    import onnx

    try:
        m = onnx.load_model(str(onnx_path), load_external_data=False)
    except Exception:  # noqa: BLE001 - an unreadable file simply has no stamp
        return {}
    return {p.key: p.value for p in m.metadata_props}
