"""Stage 8 (import): MegaDetector batch output (format 1.6) read back as the detection step.

Writing is :meth:`DetectionResult.to_megadetector_json`; reading lets results that MegaDetector,
SpeciesNet, AddaxAI or any tool writing the format already produced be classified and put into
sequences (``Pipeline.run(..., detections=...)``), with the package's rules or exactly as
DeepFaune's ``PredictorJSON`` does (``rules="deepfaune"``).
"""

from ._core import read_megadetector_json

#: DeepFaune's threshold for boxes read from a MegaDetector file.
DEEPFAUNE_JSON_THRESHOLD = 0.4
#: The rule sets of :func:`read_megadetector_json` and ``Pipeline.run(json_rules=...)``.
JSON_RULES = ("corrected", "deepfaune")

__all__ = ["read_megadetector_json"]
