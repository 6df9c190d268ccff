"""Runs on a Ray cluster (``deepfaune_rs.distributed``): a head and a worker node started here on
127.0.0.1 give the same bytes as one local run, survive a killed actor, and skip the folders a
checkpoint directory already holds. Skipped when Ray Data is not installed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import deepfaune_rs
from conftest import REPO

# Ray replaces 127.0.0.1 by the machine's address ("from the perspective" of the network) unless
# it believes it runs alone; this process (the driver) and the head node are told so, the worker
# node (which refuses that setting) gets the loopback address by WORKER_NODE: everything stays on
# 127.0.0.1. Set before Ray is imported.
# Workers at niceness 0 (Ray's default, 15, starves them on a busy machine). No token
# authentication: the head turns it on when it finds a token in ~/.ray (left by any earlier Ray),
# which this process and the worker node would then miss; the cluster is on the loopback only.
LOOPBACK_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_worker_niceness": "0",
    "RAY_AUTH_MODE": "disabled",
}
os.environ.update(LOOPBACK_ENV)

pytest.importorskip("ray.data")

from deepfaune_rs import distributed  # noqa: E402

START_TIMEOUT = 300  # a busy machine (the suite runs two test files at a time) starts Ray slowly

# `ray start` for the worker node, with the loopback address as this machine's address.
WORKER_NODE = (
    "import sys\n"
    "import ray._private.services as services\n"
    "services.get_node_ip_address = lambda address=None: '127.0.0.1'\n"
    "from ray.scripts.scripts import main\n"
    "sys.argv[0] = 'ray'\n"
    "main()\n"
)


def _ray() -> str:
    beside = Path(sys.executable).parent / "ray"
    return str(beside) if beside.exists() else shutil.which("ray") or "ray"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_nodes(address: str, n: int) -> None:
    """Waits until the cluster at `address` has `n` live nodes (a driver connects and counts)."""
    code = (
        "import ray,sys,time\n"
        f"ray.init(address={address!r}, log_to_driver=False)\n"
        "t=time.monotonic()\n"
        f"while sum(x['Alive'] for x in ray.nodes())<{n} and time.monotonic()-t<{START_TIMEOUT}:\n"
        "    time.sleep(0.5)\n"
        f"sys.exit(0 if sum(x['Alive'] for x in ray.nodes())>={n} else 1)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=START_TIMEOUT + 60)


@pytest.fixture(scope="module")
def cluster():
    """A head and one worker node on 127.0.0.1, one CPU each, run in the foreground (``--block``)
    in their own process groups, so that the finalizer stops exactly them, whatever happened.
    Their folder is a short one in the system's temporary folder: Ray's sockets live under it and
    a Unix socket's path is at most 107 bytes (pytest-xdist's base folders are longer)."""
    tmp = Path(tempfile.mkdtemp(prefix="ray-"))
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "1", "--object-store-memory", str(80 * 2**20), "--block"]
    env = {**os.environ, **LOOPBACK_ENV}
    worker_env = {k: v for k, v in env.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    head = [
        _ray(), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
        "--include-dashboard=false", "--temp-dir", str(tmp), "--disable-usage-stats", *common,
    ]  # fmt: skip
    worker = [sys.executable, "-c", WORKER_NODE, "start", "--address", address,
              "--node-ip-address", "127.0.0.1", *common]  # fmt: skip
    procs = []
    log = open(tmp / "nodes.log", "wb")  # noqa: SIM115 - closed in the finalizer
    try:
        for cmd, cmd_env in ((head, env), (worker, worker_env)):
            procs.append(
                subprocess.Popen(cmd, stdout=log, stderr=log, env=cmd_env, start_new_session=True)
            )
            # The worker only once the head is up (and has written the cluster's token).
            _wait_for_nodes(address, 1 if cmd is head else 2)
        yield address
    finally:
        # The worker first (it tells the head it leaves), then the head.
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            except ProcessLookupError:
                pass
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _pipeline_kwargs(shared_models) -> dict:
    return {
        "detector": "md-lite",
        "classifier": str(shared_models / "pixel_classifier_182_c38.onnx"),
        "classifier_manifest": str(REPO / "models" / "tiny-pixel-c38.toml"),
        "score_threshold": 0.5,
    }


def _outputs(res, testdata, folder: Path) -> dict[str, bytes]:
    """Every output of a run, as bytes (the package's creation time left out)."""
    folder.mkdir()
    res.to_csv(folder / "table.csv")
    res.to_megadetector_json(folder / "md.json")
    with pytest.warns(UserWarning):  # no deployments given: reported, as on one machine
        res.to_camtrap_dp(folder / "dp")
    out = {p.name: p.read_bytes() for p in [folder / "table.csv", folder / "md.json"]}
    for p in sorted((folder / "dp").iterdir()):
        data = p.read_bytes()
        if p.name == "datapackage.json":
            doc = json.loads(data)
            doc.pop("created")
            data = json.dumps(doc, sort_keys=True).encode()
        out["dp/" + p.name] = data
    return out


@pytest.fixture(scope="module")
def local(shared_models, testdata, tmp_path_factory):
    pipe = deepfaune_rs.Pipeline(**_pipeline_kwargs(shared_models))
    res = pipe.run(testdata, progress=False, keep_embeddings=False)
    return _outputs(res, testdata, tmp_path_factory.mktemp("local") / "out")


@pytest.fixture(scope="module")
def first_run(cluster, shared_models, testdata, tmp_path_factory):
    """Two actors over the test images, with a checkpoint directory."""
    tmp = tmp_path_factory.mktemp("first")
    stats: dict = {}
    res = distributed.run(
        testdata,
        pipeline=_pipeline_kwargs(shared_models),
        address=cluster,
        actors=2,
        checkpoint_dir=tmp / "ckpt",
        progress=False,
        stats=stats,
    )
    return res, stats, tmp


def test_cluster_run_writes_the_bytes_of_a_local_run(first_run, local, testdata):
    res, stats, tmp = first_run
    media = {".jpg", ".jpeg", ".mp4"}
    folders = {p.parent for p in testdata.rglob("*") if p.suffix.lower() in media}
    assert stats["units"] == len(folders) and stats["ran"] == stats["units"]
    assert stats["restored"] == 0
    out = _outputs(res, testdata, tmp / "out")
    assert out.keys() == local.keys()
    for name in local:
        assert out[name] == local[name], name
    assert len(res.videos) == 1 and res.videos[0].failure is not None  # error_vid.mp4


def test_restart_skips_the_folders_already_done(first_run, cluster, shared_models, local, testdata):
    """The command line, started again over a checkpoint directory where one folder is missing
    (as if killed before it began): only that folder runs, and the outputs are the same bytes."""
    _, first_stats, tmp = first_run
    ckpt = tmp / "ckpt"
    files = sorted(ckpt.glob("*.ckpt"))
    assert len(files) == first_stats["units"]
    lost = files[0]
    lost.unlink()
    for extra in ckpt.glob(lost.name + ".*"):
        extra.unlink()
    kw = _pipeline_kwargs(shared_models)
    out = tmp / "cli"
    out.mkdir()
    cmd = [
        sys.executable, "-m", "deepfaune_rs.cli", "run", str(testdata),
        "-o", str(out / "table.csv"), "--json", str(out / "md.json"), "--detector", kw["detector"],
        "--classifier", kw["classifier"], "--classifier-manifest", kw["classifier_manifest"],
        "--score-threshold", str(kw["score_threshold"]), "--no-progress",
        "--ray", cluster, "--actors", "2", "--checkpoint-dir", str(ckpt),
    ]  # fmt: skip
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 3, p.stderr  # the test images hold failures, as in a local run
    units = first_stats["units"]
    assert f"{units} folders: 1 run, {units - 1} taken whole from" in p.stderr
    assert (out / "table.csv").read_bytes() == local["table.csv"]
    assert (out / "md.json").read_bytes() == local["md.json"]


def test_a_killed_actor_is_replaced_and_its_folder_run_again(
    first_run, cluster, shared_models, local, testdata, tmp_path
):
    """The first actor to get a folder exits on the spot (``os._exit``, as a killed process):
    Ray starts another and runs the folder again; the outputs are the same bytes. Two folders
    run (the first run's checkpoints of the others are kept, to keep the test short)."""
    _, first_stats, first_tmp = first_run
    ckpt = tmp_path / "ckpt"
    shutil.copytree(first_tmp / "ckpt", ckpt)
    for lost in sorted(ckpt.glob("*.ckpt"))[-2:]:
        for f in ckpt.glob(lost.name + "*"):
            f.unlink()
    marker = tmp_path / "killed"
    stats: dict = {}
    res = distributed.run(
        testdata,
        pipeline=_pipeline_kwargs(shared_models),
        address=cluster,
        actors=2,
        checkpoint_dir=ckpt,
        progress=False,
        runtime_env={"env_vars": {distributed.EXIT_ONCE_ENV: str(marker)}},
        stats=stats,
    )
    assert int(marker.read_text()) > 0  # an actor did die (it wrote its pid, then exited)
    assert stats["ran"] == 2 and stats["restored"] == first_stats["units"] - 2
    assert _outputs(res, testdata, tmp_path / "out") == local


def test_cli_usage_errors_are_one_line(tmp_path, testdata):
    cmd = [sys.executable, "-m", "deepfaune_rs.cli", "run", str(testdata), "-o"]
    for extra, hint in [
        (["--checkpoint-dir", str(tmp_path)], "goes with --ray"),
        (["--ray", "auto", "--resume"], "not --resume"),
        (["--ray", "auto", "--actors", "0"], "at least 1"),
    ]:
        p = subprocess.run(
            [*cmd, str(tmp_path / "o.csv"), *extra], capture_output=True, text=True, timeout=120
        )
        assert p.returncode == 2, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and hint in p.stderr
