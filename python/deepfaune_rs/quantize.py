"""int8 variants of the models: ``deepfaune-rs models quantize ID``.

ONNX Runtime's own quantisation tools (``onnxruntime.quantization``, in the onnxruntime wheel)
write a separate model, ``<file stem>.int8.onnx``, with its own manifest ``<id>-int8.toml`` in
the model directory: the fp32 manifest with another id, file and checksum (src/manifest/int8.rs),
so the two differ only by their arithmetic. ``precision="int8"`` (``--int8``) then loads it.

- ``static`` (the detectors' default): QDQ, int8 weights per channel and uint8 activations whose
  ranges are calibrated on the user's own images, letterboxed exactly as a run letterboxes them.
  Only convolutions are quantised, and neither the first one (raw pixels) nor those of the
  detection head (whose outputs become boxes and scores): on md-lite over ../shared/testdata this
  keeps the deciding boxes at IoU >= 0.9 where quantising everything gives 0.77 on average.
  Weights use 7 bits (``reduce_range``): x86 CPUs without VNNI multiply uint8 by int8 in 16-bit
  sums that saturate otherwise.
- ``dynamic`` (the classifiers' default): int8 weights of the MatMul layers, activations
  quantised on the fly; no calibration (a ViT's work is its MatMuls).

Whether int8 is good enough is the user's call, on their own cameras: ``deepfaune-rs agreement
FOLDER`` runs both side by side (:mod:`deepfaune_rs.agreement`).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from . import _core
from ._core import image_files
from ._files import atomic_open
from .errors import InvalidArgumentError

__all__ = ["METHODS", "image_files", "quantize"]

METHODS = ("static", "dynamic")


class _Calibration:
    """onnxruntime's CalibrationDataReader over the letterboxed inputs of image files."""

    def __init__(self, model_id: str, input_name: str, files: Sequence[Path]) -> None:
        self.model_id, self.input_name = model_id, input_name
        self._files = list(files)
        self._it: Iterator[Path] = iter(self._files)
        self.used = 0

    def get_next(self) -> dict[str, Any] | None:
        for path in self._it:
            try:
                x = _core.detector_input(self.model_id, os.fspath(path))
            except Exception:  # noqa: BLE001 - an unreadable image is not a calibration sample
                continue
            self.used += 1
            return {self.input_name: x}
        return None

    def rewind(self) -> None:
        """Starts the images again (onnxruntime calls it for calibrations that read them twice)."""
        self._it = iter(self._files)
        self.used = 0


def quantize(
    model_id: str,
    images: Sequence[os.PathLike | str] = (),
    *,
    method: str | None = None,
    sample: int = 64,
) -> dict[str, Any]:
    """Writes the int8 variant of ``model_id`` (a built-in id, or a manifest ``.toml``) and its
    manifest into the model directory (beside a given manifest), both atomically, and returns
    what was done: ``id`` (the variant's), ``output``, ``manifest``, ``method``,
    ``calibration_images``, ``fp32_mb``, ``int8_mb``, ``seconds``.

    ``method`` is ``"static"`` (default for detectors; calibrated on up to ``sample`` of the
    image files of ``images``, which it then needs) or ``"dynamic"`` (default for classifiers).
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    plan = _core.int8_plan(model_id)
    kind = plan["kind"]
    method = method or ("static" if kind == "detector" else "dynamic")
    if method not in METHODS:
        raise InvalidArgumentError(f"method '{method}': use one of {', '.join(METHODS)}")
    if method == "static" and kind != "detector":
        raise InvalidArgumentError(
            "static quantisation is calibrated on detector inputs: use --method dynamic for a "
            "classifier"
        )
    files: list[Path] = []
    if method == "static":
        files = image_files(images, sample)
        if not files:
            raise InvalidArgumentError(
                "static quantisation needs calibration images: give a folder of your own photos "
                "(--images FOLDER), or use --method dynamic"
            )
    output, manifest = Path(plan["output"]), Path(plan["manifest"])
    output.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".quantize-") as tmp:
        source = plan["source"]
        if source is None:  # the embedded detector
            source = os.path.join(tmp, "embedded.onnx")
            with open(source, "wb") as f:
                f.write(_core.embedded_detector())
        written = os.path.join(tmp, output.name)
        used = 0
        if method == "static":
            input_name, float_convs = _core.int8_static_plan(source)
            reader = _Calibration(model_id, input_name, files)
            quantize_static(
                source,
                written,
                reader,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["Conv"],
                nodes_to_exclude=float_convs,
                per_channel=True,
                reduce_range=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
            used = reader.used
            if used == 0:
                raise InvalidArgumentError("none of the calibration images could be read")
        else:
            quantize_dynamic(
                source,
                written,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul"],
            )
        os.replace(written, output)
        fp32_mb = os.path.getsize(source) / 1e6
    text = _core.int8_manifest(model_id, output.name, _core.sha256_file(output), method)
    with atomic_open(manifest, "w") as f:
        f.write(text)
    return {
        "id": plan["id"] + "-int8",
        "output": str(output),
        "manifest": str(manifest),
        "method": method,
        "calibration_images": used,
        "fp32_mb": round(fp32_mb, 1),
        "int8_mb": round(output.stat().st_size / 1e6, 1),
        "seconds": round(time.perf_counter() - t0, 1),
    }
