"""Writes files in PyTorch's ``torch.save`` zip format without torch, for tests.

Written from the format (a zip archive with ``archive/data.pkl``, one stored member per storage
under ``archive/data/<key>`` aligned to 64 bytes, ``archive/version``, ``archive/byteorder``), with
the pickle emitted opcode by opcode, so tests can build checkpoints in the official layouts
(DeepFaune's ``{"args", "state_dict"}``, pickled module objects, hostile pickles) at any size.

- numpy arrays become tensors (float32 -> FloatStorage, float16 -> HalfStorage, int64 ->
  LongStorage, ...); ``BF16(array)`` is a bfloat16 tensor; ``Param(array)`` an ``nn.Parameter``;
- ``Obj(module, name, state, args=())`` is an object of class ``module.name`` built with NEWOBJ
  and BUILD (what pickle writes for a ``torch.nn.Module`` or an ultralytics model);
- ``Reduce(module, name, args)`` is a call ``module.name(*args)`` (REDUCE), for hostile tests.
"""

from __future__ import annotations

import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Obj:
    module: str
    name: str
    state: Any = None
    args: tuple = ()


@dataclass
class Reduce:
    module: str
    name: str
    args: tuple = ()


@dataclass
class Param:
    data: Any
    requires_grad: bool = True


@dataclass
class BF16:
    data: Any


@dataclass
class _Ctx:
    storages: list = field(default_factory=list)


_STORAGE = {
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage",
    np.dtype(np.int16): "ShortStorage",
    np.dtype(np.int8): "CharStorage",
    np.dtype(np.uint8): "ByteStorage",
    np.dtype(np.bool_): "BoolStorage",
}


def to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns, rounded to nearest even (as torch does)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


class _Emitter:
    def __init__(self) -> None:
        self.out = bytearray(b"\x80\x02")
        self.storages: list[bytes] = []

    def glob(self, module: str, name: str) -> None:
        self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    def tup(self, items: tuple) -> None:
        if not items:
            self.out += b")"
            return
        self.out += b"("
        for x in items:
            self.emit(x)
        self.out += b"t"

    def tensor(self, arr: np.ndarray, storage_name: str, raw: bytes) -> None:
        key = str(len(self.storages))
        self.storages.append(raw)
        self.glob("torch._utils", "_rebuild_tensor_v2")
        self.out += b"("
        # persistent id ('storage', torch.XStorage, key, 'cpu', numel)
        self.out += b"("
        self.emit("storage")
        self.glob("torch", storage_name)
        self.emit(key)
        self.emit("cpu")
        self.emit(int(arr.size))
        self.out += b"t"
        self.out += b"Q"  # BINPERSID
        self.emit(0)
        self.tup(tuple(int(s) for s in arr.shape))
        strides, acc = [], 1
        for s in reversed(arr.shape):
            strides.append(acc)
            acc *= int(s)
        self.tup(tuple(reversed(strides)))
        self.emit(False)
        self.emit(OrderedDict())
        self.out += b"t"
        self.out += b"R"

    def emit(self, x: Any) -> None:
        o = self.out
        if x is None:
            o += b"N"
        elif x is True:
            o += b"\x88"
        elif x is False:
            o += b"\x89"
        elif isinstance(x, int):
            if -(2**31) <= x < 2**31:
                o += b"J" + struct.pack("<i", x)
            else:
                b = x.to_bytes((x.bit_length() + 8) // 8, "little", signed=True)
                o += b"\x8a" + bytes([len(b)]) + b
        elif isinstance(x, float):
            o += b"G" + struct.pack(">d", x)
        elif isinstance(x, str):
            b = x.encode("utf-8")
            o += b"X" + struct.pack("<I", len(b)) + b
        elif isinstance(x, tuple):
            self.tup(x)
        elif isinstance(x, list):
            o += b"]"
            if x:
                o += b"("
                for v in x:
                    self.emit(v)
                o += b"e"
        elif isinstance(x, OrderedDict):
            self.glob("collections", "OrderedDict")
            o += b")R"
            self._items(x)
        elif isinstance(x, dict):
            o += b"}"
            self._items(x)
        elif isinstance(x, BF16):
            arr = np.asarray(x.data, dtype=np.float32)
            self.tensor(arr, "BFloat16Storage", to_bf16_bits(arr).tobytes())
        elif isinstance(x, np.ndarray):
            arr = x if x.flags.c_contiguous else x.copy(order="C")
            self.tensor(arr, _STORAGE[arr.dtype], arr.tobytes())
        elif isinstance(x, np.generic):
            self.emit(x.item())
        elif isinstance(x, Param):
            self.glob("torch._utils", "_rebuild_parameter")
            self.tup((x.data, x.requires_grad, OrderedDict()))
            self.out += b"R"
        elif isinstance(x, Obj):
            self.glob(x.module, x.name)
            self.tup(tuple(x.args))
            o += b"\x81"  # NEWOBJ
            if x.state is not None:
                self.emit(x.state)
                self.out += b"b"  # BUILD
        elif isinstance(x, Reduce):
            self.glob(x.module, x.name)
            self.tup(tuple(x.args))
            o += b"R"
        else:
            raise TypeError(f"cannot write {type(x).__name__}")

    def _items(self, d: dict) -> None:
        if not d:
            return
        self.out += b"("
        for k, v in d.items():
            self.emit(k)
            self.emit(v)
        self.out += b"u"


def save(obj: Any, path: Any, prefix: str = "archive") -> None:
    """Writes ``obj`` as ``torch.save`` would (zip format, pickle protocol 2)."""
    em = _Emitter()
    em.emit(obj)
    em.out += b"."
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        _write_aligned(zf, f"{prefix}/data.pkl", bytes(em.out))
        _write_aligned(zf, f"{prefix}/byteorder", b"little")
        for i, raw in enumerate(em.storages):
            _write_aligned(zf, f"{prefix}/data/{i}", raw)
        _write_aligned(zf, f"{prefix}/version", b"3\n")


def _write_aligned(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    """Stores ``data`` with an extra field padding its start to a multiple of 64 bytes, as
    torch's writer does."""
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    offset = zf.fp.tell()  # type: ignore[union-attr]
    base = offset + 30 + len(name.encode()) + 4
    pad = (-base) % 64
    info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    zf.writestr(info, data)
