"""Every command of the README's install sections ("Install and run", "Run the tests", "Install:
wheels, extras, from source") is run here against the installed package, or is listed in NOT_RUN
with the reason.

- `deepfaune-rs ...` lines run as written from the repository root (output files go to a
  temporary folder) and must end as the README says.
- `pip install ...` lines are resolved with `pip install --dry-run --ignore-installed --report`:
  `deepfaune-rs[...]` names the wheel of DEEPFAUNE_WHEEL (it is not on PyPI before a release;
  without that variable those lines are skipped), `.` / `".[...]"` the source tree
  (`--no-build-isolation`: maturin writes the metadata without compiling; skipped when maturin is
  not importable). Nothing is installed. The bare wheel is resolved with its dependencies; lines
  with extras, and the source tree, with `--no-deps` (tests/test_packaging.py resolves extras).
- A line that matches no rule fails the test: a new command in the README needs a rule here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, find_testdata

SECTIONS = ("Install and run", "Run the tests", "Install: wheels, extras, from source")

# Commands of those sections that are not run, and why.
NOT_RUN = {
    "deepfaune-rs models fetch deepfaune": "downloads DeepFaune's weights from their publishers; "
    "this machine reaches package registries only (tests/test_fetch.py covers fetch on a loopback "
    "server); its --help is run instead",
    "bash scripts/test.sh": "it is the test suite that runs this file; .ci/run runs it",
    "pip install torch --index-url https://download.pytorch.org/whl/cpu": "PyTorch's own index "
    "is not reachable here (PyPI only); tests/test_packaging.py shows why it is recommended",
}


def readme_commands() -> list[str]:
    """Command lines of the fenced bash blocks in SECTIONS (subsections included), comments and
    `&&` chains split off."""
    text = (REPO / "README.md").read_text()
    parts = re.split(r"^## ", text, flags=re.M)
    commands: list[str] = []
    for part in parts[1:]:
        if not part.startswith(SECTIONS):
            continue
        for block in re.findall(r"^```(?:bash|sh|console)\n(.*?)^```", part, flags=re.M | re.S):
            for line in block.splitlines():
                line = re.sub(r"\s+#.*$", "", line).strip()
                if line and not line.startswith("#"):
                    commands += [c.strip() for c in line.split("&&")]
    return commands


def _exe(name: str) -> str:
    """The console script installed beside the running interpreter."""
    bindir = Path(sys.executable).parent
    for cand in (bindir / name, bindir / f"{name}.exe"):
        if cand.exists():
            return str(cand)
    pytest.fail(f"{name} is not installed beside {sys.executable}")


def _run(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        args,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def _dry_run(reqs: list[str], *extra_flags: str) -> list[dict]:
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--report", "-", "--disable-pip-version-check", *extra_flags, *reqs]  # fmt: skip
    p = _run(cmd)
    if p.returncode != 0 and re.search(r"connect|network|timed? ?out", p.stderr, re.I):
        pytest.skip(f"PyPI unreachable: {p.stderr.strip().splitlines()[-1]}")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["install"]


def check_pip_install(cmd: str, tmp_path: Path) -> None:
    """The bare wheel is resolved with its dependencies (it installs from PyPI on this Python);
    a line with extras or the source tree is resolved alone (--no-deps): the extras must be
    declared, and what they bring is tests/test_packaging.py's business."""
    args = shlex.split(cmd)[2:]
    flags = [a for a in args if a.startswith("-")]
    assert not flags, f"no rule for pip flags {flags} in {cmd!r}"
    [target] = args
    m = re.fullmatch(r"(deepfaune-rs|\.)(?:\[([\w,-]+)\])?", target)
    assert m, f"no rule for {cmd!r}"
    source, extras = m.group(1), [e for e in (m.group(2) or "").split(",") if e]
    if source == "deepfaune-rs":
        wheel = os.environ.get("DEEPFAUNE_WHEEL")
        if not wheel:
            pytest.skip(f"{cmd!r}: set DEEPFAUNE_WHEEL to the wheel (not on PyPI before a release)")
        req, flags = str(Path(wheel).resolve()), [] if not extras else ["--no-deps"]
    else:
        try:
            import maturin  # noqa: F401
        except ImportError:
            pytest.skip(f"{cmd!r}: maturin is not importable for --no-build-isolation")
        req, flags = ".", ["--no-deps", "--no-build-isolation"]
    report = _dry_run([req + (f"[{','.join(extras)}]" if extras else "")], *flags)
    names = {i["metadata"]["name"].lower() for i in report}
    project = next(i for i in report if i["metadata"]["name"].lower() == "deepfaune-rs")
    assert set(extras) <= set(project["metadata"].get("provides_extra", [])), extras
    if not flags:
        assert {"numpy", "onnxruntime", "onnx"} <= names, names
        assert not names & {"torch", "scipy", "scikit-learn", "opencv-python"}, names


def check_deepfaune_rs(cmd: str, tmp_path: Path) -> None:
    args = shlex.split(cmd)[1:]
    exe = _exe("deepfaune-rs")
    if args[:1] == ["detect"]:
        i = args.index("-o") + 1
        out = tmp_path / Path(args[i]).name
        args[i] = str(out)
        p = _run([exe, *args, "--no-progress"])
        inputs = [a for a in args[1:] if not a.startswith("-") and a != str(out)]
        if inputs == ["../shared/testdata/southwest"]:
            if not (find_testdata() / "southwest").is_dir():
                pytest.skip("../shared/testdata not found")
            # One 0-byte image there, reported: status 3, as the README says.
            assert p.returncode == 3, p.stderr
            images = json.loads(out.read_text())["images"]
            assert len(images) == 16
            assert [i["file"] for i in images if "failure" in i] == ["error_img.JPG"]
            assert sum(len(i.get("detections") or []) for i in images) > 0
        else:
            assert p.returncode == 0, p.stderr
    elif args == ["models"]:
        p = _run([exe, *args], env={"DEEPFAUNE_RS_MODELS": str(tmp_path)})
        assert p.returncode == 0, p.stderr
        assert "md-lite" in p.stdout and "embedded" in p.stdout, p.stdout
    elif args[:1] == ["run"] and "FOLDER" in args:
        # A placeholder folder and official weights this machine cannot fetch: the run must stop
        # at once with the missing weights and the command that fetches them.
        args[args.index("FOLDER")] = "../shared/testdata/southwest"
        args[args.index("-o") + 1] = str(tmp_path / "r.csv")
        p = _run([exe, *args], env={"DEEPFAUNE_RS_MODELS": str(tmp_path)})
        assert p.returncode == 1, p.stderr
        assert "deepfaune-rs models fetch" in p.stderr and "Traceback" not in p.stderr, p.stderr
    else:
        pytest.fail(f"no rule for {cmd!r}")


def _rule(cmd: str):
    if cmd in NOT_RUN:
        return None
    if cmd.startswith("pip install "):
        return check_pip_install
    if cmd.startswith("deepfaune-rs "):
        return check_deepfaune_rs
    return "unknown"


def test_the_first_screen_has_the_promised_commands():
    cmds = readme_commands()
    assert any(c.startswith("pip install deepfaune-rs") for c in cmds), cmds
    assert any(c.startswith("deepfaune-rs detect") for c in cmds), cmds
    assert "deepfaune-rs models fetch deepfaune" in cmds, cmds
    assert any(c.startswith("pip install .") for c in cmds), cmds
    assert "bash scripts/test.sh" in cmds, cmds


def test_every_command_has_a_rule():
    unknown = [c for c in readme_commands() if _rule(c) == "unknown"]
    assert not unknown, f"README commands with no rule in tests/test_readme.py: {unknown}"


@pytest.mark.parametrize("cmd", [c for c in readme_commands() if _rule(c) not in (None, "unknown")])
def test_readme_command(cmd, tmp_path):
    _rule(cmd)(cmd, tmp_path)


def test_not_run_commands_exist_in_the_readme_and_fetch_parses():
    cmds = readme_commands()
    stale = [c for c in NOT_RUN if c not in cmds]
    assert not stale, f"NOT_RUN lists commands the README no longer has: {stale}"
    p = _run([_exe("deepfaune-rs"), "models", "fetch", "--help"])
    assert p.returncode == 0, p.stderr
    assert "deepfaune" in p.stdout
