"""Which output channels of an ONNX model can be removed, and removing them consistently.

A *channel group* starts at a producer (a dense ``Conv``) and follows its output through
layers that keep channels apart, one to one: activations, ``BatchNormalization`` (its four
vectors are cut too), depthwise ``Conv`` (weights, bias and ``group`` cut), pooling, and a
global mean followed by a flatten. It ends at the one layer that mixes the channels, the
consumer: a dense ``Conv`` (its input channels are cut) or a ``Gemm`` after the global mean
(its input features are cut). Removing channel ``k`` of the group removes it everywhere
along the way, so the graph stays consistent.

A channel that reaches an ``Add``, ``Mul``, ``Concat``, a second consumer or a graph output
is shared with another branch (a residual, an attention gate, a skip): removing it would
have to remove the same channel from every branch at once. Such groups are reported with
the reason and left whole; they are usually a small part of the compute (in an MBConv
network the expansion channels inside each block, where most MACs are, are free).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

#: Ops that map channel k of the input to channel k of the output and nothing else.
ELEMENTWISE = frozenset({"Relu", "Clip", "LeakyRelu", "HardSwish", "HardSigmoid", "Sigmoid", "Swish", "Elu", "Selu",
                         "Tanh", "PRelu", "MaxPool", "AveragePool", "Identity", "Dropout"})


@dataclass
class ChannelGroup:
    """One producer's output channels, the layers they pass through, and the consumer that mixes them."""

    producer: str
    channels: int
    through: list[str] = field(default_factory=list)  # BN / depthwise nodes cut alongside
    consumer: str = ""
    consumer_input: str = ""  # the tensor the consumer reads: its activations are the refit's regressors
    reshape: str = ""  # a Reshape between a global mean and a Gemm whose target shape holds the channel count
    pooled_input: str = ""  # the tensor entering the global mean before a Gemm consumer (per-position rows)
    macs_per_channel: int = 0  # MACs removed with each channel (producer row + through + consumer column)
    skipped: str = ""  # why the group cannot be pruned alone; empty when it can

    @property
    def prunable(self) -> bool:
        return not self.skipped


class Graph:
    """Indexes of an ONNX graph: nodes by name, consumers by tensor, initializers by name."""

    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        self.model = model
        self.nodes = {n.name: n for n in model.graph.node}
        self.consumers: dict[str, list[Any]] = {}
        for node in model.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.inits = {i.name: i for i in model.graph.initializer}
        self.outputs = {o.name for o in model.graph.output}
        self.to_array = numpy_helper.to_array

    @cached_property
    def shapes(self) -> dict[str, list[int]]:
        """Every tensor's shape, by ONNX shape inference (on first use: editing needs none)."""
        from onnx import shape_inference

        inferred = shape_inference.infer_shapes(self.model)
        return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
                for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}

    def readers(self, tensor: str) -> int:
        return len(self.consumers.get(tensor, []))

    def const(self, name: str) -> np.ndarray | None:
        return self.to_array(self.inits[name]) if name in self.inits else None

    def attr(self, node: Any, key: str, default: Any = None) -> Any:
        from onnx import helper

        for a in node.attribute:
            if a.name == key:
                return helper.get_attribute_value(a)
        return default

    def sole_consumer(self, tensor: str) -> Any | None:
        users = self.consumers.get(tensor, [])
        return users[0] if len(users) == 1 and tensor not in self.outputs else None

    def spatial(self, tensor: str) -> int:
        shape = self.shapes.get(tensor, [])
        return int(np.prod(shape[2:])) if len(shape) > 2 and all(shape[2:]) else 1


def _is_dense_conv(g: Graph, node: Any) -> bool:
    weight = g.const(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
    return weight is not None and weight.ndim == 4 and g.attr(node, "group", 1) == 1


def _is_depthwise(g: Graph, node: Any, channels: int) -> bool:
    weight = g.const(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
    return (weight is not None and g.attr(node, "group", 1) == channels == weight.shape[0]
            and weight.shape[1] == 1)


def find_groups(model: Any | Graph) -> list[ChannelGroup]:
    """Every dense ``Conv``'s channel group, prunable or not (with the reason), in graph order."""
    g = model if isinstance(model, Graph) else Graph(model)
    return [_trace(g, node) for node in g.model.graph.node if _is_dense_conv(g, node)]


def _trace(g: Graph, producer: Any) -> ChannelGroup:
    weight = g.const(producer.input[1])
    assert weight is not None
    channels = int(weight.shape[0])
    group = ChannelGroup(producer.name, channels)
    macs = int(np.prod(weight.shape[1:])) * g.spatial(producer.output[0])
    tensor, pooled = producer.output[0], False
    while True:
        node = g.sole_consumer(tensor)
        if node is None:
            users = g.consumers.get(tensor, [])
            group.skipped = ("a graph output" if tensor in g.outputs
                             else f"read by {len(users)} layers ({', '.join(sorted({u.op_type for u in users}))})")
            return group
        if node.op_type == "Conv" and _is_dense_conv(g, node) and not pooled:
            cw = g.const(node.input[1])
            assert cw is not None
            group.consumer, group.consumer_input = node.name, tensor
            group.macs_per_channel = macs + int(cw.shape[0] * np.prod(cw.shape[2:])) * g.spatial(node.output[0])
            return group
        if node.op_type == "Gemm" and pooled and g.const(node.input[1]) is not None:
            gw = g.const(node.input[1])
            assert gw is not None
            group.consumer, group.consumer_input = node.name, tensor
            group.macs_per_channel = macs + int(gw.shape[0] if g.attr(node, "transB", 0) else gw.shape[1])
            return group
        if node.op_type == "Conv" and _is_depthwise(g, node, channels):
            dw = g.const(node.input[1])
            assert dw is not None
            group.through.append(node.name)
            macs += int(np.prod(dw.shape[1:])) * g.spatial(node.output[0])
        elif node.op_type == "BatchNormalization":
            group.through.append(node.name)
        elif node.op_type in ("GlobalAveragePool", "ReduceMean") and _spatial_mean(g, node):
            pooled, group.pooled_input = True, tensor
        elif node.op_type in ("Flatten", "Reshape") and pooled:
            shape = g.const(node.input[1]) if node.op_type == "Reshape" else None
            if shape is not None and not (shape.ndim == 1 and len(shape) == 2 and shape[1] in (-1, channels)):
                group.skipped = f"reshaped to {shape.tolist()} after the mean"
                return group
            group.reshape = node.name if shape is not None and shape[1] == channels else group.reshape
        elif node.op_type not in ELEMENTWISE or (node.op_type == "PRelu"
                                                 and (slope := g.const(node.input[1])) is not None
                                                 and slope.size > 1):
            group.skipped = f"reaches {node.op_type} {node.name!r}, shared with another branch"
            return group
        tensor = node.output[0]


def _spatial_mean(g: Graph, node: Any) -> bool:
    """A mean over the spatial axes only (``GlobalAveragePool``, or ``ReduceMean`` on axes 2 and 3)."""
    if node.op_type == "GlobalAveragePool":
        return True
    axes = g.attr(node, "axes")
    if axes is None and len(node.input) > 1:
        const = g.const(node.input[1])
        axes = None if const is None else const.tolist()
    rank = len(g.shapes.get(node.input[0], [])) or 4
    return axes is not None and sorted(a % rank for a in axes) == list(range(2, rank))


def remove_channels(model: Any, group: ChannelGroup, keep: np.ndarray) -> None:
    """Cut ``model`` (in place) down to the ``keep`` channels of ``group``, everywhere along it."""
    from onnx import helper, numpy_helper

    g = Graph(model)

    def cut(name: str, axis: int) -> None:
        if g.readers(name) != 1:
            raise ValueError(f"initializer {name!r} is shared by {g.readers(name)} nodes; cannot cut it for one")
        array = np.take(g.to_array(g.inits[name]), keep, axis=axis)
        g.inits[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array), name))

    producer = g.nodes[group.producer]
    cut(producer.input[1], 0)
    if len(producer.input) > 2 and producer.input[2]:
        cut(producer.input[2], 0)
    for name in group.through:
        node = g.nodes[name]
        if node.op_type == "BatchNormalization":
            for vector in node.input[1:5]:
                cut(vector, 0)
        else:  # depthwise
            cut(node.input[1], 0)
            if len(node.input) > 2 and node.input[2]:
                cut(node.input[2], 0)
            for a in node.attribute:
                if a.name == "group":
                    a.CopyFrom(helper.make_attribute("group", len(keep)))
    consumer = g.nodes[group.consumer]
    transposed = consumer.op_type == "Gemm" and g.attr(consumer, "transB", 0)
    cut(consumer.input[1], 0 if consumer.op_type == "Gemm" and not transposed else 1)
    if group.reshape:
        shape_name = g.nodes[group.reshape].input[1]
        shape = g.to_array(g.inits[shape_name]).copy()
        shape[1] = len(keep)
        g.inits[shape_name].CopyFrom(numpy_helper.from_array(shape, shape_name))
