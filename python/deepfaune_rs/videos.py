"""Per-video results of :meth:`Pipeline.run`: one :class:`VideoRecord` per video, a read-only
view of the core's record. The core samples each video through
:func:`deepfaune_rs.video.sample_video` (PyAV), runs its frames, records it in the run's
checkpoint and writes its rows in every output (table, CSV, MegaDetector JSON, Camtrap DP)."""

from ._core import VideoRecord

__all__ = ["VideoRecord"]
