"""ONNX cost counter: MAC formulas per operator, shapes from ``onnx.shape_inference``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from device_agent.bench.cost import (
    ModelCost,
    OpCost,
    is_static,
    numel,
    register_counter,
    shown,
    unknown_shape,
)
from device_agent.errors import CostError

_ONNX_COUNTED = (
    "MACs of Conv/ConvTranspose (depthwise and grouped included) and Gemm/MatMul, quantized forms "
    "included, in the main graph at its static batch size; element-wise ops, pooling, activations "
    "and normalization are not counted (as in fvcore/thop and most papers); FLOPs = 2 x MACs; params "
    "are the elements of the constant tensors, without quantization scales/zero-points, clip/pad/resize "
    "settings and int64 tensors."
)

_ONNX_INT64 = 7  # onnx.TensorProto.INT64: shapes, axes, indices

# Inputs that are settings, not weights: quantization scales and zero-points (so an FP32 model
# and its QDQ or QOperator INT8 version report the same count; quantization also folds Clip
# into the convolution), clip bounds, pad values, resize scales. Other QLinear* ops
# (com.microsoft QLinearSigmoid, QLinearGlobalAveragePool, ...) have only scalar scales and
# zero-points besides their data, and lose their scalar inputs instead.
_ONNX_NOT_PARAMETERS: dict[str, tuple[int, ...]] = {
    "Clip": (1, 2),
    "Pad": (1, 2, 3),
    "Resize": (1, 2, 3),
    "QuantizeLinear": (1, 2),
    "DequantizeLinear": (1, 2),
    "QLinearConv": (1, 2, 4, 5, 6, 7),
    "QLinearMatMul": (1, 2, 4, 5, 6, 7),
    "QLinearAdd": (1, 2, 4, 5, 6, 7),
    "QLinearMul": (1, 2, 4, 5, 6, 7),
    "ConvInteger": (2, 3),
    "MatMulInteger": (2, 3),
    "QGemm": (1, 2, 4, 5, 7, 8),
}

Shape = Callable[[str], tuple[int, ...]]
OnnxMacs = Callable[[Any, Shape], int]


def _ints(node: Any) -> dict[str, int]:
    return {attr.name: int(attr.i) for attr in node.attribute}


def _conv_macs(weight: int) -> OnnxMacs:
    """Output elements x (C_in / group) x kernel area; weight ``[C_out, C_in/group, k...]``."""
    return lambda node, shape: numel(shape(node.output[0])) * numel(shape(node.input[weight])[1:])


def _conv_transpose_macs(node: Any, shape: Shape) -> int:
    """Each input element is multiplied into a kernel patch; weight ``[C_in, C_out/group, k...]``."""
    return numel(shape(node.input[0])) * numel(shape(node.input[1])[1:])


def _gemm_macs(b: int) -> OnnxMacs:
    def macs(node: Any, shape: Shape) -> int:
        attrs = _ints(node)
        a_shape, b_shape = shape(node.input[0]), shape(node.input[b])
        m, k = (a_shape[1], a_shape[0]) if attrs.get("transA") else (a_shape[0], a_shape[1])
        n = b_shape[0] if attrs.get("transB") else b_shape[1]
        return m * n * k

    return macs


def _matmul_macs(node: Any, shape: Shape) -> int:
    """Output elements x K, K the last dim of A (second last for FusedMatMul with transA)."""
    a_shape = shape(node.input[0])
    k = a_shape[-2] if _ints(node).get("transA") and len(a_shape) > 1 else a_shape[-1]
    return numel(shape(node.output[0])) * k


ONNX_MACS: dict[str, OnnxMacs] = {
    "Conv": _conv_macs(1),
    "ConvInteger": _conv_macs(1),
    "QLinearConv": _conv_macs(3),
    "FusedConv": _conv_macs(1),  # com.microsoft, from onnxruntime's graph optimizations
    "ConvTranspose": _conv_transpose_macs,
    "Gemm": _gemm_macs(1),
    "FusedGemm": _gemm_macs(1),
    "QGemm": _gemm_macs(3),
    "MatMul": _matmul_macs,
    "MatMulInteger": _matmul_macs,
    "QLinearMatMul": _matmul_macs,
    "FusedMatMul": _matmul_macs,
}
"""MAC formulas of the counted ONNX op types; every other op type counts zero."""


class _OnnxShapes:
    """Static shapes of a graph's tensors: initializers, Constant nodes, then shape inference."""

    def __init__(self, path: Path, graph: Any) -> None:
        self.path = path
        self.dims: dict[str, tuple[int | str, ...] | None] = {}
        self.types: dict[str, int] = {}
        for info in (*graph.input, *graph.value_info, *graph.output):
            tensor_type = info.type.tensor_type
            self.types[info.name] = tensor_type.elem_type
            if not tensor_type.HasField("shape"):
                self.dims[info.name] = None
                continue
            self.dims[info.name] = tuple(
                d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor_type.shape.dim
            )
        for initializer in graph.initializer:
            self.dims[initializer.name] = tuple(initializer.dims)
            self.types[initializer.name] = initializer.data_type
        for node in graph.node:
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value":
                        self.dims[node.output[0]] = tuple(attr.t.dims)
        # QDQ models feed a weight through DequantizeLinear; its shape is the int8 initializer's.
        self.dequantized = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}

    def static(self, tensor: str, *, node: str, op: str) -> tuple[int, ...]:
        dims = self.dims.get(tensor)
        if (dims is None or not is_static(dims)) and tensor in self.dequantized:
            dims = self.dims.get(self.dequantized[tensor], dims)
        if dims is None:
            raise unknown_shape(self.path, node, op, tensor, "unknown")
        if not is_static(dims):
            raise unknown_shape(self.path, node, op, tensor, shown(dims))
        return tuple(int(d) for d in dims)


def _contrib_shape(node: Any, dims: dict[str, tuple[int | str, ...] | None]) -> tuple[int, ...] | None:
    """Output shape of the com.microsoft ops that onnxruntime's QOperator quantizer writes.

    onnx's shape inference does not know them and leaves every tensor after them unknown.
    """
    inputs = [dims.get(name) for name in node.input]
    x, b = inputs[0], inputs[3] if len(inputs) > 3 else None
    if x is None or not is_static(x):
        return None
    attrs, shape = _ints(node), tuple(int(d) for d in x)
    if node.op_type == "QLinearGlobalAveragePool":
        ones = (1,) * (len(shape) - 2)
        return (shape[0], *ones, shape[-1]) if attrs.get("channels_last") else (shape[0], shape[1], *ones)
    if node.op_type in ("QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax"):
        return shape
    if b is None or not is_static(b):
        return None
    if node.op_type in ("QLinearAdd", "QLinearMul"):
        return tuple(np.broadcast_shapes(shape, tuple(int(d) for d in b)))
    if node.op_type == "QGemm":
        return (shape[1] if attrs.get("transA") else shape[0], int(b[0] if attrs.get("transB") else b[1]))
    return None


def _infer_shapes(onnx: Any, path: Path, model: Any) -> _OnnxShapes:
    """onnx's shape inference, resumed past com.microsoft ops whose output shape is known here."""
    contrib = [n for n in model.graph.node if n.domain == "com.microsoft"]
    for _ in range(len(contrib) + 1):  # each round settles at least one of them, or stops
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
        shapes = _OnnxShapes(path, model.graph)
        unknown = [n for n in contrib if shapes.dims.get(n.output[0]) is None]
        found = [(n, shape) for n in unknown if (shape := _contrib_shape(n, shapes.dims))]
        if not found:
            break
        for node, shape in found:
            # QGemm gives float unless it has an output zero-point; the QLinear ops keep the input's type.
            source = node.input[8] if node.op_type == "QGemm" and len(node.input) > 8 else node.input[0]
            elem_type = shapes.types.get(source, onnx.TensorProto.FLOAT) if source else onnx.TensorProto.FLOAT
            infos = [v for v in model.graph.value_info if v.name == node.output[0]]
            for info in infos:
                model.graph.value_info.remove(info)
            model.graph.value_info.append(onnx.helper.make_tensor_value_info(node.output[0], elem_type, shape))
    return shapes


def _onnx_params(graph: Any) -> int:
    sizes: dict[str, int] = {t.name: numel(t.dims) for t in graph.initializer if t.data_type != _ONNX_INT64}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type != _ONNX_INT64:
                    sizes[node.output[0]] = numel(attr.t.dims)
    settings: set[str] = set()
    for node in graph.node:
        positions = _ONNX_NOT_PARAMETERS.get(node.op_type)
        if positions is None and node.op_type.startswith("QLinear"):
            positions = tuple(i for i, name in enumerate(node.input) if i > 0 and sizes.get(name, 2) <= 1)
        settings.update(node.input[i] for i in positions or () if i < len(node.input))
    return sum(size for name, size in sizes.items() if name not in settings)


@register_counter(".onnx")
def onnx_cost(path: Path) -> ModelCost:
    """Cost of an ONNX model; intermediate shapes come from ``onnx.shape_inference``."""
    try:
        import onnx
        from google.protobuf.message import DecodeError
    except ImportError as exc:
        raise CostError(
            "counting the FLOPs of an ONNX model needs the Python module 'onnx' (pip install onnx)"
        ) from exc
    try:
        # Weights stored outside the file are not needed: only their shapes are.
        model = onnx.load(str(path), load_external_data=False)
        shapes = _infer_shapes(onnx, path, model)
    except (DecodeError, OSError, onnx.shape_inference.InferenceError) as exc:
        raise CostError(f"cannot read the ONNX model {str(path)!r}: {exc}") from exc
    graph = model.graph
    float_precision = "fp16" if any(t.data_type == _ONNX_FLOAT16 for t in graph.initializer) else "fp32"
    ops = []
    for index, node in enumerate(graph.node):
        formula = ONNX_MACS.get(node.op_type)
        if formula is None:
            continue
        name = node.name or f"{node.op_type}_{index}"

        def shape(tensor: str, name: str = name, op: str = node.op_type) -> tuple[int, ...]:
            return shapes.static(tensor, node=name, op=op)

        ops.append(OpCost(node.op_type, name, formula(node, shape),
                          precision=_op_precision(node, shapes.dequantized, float_precision)))
    return ModelCost(sum(op.macs for op in ops), _onnx_params(graph), tuple(ops), _ONNX_COUNTED,
                     precision=_onnx_precision(graph))


_ONNX_INT8_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
                            "MatMulInteger", "QGemm"})
_ONNX_FLOAT16 = 10  # onnx.TensorProto.FLOAT16
_ONNX_INT8_COMPUTE = frozenset({"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm"})


def _op_precision(node: Any, dequantized: dict[str, str], float_precision: str) -> str:
    """``int8`` for a QOperator op, or a QDQ op whose data and weight both come out of DequantizeLinear
    (onnxruntime then runs it as an integer kernel); a node the quantizer left out computes in float."""
    if node.op_type in _ONNX_INT8_COMPUTE:
        return "int8"
    if len(node.input) > 1 and node.input[0] in dequantized and node.input[1] in dequantized:
        return "int8"
    return float_precision


def _onnx_precision(graph: Any) -> str:
    """``int8`` if the graph is quantized (QDQ or QOperator), ``fp16`` if its weights are half, else ``fp32``."""
    if any(node.op_type in _ONNX_INT8_OPS for node in graph.node):
        return "int8"
    if any(t.data_type == _ONNX_FLOAT16 for t in graph.initializer):
        return "fp16"
    return "fp32"
