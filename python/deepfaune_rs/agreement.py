"""fp32 against int8 on the user's own images: ``deepfaune-rs agreement FOLDER``.

Both precisions run the same sample of images through the same detector (and classifier); the
report says how often they agree, so the user decides on numbers from their own cameras:
the per-image decision (empty / animal / human / vehicle), the IoU of the deciding box when
both have one, the classifier's top-1 class on the images both classified, the sequence
prediction, and each run's seconds. The runs and the figures are the core's
(``src/pipeline/agreement.rs``, ``src/results/agreement.rs``).
"""

from ._core import agreement, box_iou, format_report

__all__ = ["agreement", "box_iou", "format_report"]
