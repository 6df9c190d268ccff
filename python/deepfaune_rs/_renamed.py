"""Parameters renamed to say what they are (issue 15), the old names accepted for one release."""

from __future__ import annotations

import warnings
from typing import TypeVar

T = TypeVar("T")


def renamed(new_name: str, new: T | None, old_name: str, old: T | None) -> T | None:
    """The value of parameter ``new_name``: ``new``, or ``old`` given under its old name
    ``old_name`` (a :class:`DeprecationWarning` naming the new one). Both is an error."""
    if old is None:
        return new
    if new is not None:
        from .errors import InvalidArgumentError

        raise InvalidArgumentError(f"give {new_name} or {old_name} (its old name), not both")
    warnings.warn(
        f"{old_name} is deprecated: use {new_name} (the old name goes in the next release)",
        DeprecationWarning,
        stacklevel=3,
    )
    return old
