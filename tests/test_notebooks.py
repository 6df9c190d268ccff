"""The notebooks under notebooks/ execute without errors (nbclient, no network)."""

from __future__ import annotations

import os

import pytest

from conftest import REPO, find_testdata, shared_dir

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, testdata, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("DEEPFAUNE_SHARED", str(shared_dir()))
    monkeypatch.setenv("DEEPFAUNE_TESTDATA", str(find_testdata()))
    monkeypatch.setenv("DEEPFAUNE_REPO", str(REPO))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]  # fmt: skip
    assert not errors
    assert os.environ["DEEPFAUNE_REPO"] == str(REPO)
