"""A small ONNX graph builder over ``onnx.helper``: unique names, float32 initializers, one call
per node. The converters write networks with it instead of tracing them through torch."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CHECK_LIMIT = 200 << 20


class Graph:
    """Collects nodes, initializers, inputs and outputs; :meth:`model` makes the ModelProto."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        # The initializers are written straight into the ModelProto that model() returns:
        # make_graph / make_model would copy every weight twice (a 1.2 GB ViT-L peaked at 6.9 GB).
        self._model = onnx.ModelProto()
        self.initializers = self._model.graph.initializer
        self._nbytes = 0
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._names: set[str] = set()
        self._counter = 0

    def _unique(self, hint: str) -> str:
        base = hint or "t"
        name = base
        while name in self._names:
            self._counter += 1
            name = f"{base}_{self._counter}"
        self._names.add(name)
        return name

    def input(self, name: str, elem_type: int, shape: list[Any]) -> str:
        if name in self._names:
            raise ValueError(f"name {name} already used")
        self._names.add(name)
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def init(self, name_hint: str, array: Any) -> str:
        """A float32 initializer (the array is cast when needed)."""
        arr = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
        return self._add_tensor(name_hint, arr)

    def const(self, array: Any, dtype: Any = None) -> str:
        """An initializer of any dtype (int64 shapes, axes, scalars...)."""
        arr = np.asarray(array, dtype=dtype)
        return self._add_tensor("const", np.ascontiguousarray(arr))

    def _add_tensor(self, name_hint: str, arr: np.ndarray) -> str:
        name = self._unique(name_hint)
        t = self.initializers.add()
        self._nbytes += arr.nbytes
        if arr.dtype == np.float32:
            # Built from raw bytes: one copy of the data, not a list of Python floats.
            t.name, t.data_type = name, TensorProto.FLOAT
            t.dims.extend(arr.shape)
            t.raw_data = arr.tobytes()
        else:
            t.CopyFrom(numpy_helper.from_array(arr, name))
        return name

    def op(
        self, op_type: str, inputs: list[str], n_out: int = 1, name: str = "", **attrs: Any
    ) -> Any:
        """Adds a node; returns its output name, or a list of names when ``n_out > 1``."""
        hint = name or op_type.lower()
        outs = [self._unique(f"{hint}_out{i}" if n_out > 1 else hint) for i in range(n_out)]
        self.nodes.append(
            helper.make_node(op_type, inputs, outs, name=self._unique(f"{hint}_node"), **attrs)
        )
        return outs[0] if n_out == 1 else outs

    def output(self, value: str, name: str, elem_type: int, shape: list[Any]) -> str:
        """Exposes ``value`` as graph output ``name`` (through an Identity when renamed)."""
        if value != name:
            if name in self._names:
                raise ValueError(f"name {name} already used")
            self._names.add(name)
            self.nodes.append(helper.make_node("Identity", [value], [name]))
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def model(self, opset: int = 17, check: bool = True) -> onnx.ModelProto:
        """The ModelProto (the graph's own, holding its initializers: not a copy)."""
        model = self._model
        graph = model.graph
        graph.name = self.name
        for field, items in (
            (graph.node, self.nodes),
            (graph.input, self.inputs),
            (graph.output, self.outputs),
        ):
            del field[:]
            field.extend(items)
        model.producer_name = "deepfaune-rs"
        del model.opset_import[:]
        model.opset_import.append(helper.make_opsetid("", opset))
        model.ir_version = 8 if opset <= 17 else 9
        # (ByteSize() would serialise the whole model to measure it: the weights' size instead)
        if check and self._nbytes < CHECK_LIMIT:
            # The checker serialises the model (a copy of every weight): only for small graphs;
            # big ones are checked by loading them in ONNX Runtime after they are written.
            onnx.checker.check_model(model)
        return model

    def save(self, path: str, opset: int = 17) -> None:
        onnx.save_model(self.model(opset), path)
