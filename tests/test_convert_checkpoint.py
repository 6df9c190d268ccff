"""The torch-free checkpoint reader: real torch.save files (committed, made by
scripts/fixtures/make_checkpoint_fixtures.py with torch) and files written by tests/ptwriter.py."""

from __future__ import annotations

import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from ptwriter import BF16, Obj, Param, Reduce, save, to_bf16_bits

from deepfaune_rs import _core
from deepfaune_rs.convert import checkpoint_kind, convert
from deepfaune_rs.errors import CheckpointError

# The core's reader (src/convert/pickle.rs) and its stand-in class.
load_checkpoint = _core.read_checkpoint
Stub = _core.StandIn

FIX = Path(__file__).parent / "fixtures" / "convert"


def test_reads_torch_made_file_with_every_storage_kind():
    obj = load_checkpoint(FIX / "reader_mixed.pt")
    ref = np.load(FIX / "reader_ref.npz")
    sd = obj["state_dict"]
    assert list(sd) == list(ref.files)
    for k in ref.files:
        assert sd[k].shape == ref[k].shape, k
        np.testing.assert_array_equal(np.asarray(sd[k]), ref[k], err_msg=k)
    assert sd["f16"].dtype == np.float16 and sd["bf16"].dtype == np.float32
    assert obj["args"] == {"backbone": "vit_test", "num_classes": 40}


def test_torchvision_transform_is_stood_in_for_not_imported():
    import sys

    obj = load_checkpoint(FIX / "reader_mixed.pt")
    t = obj["transform"]
    assert isinstance(t, Stub) and t.classname == "torchvision.transforms.transforms.Compose"
    names = [s.name for s in t.transforms]
    assert names == ["Resize", "ToTensor", "Normalize"]
    assert t.transforms[0].size == (224, 224)
    np.testing.assert_allclose(t.transforms[2].mean, [0.485, 0.456, 0.406], rtol=1e-6)
    assert "torchvision" not in sys.modules and "torch" not in sys.modules


def test_hostile_pickle_from_torch_is_refused_unrun(tmp_path):
    marker = Path("/tmp/deepfaune-rs-pwned")
    marker.unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match=r"posix\.system|os\.system"):
        load_checkpoint(FIX / "reader_evil.pt")
    assert not marker.exists()


@pytest.mark.parametrize(
    "module,name",
    [("os", "system"), ("builtins", "eval"), ("builtins", "getattr"), ("subprocess", "Popen")],
)
def test_hostile_calls_are_refused(tmp_path, module, name):
    p = tmp_path / "h.pt"
    save({"state_dict": {"w": np.zeros(2, np.float32)}, "x": Reduce(module, name, ("id",))}, p)
    with pytest.raises(CheckpointError, match=f"{module}.{name}"):
        load_checkpoint(p)


def test_writer_round_trip_dtypes_and_objects(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 5)).astype(np.float32)
    h = rng.normal(size=(7,)).astype(np.float16)
    b = rng.normal(size=(3, 3)).astype(np.float32)
    obj = {
        "model": Obj(
            "ultralytics.nn.tasks",
            "DetectionModel",
            {
                "_modules": OrderedDict(
                    conv=Obj("torch.nn.modules.conv", "Conv2d", {"stride": (2, 2)})
                ),
                "_parameters": OrderedDict(w=Param(a)),
                "nc": 3,
                "names": {0: "animal"},
            },
        ),
        "half": h,
        "bf": BF16(b),
        "count": np.array(12, dtype=np.int64),
        "big": 2**40,
        "f": 0.25,
        "s": "é",
    }
    p = tmp_path / "w.pt"
    save(obj, p)
    got = load_checkpoint(p)
    m = got["model"]
    assert m.classname == "ultralytics.nn.tasks.DetectionModel" and m.nc == 3
    assert m._modules["conv"].stride == (2, 2)
    np.testing.assert_array_equal(m._parameters["w"], a)
    np.testing.assert_array_equal(got["half"], h)
    # bf16: the widened bits of the rounded value, computed by hand from the float32 bits.
    expect = (to_bf16_bits(b).astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(got["bf"], expect)
    assert np.abs(got["bf"] - b).max() <= np.abs(b).max() * 2**-8
    assert int(got["count"]) == 12 and got["big"] == 2**40 and got["f"] == 0.25 and got["s"] == "é"
    assert checkpoint_kind(got) == "detector"


@pytest.mark.parametrize(
    "damage",
    ["not_zip", "empty", "no_pkl", "truncated_storage", "garbage_pickle", "legacy"],
)
def test_damaged_files_raise_one_clear_error(tmp_path, damage):
    p = tmp_path / "d.pt"
    if damage == "not_zip":
        p.write_bytes(b"<html>404</html>")
    elif damage == "empty":
        p.write_bytes(b"")
    elif damage == "legacy":
        p.write_bytes(b"\x80\x02\x8a\x0alz\xfc\x9cF\xf9 j\xa8P\x19.")
    elif damage == "no_pkl":
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("archive/version", "3\n")
    else:
        save({"w": np.ones(1000, np.float32)}, p)
        with zipfile.ZipFile(p) as z:
            members = {n: z.read(n) for n in z.namelist()}
        if damage == "truncated_storage":
            members["archive/data/0"] = members["archive/data/0"][:100]
        else:
            members["archive/data.pkl"] = b"\x80\x02garbage"
        with zipfile.ZipFile(p, "w") as z:
            for n, d in members.items():
                z.writestr(n, d)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(p)
    assert "\n" not in str(e.value)


def test_tensor_past_its_storage_is_refused(tmp_path):
    # A size that claims more elements than the storage holds (a crafted file).
    p = tmp_path / "x.pt"
    save({"w": np.ones(4, np.float32)}, p)
    with zipfile.ZipFile(p) as z:
        members = {n: z.read(n) for n in z.namelist()}
    pkl = members["archive/data.pkl"]
    # the size tuple (4,) is MARK, BININT 4, TUPLE: patch it to 400
    patched = pkl.replace(b"(J\x04\x00\x00\x00t", b"(J\x90\x01\x00\x00t", 1)
    assert patched != pkl
    members["archive/data.pkl"] = patched
    with zipfile.ZipFile(p, "w") as z:
        for n, d in members.items():
            z.writestr(n, d)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(p)


def test_convert_refuses_unknown_content_and_overwriting_the_source(tmp_path):
    p = tmp_path / "x.pt"
    save({"something": np.ones(3, np.float32)}, p)
    with pytest.raises(CheckpointError, match="not a DeepFaune"):
        convert(p, tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="overwrite"):
        convert(p, p)
    assert not (tmp_path / "x.onnx").exists()
