"""DeepFaune's classifiers and bird heads as ONNX graphs, built from the checkpoint's arrays.

No torch and no tracing: the graphs are written node by node with :class:`.graph.Graph` from timm's
architecture definitions (read in timm 1.0.31, ``models/vision_transformer.py``, ``models/eva.py``,
``layers/pos_embed.py``, ``layers/pos_embed_sincos.py``), and every dimension (width, depth, MLP
width, patch size, register tokens, classes) is read from the tensors.

Supported backbones (``args["backbone"]`` of a DeepFaune checkpoint):

``vit_large_patch14_dinov2.lvd142m`` (DeepFaune 1.1, 1.3, 1.4)
    timm ``VisionTransformer``: patch embedding, ``[CLS, patches]`` plus a learned position
    embedding (a 37x37 grid for 518 px, plus the CLS entry), pre-norm blocks (LayerNorm eps
    1e-6, attention with q/k/v bias, LayerScale, GELU MLP), final LayerNorm, CLS token,
    ``head``. DeepFaune runs it at 182 px with ``dynamic_img_size=True``, so timm resamples the
    grid to 13x13 at every call (``resample_abs_pos_embed``: torch's antialiased bicubic,
    ``align_corners=False``). :func:`resample_pos_embed` computes that resampling in numpy
    (torch's ``_upsample_bicubic2d_aa`` weights, bit for bit) and the graph holds the result.

``vit_large_patch16_dinov3.lvd1689m`` (DeepFaune 1.5)
    timm ``Eva`` with DINOv3 settings: ``[CLS, 4 registers, patches]``, no absolute position
    embedding, rotary embeddings (``RotaryEmbeddingDinoV3``, temperature 100, rotate-half layout,
    applied to the patch tokens' q and k only), no q/k/v bias, LayerScale (``gamma_1``,
    ``gamma_2``), LayerNorm eps 1e-5, final norm before pooling, **CLS-token pooling** (DeepFaune
    builds it with ``global_pool="token"``; timm's default "avg" would give other logits).
    :func:`dinov3_rope_tables` computes the sin/cos tables for the input size.

Attention heads: the checkpoint does not store them. ``args["num_heads"]`` is used when present;
otherwise the head width is 64 (timm's ViT-L/14 and ViT-L/16 have 1024 / 16), so
``heads = width // 64``. The small test copies follow the same rule.

The graph (opset 17, input ``input`` [batch, 3, S, S], outputs ``logits`` [batch, classes] and
``embedding`` [batch, width] = the CLS token after the final norm) computes what timm computes,
with a few exact or rounding-level rewrites that ONNX Runtime runs faster: the attention scale
folded into the query weights (a power of two for 64-wide heads, so exact), LayerScale folded
into the output projections, the q/k/v projection as one MatMul, GELU written as the Erf formula
ONNX Runtime fuses, and the last block computed for the CLS token only (the only token the
outputs use).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto

from .checkpoint import CheckpointError
from .graph import Graph

__all__ = [
    "BACKBONES",
    "HEAD_DIM",
    "build_bird_head",
    "build_classifier",
    "build_classifier_from_state",
    "dinov3_rope_tables",
    "resample_pos_embed",
]

PREFIX = "base_model."
HEAD_DIM = 64  # timm's ViT-L: 1024 wide, 16 heads
OPSET = 17
FLOAT = TensorProto.FLOAT


@dataclass(frozen=True)
class _Backbone:
    family: str  # "dinov2" (timm VisionTransformer) or "dinov3" (timm Eva)
    default_size: int  # the size DeepFaune runs it at
    ln_eps: float
    rope_temperature: float = 0.0


BACKBONES: dict[str, _Backbone] = {
    "vit_large_patch14_dinov2.lvd142m": _Backbone("dinov2", 182, 1e-6),
    "vit_large_patch16_dinov3.lvd1689m": _Backbone("dinov3", 224, 1e-5, rope_temperature=100.0),
}


def _backbone(name: Any) -> _Backbone:
    arch = BACKBONES.get(name) if isinstance(name, str) else None
    if arch is None:
        raise ValueError(
            f"unsupported classifier backbone {name!r}; supported: {', '.join(sorted(BACKBONES))}"
        )
    return arch


# --------------------------------------------------------------------------------------------
# Position grid resampling (timm resample_abs_pos_embed -> F.interpolate(bicubic, antialias))


def _fma32(p: Any, q: Any, r: float) -> np.ndarray:
    """float32 fused multiply-add: the product of two float32 values is exact in float64, then
    one rounding to float32."""
    return (np.asarray(p, np.float64) * np.asarray(q, np.float64) + r).astype(np.float32)


def _aa_cubic(x: np.ndarray) -> np.ndarray:
    """torch's antialiasing bicubic filter (Keys, a = -0.5 as Pillow) in float32, with the fused
    multiply-adds of torch's compiled CPU kernel (its weights then match torch's bit for bit)."""
    a = -0.5
    x = np.abs(x.astype(np.float32))
    inner = _fma32(a + 2, x, -(a + 3))
    near = _fma32((inner * x).astype(np.float32), x, 1.0)
    far = _fma32(_fma32(_fma32(a, x, -5 * a), x, 8 * a), x, -4 * a)
    return np.where(x < 1.0, near, np.where(x < 2.0, far, np.float32(0.0))).astype(np.float32)


def _aa_bicubic_weights(n_in: int, n_out: int) -> np.ndarray:
    """The [n_out, n_in] float32 weights torch's antialiased bicubic resize (align_corners=False,
    no scale factor) uses along one axis: the filter is widened by in/out when shrinking
    (Pillow's support scaling), each row normalised to sum 1. The float32 / float64 mix of
    torch's ``_compute_indices_min_size_weights_aa`` is kept, so the weights are torch's to the
    bit."""
    f32 = np.float32
    scale = f32(f32(n_in) / f32(n_out))
    support = f32(2.0 * float(scale)) if scale >= 1.0 else f32(2.0)
    invscale = f32(1.0 / float(scale)) if scale >= 1.0 else f32(1.0)
    w = np.zeros((n_out, n_in), np.float32)
    for i in range(n_out):
        center = f32(float(scale) * (i + 0.5))
        xmin = max(int(float(f32(center - support)) + 0.5), 0)
        xmax = min(int(float(f32(center + support)) + 0.5), n_in)
        j = np.arange(xmin, xmax)
        arg = (j.astype(f32) - center).astype(f32).astype(np.float64) + 0.5
        taps = _aa_cubic((arg * float(invscale)).astype(f32))
        total = f32(0.0)
        for t in taps:  # sequential float32 sum, as torch
            total = f32(total + t)
        if total != 0.0:
            taps = (taps / total).astype(f32)
        w[i, xmin:xmax] = taps
    return w


def resample_pos_embed(grid: np.ndarray, new_size: tuple[int, int]) -> np.ndarray:
    """Resamples a position grid [H, W, C] to [h, w, C] as timm's ``resample_abs_pos_embed``
    (torch ``F.interpolate(mode="bicubic", antialias=True, align_corners=False)``): width
    first, then height, float32 between the passes. The weights are torch's exactly; the sums
    are taken in float64 and rounded once, so results agree with torch to about one float32
    unit in the last place (torch's compiled accumulation order is not reproducible)."""
    grid = np.asarray(grid, dtype=np.float32)
    h_in, w_in, _ = grid.shape
    h_out, w_out = new_size
    out = grid
    if w_out != w_in:
        ww = _aa_bicubic_weights(w_in, w_out).astype(np.float64)
        out = np.einsum("pw,hwc->hpc", ww, out.astype(np.float64)).astype(np.float32)
    if h_out != h_in:
        wh = _aa_bicubic_weights(h_in, h_out).astype(np.float64)
        out = np.einsum("oh,hwc->owc", wh, out.astype(np.float64)).astype(np.float32)
    return np.ascontiguousarray(out)


# --------------------------------------------------------------------------------------------
# DINOv3 rotary tables (timm RotaryEmbeddingDinoV3, eval mode, no coordinate augmentation)


def dinov3_rope_tables(
    grid: tuple[int, int], head_dim: int, temperature: float = 100.0
) -> tuple[np.ndarray, np.ndarray]:
    """(sin, cos), each [H*W, head_dim] float32, in timm's layout for ``rotate_half=True``.

    As ``RotaryEmbeddingDinoV3`` (normalize_coords="separate", grid "ij", offset 0): patch centres
    ``(i + 0.5) / n`` mapped to [-1, 1] per axis; periods ``temperature ** (2 k / (head_dim /
    2))`` for k < head_dim / 4; angles ``2 pi coord / period`` ordered [row angles, column
    angles]; each table repeats its head_dim / 2 values twice (rotate-half layout). Angles are
    computed in float32 with timm's operation order (identical bits); sin and cos are rounded
    from float64, within one float32 ulp of torch's."""
    if head_dim % 4:
        raise ValueError(f"rotary head width {head_dim} is not a multiple of 4")
    f32 = np.float32
    quarter = head_dim // 4
    exps = (f32(2.0) * np.arange(quarter, dtype=f32)) / f32(head_dim // 2)
    periods = (float(temperature) ** exps.astype(np.float64)).astype(f32)
    axes = []
    for n in grid:
        c = ((np.arange(n, dtype=f32) + f32(0.5)) / f32(n)).astype(f32)
        axes.append((f32(2.0) * c - f32(1.0)).astype(f32))
    rows, cols = np.meshgrid(axes[0], axes[1], indexing="ij")
    coords = np.stack([rows, cols], axis=-1).reshape(-1, 2)  # [HW, 2]
    angles = (f32(2.0 * math.pi) * coords[:, :, None]).astype(f32) / periods[None, None, :]
    angles = angles.astype(f32).reshape(len(coords), 2 * quarter)
    sin = np.sin(angles.astype(np.float64)).astype(f32)
    cos = np.cos(angles.astype(np.float64)).astype(f32)
    return np.concatenate([sin, sin], axis=-1), np.concatenate([cos, cos], axis=-1)


# --------------------------------------------------------------------------------------------
# Checkpoint access


class _State:
    """A state dict (plain ``dict[str, array]``) read strictly, as ``load_state_dict`` does: a
    missing key, a wrong shape or a key nothing used is an error."""

    def __init__(self, state: Mapping[str, Any], what: str) -> None:
        self.state = state
        self.what = what
        self.used: set[str] = set()

    def has(self, key: str) -> bool:
        return key in self.state

    def get(self, key: str, shape: tuple[int | None, ...] | None = None) -> np.ndarray:
        if key not in self.state:
            raise CheckpointError(f"{self.what}: tensor {key!r} missing")
        arr = self.state[key]
        if not isinstance(arr, np.ndarray):
            raise CheckpointError(f"{self.what}: {key!r} is not a tensor")
        if shape is not None and (
            arr.ndim != len(shape)
            or any(s is not None and s != a for s, a in zip(shape, arr.shape))
        ):
            want = "x".join("?" if s is None else str(s) for s in shape)
            got = "x".join(map(str, arr.shape))
            raise CheckpointError(f"{self.what}: {key!r} has shape {got}, expected {want}")
        self.used.add(key)
        return arr

    def f32(self, key: str, shape: tuple[int | None, ...] | None = None) -> np.ndarray:
        return np.asarray(self.get(key, shape), dtype=np.float32)

    def check_all_used(self, ignore: tuple[str, ...] = ()) -> None:
        left = sorted(k for k in self.state if k not in self.used and not k.endswith(ignore))
        if left:
            more = f" and {len(left) - 5} more" if len(left) > 5 else ""
            raise CheckpointError(
                f"{self.what}: unexpected tensors {', '.join(left[:5])}{more} "
                "(not the architecture its backbone name says)"
            )


def _classifier_parts(ckpt: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not isinstance(ckpt, Mapping) or "args" not in ckpt or "state_dict" not in ckpt:
        raise CheckpointError(
            "not a DeepFaune classifier checkpoint ({'args': {'backbone', 'num_classes'}, "
            "'state_dict'} expected)"
        )
    args, sd = ckpt["args"], ckpt["state_dict"]
    if not isinstance(args, Mapping) or not isinstance(sd, Mapping):
        raise CheckpointError("DeepFaune classifier checkpoint: 'args' / 'state_dict' not dicts")
    state = {
        (k[len(PREFIX) :] if isinstance(k, str) and k.startswith(PREFIX) else k): v
        for k, v in sd.items()
    }
    return dict(args), state


# --------------------------------------------------------------------------------------------
# Graph pieces


def _i64(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)


def _linear_t(w: np.ndarray, col_scale: np.ndarray | None = None) -> np.ndarray:
    """torch Linear weight [out, in] -> MatMul operand [in, out], float32, one copy."""
    wt = np.ascontiguousarray(np.asarray(w).T, dtype=np.float32)
    if col_scale is not None:
        wt *= col_scale.astype(np.float32)[None, :]
    return wt


def _gelu(g: Graph, x: str) -> str:
    """Exact GELU, x * 0.5 * (1 + erf(x / sqrt 2)): the node pattern torch exports for nn.GELU,
    which ONNX Runtime fuses into its Gelu kernel."""
    d = g.op("Div", [x, g.const(np.float32(math.sqrt(2.0)))])
    e = g.op("Erf", [d])
    a = g.op("Add", [e, g.const(np.float32(1.0))])
    m = g.op("Mul", [x, a])
    return g.op("Mul", [m, g.const(np.float32(0.5))])


def _layer_norm(g: Graph, st: _State, x: str, key: str, width: int, eps: float) -> str:
    w = g.init(f"{key}.weight", st.f32(f"{key}.weight", (width,)))
    b = g.init(f"{key}.bias", st.f32(f"{key}.bias", (width,)))
    return g.op("LayerNormalization", [x, w, b], axis=-1, epsilon=float(eps))


@dataclass
class _Dims:
    width: int
    heads: int
    head_dim: int
    mlp: int
    tokens: int
    prefix: int


def _block(
    g: Graph,
    st: _State,
    x: str,
    i: int,
    dims: _Dims,
    family: str,
    eps: float,
    rope: tuple[str, str] | None,
    cls_only: bool,
) -> str:
    """One pre-norm transformer block; with ``cls_only`` the output is [b, 1, D], the CLS token
    (keys and values still come from every token)."""
    p = f"blocks.{i}"
    d, heads, hd = dims.width, dims.heads, dims.head_dim
    h = _layer_norm(g, st, x, f"{p}.norm1", d, eps)

    # q/k/v as one MatMul; the attention scale 1/sqrt(head_dim) folded into the q columns.
    scale = np.ones(3 * d, np.float32)
    scale[:d] = hd**-0.5
    w_qkv = _linear_t(st.get(f"{p}.attn.qkv.weight", (3 * d, d)), scale)
    qkv = g.op("MatMul", [h, g.init(f"{p}.attn.qkv.weight", w_qkv)])
    del w_qkv
    if family == "dinov2":
        b_qkv = st.f32(f"{p}.attn.qkv.bias", (3 * d,)) * scale
        qkv = g.op("Add", [qkv, g.init(f"{p}.attn.qkv.bias", b_qkv)])

    if rope is not None:
        # x * cos + rotate_half(x) * sin on [b, N, 3, H, 2, hd/2]; the tables hold cos=1, sin=0
        # for the prefix tokens and for v. rotate_half = the two halves swapped (a reversed
        # Slice over the axis of size 2), the minus sign of its first half is in the sin table.
        cos_t, sin_t = rope
        six = g.op("Reshape", [qkv, g.const(_i64([0, 0, 3, heads, 2, hd // 2]))])
        swapped = g.op(
            "Slice",
            [
                six,
                g.const(_i64([-1])),
                g.const(_i64([-(2**62)])),
                g.const(_i64([4])),
                g.const(_i64([-1])),
            ],
        )
        rotated = g.op("Add", [g.op("Mul", [six, cos_t]), g.op("Mul", [swapped, sin_t])])
        qkv5 = g.op("Reshape", [rotated, g.const(_i64([0, 0, 3, heads, hd]))])
    else:
        qkv5 = g.op("Reshape", [qkv, g.const(_i64([0, 0, 3, heads, hd]))])
    t = g.op("Transpose", [qkv5], perm=[2, 0, 3, 1, 4])  # [3, b, H, N, hd]
    axis0 = g.const(_i64([0]))
    q, k, v = (g.op("Squeeze", [part, axis0]) for part in g.op("Split", [t], n_out=3, axis=0))
    if cls_only:
        q = g.op("Slice", [q, g.const(_i64([0])), g.const(_i64([1])), g.const(_i64([2]))])
    kt = g.op("Transpose", [k], perm=[0, 1, 3, 2])
    scores = g.op("MatMul", [q, kt])
    probs = g.op("Softmax", [scores], axis=-1)
    ctx = g.op("MatMul", [probs, v])  # [b, H, n, hd]
    ctx = g.op("Transpose", [ctx], perm=[0, 2, 1, 3])
    ctx = g.op("Reshape", [ctx, g.const(_i64([0, 0, d]))])

    # Output projection with LayerScale folded in: (ctx W^T + b) * gamma.
    ls1 = st.f32(f"{p}.ls1.gamma" if family == "dinov2" else f"{p}.gamma_1", (d,))
    w_proj = _linear_t(st.get(f"{p}.attn.proj.weight", (d, d)), ls1)
    b_proj = st.f32(f"{p}.attn.proj.bias", (d,)) * ls1
    a = g.op("MatMul", [ctx, g.init(f"{p}.attn.proj.weight", w_proj)])
    del w_proj
    a = g.op("Add", [a, g.init(f"{p}.attn.proj.bias", b_proj)])
    if cls_only:
        x = g.op("Slice", [x, g.const(_i64([0])), g.const(_i64([1])), g.const(_i64([1]))])
    x = g.op("Add", [x, a])

    h = _layer_norm(g, st, x, f"{p}.norm2", d, eps)
    w_fc1 = _linear_t(st.get(f"{p}.mlp.fc1.weight", (dims.mlp, d)))
    m = g.op("MatMul", [h, g.init(f"{p}.mlp.fc1.weight", w_fc1)])
    del w_fc1
    m = g.op("Add", [m, g.init(f"{p}.mlp.fc1.bias", st.f32(f"{p}.mlp.fc1.bias", (dims.mlp,)))])
    m = _gelu(g, m)
    ls2 = st.f32(f"{p}.ls2.gamma" if family == "dinov2" else f"{p}.gamma_2", (d,))
    w_fc2 = _linear_t(st.get(f"{p}.mlp.fc2.weight", (d, dims.mlp)), ls2)
    m = g.op("MatMul", [m, g.init(f"{p}.mlp.fc2.weight", w_fc2)])
    del w_fc2
    m = g.op("Add", [m, g.init(f"{p}.mlp.fc2.bias", st.f32(f"{p}.mlp.fc2.bias", (d,)) * ls2)])
    return g.op("Add", [x, m])


def _depth(st: _State) -> int:
    depth = 0
    while st.has(f"blocks.{depth}.norm1.weight"):
        depth += 1
    if depth == 0:
        raise CheckpointError(f"{st.what}: no transformer blocks (blocks.0.norm1.weight missing)")
    return depth


def build_classifier_from_state(
    state: Mapping[str, Any], args: Mapping[str, Any], *, size: int | None = None
) -> onnx.ModelProto:
    """Builds the classifier graph from a state dict (timm key names, without DeepFaune's
    ``base_model.`` prefix; values numpy arrays, any float dtype) and DeepFaune's ``args``
    (``backbone``, ``num_classes``, optionally ``num_heads``)."""
    arch = _backbone(args.get("backbone"))
    st = _State(state, f"{args.get('backbone')} checkpoint")
    size = arch.default_size if size is None else size
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"input size must be a positive integer, not {size!r}")

    pw = st.get("patch_embed.proj.weight", (None, 3, None, None))
    width, _, patch, patch_w = pw.shape
    if patch != patch_w:
        raise CheckpointError(f"{st.what}: non-square patches {patch}x{patch_w}")
    grid = size // patch
    if grid < 1:
        raise ValueError(f"input size {size} is smaller than the {patch} px patch")
    heads = args.get("num_heads")
    if heads is None:
        if width % HEAD_DIM:
            raise CheckpointError(
                f"{st.what}: width {width} is not a multiple of {HEAD_DIM} (the head width); "
                "give args['num_heads']"
            )
        heads = width // HEAD_DIM
    heads = int(heads)
    if heads <= 0 or width % heads:
        raise CheckpointError(f"{st.what}: width {width} does not split into {heads} heads")
    head_w = st.get("head.weight", (None, width))
    num_classes = head_w.shape[0]
    if "num_classes" in args and int(args["num_classes"]) != num_classes:
        raise CheckpointError(
            f"{st.what}: args say {args['num_classes']} classes, the head has {num_classes}"
        )
    depth = _depth(st)
    mlp = st.get("blocks.0.mlp.fc1.weight", (None, width)).shape[0]

    g = Graph(f"deepfaune_{arch.family}_classifier")
    x_in = g.input("input", FLOAT, ["batch", 3, size, size])
    w = g.init("patch_embed.proj.weight", pw)
    b = g.init("patch_embed.proj.bias", st.f32("patch_embed.proj.bias", (width,)))
    y = g.op("Conv", [x_in, w, b], kernel_shape=[patch, patch], strides=[patch, patch])
    y = g.op("Reshape", [y, g.const(_i64([0, width, grid * grid]))])
    y = g.op("Transpose", [y], perm=[0, 2, 1])  # [b, grid*grid, width]

    cls = st.f32("cls_token", (1, 1, width))
    rope = None
    if arch.family == "dinov2":
        pos = st.f32("pos_embed", (1, None, width))
        old = math.isqrt(pos.shape[1] - 1)
        if old * old != pos.shape[1] - 1:
            raise CheckpointError(f"{st.what}: pos_embed of {pos.shape[1]} tokens is not 1 + n*n")
        patches = pos[0, 1:].reshape(old, old, width)
        if old != grid:
            patches = resample_pos_embed(patches, (grid, grid))
        y = g.op("Add", [y, g.init("pos_embed", patches.reshape(1, grid * grid, width))])
        prefix = cls + pos[:, :1]  # timm concatenates, then adds pos_embed: the same sum
    else:
        reg = st.f32("reg_token", (1, None, width))
        prefix = np.concatenate([cls, reg], axis=1)
    n_prefix = prefix.shape[1]
    dims = _Dims(width, heads, width // heads, mlp, n_prefix + grid * grid, n_prefix)

    if arch.family == "dinov3":
        sin, cos = dinov3_rope_tables((grid, grid), dims.head_dim, arch.rope_temperature)
        half = dims.head_dim // 2
        n = dims.tokens
        cos_t = np.ones((n, 3, 1, 1, half), np.float32)
        sin_t = np.zeros((n, 3, 1, 2, half), np.float32)
        cos_t[n_prefix:, :2, 0, 0, :] = cos[:, None, :half]
        sin_t[n_prefix:, :2, 0, 0, :] = -sin[:, None, :half]
        sin_t[n_prefix:, :2, 0, 1, :] = sin[:, None, half:]
        rope = (g.init("rope_cos", cos_t), g.init("rope_sin", sin_t))

    # Prefix tokens repeated over the batch: Expand to [batch, 1, 1] broadcasts [1, P, D].
    batch = g.op(
        "Slice", [g.op("Shape", [x_in]), g.const(_i64([0])), g.const(_i64([1])), g.const(_i64([0]))]
    )
    shape = g.op("Concat", [batch, g.const(_i64([1, 1]))], axis=0)
    pre = g.op("Expand", [g.init("prefix_tokens", prefix), shape])
    x = g.op("Concat", [pre, y], axis=1)

    for i in range(depth):
        x = _block(g, st, x, i, dims, arch.family, arch.ln_eps, rope, cls_only=i == depth - 1)
    x = _layer_norm(g, st, x, "norm", width, arch.ln_eps)  # [b, 1, D]: the CLS token
    emb = g.op("Reshape", [x, g.const(_i64([-1, width]))])
    logits = g.op(
        "Gemm",
        [
            emb,
            g.init("head.weight", head_w),
            g.init("head.bias", st.f32("head.bias", (num_classes,))),
        ],
        transB=1,
    )
    st.check_all_used()
    g.output(logits, "logits", FLOAT, ["batch", num_classes])
    g.output(emb, "embedding", FLOAT, ["batch", width])
    return g.model(opset=OPSET)


def build_classifier(ckpt: Any, *, size: int | None = None) -> onnx.ModelProto:
    """The ONNX graph of a DeepFaune classifier checkpoint (``{"args": {"backbone",
    "num_classes"}, "state_dict": {"base_model.*": arrays}, ...}``, as :func:`load_checkpoint`
    returns it). ``size`` is the input side in pixels (default: DeepFaune's, 182 for DINOv2,
    224 for DINOv3)."""
    args, state = _classifier_parts(ckpt)
    return build_classifier_from_state(state, args, size=size)


def build_bird_head(ckpt: Any) -> onnx.ModelProto:
    """The ONNX graph of a DeepFaune bird head (a state dict of ``BirdModel``:
    ``bird_model.0`` Linear(D, H), ``.1`` BatchNorm1d(H) (eval: running statistics, eps 1e-5,
    the default DeepFaune builds it with), GELU, Dropout(0), ``.4`` Linear(H, groups)).
    Input ``embedding`` [batch, D], output ``logits`` [batch, groups]. The BatchNorm is folded
    into the first Linear."""
    if not isinstance(ckpt, Mapping):
        raise CheckpointError("not a DeepFaune bird head (a state dict of bird_model.* expected)")
    st = _State(ckpt, "bird head checkpoint")
    w0 = st.get("bird_model.0.weight", (None, None))
    hidden, dim = w0.shape
    b0 = st.f32("bird_model.0.bias", (hidden,)).astype(np.float64)
    gamma = st.f32("bird_model.1.weight", (hidden,)).astype(np.float64)
    beta = st.f32("bird_model.1.bias", (hidden,)).astype(np.float64)
    mean = st.f32("bird_model.1.running_mean", (hidden,)).astype(np.float64)
    var = st.f32("bird_model.1.running_var", (hidden,)).astype(np.float64)
    w4 = st.get("bird_model.4.weight", (None, hidden))
    groups = w4.shape[0]
    alpha = gamma / np.sqrt(var + 1e-5)
    g = Graph("deepfaune_bird_head")
    x = g.input("embedding", FLOAT, ["batch", dim])
    w = _linear_t(w0, alpha)
    h = g.op(
        "Gemm",
        [
            x,
            g.init("bird_model.0.weight", w),
            g.init("bird_model.0.bias", (b0 - mean) * alpha + beta),
        ],
    )
    h = _gelu(g, h)
    logits = g.op(
        "Gemm",
        [
            h,
            g.init("bird_model.4.weight", w4),
            g.init("bird_model.4.bias", st.f32("bird_model.4.bias", (groups,))),
        ],
        transB=1,
    )
    st.check_all_used(ignore=("num_batches_tracked",))
    g.output(logits, "logits", FLOAT, ["batch", groups])
    return g.model(opset=OPSET)
