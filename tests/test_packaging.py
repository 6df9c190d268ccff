"""What each extra brings, resolved by pip against PyPI without installing anything.

The requirement strings come from pyproject.toml (resolving the project itself would build its
metadata with maturin and cargo). The base dependencies and all the lean extras are resolved in
one `pip install --dry-run --ignore-installed --report` run by the interpreter running the tests;
what each extra needs is then walked from the resolved packages' `requires_dist`, and what it
adds is the difference with the base. Skipped when PyPI cannot be reached. `export` (torch)
takes minutes to resolve: opt-in with DEEPFAUNE_PACKAGING_EXPORT=1.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

from conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:
    tomllib = pytest.importorskip("tomli")

# What no lean extra may bring: the ML stacks the package is built to avoid.
HEAVY = {"torch", "scipy", "scikit-learn", "opencv-python", "opencv-python-headless",
         "opencv-contrib-python", "megadetector-utils", "matplotlib", "ultralytics"}  # fmt: skip


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _project() -> dict:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def _extra(name: str, project: dict | None = None) -> list[str]:
    """The extra's requirement strings, self-references (`deepfaune-rs[a,b]`) expanded."""
    project = project or _project()
    out: list[str] = []
    for req in project["optional-dependencies"][name]:
        m = re.fullmatch(r"\s*deepfaune-rs\s*\[([^\]]*)\]\s*", req)
        if m:
            for sub in m.group(1).split(","):
                out += [r for r in _extra(sub.strip(), project) if r not in out]
        elif req not in out:
            out.append(req)
    return out


def _resolve(reqs: list[str]) -> list[dict]:
    """pip's report of what `pip install reqs` would install (name, version, requires_dist)."""
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--report", "-", "--disable-pip-version-check", "--timeout", "15", "--retries", "1",
           *reqs]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    if p.returncode != 0:
        text = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "pip failed"
        if re.search(r"connect|resolve|network|timed? ?out|no matching distribution", text, re.I):
            pytest.skip(f"PyPI unreachable: {text}")
        raise RuntimeError(text)
    return [item["metadata"] for item in json.loads(p.stdout)["install"]]


def _closure(report: list[dict], roots: list[str]) -> set[str]:
    """The packages `roots` need, walking the resolved packages' requires_dist (markers evaluated
    for this interpreter, extras followed)."""
    deps = {_canon(m["name"]): m.get("requires_dist", []) for m in report}
    out: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(Requirement(r), [""]) for r in roots]
    while todo:
        req, extras_env = todo.pop()
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in extras_env):
            continue
        key = (_canon(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        out.add(key[0])
        assert key[0] in deps, f"{req} needed but not in pip's resolution"
        todo += [(Requirement(d), sorted(req.extras) or [""]) for d in deps[key[0]]]
    return out


@pytest.fixture(scope="module")
def resolved() -> dict[str, set[str]]:
    """name -> the packages `pip install deepfaune-rs[name]` would install (besides itself), from
    one resolution of the base and all the lean extras together (one pip run, not five)."""
    project = _project()
    base = list(project["dependencies"])
    report = _resolve(base + _extra("all", project))
    out = {"base": _closure(report, base)}
    for name in ("video", "notebook", "reid", "all"):
        out[name] = _closure(report, base + _extra(name, project))
    return out


def test_base_is_numpy_onnxruntime_onnx_and_no_ml_stack(resolved):
    base = resolved["base"]
    assert {"numpy", "onnxruntime", "onnx"} <= base
    assert not base & (HEAVY | {"pandas", "pillow", "av"}), base


def test_video_is_pyav_only(resolved):
    assert resolved["video"] - resolved["base"] == {"av"}


def test_notebook_brings_what_the_notebooks_import(resolved):
    added = resolved["notebook"] - resolved["base"]
    # notebooks/*.ipynb import PIL, pandas and IPython.
    assert {"pillow", "pandas", "ipython"} <= added
    assert not added & HEAVY, added & HEAVY


def test_reid_brings_tables_and_safetensors_only(resolved):
    added = resolved["reid"] - resolved["base"]
    assert {"pandas", "safetensors"} <= added
    # pandas' own dependencies, nothing else.
    assert added - {"pandas", "safetensors"} <= {"python-dateutil", "pytz", "tzdata", "six"}, added


def test_all_is_every_lean_extra_and_still_no_ml_stack(resolved):
    added = resolved["all"] - resolved["base"]
    assert {"av", "pillow", "pandas", "openpyxl", "safetensors", "ipython"} <= added
    assert not added & HEAVY, added & HEAVY


# Import name -> distribution name, where they differ.
DIST_OF_MODULE = {"PIL": "pillow", "IPython": "ipython", "av": "av"}


def _third_party_imports(files: list[str]) -> set[str]:
    """Top-level modules imported anywhere in these .py / .ipynb files (lazy imports included),
    minus the standard library and the package itself."""
    mods: set[str] = set()
    for f in files:
        path = REPO / f
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text())["cells"]
            src = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        else:
            src = path.read_text()
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods.add(node.module.split(".")[0])
    stdlib = set(getattr(sys, "stdlib_module_names", ())) or pytest.skip("needs Python >= 3.10")
    return {
        _canon(DIST_OF_MODULE.get(m, m)) for m in mods - stdlib - {"__future__", "deepfaune_rs"}
    }


@pytest.mark.parametrize(
    "extra, files",
    [
        ("video", ["python/deepfaune_rs/video.py", "python/deepfaune_rs/videos.py"]),
        ("notebook", ["notebooks/pipeline_demo.ipynb", "notebooks/reid_demo.ipynb"]),
    ],
)
def test_each_extra_covers_what_its_code_imports(resolved, extra, files):
    imported = _third_party_imports(files)
    assert imported, files
    assert imported <= resolved[extra], imported - resolved[extra]


def test_reid_extra_covers_what_the_reid_commands_require(resolved, tmp_path, monkeypatch, capsys):
    """reid.py and the reid commands (the core's) import no third-party module; what they
    require (pandas, imported by the bindings for ``to_pandas``; safetensors) is named in the
    core's list (``src/cli/reid.rs``, ``EXTRA_MODULES``), checked before a command runs and named
    in its message when missing."""
    from deepfaune_rs import cli

    monkeypatch.setattr(cli._Hooks, "has_module", lambda self, name: False)
    assert cli.main(["reid", "update", str(tmp_path), str(tmp_path), str(tmp_path)]) == 2
    needs = re.search(r"needs (.+): pip install", capsys.readouterr().err)
    assert needs, "the reid commands name the modules they need"
    extra_modules = needs.group(1).split(" and ")

    assert _third_party_imports(["python/deepfaune_rs/reid.py"]) == set()
    required = {_canon(DIST_OF_MODULE.get(m, m)) for m in extra_modules}
    assert "pandas" in required and required <= resolved["reid"], required - resolved["reid"]


def test_extras_are_declared_as_documented():
    extras = _project()["optional-dependencies"]
    assert set(extras) >= {"pandas", "excel", "video", "notebook", "reid", "export", "all", "test"}
    # The MegaDetector format checker (scikit-learn, scipy, OpenCV) is for the tests only.
    assert any(r.startswith("megadetector-utils") for r in extras["test"])
    assert not any("megadetector" in r for r in _extra("all"))
    assert not any(r.startswith("torch") for r in _extra("all"))


@pytest.mark.skipif(
    os.environ.get("DEEPFAUNE_PACKAGING_EXPORT") != "1",
    reason="resolving torch takes minutes: set DEEPFAUNE_PACKAGING_EXPORT=1",
)
def test_export_from_pypi_pulls_cuda_on_linux():
    """Why the README points to PyTorch's CPU-only wheels: PyPI's Linux x86-64 torch pulls CUDA."""
    got = {_canon(m["name"]) for m in _resolve(list(_project()["dependencies"]) + _extra("export"))}
    assert {"torch", "timm", "ultralytics"} <= got
    if sys.platform == "linux" and os.uname().machine == "x86_64":
        cuda = {p for p in got if p.startswith(("nvidia-", "cuda-")) or p == "triton"}
        assert len(cuda) >= 10, cuda


def test_rust_version_covers_every_dependency():
    """Cargo.toml's rust-version (the README's "Rust >= ...") is no older than what the locked
    dependencies declare, so a toolchain of that version can build them."""
    cargo = shutil.which("cargo") or pytest.skip("cargo not on PATH")
    # All platforms' packages: cargo may fetch the manifests of those no build here downloaded.
    cmd = [cargo, "metadata", "--format-version", "1", "--locked", "-F", "python"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    if p.returncode != 0 and re.search(r"download|network|resolve|connect", p.stderr, re.I):
        pytest.skip(f"crates.io unreachable: {p.stderr.strip().splitlines()[-1]}")
    assert p.returncode == 0, p.stderr
    meta = json.loads(p.stdout)

    def version(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in v.split("."))

    ours = next(pk for pk in meta["packages"] if pk["name"] == "deepfaune-rs")["rust_version"]
    used = {n["id"] for n in meta["resolve"]["nodes"]}
    needs = max(
        (version(pk["rust_version"]), pk["name"])
        for pk in meta["packages"]
        if pk["id"] in used and pk.get("rust_version")
    )
    assert version(ours) >= needs[0], f"rust-version {ours} < {needs[1]}'s {needs[0]}"
    readme = (REPO / "README.md").read_text()
    assert f"Rust >= {ours}" in readme, "the README names another Rust version"
