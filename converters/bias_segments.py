"""Per-channel output means of a QDQ model's layers, one layer after another, each node run about once.

Bias correction measures layer after layer in graph order, and changes each layer's bias
before measuring the next. Probing the model (or the part a layer needs) for every layer
runs the early layers again for every later one: ~25 model runs per sample on
EfficientNet-Lite0. But once a layer is measured, nothing before the next one changes, so the
quantized activations computed so far (the outputs of ``QuantizeLinear``) are kept per sample
and each probe runs only the nodes between them and the layers it measures.

Cutting at ``QuantizeLinear`` outputs keeps what ONNX Runtime computes: a quantized group
(``DequantizeLinear -> Conv -> QuantizeLinear``) is fused into the same integer kernel
whether its output feeds the next group in the same session or is handed to the next
session, and the values handed over are integers, passed on exactly. The biases come out
bit-identical to probing the whole model (checked on EfficientNet-Lite0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def has_subgraphs(graph: Any) -> bool:
    """True when a node carries a subgraph (If, Loop): those read outer names, so the graph is not cut."""
    return any(attr.g.node or attr.graphs for node in graph.node for attr in node.attribute)


class SegmentRunner:
    """Runs ``model`` (its initializers as they are at each call) on ``feeds`` a segment at a time."""

    def __init__(self, onnx: Any, ort: Any, model: Any, feeds: Sequence[dict[str, np.ndarray]]) -> None:
        self._onnx, self._ort, self._model = onnx, ort, model
        self._producers = {out: node for node in model.graph.node for out in node.output}
        self._initializers = {init.name: init for init in model.graph.initializer}
        self._values = [dict(feed) for feed in feeds]  # per sample: the tensors computed so far

    def channel_means(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Per-channel mean (axis 1) of ``names`` over the samples, keeping the quantized activations on the way."""
        nodes, inputs = self._segment(names)
        kept = [node.output[0] for node in nodes if node.op_type == "QuantizeLinear"]
        session = self._session(nodes, inputs, [*names, *kept])
        sums: dict[str, np.ndarray] = {}
        for values in self._values:
            results = session.run([*names, *kept], {name: values[name] for name in inputs})
            for name, value in zip(names, results):
                axes = tuple(i for i in range(value.ndim) if i != 1)
                sums[name] = sums.get(name, 0) + value.astype(np.float64).mean(axis=axes)
            values.update(zip(kept, results[len(names):]))
        return {name: total / len(self._values) for name, total in sums.items()}

    def _segment(self, names: Sequence[str]) -> tuple[list[Any], list[str]]:
        """The nodes ``names`` need beyond what is known, in graph order, and the known tensors they read."""
        known = self._values[0]
        needed: set[int] = set()
        inputs: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            if name in known:
                inputs.add(name)
                continue
            node = self._producers.get(name)
            if node is None or id(node) in needed:  # an initializer, an optional input left empty, or seen
                continue
            needed.add(id(node))
            stack.extend(node.input)
        return [node for node in self._model.graph.node if id(node) in needed], sorted(inputs)

    def _session(self, nodes: list[Any], inputs: list[str], outputs: list[str]) -> Any:
        helper = self._onnx.helper
        known = self._values[0]
        used = {name for node in nodes for name in node.input}
        graph = helper.make_graph(
            nodes, "segment",
            [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(known[name].dtype),
                                           list(known[name].shape)) for name in inputs],
            [helper.make_empty_tensor_value_info(name) for name in outputs],
            [init for name, init in self._initializers.items() if name in used],
        )
        model = helper.make_model(graph, opset_imports=self._model.opset_import, ir_version=self._model.ir_version)
        options = self._ort.SessionOptions()
        options.log_severity_level = 3
        return self._ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
