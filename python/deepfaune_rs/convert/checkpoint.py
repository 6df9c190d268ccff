"""Reads PyTorch checkpoints (``torch.save`` zip files) into numpy, without torch and without
running the pickle's code.

A ``.pt`` file is a zip archive holding ``<prefix>/data.pkl`` (a pickle of the saved object) and one
member per tensor storage (``<prefix>/data/<key>``, stored uncompressed). The pickle refers to the
storages by key; tensors are rebuilt by ``torch._utils._rebuild_tensor_v2(storage, offset, size,
stride, ...)`` and parameters by ``_rebuild_parameter(tensor, ...)``.

The unpickler here is restricted:

- those few torch functions are replaced by numpy versions; tensors become numpy arrays viewing a
  read-only memory map of the file (no copy; bf16 is widened to float32, which copies);
- ``collections.OrderedDict`` and a handful of harmless builtins (``set``, ``slice``, ...) are
  themselves;
- any other class or function from the namespaces a model checkpoint uses (``torch``,
  ``torchvision``, ``timm``, ``ultralytics``, YOLOv5's ``models`` and ``utils``, ``numpy``, ...)
  is stood in for by a :class:`Stub`: it is never imported, never called; the stub records the
  constructor arguments and the pickled state, so ultralytics' ``DetectionModel`` objects and the
  torchvision ``transform`` of DeepFaune 1.5's classifier can be read without those packages;
- anything else (``os.system``, ``builtins.eval``, ``subprocess.Popen``, ...) makes the whole file
  refused with :class:`CheckpointError` before any of it runs.
"""

from __future__ import annotations

import mmap
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError

__all__ = ["CheckpointError", "Stub", "load_checkpoint", "STUB_NAMESPACES"]


# Top-level packages whose classes may appear in a model checkpoint; they are stood in for.
STUB_NAMESPACES = frozenset(
    {
        "torch",
        "torchvision",
        "timm",
        "ultralytics",
        "models",  # YOLOv5's repository layout (MegaDetector v5 / redwood)
        "utils",
        "yolov5",
        "numpy",
        "pathlib",
        "argparse",
        "types",
        "datetime",
        "enum",
        "PIL",
    }
)

# Harmless builtins that pickles of plain data use.
_SAFE_BUILTINS = {
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "range"): range,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "bytes"): bytes,
    ("builtins", "tuple"): tuple,
    ("builtins", "list"): list,
    ("builtins", "dict"): dict,
    ("collections", "OrderedDict"): OrderedDict,
}

_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg", "_codecs": "_codecs"}

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16",
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "UntypedStorage": np.uint8,
}


class Stub:
    """Stands in for a pickled object of a class that is not imported.

    ``classname`` is ``module.qualname``; ``args`` what the constructor was given; ``state`` what
    the pickle set on the object (for a ``torch.nn.Module``, its ``__dict__``: ``_parameters``,
    ``_buffers``, ``_modules`` and plain attributes). Attributes read through to ``state``.
    """

    _module = ""
    _qualname = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["args"] = args
        self.__dict__["kwargs"] = kwargs
        self.__dict__["state"] = None
        self.__dict__["items"] = []

    @classmethod
    def _new(cls, *args: Any) -> Stub:
        obj = object.__new__(cls)
        Stub.__init__(obj, *args)
        return obj

    @property
    def classname(self) -> str:
        return f"{self._module}.{self._qualname}"

    @property
    def name(self) -> str:
        return self._qualname.rsplit(".", 1)[-1]

    def __setstate__(self, state: Any) -> None:
        # (dict, slots) pairs come from objects with __slots__.
        if (
            isinstance(state, tuple)
            and len(state) == 2
            and isinstance(state[0], (dict, type(None)))
        ):
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            state = merged
        self.__dict__["state"] = state

    # Objects of list / dict subclasses get their items through APPENDS / SETITEMS.
    def append(self, item: Any) -> None:
        self.__dict__["items"].append(item)

    def extend(self, items: Any) -> None:
        self.__dict__["items"].extend(items)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.__dict__["items"].append((key, value))

    def __getattr__(self, key: str) -> Any:
        state = self.__dict__.get("state")
        if isinstance(state, dict) and key in state:
            return state[key]
        raise AttributeError(f"{self._module}.{self._qualname} stand-in has no attribute {key!r}")

    def get(self, key: str, default: Any = None) -> Any:
        state = self.__dict__.get("state")
        return state.get(key, default) if isinstance(state, dict) else default

    def __repr__(self) -> str:
        return f"<stand-in for {self.classname}>"


_stub_classes: dict[tuple[str, str], type] = {}


def _stub_class(module: str, qualname: str) -> type:
    key = (module, qualname)
    if key not in _stub_classes:
        cls = type(qualname.rsplit(".", 1)[-1], (Stub,), {"_module": module, "_qualname": qualname})
        cls.__new__ = lambda c, *a, **k: Stub._new.__func__(c, *a)  # type: ignore[attr-defined]
        _stub_classes[key] = cls
    return _stub_classes[key]


class _Storage:
    """A storage of the archive, typed by the pickle: a flat numpy array once read."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array


def _bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _rebuild_tensor(
    storage: _Storage, offset: int, size: Any, stride: Any, *_rest: Any
) -> np.ndarray:
    flat = storage.array
    size = tuple(int(s) for s in size)
    stride = tuple(int(s) for s in stride)
    count = int(np.prod(size)) if size else 1
    if count == 0:
        return np.zeros(size, dtype=flat.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if offset < 0 or last >= flat.shape[0]:
        raise CheckpointError(
            f"tensor of size {size} at offset {offset} does not fit its storage ({flat.shape[0]})"
        )
    if not size:
        return flat[offset : offset + 1].reshape(())
    item = flat.dtype.itemsize
    return np.lib.stride_tricks.as_strided(
        flat[offset:], shape=size, strides=tuple(s * item for s in stride), writeable=False
    )


def _rebuild_tensor_v3(
    storage: _Storage,
    offset: int,
    size: Any,
    stride: Any,
    requires_grad: Any,
    hooks: Any,
    dtype: Any,
    *_: Any,
) -> np.ndarray:
    return _rebuild_tensor(storage, offset, size, stride)


def _rebuild_parameter(data: Any, *_rest: Any) -> Any:
    return data


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> Any:
    if func not in (_rebuild_tensor, _rebuild_tensor_v3, _rebuild_parameter):
        raise CheckpointError("a tensor subclass is rebuilt by an unexpected function")
    return func(*args)


_TORCH_FUNCTIONS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Size"): tuple,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: Any, load_storage: Any) -> None:
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        # Protocol-2 pickles name some modules as Python 2 did (pickle's fix_imports).
        module = _PY2_MODULES.get(module, module)
        key = (module, name)
        if key in _TORCH_FUNCTIONS:
            return _TORCH_FUNCTIONS[key]
        if key in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[key]
        if module == "_codecs" and name == "encode":
            # Protocol-2 pickles write bytes as _codecs.encode(text, "latin1").
            return lambda text, enc="utf-8": text.encode(enc)
        if module.split(".", 1)[0] in STUB_NAMESPACES:
            return _stub_class(module, name)
        raise CheckpointError(
            f"the checkpoint's pickle asks for {module}.{name}, which a model checkpoint never "
            "needs; refused without running anything"
        )

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointError(f"unknown persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel = pid[:5]
        type_name = getattr(storage_type, "_qualname", None) or getattr(
            storage_type, "__name__", str(storage_type)
        )
        dtype = _STORAGE_DTYPES.get(type_name)
        if dtype is None:
            raise CheckpointError(f"unsupported storage type {type_name}")
        return _Storage(self._load_storage(str(key), dtype, int(numel)))


def _data_offset(f: Any, info: zipfile.ZipInfo) -> int:
    """Offset of a stored member's bytes: after its local header (whose extra field may differ
    from the central directory's)."""
    f.seek(info.header_offset)
    header = f.read(30)
    if header[:4] != b"PK\x03\x04":
        raise CheckpointError(f"damaged zip member {info.filename}")
    name_len = int.from_bytes(header[26:28], "little")
    extra_len = int.from_bytes(header[28:30], "little")
    return info.header_offset + 30 + name_len + extra_len


def load_checkpoint(path: os.PathLike | str) -> Any:
    """Reads a ``torch.save`` file into plain Python and numpy (see the module doc).

    Raises :class:`CheckpointError` for files that are not PyTorch zip checkpoints, damaged
    archives, and pickles that ask for anything outside what a checkpoint needs."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        with open(path, "rb") as f:
            head = f.read(2)
        if head[:1] == b"\x80":
            raise CheckpointError(
                f"{path}: a legacy (pre-1.6) PyTorch file; re-save it with a current torch "
                "(torch.save(torch.load(f), f)) to convert it"
            ) from e
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (not a zip archive)") from e
    with zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if not pkl:
            raise CheckpointError(f"{path}: no data.pkl in the archive: not a torch.save file")
        prefix = pkl[0][: -len("data.pkl")]
        infos = {i.filename: i for i in zf.infolist()}
        big_endian = False
        if prefix + "byteorder" in infos:
            big_endian = zf.read(prefix + "byteorder").strip() == b"big"
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None

            def load_storage(key: str, dtype: Any, numel: int) -> np.ndarray:
                info = infos.get(f"{prefix}data/{key}")
                if info is None:
                    raise CheckpointError(f"{path}: storage {key} missing from the archive")
                bf16 = dtype == "bfloat16"
                dt = np.dtype(np.uint16 if bf16 else dtype)
                if big_endian:
                    dt = dt.newbyteorder(">")
                nbytes = numel * dt.itemsize
                if info.file_size < nbytes:
                    raise CheckpointError(
                        f"{path}: storage {key} holds {info.file_size} bytes, {nbytes} needed"
                    )
                if info.compress_type == zipfile.ZIP_STORED and mm is not None:
                    start = _data_offset(fh, info)
                    if start + nbytes > size:
                        raise CheckpointError(f"{path}: storage {key} runs past the end of file")
                    arr = np.frombuffer(mm, dtype=dt, count=numel, offset=start)
                else:
                    arr = np.frombuffer(zf.read(info)[:nbytes], dtype=dt, count=numel)
                if big_endian:
                    arr = arr.astype(dt.newbyteorder("="))
                return _bf16_to_f32(arr) if bf16 else arr

            try:
                with zf.open(pkl[0]) as data:
                    return _Unpickler(data, load_storage).load()
            except CheckpointError:
                raise
            except (pickle.UnpicklingError, EOFError, TypeError, ValueError, KeyError) as e:
                raise CheckpointError(f"{path}: damaged checkpoint pickle: {e}") from e
            except zipfile.BadZipFile as e:
                raise CheckpointError(f"{path}: damaged archive: {e}") from e


def state_dict_arrays(obj: Any) -> dict[str, np.ndarray]:
    """The ``name -> array`` pairs of a state dict (a dict of arrays), as a plain dict."""
    if not isinstance(obj, dict):
        raise CheckpointError("expected a state dict (a mapping of names to tensors)")
    return {str(k): v for k, v in obj.items() if isinstance(v, np.ndarray)}
