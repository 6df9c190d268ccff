"""ONNX graphs of ultralytics (YOLOv8, YOLO11) and YOLOv5 detectors, built without torch.

The checkpoint's pickled model (read by :mod:`.checkpoint` into ``Stub`` objects) carries the
whole architecture: the layers of ``model.model`` with their ``f`` (inputs), ``i`` (index) and
``type``, every sub-module with its attributes (strides, paddings, groups, epsilons, heads...) and
its tensors. The graph is built by walking that tree exactly as the model's forward pass does
(ultralytics' ``BaseModel._predict_once``), so widths, depths, strides, the number of classes
and the DFL size all come from the checkpoint.

Numerics follow what ultralytics runs on CPU: the model in fp32 (fp16 tensors are upcast), each
BatchNorm folded into its convolution (in float64, then rounded to fp32 once), the detection
grid built at run time from the feature-map sizes, so height and width stay dynamic.

Output, as the model returns in eval mode:
  * ultralytics ``Detect``: ``output0`` [batch, 4 + nc, N] (cx, cy, w, h in input pixels, then
    sigmoid class scores);
  * YOLOv5 ``Detect`` (anchor based): ``output0`` [batch, N, 5 + nc] (cx, cy, w, h, objectness,
    class scores).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import numpy as np
import onnx

from .checkpoint import Stub
from .graph import Graph

OPSET = 17
_MISSING = object()


def _names() -> str:
    return ", ".join(sorted(_MODULES))


class _Builder:
    """Turns a module tree into ONNX nodes (one instance per conversion)."""

    def __init__(self, g: Graph) -> None:
        self.g = g
        self._consts: dict[tuple, str] = {}

    # ---- small helpers -------------------------------------------------------------------

    def i64(self, values: Sequence[int] | int) -> str:
        key = ("i64", values if isinstance(values, int) else tuple(values))
        if key not in self._consts:
            if isinstance(values, int):  # a 0-d tensor (Gather index, Range bounds)
                self._consts[key] = self.g.op("Constant", [], value_int=int(values))
            else:
                self._consts[key] = self.g.const(np.array(values, dtype=np.int64))
        return self._consts[key]

    def f32(self, value: float | Sequence[float]) -> str:
        arr = np.array(value, dtype=np.float32)
        key = ("f32", arr.shape, arr.tobytes())
        if key not in self._consts:
            if arr.ndim == 0:
                self._consts[key] = self.g.op("Constant", [], value_float=float(arr))
            else:
                self._consts[key] = self.g.const(arr)
        return self._consts[key]

    def op(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        return self.g.op(op_type, inputs, **attrs)

    # ---- modules -------------------------------------------------------------------------

    def run(self, m: Any, x: Any, path: str) -> Any:
        name = _kind(m)
        fn = _MODULES.get(name)
        if fn is None:
            raise ValueError(
                f"unsupported module {_classname(m)} at {path}: this converter knows {_names()}"
            )
        return fn(self, m, x, path)


# ---- reading the stubs --------------------------------------------------------------------


def _classname(m: Any) -> str:
    return getattr(m, "classname", type(m).__name__)


def _kind(m: Any) -> str:
    return getattr(m, "name", type(m).__name__)


def _state(m: Any) -> Mapping:
    state = getattr(m, "state", None)
    if not isinstance(state, Mapping):
        raise ValueError(f"{_classname(m)}: no pickled attributes to read (not an nn.Module?)")
    return state


def _attr(m: Any, key: str, default: Any = _MISSING, path: str = "") -> Any:
    state = _state(m)
    if key in state:
        return state[key]
    if default is _MISSING:
        raise ValueError(f"{_classname(m)} at {path or '?'}: attribute {key!r} missing")
    return default


def _child(m: Any, key: str, path: str, default: Any = _MISSING) -> Any:
    mods = _attr(m, "_modules", {}, path) or {}
    if key in mods and mods[key] is not None:
        return mods[key]
    if default is _MISSING:
        raise ValueError(f"{_classname(m)} at {path}: sub-module {key!r} missing")
    return default


def _children(m: Any, path: str) -> list[tuple[str, Any]]:
    mods = _attr(m, "_modules", {}, path) or {}
    return [(k, v) for k, v in mods.items() if v is not None]


def _opt_tensor(m: Any, key: str, path: str) -> np.ndarray | None:
    """A parameter or buffer (or tensor attribute) as float64, None when absent."""
    for group in ("_parameters", "_buffers"):
        t = (_attr(m, group, {}, path) or {}).get(key)
        if t is not None:
            return np.asarray(t, dtype=np.float64)
    t = _state(m).get(key)
    if isinstance(t, np.ndarray):
        return np.asarray(t, dtype=np.float64)
    return None


def _tensor(m: Any, key: str, path: str) -> np.ndarray:
    t = _opt_tensor(m, key, path)
    if t is None:
        raise ValueError(f"{_classname(m)} at {path}: tensor {key!r} missing")
    return t


def _pair(v: Any) -> list[int]:
    if isinstance(v, (list, tuple)):
        return [int(a) for a in v] * (2 if len(v) == 1 else 1)
    return [int(v), int(v)]


def _float_list(v: Any) -> list[float]:
    if isinstance(v, np.ndarray):
        return [float(a) for a in v.reshape(-1)]
    if isinstance(v, (list, tuple)):
        return [float(a) for a in v]
    return [float(v)]


# ---- convolutions and activations ---------------------------------------------------------


def _conv_node(
    b: _Builder, conv: Any, x: str, path: str, w: np.ndarray, bias: np.ndarray | None
) -> str:
    if _kind(conv) != "Conv2d":
        raise ValueError(f"{_classname(conv)} at {path}: expected torch.nn.Conv2d")
    if _attr(conv, "padding_mode", "zeros", path) != "zeros":
        raise ValueError(f"Conv2d at {path}: padding_mode {conv.get('padding_mode')} unsupported")
    if _attr(conv, "transposed", False, path):
        raise ValueError(f"Conv2d at {path}: transposed convolutions unsupported")
    pad = _attr(conv, "padding", 0, path)
    if isinstance(pad, str):
        raise ValueError(f"Conv2d at {path}: padding={pad!r} unsupported")
    ph, pw = _pair(pad)
    inputs = [x, b.g.init(f"{path}.weight", w.astype(np.float32))]
    if bias is not None:
        inputs.append(b.g.init(f"{path}.bias", bias.astype(np.float32)))
    return b.op(
        "Conv",
        inputs,
        kernel_shape=list(w.shape[2:]),
        strides=_pair(_attr(conv, "stride", 1, path)),
        pads=[ph, pw, ph, pw],
        dilations=_pair(_attr(conv, "dilation", 1, path)),
        group=int(_attr(conv, "groups", 1, path)),
    )


def _fold_bn(bn: Any, w: np.ndarray, bias: np.ndarray | None, path: str):
    if _kind(bn) != "BatchNorm2d":
        raise ValueError(f"{_classname(bn)} at {path}: expected torch.nn.BatchNorm2d")
    mean = _tensor(bn, "running_mean", path)
    var = _tensor(bn, "running_var", path)
    eps = float(_attr(bn, "eps", 1e-5, path))
    gamma = _opt_tensor(bn, "weight", path)
    beta = _opt_tensor(bn, "bias", path)
    gamma = np.ones_like(mean) if gamma is None else gamma
    beta = np.zeros_like(mean) if beta is None else beta
    scale = gamma / np.sqrt(var + eps)
    b0 = np.zeros_like(mean) if bias is None else bias
    return w * scale.reshape(-1, 1, 1, 1), beta + (b0 - mean) * scale


def conv2d(b: _Builder, m: Any, x: str, path: str) -> str:
    w = _tensor(m, "weight", path)
    return _conv_node(b, m, x, path, w, _opt_tensor(m, "bias", path))


def conv_bn_act(b: _Builder, m: Any, x: str, path: str) -> str:
    """ultralytics / YOLOv5 ``Conv`` (and ``DWConv``): act(bn(conv(x))); a fused one has no bn."""
    conv = _child(m, "conv", path)
    w = _tensor(conv, "weight", f"{path}.conv")
    bias = _opt_tensor(conv, "bias", f"{path}.conv")
    bn = _child(m, "bn", path, None)
    if bn is not None:
        w, bias = _fold_bn(bn, w, bias, f"{path}.bn")
    y = _conv_node(b, conv, x, f"{path}.conv", w, bias)
    act = _child(m, "act", path, None)
    return y if act is None else b.run(act, y, f"{path}.act")


def identity(b: _Builder, m: Any, x: str, path: str) -> str:
    return x


def silu(b: _Builder, m: Any, x: str, path: str) -> str:
    return b.op("Mul", [x, b.op("Sigmoid", [x])])


def _simple(op_type: str) -> Callable:
    def fn(b: _Builder, m: Any, x: str, path: str) -> str:
        return b.op(op_type, [x])

    return fn


def leaky_relu(b: _Builder, m: Any, x: str, path: str) -> str:
    return b.op("LeakyRelu", [x], alpha=float(_attr(m, "negative_slope", 0.01, path)))


def relu6(b: _Builder, m: Any, x: str, path: str) -> str:
    return b.op("Clip", [x, b.f32(0.0), b.f32(6.0)])


def hardswish(b: _Builder, m: Any, x: str, path: str) -> str:
    return b.op("HardSwish", [x])


def gelu(b: _Builder, m: Any, x: str, path: str) -> str:
    if _attr(m, "approximate", "none", path) != "none":
        raise ValueError(f"GELU at {path}: approximate={m.get('approximate')!r} unsupported")
    erf = b.op("Erf", [b.op("Mul", [x, b.f32(1.0 / math.sqrt(2.0))])])
    return b.op("Mul", [b.op("Mul", [x, b.f32(0.5)]), b.op("Add", [erf, b.f32(1.0)])])


def mish(b: _Builder, m: Any, x: str, path: str) -> str:
    return b.op("Mul", [x, b.op("Tanh", [b.op("Softplus", [x])])])


# ---- containers and blocks ----------------------------------------------------------------


def sequential(b: _Builder, m: Any, x: str, path: str) -> str:
    for key, child in _children(m, path):
        x = b.run(child, x, f"{path}.{key}")
    return x


def bottleneck(b: _Builder, m: Any, x: str, path: str) -> str:
    y = b.run(_child(m, "cv1", path), x, f"{path}.cv1")
    y = b.run(_child(m, "cv2", path), y, f"{path}.cv2")
    return b.op("Add", [x, y]) if _attr(m, "add", False, path) else y


def c2f(b: _Builder, m: Any, x: str, path: str) -> str:
    """C2f and C3k2: cv1 split in two halves, each block applied to the last output, cv2 of
    the concatenation."""
    y = b.run(_child(m, "cv1", path), x, f"{path}.cv1")
    c = int(_attr(m, "c", path=path))
    ys = list(b.g.op("Split", [y, b.i64([c, c])], n_out=2, axis=1))
    for key, block in _children(_child(m, "m", path), f"{path}.m"):
        ys.append(b.run(block, ys[-1], f"{path}.m.{key}"))
    return b.run(_child(m, "cv2", path), b.op("Concat", ys, axis=1), f"{path}.cv2")


def c3(b: _Builder, m: Any, x: str, path: str) -> str:
    """C3 and C3k (ultralytics, YOLOv5): cv3(cat(m(cv1(x)), cv2(x)))."""
    a = b.run(_child(m, "m", path), b.run(_child(m, "cv1", path), x, f"{path}.cv1"), f"{path}.m")
    c = b.run(_child(m, "cv2", path), x, f"{path}.cv2")
    return b.run(_child(m, "cv3", path), b.op("Concat", [a, c], axis=1), f"{path}.cv3")


def maxpool(b: _Builder, m: Any, x: str, path: str) -> str:
    k = _pair(_attr(m, "kernel_size", path=path))
    s = _attr(m, "stride", None, path)
    s = k if s is None or s == [] or s == () else _pair(s)
    p = _pair(_attr(m, "padding", 0, path))
    return b.op(
        "MaxPool",
        [x],
        kernel_shape=k,
        strides=s,
        pads=[p[0], p[1], p[0], p[1]],
        dilations=_pair(_attr(m, "dilation", 1, path)),
        ceil_mode=int(bool(_attr(m, "ceil_mode", False, path))),
    )


def sppf(b: _Builder, m: Any, x: str, path: str) -> str:
    y = [b.run(_child(m, "cv1", path), x, f"{path}.cv1")]
    pool = _child(m, "m", path)
    for _ in range(int(_attr(m, "n", 3, path))):
        y.append(b.run(pool, y[-1], f"{path}.m"))
    out = b.run(_child(m, "cv2", path), b.op("Concat", y, axis=1), f"{path}.cv2")
    return b.op("Add", [out, x]) if _attr(m, "add", False, path) else out


def attention(b: _Builder, m: Any, x: str, path: str) -> str:
    """ultralytics ``Attention`` (PSA): multi-head self-attention over the H*W positions."""
    nh = int(_attr(m, "num_heads", path=path))
    kd = int(_attr(m, "key_dim", path=path))
    hd = int(_attr(m, "head_dim", path=path))
    scale = float(_attr(m, "scale", path=path))
    qkv = b.run(_child(m, "qkv", path), x, f"{path}.qkv")
    qkv = b.op("Reshape", [qkv, b.i64([0, nh, 2 * kd + hd, -1])])
    q, k, v = b.g.op("Split", [qkv, b.i64([kd, kd, hd])], n_out=3, axis=2)
    qt = b.op("Transpose", [b.op("Mul", [q, b.f32(scale)])], perm=[0, 1, 3, 2])
    attn = b.op("Softmax", [b.op("MatMul", [qt, k])], axis=-1)
    out = b.op("MatMul", [v, b.op("Transpose", [attn], perm=[0, 1, 3, 2])])
    shape = b.op("Shape", [x])
    out = b.op("Reshape", [out, shape])
    pe = b.run(_child(m, "pe", path), b.op("Reshape", [v, shape]), f"{path}.pe")
    return b.run(_child(m, "proj", path), b.op("Add", [out, pe]), f"{path}.proj")


def psa_block(b: _Builder, m: Any, x: str, path: str) -> str:
    add = bool(_attr(m, "add", True, path))
    a = b.run(_child(m, "attn", path), x, f"{path}.attn")
    x = b.op("Add", [x, a]) if add else a
    f = b.run(_child(m, "ffn", path), x, f"{path}.ffn")
    return b.op("Add", [x, f]) if add else f


def c2psa(b: _Builder, m: Any, x: str, path: str) -> str:
    y = b.run(_child(m, "cv1", path), x, f"{path}.cv1")
    c = int(_attr(m, "c", path=path))
    a, z = b.g.op("Split", [y, b.i64([c, c])], n_out=2, axis=1)
    z = b.run(_child(m, "m", path), z, f"{path}.m")
    return b.run(_child(m, "cv2", path), b.op("Concat", [a, z], axis=1), f"{path}.cv2")


def concat(b: _Builder, m: Any, xs: Any, path: str) -> str:
    if isinstance(xs, str):
        xs = [xs]
    return b.op("Concat", list(xs), axis=int(_attr(m, "d", 1, path)))


def upsample(b: _Builder, m: Any, x: str, path: str) -> str:
    mode = _attr(m, "mode", "nearest", path)
    sf = _attr(m, "scale_factor", None, path)
    if _attr(m, "size", None, path) is not None or sf is None:
        raise ValueError(f"Upsample at {path}: only scale_factor upsampling is supported")
    if mode != "nearest":
        raise ValueError(f"Upsample at {path}: mode {mode!r} unsupported (nearest only)")
    s = _float_list(sf)
    s = s * 2 if len(s) == 1 else s
    if any(v != int(v) for v in s):
        raise ValueError(f"Upsample at {path}: non-integer scale factor {s}")
    return b.op(
        "Resize",
        [x, "", b.f32([1.0, 1.0, *s])],
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )


# ---- detection heads ----------------------------------------------------------------------


def _grid(b: _Builder, feat: str, offset: float) -> tuple[str, str, str]:
    """Cell coordinates of a [b, c, h, w] feature map: x [h*w], y [h*w] (float, + offset) and
    h*w as a 1-D int64 tensor."""
    shape = b.op("Shape", [feat])
    h = b.op("Gather", [shape, b.i64(2)], axis=0)
    w = b.op("Gather", [shape, b.i64(3)], axis=0)
    zero, one = b.i64(0), b.i64(1)
    sx = b.op("Add", [b.op("Cast", [b.op("Range", [zero, w, one])], to=1), b.f32(offset)])
    sy = b.op("Add", [b.op("Cast", [b.op("Range", [zero, h, one])], to=1), b.f32(offset)])
    hw2 = b.op(
        "Concat", [b.op("Unsqueeze", [h, b.i64([0])]), b.op("Unsqueeze", [w, b.i64([0])])], axis=0
    )
    gx = b.op("Expand", [b.op("Unsqueeze", [sx, b.i64([0])]), hw2])
    gy = b.op("Expand", [b.op("Unsqueeze", [sy, b.i64([1])]), hw2])
    n = b.op("Unsqueeze", [b.op("Mul", [h, w]), b.i64([0])])
    return b.op("Reshape", [gx, b.i64([-1])]), b.op("Reshape", [gy, b.i64([-1])]), n


def detect(b: _Builder, m: Any, xs: Any, path: str) -> str:
    """ultralytics ``Detect``: box distributions (DFL) and class scores per level, decoded
    against anchors made from the feature-map sizes; [b, 4 + nc, N]."""
    if isinstance(xs, str):
        xs = [xs]
    state = _state(m)
    if state.get("end2end") or state.get("_end2end") or _child(m, "cv2", path, None) is None:
        raise ValueError(f"{_classname(m)} at {path}: end-to-end (NMS-free) heads are unsupported")
    nc = int(_attr(m, "nc", path=path))
    nl = int(_attr(m, "nl", len(xs), path))
    reg_max = int(_attr(m, "reg_max", 16, path))
    stride = _float_list(_attr(m, "stride", path=path))
    if len(xs) != nl or len(stride) != nl:
        raise ValueError(f"Detect at {path}: {len(xs)} inputs, nl={nl}, {len(stride)} strides")
    if any(s <= 0 for s in stride):
        raise ValueError(f"Detect at {path}: strides {stride} were never computed")
    cv2 = [c for _, c in _children(_child(m, "cv2", path), path)]
    cv3 = [c for _, c in _children(_child(m, "cv3", path), path)]
    boxes, scores, ax, ay, st = [], [], [], [], []
    for i, x in enumerate(xs):
        box = b.run(cv2[i], x, f"{path}.cv2.{i}")
        cls = b.run(cv3[i], x, f"{path}.cv3.{i}")
        boxes.append(b.op("Reshape", [box, b.i64([0, 4 * reg_max, -1])]))
        scores.append(b.op("Reshape", [cls, b.i64([0, nc, -1])]))
        gx, gy, n = _grid(b, x, 0.5)
        ax.append(gx)
        ay.append(gy)
        st.append(b.op("Expand", [b.f32([stride[i]]), n]))
    box = b.op("Concat", boxes, axis=2) if nl > 1 else boxes[0]
    score = b.op("Concat", scores, axis=2) if nl > 1 else scores[0]
    dfl = _child(m, "dfl", path, None)
    if dfl is not None and _kind(dfl) == "DFL":
        conv = _child(dfl, "conv", f"{path}.dfl")
        w = _tensor(conv, "weight", f"{path}.dfl.conv").reshape(1, reg_max)
        p = b.op("Softmax", [b.op("Reshape", [box, b.i64([0, 4, reg_max, -1])])], axis=2)
        dist = b.op("MatMul", [b.g.init(f"{path}.dfl.conv.weight", w.astype(np.float32)), p])
        dist = b.op("Reshape", [dist, b.i64([0, 4, -1])])
    elif dfl is None or _kind(dfl) == "Identity":
        if reg_max != 1:
            raise ValueError(f"Detect at {path}: no DFL module but reg_max={reg_max}")
        dist = box
    else:
        raise ValueError(f"unsupported module {_classname(dfl)} at {path}.dfl")
    cat = (lambda v: b.op("Concat", v, axis=0)) if nl > 1 else (lambda v: v[0])
    anchors = b.op(
        "Concat",
        [b.op("Unsqueeze", [cat(ax), b.i64([0])]), b.op("Unsqueeze", [cat(ay), b.i64([0])])],
        axis=0,
    )  # [2, N]
    strides = b.op("Unsqueeze", [cat(st), b.i64([0])])  # [1, N]
    lt, rb = b.g.op("Split", [dist, b.i64([2, 2])], n_out=2, axis=1)
    x1y1 = b.op("Sub", [anchors, lt])
    x2y2 = b.op("Add", [anchors, rb])
    if state.get("xyxy", False):
        xyxy = b.op("Concat", [x1y1, x2y2], axis=1)
    else:
        cxy = b.op("Div", [b.op("Add", [x1y1, x2y2]), b.f32(2.0)])
        xyxy = b.op("Concat", [cxy, b.op("Sub", [x2y2, x1y1])], axis=1)
    dbox = b.op("Mul", [xyxy, strides])
    return b.op("Concat", [dbox, b.op("Sigmoid", [score])], axis=1)


def detect_v5(b: _Builder, m: Any, xs: Any, path: str) -> str:
    """YOLOv5 ``Detect`` (anchor based): per level conv, sigmoid, grid/anchor decoding;
    [b, N, 5 + nc] with N ordered (level, anchor, y, x) as YOLOv5 does."""
    if isinstance(xs, str):
        xs = [xs]
    nc = int(_attr(m, "nc", path=path))
    no = int(_attr(m, "no", nc + 5, path))
    nl = int(_attr(m, "nl", len(xs), path))
    na = int(_attr(m, "na", path=path))
    stride = _float_list(_attr(m, "stride", path=path))
    anchors = _tensor(m, "anchors", path).reshape(nl, na, 2)
    convs = [c for _, c in _children(_child(m, "m", path), f"{path}.m")]
    if len(xs) != nl or len(stride) != nl or len(convs) != nl or no != nc + 5:
        raise ValueError(f"Detect at {path}: inconsistent nl/na/no/stride attributes")
    outs = []
    for i, x in enumerate(xs):
        y = b.run(convs[i], x, f"{path}.m.{i}")  # [b, na*no, h, w]
        shape = b.op("Shape", [y])
        hw = b.op("Slice", [shape, b.i64([2]), b.i64([4])])
        five = b.op("Concat", [b.i64([0, na, no]), hw], axis=0)
        y = b.op("Transpose", [b.op("Reshape", [y, five])], perm=[0, 1, 3, 4, 2])
        y = b.op("Sigmoid", [y])  # [b, na, h, w, no]
        xy, wh, conf = b.g.op("Split", [y, b.i64([2, 2, nc + 1])], n_out=3, axis=4)
        gx, gy, _ = _grid(b, x, -0.5)
        h = b.op("Gather", [shape, b.i64(2)], axis=0)
        w = b.op("Gather", [shape, b.i64(3)], axis=0)
        hw1 = b.op(
            "Concat",
            [b.op("Unsqueeze", [h, b.i64([0])]), b.op("Unsqueeze", [w, b.i64([0])]), b.i64([1])],
            axis=0,
        )
        grid = b.op(
            "Concat",
            [b.op("Reshape", [gx, hw1]), b.op("Reshape", [gy, hw1])],
            axis=2,
        )  # [h, w, 2]
        xy = b.op("Mul", [b.op("Add", [b.op("Mul", [xy, b.f32(2.0)]), grid]), b.f32(stride[i])])
        ag = (anchors[i].astype(np.float32) * np.float32(stride[i])).reshape(1, na, 1, 1, 2)
        wh2 = b.op("Mul", [wh, b.f32(2.0)])
        wh = b.op("Mul", [b.op("Mul", [wh2, wh2]), b.g.init(f"{path}.anchor_grid.{i}", ag)])
        y = b.op("Concat", [xy, wh, conf], axis=4)
        outs.append(b.op("Reshape", [y, b.i64([0, -1, no])]))
    return b.op("Concat", outs, axis=1) if nl > 1 else outs[0]


def _detect_any(b: _Builder, m: Any, xs: Any, path: str) -> str:
    mods = _attr(m, "_modules", {}, path) or {}
    if "cv2" in mods and "cv3" in mods:
        return detect(b, m, xs, path)
    if "m" in mods and "anchors" in (_attr(m, "_buffers", {}, path) or {}):
        return detect_v5(b, m, xs, path)
    raise ValueError(f"{_classname(m)} at {path}: neither an ultralytics nor a YOLOv5 Detect head")


_MODULES: dict[str, Callable] = {
    "Conv": conv_bn_act,
    "DWConv": conv_bn_act,
    "Conv2d": conv2d,
    "Identity": identity,
    "SiLU": silu,
    "ReLU": _simple("Relu"),
    "Sigmoid": _simple("Sigmoid"),
    "Tanh": _simple("Tanh"),
    "LeakyReLU": leaky_relu,
    "ReLU6": relu6,
    "Hardswish": hardswish,
    "GELU": gelu,
    "Mish": mish,
    "Sequential": sequential,
    "ModuleList": sequential,
    "Bottleneck": bottleneck,
    "C2f": c2f,
    "C3k2": c2f,
    "C3": c3,
    "C3k": c3,
    "SPPF": sppf,
    "MaxPool2d": maxpool,
    "Attention": attention,
    "PSABlock": psa_block,
    "C2PSA": c2psa,
    "Concat": concat,
    "Upsample": upsample,
    "Detect": _detect_any,
}


# ---- the model ----------------------------------------------------------------------------


def _pick_model(ckpt: Any) -> Any:
    """The pickled model of a checkpoint dict, preferring ``ema`` as ultralytics does."""
    if isinstance(ckpt, Stub):
        return ckpt
    if not isinstance(ckpt, Mapping):
        raise ValueError(f"not a YOLO checkpoint: a {type(ckpt).__name__}, not a dict")
    for key in ("ema", "model"):
        m = ckpt.get(key)
        if m is not None and not (isinstance(m, Mapping) and not m):
            if not isinstance(m, Stub):
                raise ValueError(
                    f"not a YOLO checkpoint: {key!r} holds a {type(m).__name__}, "
                    "not a pickled model (a bare state dict cannot be converted)"
                )
            return m
    raise ValueError(
        "not a YOLO checkpoint: no 'model' or 'ema' entry (keys: "
        f"{', '.join(map(str, list(ckpt)[:8]))})"
    )


def _layers(model: Any) -> list[Any]:
    seq = _child(model, "model", "model", None)
    if seq is None:
        raise ValueError(f"{_classname(model)}: no 'model' layer list (not a YOLO DetectionModel)")
    layers = [v for _, v in _children(seq, "model")]
    if not layers:
        raise ValueError(f"{_classname(model)}: empty layer list")
    return layers


def _in_channels(layer: Any, path: str) -> int:
    """Channels of the image input: the first convolution weight found depth-first."""
    stack = [layer]
    while stack:
        m = stack.pop(0)
        if _kind(m) == "Conv2d":
            w = (_attr(m, "_parameters", {}, path) or {}).get("weight")
            if w is not None:
                return int(w.shape[1]) * int(_attr(m, "groups", 1, path))
        stack[:0] = [c for _, c in _children(m, path)]
    raise ValueError(f"{path}: no convolution to read the input channels from")


def detector_layout(ckpt: Any) -> str:
    """``"yolov8"`` (ultralytics Detect: [b, 4 + nc, N]) or ``"yolov5"`` (anchor-based Detect:
    [b, N, 5 + nc])."""
    head = _layers(_pick_model(ckpt))[-1]
    mods = _attr(head, "_modules", {}) or {}
    return "yolov8" if "cv2" in mods else "yolov5"


def build_detector(ckpt: Any) -> onnx.ModelProto:
    """ONNX graph of an ultralytics (YOLOv8, YOLO11) or YOLOv5 detection checkpoint: input
    ``images`` [batch, 3, height, width] (float 0..1, height and width multiples of the largest
    stride), output ``output0`` as the model returns it in eval mode."""
    model = _pick_model(ckpt)
    layers = _layers(model)
    head = layers[-1]
    if _kind(head) != "Detect":
        raise ValueError(
            f"last layer is {_classname(head)}, not a Detect head (classification, segmentation "
            "and pose models are not detectors)"
        )
    layout = detector_layout(model)
    nc = int(_attr(head, "nc", path="Detect"))
    g = Graph("yolo_detector")
    b = _Builder(g)
    channels = _in_channels(layers[0], "model.0")
    images = g.input("images", onnx.TensorProto.FLOAT, ["batch", channels, "height", "width"])
    outputs: dict[int, str] = {}
    x: Any = images
    for pos, layer in enumerate(layers):
        f = _attr(layer, "f", -1, f"model.{pos}")
        i = int(_attr(layer, "i", pos, f"model.{pos}"))
        if isinstance(f, (list, tuple)):
            x = [x if j == -1 else outputs[_index(j, i)] for j in f]
        elif f != -1:
            x = outputs[_index(int(f), i)]
        x = b.run(layer, x, f"model.{i}")
        outputs[i] = x
    if not isinstance(x, str):
        raise ValueError("the model's last layer returned several tensors")
    if layout == "yolov8":
        g.output(x, "output0", onnx.TensorProto.FLOAT, ["batch", 4 + nc, "anchors"])
    else:
        g.output(x, "output0", onnx.TensorProto.FLOAT, ["batch", "anchors", 5 + nc])
    proto = g.model(opset=OPSET)
    stride = _float_list(_attr(head, "stride", path="Detect"))
    meta = {"layout": layout, "stride": str(int(max(stride))), "nc": str(nc)}
    names = _state(model).get("names")
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    if isinstance(names, Mapping):
        meta["names"] = json.dumps({str(k): str(v) for k, v in names.items()})
    onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props}, **meta})
    return proto


def _index(j: int, i: int) -> int:
    """A negative ``f`` counts back from the current layer, as Python list indexing does."""
    return i + j if j < 0 else j
