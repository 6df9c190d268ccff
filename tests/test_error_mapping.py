"""One error mapping for the whole extension (issue 15): every error kind of the core (re-ID's
included) becomes an exception class of ``deepfaune_rs.errors`` that derives from
``DeepfauneError``, through the one conversion every binding uses."""

from __future__ import annotations

import numpy as np
import pytest

import deepfaune_rs
from deepfaune_rs import _core, errors
from deepfaune_rs.reid import KnowledgeBase


def test_every_error_kind_has_a_class_of_the_package():
    kinds, n = _core._error_kinds()
    # One example per kind, in the mapping's order: a kind without an example fails here.
    assert [k for k, _, _ in kinds] == list(range(n))
    for k, debug, name in kinds:
        cls = getattr(errors, name, None)
        assert isinstance(cls, type), (debug, name)
        assert issubclass(cls, errors.DeepfauneError), (debug, name)
        assert name in errors.__all__
        with pytest.raises(cls) as raised:
            _core._raise_error_kind(k)
        assert type(raised.value) is cls, debug


def test_reid_errors_go_through_the_same_mapping():
    kb = KnowledgeBase(3)
    with pytest.raises(errors.InvalidArgumentError):
        kb.query(np.zeros((1, 4), dtype=np.float32))  # another width
    with pytest.raises(errors.KnowledgeBaseNotFoundError):
        KnowledgeBase.load("/nonexistent/kb")


def test_bindings_raise_the_packages_errors_not_builtins():
    """Argument checks of the bindings were raw ValueError / RuntimeError."""
    with pytest.raises(errors.InvalidArgumentError):
        deepfaune_rs.resize_pil(np.zeros((4, 4, 2), dtype=np.uint8), (2, 2))


def test_the_errors_stub_has_the_runtime_classes_and_bases():
    """``errors.pyi`` (what type checkers read; the classes are made by the core at import time)
    names every class of ``deepfaune_rs.errors`` with the bases it really has."""
    import ast
    from pathlib import Path

    import deepfaune_rs.errors as errors

    stub = ast.parse(Path(errors.__file__).with_suffix(".pyi").read_text(encoding="utf-8"))
    stubbed = {
        c.name: [b.id for b in c.bases if isinstance(b, ast.Name)]
        for c in stub.body
        if isinstance(c, ast.ClassDef)
    }
    runtime = {
        n: [b.__name__ for b in getattr(errors, n).__bases__]
        for n in errors.__all__
        if n != "Failure"
    }
    assert {n: b for n, b in stubbed.items() if n != "Failure"} == runtime
