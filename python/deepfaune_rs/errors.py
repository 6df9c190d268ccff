"""Exceptions raised by deepfaune_rs.

Every exception derives from :class:`DeepfauneError` and from the closest builtin, so
``except FileNotFoundError`` works for missing weights and ``except ValueError`` for bad
arguments. Per-image problems (a corrupt JPEG, an empty file) are not raised: they are listed in
the results' ``failures``.
"""

from __future__ import annotations

from typing import TypedDict


class Failure(TypedDict):
    """A file that could not be processed: one entry of the results' ``failures``."""

    #: The file.
    path: str
    #: Where it failed: ``walk``, ``read``, ``decode``, ``detect``, ``classify``...
    stage: str
    #: Machine key: ``io``, ``empty``, ``format``, ``corrupt``, ``too_large``, ``unsupported``...
    kind: str
    #: What happened, for a person.
    reason: str
    #: Its row in the results (its ``status`` says ``failed``), None when it has none.
    index: int | None


class DeepfauneError(Exception):
    """Base class of all deepfaune_rs errors."""


class RuntimeNotFoundError(DeepfauneError, ImportError):
    """ONNX Runtime could not be found or loaded (install ``onnxruntime>=1.31``)."""


class InferenceError(DeepfauneError, RuntimeError):
    """ONNX Runtime failed while running a model."""


class ModelError(DeepfauneError):
    """A model or its manifest is unusable."""


class ManifestError(ModelError, ValueError):
    """A model manifest could not be parsed or is inconsistent."""


class UnknownModelError(ModelError, KeyError):
    """No built-in model has that id."""

    def __str__(self) -> str:  # KeyError would add quotes
        return str(self.args[0]) if self.args else ""


class WeightsNotFoundError(ModelError, FileNotFoundError):
    """The model's weights file is not where its manifest says; the message says what to do."""


class ChecksumError(ModelError):
    """A weights file is not the expected one: not the manifest's sha256, or (for a download)
    not the published size / MD5 / sha256 or not the sha256 the lock file recorded."""


class DownloadError(DeepfauneError, OSError):
    """A model file could not be downloaded from any of its URLs (the message names the file
    and what each URL answered)."""


class ConversionError(ModelError, ValueError):
    """A downloaded checkpoint could not be converted to ONNX."""


class CheckpointError(ConversionError):
    """A checkpoint is not a readable PyTorch file, its pickle asks for something unsafe (refused
    before anything runs), or it holds something the converter does not support."""


class ModelMismatchError(ModelError, ValueError):
    """The ONNX model's inputs or outputs do not match its manifest."""


class InvalidArgumentError(DeepfauneError, ValueError):
    """An argument is invalid."""


class DeviceUnavailableError(InvalidArgumentError):
    """The requested device (execution provider) is not in the installed ONNX Runtime build;
    the message lists those that are."""


class ImageReadError(DeepfauneError, OSError):
    """A single image could not be read (from the single-image helpers)."""


class OutputError(DeepfauneError, OSError):
    """An output file could not be written (the previous file, if any, is intact)."""


class CancelledError(DeepfauneError):
    """The run was cancelled."""


class KnowledgeBaseError(DeepfauneError, ValueError):
    """A re-identification knowledge base is unreadable or inconsistent (rows vs embeddings)."""


class KnowledgeBaseNotFoundError(DeepfauneError, FileNotFoundError):
    """A knowledge-base file (``informations.csv``, ``embeddings.safetensors``) is missing."""


__all__ = [
    "CancelledError",
    "CheckpointError",
    "ChecksumError",
    "ConversionError",
    "DeepfauneError",
    "DeviceUnavailableError",
    "DownloadError",
    "Failure",
    "ImageReadError",
    "InferenceError",
    "InvalidArgumentError",
    "KnowledgeBaseError",
    "KnowledgeBaseNotFoundError",
    "ManifestError",
    "ModelError",
    "ModelMismatchError",
    "OutputError",
    "RuntimeNotFoundError",
    "UnknownModelError",
    "WeightsNotFoundError",
]
