"""The whole DeepFaune pipeline, stages 1 to 9: detection, species classification, sequences,
outputs. :class:`Pipeline` and :class:`PipelineResult` are the Rust core's classes."""

from . import _core
from ._core import Pipeline, PipelineResult

#: The classifier of DeepFaune's default setup (``Pipeline()``, ``deepfaune-rs run``, and what
#: ``deepfaune-rs models fetch deepfaune`` fetches): DeepFaune's current release, 1.5.
DEFAULT_CLASSIFIER: str = _core.DEFAULT_CLASSIFIER
#: DeepFaune's language codes (Swedish is ``se``; 1.4 and older have the first five only).
LANGUAGES: tuple[str, ...] = _core.LANGUAGES
#: Other accepted codes: ISO 639-1 ``sv`` for DeepFaune's Swedish ``se``.
LANGUAGE_ALIASES: dict[str, str] = _core.LANGUAGE_ALIASES
#: The detector mode of DeepFaune's default setup.
DEFAULT_DETECTOR_MODE: str = _core.DEFAULT_DETECTOR_MODE

__all__ = ["Pipeline", "PipelineResult"]
