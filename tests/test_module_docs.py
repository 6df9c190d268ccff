"""The module documentation holds: every ``>>>`` example of the package's docstrings runs (Rust's
doc examples run under ``cargo test``), and every "Stage N" in the Rust module docs and the Python
docstrings is ARCHITECTURE.md's stage N, with its module's name."""

from __future__ import annotations

import doctest
import importlib
import re

import pytest

from conftest import REPO

PACKAGE = REPO / "python" / "deepfaune_rs"
WITH_EXAMPLES = sorted(p.stem for p in PACKAGE.glob("*.py") if ">>>" in p.read_text("utf-8"))


#: The core's public classes and functions whose docstrings (Rust doc comments) hold examples.
CORE_WITH_EXAMPLES = ["Detector", "read_megadetector_json"]


def test_the_modules_with_examples_are_found():
    assert {"__init__", "reid", "video"} <= set(WITH_EXAMPLES)


@pytest.mark.parametrize("stem", WITH_EXAMPLES)
def test_docstring_examples_run(stem, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = "deepfaune_rs" if stem == "__init__" else f"deepfaune_rs.{stem}"
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.attempted > 0, f"{name}: no example found"
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"


@pytest.mark.parametrize("name", CORE_WITH_EXAMPLES)
def test_core_docstring_examples_run(name, tmp_path, monkeypatch):
    import deepfaune_rs

    monkeypatch.chdir(tmp_path)
    obj = getattr(deepfaune_rs, name)
    test = doctest.DocTestParser().get_doctest(obj.__doc__, dict(vars(deepfaune_rs)), name, None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    result = runner.run(test)
    assert result.attempted > 0, f"{name}: no example found"
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"


def stages() -> dict[int, str]:
    """ARCHITECTURE.md's numbered stage list: ``N. **name**``."""
    text = (REPO / "ARCHITECTURE.md").read_text("utf-8")
    found = {int(n): name for n, name in re.findall(r"^(\d+)\. \*\*(\w+)\*\*", text, re.M)}
    assert sorted(found) == list(range(1, len(found) + 1)), found
    return found


def test_architecture_lists_the_ten_stages():
    assert stages() == {
        1: "image_io",
        2: "preprocess",
        3: "detect",
        4: "run",
        5: "classify",
        6: "sequence",
        7: "reid",
        8: "import",
        9: "export",
        10: "review",
    }


def test_each_stage_module_opens_with_its_number():
    for n, name in stages().items():
        first = (REPO / "src" / name / "mod.rs").read_text("utf-8").splitlines()[0]
        assert first.startswith(f"//! Stage {n} ({name})"), f"src/{name}/mod.rs: {first}"


def test_the_crate_docs_list_the_stages_in_the_same_order():
    text = (REPO / "src" / "lib.rs").read_text("utf-8")
    listed = {int(n): name for n, name in re.findall(r"^//! (\d+)\. \[`(\w+)`\]", text, re.M)}
    assert listed == stages()


def test_every_stage_number_names_its_stage():
    names = stages()
    files = [*sorted((REPO / "src").rglob("*.rs")), *sorted(PACKAGE.glob("*.py"))]
    wrong = []
    for f in files:
        text = f.read_text("utf-8")
        for m in re.finditer(r"\b(?:Stage|Step) (\d+)\b( \((\w+)\))?", text):
            n, name = int(m.group(1)), m.group(3)
            if names.get(n) != name:
                wrong.append(f"{f.relative_to(REPO)}: {m.group(0)!r} (stage {n} is {names.get(n)})")
    assert not wrong, "\n".join(wrong)
