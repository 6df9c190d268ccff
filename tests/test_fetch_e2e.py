"""End to end, as a new user would: ``deepfaune-rs models fetch deepfaune`` then ``deepfaune-rs run
FOLDER -o r.csv``, with a loopback HTTP server standing in for the official servers and no torch.

The server serves checkpoints in the official layouts under the official file names (the names are
read from models/*.toml, not from the code under test):

- CI: the small ultralytics fixtures of tests/fixtures/convert (YOLOv8 for DF, YOLO11 for
  MegaDetector sorrel), and a DeepFaune classifier and bird head written here without torch
  (tests/ptwriter.py) with timm's key names and the real ViT-L width (1024) but one block;
- opt-in (``DEEPFAUNE_FULLSIZE=1`` and ``DEEPFAUNE_TORCH_PYTHON``): full-size random-weight
  checkpoints made with timm (ViT-L) and ultralytics (YOLOv8s, YOLO11s) in a temporary folder.

The CLI runs in a child Python whose import system refuses torch, torchvision, timm and
ultralytics, and whose urllib refuses any host but 127.0.0.1.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from test_fetch import LoopbackServer, listing_states

from conftest import REPO
from deepfaune_rs.pipeline import DEFAULT_CLASSIFIER

FIXTURES = REPO / "tests" / "fixtures" / "convert"
FULLSIZE = os.environ.get("DEEPFAUNE_FULLSIZE") == "1"
TORCH_PYTHON = os.environ.get("DEEPFAUNE_TORCH_PYTHON")
IMAGES = [
    "southwest/2021-05-28_SYFR0041_deer.JPG",
    "southwest/2021-08-08_RCNX0063_fox.JPG",
    "ena24/2480.jpg",
    "jaguar/AABP 7_20050913_1220.jpg",
]

# The child: no torch importable, no address but 127.0.0.1, then the real CLI entry point.
CHILD = textwrap.dedent(
    """
    import importlib.abc, importlib.util, sys, urllib.parse, urllib.request
    BLOCKED = {"torch", "torchvision", "timm", "ultralytics"}

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, NoTorch())
    real_open = urllib.request.OpenerDirector.open

    def loopback_only(self, url, *args, **kwargs):
        full = url if isinstance(url, str) else url.full_url
        if urllib.parse.urlsplit(full).hostname != "127.0.0.1":
            raise SystemExit(f"non-loopback URL asked for: {full}")
        return real_open(self, url, *args, **kwargs)

    urllib.request.OpenerDirector.open = loopback_only
    # The stand-ins are not the publishers' files: their own size and checksums stand in for
    # the published ones (so the checks still run, on the right values).
    import dataclasses, json, os
    import deepfaune_rs.fetch as F
    published = json.loads(os.environ["E2E_PUBLISHED"])
    real_artifacts = F._artifacts_for

    def artifacts(ids=None, bird_head=True):
        out = []
        for a in real_artifacts(ids, bird_head):
            fields = dict(published.get(a.model_id, {}))
            bird = fields.pop("bird_head", None)
            fields = fields if a.role == "model" else bird
            out.append(dataclasses.replace(a, **fields) if fields else a)
        return out

    F._artifacts_for = artifacts
    try:
        importlib.util.find_spec("torch")
    except ImportError:
        pass
    else:
        raise SystemExit("torch was importable")
    from deepfaune_rs.cli import main

    if sys.argv[1:3] == ["models", "fetch"]:
        # The command line fetches the manifests' own files with their published checks (the
        # core's, tests/test_fetch.py and src/cli/admin/tests.rs); the stand-ins' published
        # values above reach the core through the API's artifacts.
        F.fetch(*sys.argv[3:], progress=False)
        code = 0
    else:
        code = main(sys.argv[1:])
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    if leaked:
        raise SystemExit(f"imported: {leaked}")
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"E2E_PEAK_RSS_MB {peak:.0f}", file=sys.stderr)
    sys.exit(code)
    """
)


def toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    with open(path, "rb") as f:
        return tomllib.load(f)


def url_name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def official_names(classifier: str) -> dict[str, str]:
    """role -> file name served, from the manifests."""
    cls = toml(REPO / "models" / f"{classifier}.toml")
    out = {
        "df": url_name(toml(REPO / "models" / "df.toml")["url"]),
        "mds": url_name(toml(REPO / "models" / "mds.toml")["url"]),
        "classifier": url_name(cls["url"]),
    }
    if "bird_head" in cls:
        out["bird_head"] = url_name(cls["bird_head"]["url"])
    return out


# ---------------------------------------------------------------------------------------------
# Checkpoints in DeepFaune's layouts, without torch


def vit_state(arch: str, num_classes: int, depth: int, rng: np.random.Generator) -> OrderedDict:
    """timm's state-dict keys and shapes for DeepFaune's backbones (read from timm's
    ``vit_large_patch14_dinov2`` / ``vit_large_patch16_dinov3`` at depth 1), ViT-L width."""
    d, mlp = 1024, 4096

    def w(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)

    def ones(n: int) -> np.ndarray:
        return (1 + w(n, scale=0.05)).astype(np.float32)

    dinov3 = "dinov3" in arch
    patch = 16 if dinov3 else 14
    sd: OrderedDict = OrderedDict()
    sd["cls_token"] = w(1, 1, d)
    if dinov3:
        sd["reg_token"] = w(1, 4, d)
    else:
        sd["pos_embed"] = w(1, 1 + 37 * 37, d)
    sd["patch_embed.proj.weight"] = w(d, 3, patch, patch)
    sd["patch_embed.proj.bias"] = w(d)
    for i in range(depth):
        b = f"blocks.{i}."
        if dinov3:
            sd[b + "gamma_1"] = w(d, scale=0.1)
            sd[b + "gamma_2"] = w(d, scale=0.1)
        sd[b + "norm1.weight"], sd[b + "norm1.bias"] = ones(d), w(d)
        sd[b + "attn.qkv.weight"] = w(3 * d, d)
        if not dinov3:
            sd[b + "attn.qkv.bias"] = w(3 * d)
        sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"] = w(d, d), w(d)
        if not dinov3:
            sd[b + "ls1.gamma"] = w(d, scale=0.1)
        sd[b + "norm2.weight"], sd[b + "norm2.bias"] = ones(d), w(d)
        sd[b + "mlp.fc1.weight"], sd[b + "mlp.fc1.bias"] = w(mlp, d), w(mlp)
        sd[b + "mlp.fc2.weight"], sd[b + "mlp.fc2.bias"] = w(d, mlp), w(d)
        if not dinov3:
            sd[b + "ls2.gamma"] = w(d, scale=0.1)
    sd["norm.weight"], sd["norm.bias"] = ones(d), w(d)
    sd["head.weight"], sd["head.bias"] = w(num_classes, d, scale=0.5), w(num_classes)
    return sd


def write_small_checkpoints(served: Path, classifier: str, names: dict[str, str]) -> None:
    import ptwriter

    rng = np.random.default_rng(0)
    (served / names["df"]).write_bytes((FIXTURES / "yolov8_tiny.pt").read_bytes())
    (served / names["mds"]).write_bytes((FIXTURES / "yolo11_tiny.pt").read_bytes())
    man = toml(REPO / "models" / f"{classifier}.toml")
    arch, nc = man["architecture"], len(man["classes"]["en"])
    state = vit_state(arch, nc, depth=1, rng=rng)
    ckpt: dict = {
        "args": {"backbone": arch, "num_classes": nc},
        "state_dict": OrderedDict(("base_model." + k, v) for k, v in state.items()),
    }
    if "dinov3" in arch:  # 1.5 also pickles its torchvision transform (never read)
        tv = "torchvision.transforms.transforms"
        ckpt["transform"] = ptwriter.Obj(
            tv,
            "Compose",
            {
                "transforms": [
                    ptwriter.Obj(tv, "Resize", {"size": (224, 224), "max_size": None}),
                    ptwriter.Obj(tv, "ToTensor", {}),
                    ptwriter.Obj(tv, "Normalize", {"mean": [0.485, 0.456, 0.406]}),
                ]
            },
        )
    ptwriter.save(ckpt, served / names["classifier"])
    if "bird_head" in names:
        h = 2048

        def w(*shape: int, scale: float = 0.02) -> np.ndarray:
            return (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)

        bird = OrderedDict(
            [
                ("bird_model.0.weight", w(h, 1024)),
                ("bird_model.0.bias", w(h)),
                ("bird_model.1.weight", 1 + w(h, scale=0.1)),
                ("bird_model.1.bias", w(h)),
                ("bird_model.1.running_mean", w(h)),
                ("bird_model.1.running_var", 1 + np.abs(w(h, scale=0.1))),
                ("bird_model.1.num_batches_tracked", np.array(100, dtype=np.int64)),
                ("bird_model.4.weight", w(8, h)),
                ("bird_model.4.bias", w(8)),
            ]
        )
        ptwriter.save(bird, served / names["bird_head"])


TORCH_SCRIPT = textwrap.dedent(
    """
    import sys
    from collections import OrderedDict
    import timm, torch
    arch, nc, cls_out, bird_out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    torch.manual_seed(0)
    kw = {"global_pool": "token"} if "dinov3" in arch else {"dynamic_img_size": True}
    model = timm.create_model(arch, pretrained=False, num_classes=nc, **kw).eval()
    sd = OrderedDict(("base_model." + k, v) for k, v in model.state_dict().items())
    ckpt = {"args": {"backbone": arch, "num_classes": nc}, "state_dict": sd}
    if "dinov3" in arch:
        from torchvision import transforms as T
        ckpt["transform"] = T.Compose([T.Resize((224, 224), T.InterpolationMode.BICUBIC),
                                       T.ToTensor(), T.Normalize([0.485, 0.456, 0.406],
                                                                 [0.229, 0.224, 0.225])])
    torch.save(ckpt, cls_out)
    if bird_out != "-":
        head = torch.nn.Sequential(torch.nn.Linear(1024, 2048), torch.nn.BatchNorm1d(2048),
                                   torch.nn.GELU(), torch.nn.Dropout(p=0.0),
                                   torch.nn.Linear(2048, 8))
        holder = torch.nn.Module()
        holder.bird_model = head
        torch.save(holder.state_dict(), bird_out)
    """
)


def write_fullsize_checkpoints(served: Path, classifier: str, names: dict[str, str]) -> dict:
    """Full-size random-weight checkpoints made with torch, timm and ultralytics."""
    man = toml(REPO / "models" / f"{classifier}.toml")
    arch, nc = man["architecture"], len(man["classes"]["en"])
    script = served.parent / "make_vit.py"
    script.write_text(TORCH_SCRIPT)
    bird = str(served / names["bird_head"]) if "bird_head" in names else "-"
    t0 = time.perf_counter()
    run = [TORCH_PYTHON, str(script), arch, str(nc), str(served / names["classifier"]), bird]
    subprocess.run(run, check=True, timeout=1800)
    yolo = REPO / "scripts" / "fixtures" / "make_yolo_fixtures.py"
    for arch_y, name in (("yolov8", names["df"]), ("yolo11", names["mds"])):
        args = [TORCH_PYTHON, str(yolo), "checkpoint", arch_y, "s", str(served / name)]
        subprocess.run(args, check=True, timeout=1800, cwd=served.parent)
    return {"make_checkpoints_s": time.perf_counter() - t0}


# ---------------------------------------------------------------------------------------------


def checks_of(path: Path) -> dict:
    h_md5, h_sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h_md5.update(block)
            h_sha.update(block)
    return {
        "url_size": path.stat().st_size,
        "url_md5": h_md5.hexdigest(),
        "url_sha256": h_sha.hexdigest(),
    }


def published_checks(served: Path, classifier: str, names: dict[str, str]) -> dict:
    out = {
        "df": checks_of(served / names["df"]),
        "mds": checks_of(served / names["mds"]),
        classifier: checks_of(served / names["classifier"]),
    }
    if "bird_head" in names:
        out[classifier]["bird_head"] = checks_of(served / names["bird_head"])
    return out


def child(args: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def peak_rss_mb(p: subprocess.CompletedProcess) -> float:
    """The child's own peak RSS (it prints it on exit)."""
    line = [s for s in p.stderr.splitlines() if s.startswith("E2E_PEAK_RSS_MB ")][-1]
    return float(line.split()[1])


@pytest.mark.parametrize(
    "size",
    [
        "small",
        pytest.param(
            "full",
            marks=pytest.mark.skipif(
                not (FULLSIZE and TORCH_PYTHON),
                reason="opt-in: DEEPFAUNE_FULLSIZE=1 and DEEPFAUNE_TORCH_PYTHON",
            ),
        ),
    ],
)
def test_fetch_then_run_without_torch(size, tmp_path, testdata):
    if not (FIXTURES / "yolov8_tiny.pt").is_file() or not (FIXTURES / "yolo11_tiny.pt").is_file():
        pytest.skip("the YOLO fixtures of tests/fixtures/convert are not there")
    classifier = DEFAULT_CLASSIFIER
    names = official_names(classifier)
    served = tmp_path / "served"
    served.mkdir()
    timings: dict = {}
    if size == "small":
        write_small_checkpoints(served, classifier, names)
    else:
        timings.update(write_fullsize_checkpoints(served, classifier, names))
    folder = tmp_path / "camera"
    folder.mkdir()
    for rel in IMAGES:
        (folder / Path(rel).name).symlink_to(testdata / rel)
    models = tmp_path / "models"
    server = LoopbackServer(served)
    try:
        env = {
            **os.environ,
            "DEEPFAUNE_RS_MODELS": str(models),
            "DEEPFAUNE_RS_BASE_URL": server.url,
            "PYTHONPATH": "",
            "E2E_PUBLISHED": json.dumps(published_checks(served, classifier, names)),
            # The core refuses any other host before it connects.
            "DEEPFAUNE_RS_ALLOWED_HOSTS": "127.0.0.1",
        }
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
            env.pop(var, None)
        long = 3600 if size == "full" else 300

        t0 = time.perf_counter()
        fetched = child(["models", "fetch", "deepfaune"], env, long)
        timings["fetch_s"] = time.perf_counter() - t0
        assert fetched.returncode == 0, fetched.stderr[-3000:]
        timings["fetch_peak_rss_mb"] = peak_rss_mb(fetched)
        served_names = sorted(names.values())
        assert sorted(r["path"].lstrip("/") for r in server.requests) == served_names
        assert all(r["status"] == 200 for r in server.requests)

        # Every file verified, the lock file holding the served files' sha256.
        listed = child(["models"], env, long)
        assert listed.returncode == 0, listed.stderr
        states = listing_states(listed.stdout)
        assert states["df"] == states["mds"] == states[classifier] == "verified", listed.stdout
        if "bird_head" in names:
            assert states[f"{classifier} bird head"] == "verified", listed.stdout
        lock = json.loads((models / "deepfaune-rs.lock.json").read_text())
        for name in served_names:
            digest = hashlib.sha256((served / name).read_bytes()).hexdigest()
            assert lock["files"][name]["sha256"] == digest

        t0 = time.perf_counter()
        out = tmp_path / "r.csv"
        run_args = ["run", str(folder), "-o", str(out), "--no-progress"]
        if "bird_head" in names:
            run_args.append("--bird-head")
        ran = child(run_args, env, long)
        timings["run_s"] = time.perf_counter() - t0
        assert ran.returncode == 0, ran.stderr[-3000:]
        timings["run_peak_rss_mb"] = peak_rss_mb(ran)
        with open(out, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert sorted(Path(r["filename"]).name for r in rows) == sorted(
            Path(rel).name for rel in IMAGES
        )
        for r in rows:
            assert r["prediction"] and r["seqnum"]
        if size == "small":  # fixed seeds: the tiny detectors find animals, the classifier runs
            classes = toml(REPO / "models" / f"{classifier}.toml")["classes"]["en"]
            assert any(r["top1"] in classes for r in rows), rows
        assert len(server.requests) == len(served_names)  # the run downloaded nothing
    finally:
        server.stop()
    print(f"\n{size}: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")


def test_pipeline_fetch_true(tmp_path, testdata, monkeypatch):
    """``Pipeline(..., fetch=True)`` fetches (and converts) what is missing, then runs; without
    it, the same call names the missing classifier and downloads nothing."""
    import ptwriter
    import test_fetch

    import deepfaune_rs

    cid = "deepfaune-v11"
    man = toml(REPO / "models" / f"{cid}.toml")
    served = tmp_path / "served"
    served.mkdir()
    state = vit_state(man["architecture"], len(man["classes"]["en"]), 1, np.random.default_rng(1))
    ckpt = {
        "args": {"backbone": man["architecture"], "num_classes": len(man["classes"]["en"])},
        "state_dict": OrderedDict(("base_model." + k, v) for k, v in state.items()),
    }
    ptwriter.save(ckpt, served / url_name(man["url"]))
    asked: list[str] = []
    real_open = test_fetch.urllib.request.OpenerDirector.open

    def guarded(self, url, *args, **kwargs):  # noqa: ANN001
        full = url if isinstance(url, str) else url.full_url
        asked.append(full)
        assert full.startswith("http://127.0.0.1:"), full
        return real_open(self, url, *args, **kwargs)

    monkeypatch.setattr(test_fetch.urllib.request.OpenerDirector, "open", guarded)
    test_fetch.without_published_checks(monkeypatch)
    monkeypatch.setenv("DEEPFAUNE_RS_MODELS", str(tmp_path / "models"))
    server = LoopbackServer(served)
    try:
        monkeypatch.setenv("DEEPFAUNE_RS_BASE_URL", server.url)
        with pytest.raises(deepfaune_rs.WeightsNotFoundError) as e:
            deepfaune_rs.Pipeline("md-lite", cid)
        assert e.value.command == f"deepfaune-rs models fetch {cid}" and asked == []
        pipe = deepfaune_rs.Pipeline("md-lite", cid, fetch=True)
        assert [r["path"] for r in server.requests] == ["/" + url_name(man["url"])]
        res = pipe.run(testdata / IMAGES[0], progress=False)
        assert len(res) == 1 and res.logits.shape == (1, len(man["classes"]["en"]))
        assert pipe.class_names == man["classes"]["en"]
    finally:
        server.stop()
