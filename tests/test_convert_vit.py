"""The torch-free classifier and bird-head converter (the core's src/convert/vit.rs) against timm.

The fixtures (tests/fixtures/convert/vit_*, bird_*, dtype_*) are reduced copies of DeepFaune's
checkpoints in the official layouts, with the outputs timm / torch computed from them, made by
scripts/fixtures/make_vit_fixtures.py (opt-in, needs torch). Here, without torch: each checkpoint
is read with the package's reader, converted, run in onnxruntime and compared with timm.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from deepfaune_rs import _core  # noqa: E402
from deepfaune_rs.convert import convert  # noqa: E402
from deepfaune_rs.errors import CheckpointError  # noqa: E402

BACKBONES = _core.VIT_BACKBONES
load_checkpoint = _core.read_checkpoint
resample_pos_embed = _core.resample_pos_embed
dinov3_rope_tables = _core.dinov3_rope_tables


def build_classifier(ckpt, size=None) -> onnx.ModelProto:
    return onnx.load_from_string(_core.build_classifier(ckpt, size))


def build_bird_head(ckpt) -> onnx.ModelProto:
    return onnx.load_from_string(_core.build_bird_head(ckpt))


FIX = REPO / "tests" / "fixtures" / "convert"
TOL = 1e-4
DINOV2 = "vit_large_patch14_dinov2.lvd142m"
DINOV3 = "vit_large_patch16_dinov3.lvd1689m"

# checkpoint, npz holding its inputs, npz holding timm's outputs, size, width, classes
CLASSIFIERS = {
    "dinov2": ("vit_dinov2.pt", "vit_dinov2.npz", "vit_dinov2.npz", 182, 64, 38),
    "dinov3": ("vit_dinov3.pt", "vit_dinov3.npz", "vit_dinov3.npz", 224, 128, 40),
    "dinov3_w64_bf16": (
        "dtype_vit_dinov3_w64_bf16.pt", "vit_dinov3.npz", "dtype_vit_dinov3_w64_bf16.npz",
        224, 64, 40,
    ),
}  # fmt: skip
BIRD_HEADS = {"fp32": "bird_head", "fp16": "dtype_bird_head_fp16"}


def _session(model) -> ort.InferenceSession:
    data = model if isinstance(model, (str, bytes)) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def _inputs(name: str) -> np.ndarray:
    return np.load(FIX / name)["input"].astype(np.float32)  # stored as float16


def _dims(value_info) -> list:
    return [d.dim_value or d.dim_param for d in value_info.type.tensor_type.shape.dim]


@pytest.fixture(scope="module")
def classifiers() -> dict:
    """Each fixture classifier converted once: {case: ModelProto}."""
    return {case: build_classifier(load_checkpoint(FIX / c[0])) for case, c in CLASSIFIERS.items()}


@pytest.mark.parametrize("case", sorted(CLASSIFIERS))
def test_classifier_matches_timm(classifiers, case):
    _, inputs, ref_name, size, width, classes = CLASSIFIERS[case]
    model = classifiers[case]
    # DeepFaune's interface: input [b, 3, S, S] at its default size, logits and CLS embedding.
    (inp,) = model.graph.input
    assert inp.name == "input" and _dims(inp) == ["batch", 3, size, size]
    outs = {o.name: _dims(o) for o in model.graph.output}
    assert outs == {"logits": ["batch", classes], "embedding": ["batch", width]}
    ref = np.load(FIX / ref_name)
    logits, emb = _session(model).run(["logits", "embedding"], {"input": _inputs(inputs)})
    assert logits.shape == ref["logits"].shape and emb.shape == ref["embedding"].shape
    assert np.abs(logits - ref["logits"]).max() < TOL
    assert np.abs(emb - ref["embedding"]).max() < TOL
    # The fixture is not degenerate: the logits vary with the input far beyond the tolerance.
    assert np.abs(ref["logits"] - ref["logits"][:1]).max() > 1000 * TOL


def test_dinov3_cls_pooling_not_avg(classifiers):
    """timm's default pooling for DINOv3 ("avg") loads the same weights and gives other logits:
    the converter follows DeepFaune's global_pool="token", and this test can tell them apart."""
    ref = np.load(FIX / "vit_dinov3.npz")
    (logits,) = _session(classifiers["dinov3"]).run(
        ["logits"], {"input": _inputs("vit_dinov3.npz")}
    )
    assert np.abs(logits - ref["logits"]).max() < TOL
    assert np.abs(logits - ref["logits_avg"]).max() > 100 * TOL


def test_batch_dimension_is_dynamic(classifiers):
    x = _inputs("vit_dinov2.npz")
    sess = _session(classifiers["dinov2"])
    full = sess.run(["logits"], {"input": x})[0]
    for i in range(len(x)):
        one = sess.run(["logits"], {"input": x[i : i + 1]})[0]
        assert one.shape == (1, 38) and np.abs(one[0] - full[i]).max() < 1e-5


@pytest.mark.parametrize("case", sorted(CLASSIFIERS))
def test_convert_writes_the_classifier(tmp_path, case):
    pt, inputs, ref_name, *_ = CLASSIFIERS[case]
    info = convert(FIX / pt, tmp_path / "model.onnx")
    assert info["kind"] == "classifier"
    logits, emb = _session(str(tmp_path / "model.onnx")).run(
        ["logits", "embedding"], {"input": _inputs(inputs)}
    )
    ref = np.load(FIX / ref_name)
    assert np.abs(logits - ref["logits"]).max() < TOL
    assert np.abs(emb - ref["embedding"]).max() < TOL


@pytest.mark.parametrize("side", ["13", "16", "43", "9x20"])
def test_position_grid_resampled_as_torch(side):
    """timm's resample_abs_pos_embed (torch's antialiased bicubic) on the fixture's 37x37 grid:
    shrinking (182 px, 224 px), enlarging (602 px) and a non-square target."""
    ckpt = load_checkpoint(FIX / "vit_dinov2.pt")
    pos = np.asarray(ckpt["state_dict"]["base_model.pos_embed"], np.float32)
    grid = pos[0, 1:].reshape(37, 37, -1)
    ref = np.load(FIX / "vit_dinov2.npz")[f"pos_grid_{side}"]
    h, w = (int(s) for s in side.split("x")) if "x" in side else (int(side),) * 2
    ours = resample_pos_embed(grid[..., : ref.shape[-1]], (h, w))
    assert ours.shape == ref.shape == (h, w, ref.shape[-1])
    # torch's weights exactly; the sums within a float32 rounding or two.
    assert np.abs(ours - ref).max() < 1e-6 * max(1.0, float(np.abs(ref).max()))
    assert np.abs(ours - ref).max() < 1e-3 * float(np.abs(ref - ref.mean()).max())


def test_position_grid_unchanged_at_the_trained_size():
    grid = np.random.default_rng(0).standard_normal((37, 37, 4)).astype(np.float32)
    assert np.array_equal(resample_pos_embed(grid, (37, 37)), grid)


@pytest.mark.parametrize("n", [14, 16])
def test_rope_tables_match_timm(n):
    """RotaryEmbeddingDinoV3.get_embed for a 64-wide head (the fixture's and ViT-L's): [sin, cos]
    of the patch tokens, rotate-half layout."""
    ref = np.load(FIX / "vit_dinov3.npz")[f"rope_{n}"]
    sin, cos = dinov3_rope_tables((n, n), 64, 100.0)
    ours = np.concatenate([sin, cos], axis=-1)
    assert ours.shape == ref.shape == (n * n, 128)
    assert np.abs(ours - ref).max() < 1e-6


@pytest.mark.parametrize("dtype", sorted(BIRD_HEADS))
def test_bird_head_matches_torch(tmp_path, dtype):
    name = BIRD_HEADS[dtype]
    ref = np.load(FIX / f"{name}.npz")
    model = build_bird_head(load_checkpoint(FIX / f"{name}.pt"))
    (inp,), (out,) = model.graph.input, model.graph.output
    dim = ref["embedding"].shape[1]
    assert (inp.name, _dims(inp)) == ("embedding", ["batch", dim])
    assert (out.name, _dims(out)) == ("logits", ["batch", 8])
    (logits,) = _session(model).run(["logits"], {"embedding": ref["embedding"]})
    assert np.abs(logits - ref["logits"]).max() < TOL
    assert np.abs(ref["logits"] - ref["logits"][:1]).max() > 1000 * TOL
    # The same through convert(), which recognises a bird head.
    info = convert(FIX / f"{name}.pt", tmp_path / "bird.onnx")
    assert info["kind"] == "bird_head"
    (logits,) = _session(str(tmp_path / "bird.onnx")).run(None, {"embedding": ref["embedding"]})
    assert np.abs(logits - ref["logits"]).max() < TOL


def test_other_input_size(classifiers):
    """size= builds the graph for another input side (the position grid resampled for it)."""
    model = build_classifier(load_checkpoint(FIX / "vit_dinov2.pt"), size=224)
    assert _dims(model.graph.input[0]) == ["batch", 3, 224, 224]
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    logits, emb = _session(model).run(["logits", "embedding"], {"input": x})
    assert logits.shape == (2, 38) and emb.shape == (2, 64) and np.isfinite(logits).all()


def _state(pt: str) -> dict:
    ckpt = load_checkpoint(FIX / pt)
    return {"args": dict(ckpt["args"]), "state_dict": dict(ckpt["state_dict"])}


def test_unknown_backbone_names_the_supported_ones():
    ckpt = _state("vit_dinov2.pt")
    ckpt["args"]["backbone"] = "convnext_base.fb_in22k"
    with pytest.raises(ValueError, match="unsupported classifier backbone") as e:
        build_classifier(ckpt)
    assert all(name in str(e.value) for name in BACKBONES)
    assert DINOV2 in BACKBONES and DINOV3 in BACKBONES


def test_checkpoint_errors_are_one_line():
    ckpt = _state("vit_dinov3.pt")
    del ckpt["state_dict"]["base_model.blocks.1.mlp.fc2.bias"]
    with pytest.raises(CheckpointError, match="blocks.1.mlp.fc2.bias"):
        build_classifier(ckpt)

    ckpt = _state("vit_dinov3.pt")  # a DINOv2 file labelled DINOv3: unexpected pos_embed
    ckpt["state_dict"]["base_model.pos_embed"] = np.zeros((1, 197, 128), np.float32)
    with pytest.raises(CheckpointError, match="unexpected tensors pos_embed"):
        build_classifier(ckpt)

    ckpt = _state("vit_dinov2.pt")
    ckpt["args"]["num_classes"] = 40
    with pytest.raises(CheckpointError, match="40 classes, the head has 38"):
        build_classifier(ckpt)

    ckpt = _state("vit_dinov2.pt")
    ckpt["state_dict"]["base_model.blocks.0.attn.proj.weight"] = np.zeros((64, 32), np.float32)
    with pytest.raises(CheckpointError, match="shape 64x32, expected 64x64"):
        build_classifier(ckpt)

    with pytest.raises(CheckpointError, match="not a DeepFaune classifier"):
        build_classifier({"weights": 1})
    with pytest.raises(CheckpointError, match="bird_model.4.weight"):
        head = dict(load_checkpoint(FIX / "bird_head.pt"))
        del head["bird_model.4.weight"]
        build_bird_head(head)
    with pytest.raises(ValueError, match="input size"):
        build_classifier(_state("vit_dinov2.pt"), size=0)
