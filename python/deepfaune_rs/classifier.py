"""Stage 5 (classify) alone: DeepFaune's classifier for boxes found elsewhere (your own
detector, a labelling tool). :class:`Classifier` and :class:`Classification` are the Rust
core's classes."""

from ._core import Classification, Classifier

__all__ = ["Classification", "Classifier"]
