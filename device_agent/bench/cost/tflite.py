"""TFLite cost counter: the flatbuffer read with LiteRT's generated schema, no interpreter."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

_TFLITE_COUNTED = (
    "MACs of CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, FULLY_CONNECTED and BATCH_MATMUL in "
    "subgraph 0 at its static batch size; element-wise ops, pooling, activations and normalization "
    "are not counted (as in fvcore/thop and most papers); FLOPs = 2 x MACs; params are the elements of "
    "the constant tensors of subgraph 0, without int32/int64 tensors other than biases."
)


@dataclass(frozen=True)
class _TfliteOp:
    type: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    adj_x: bool = False  # BATCH_MATMUL: the left operand is transposed


TensorShape = Callable[[int], tuple[int, ...]]
TfliteMacs = Callable[[_TfliteOp, TensorShape], int]

TFLITE_MACS: dict[str, TfliteMacs] = {
    # filter [Cout, kh, kw, Cin/groups]
    "CONV_2D": lambda op, shape: numel(shape(op.outputs[0])) * numel(shape(op.inputs[1])[1:]),
    # filter [1, kh, kw, Cout]
    "DEPTHWISE_CONV_2D": lambda op, shape: numel(shape(op.outputs[0])) * numel(shape(op.inputs[1])[1:3]),
    # filter [units, K]
    "FULLY_CONNECTED": lambda op, shape: numel(shape(op.outputs[0])) * shape(op.inputs[1])[1],
    # inputs (output_shape, filter [Cout, kh, kw, Cin], input): each input element meets a kernel patch
    "TRANSPOSE_CONV": lambda op, shape: numel(shape(op.inputs[2])) * numel(shape(op.inputs[1])[:3]),
    "BATCH_MATMUL": lambda op, shape: numel(shape(op.outputs[0])) * shape(op.inputs[0])[-2 if op.adj_x else -1],
}
"""MAC formulas of the counted TFLite builtin ops; every other op counts zero."""

# Operand that is the bias: an int32 tensor that still counts as parameters.
_TFLITE_BIAS = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3}


def _tflite_schema() -> Any:
    """The flatbuffer reader: LiteRT's generated schema, else the ``tflite`` package (same API)."""
    try:
        from ai_edge_litert import schema_py_generated

        return schema_py_generated
    except ImportError:
        pass
    try:
        import tflite

        return tflite
    except ImportError as exc:
        raise CostError(
            "counting the FLOPs of a TFLite model needs the Python module 'ai_edge_litert' "
            "(pip install ai-edge-litert) or 'tflite' (pip install tflite)"
        ) from exc


def _tflite_ops(schema: Any, model: Any, graph: Any) -> list[_TfliteOp]:
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    codes = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        codes.append(names.get(max(code.DeprecatedBuiltinCode(), code.BuiltinCode()), "UNKNOWN"))
    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        op_type = codes[op.OpcodeIndex()]
        adj_x = False
        if op_type == "BATCH_MATMUL" and op.BuiltinOptionsType() == schema.BuiltinOptions.BatchMatMulOptions:
            table, options = op.BuiltinOptions(), schema.BatchMatMulOptions()
            options.Init(table.Bytes, table.Pos)
            adj_x = bool(options.AdjX())
        inputs = tuple(int(op.Inputs(j)) for j in range(op.InputsLength()))
        outputs = tuple(int(op.Outputs(j)) for j in range(op.OutputsLength()))
        ops.append(_TfliteOp(op_type, inputs, outputs, adj_x))
    return ops


@register_counter(".tflite")
def tflite_cost(path: Path) -> ModelCost:
    """Cost of a TFLite model, read from its flatbuffer (subgraph 0) without an interpreter."""
    schema = _tflite_schema()
    buf = path.read_bytes()
    if len(buf) < 8 or not schema.Model.ModelBufferHasIdentifier(buf, 0):
        raise CostError(f"cannot read the TFLite model {str(path)!r}: not a TFLite flatbuffer (no 'TFL3' identifier)")
    model = schema.Model.GetRootAs(buf, 0)
    if model.SubgraphsLength() == 0:
        raise CostError(f"cannot read the TFLite model {str(path)!r}: it has no subgraph")
    try:
        graph = model.Subgraphs(0)
        tensors = [graph.Tensors(i) for i in range(graph.TensorsLength())]
        dims = [tuple(int(t.Shape(j)) for j in range(t.ShapeLength())) for t in tensors]
        ops = _tflite_ops(schema, model, graph)
    except (IndexError, struct.error) as exc:  # offsets that point outside the file
        raise CostError(f"cannot read the TFLite model {str(path)!r}: the flatbuffer is damaged ({exc})") from exc

    float_label = "fp16" if any(t.Type() == schema.TensorType.FLOAT16 for t in tensors) else "fp32"
    counted = []
    for index, op in enumerate(ops):
        formula = TFLITE_MACS.get(op.type)
        if formula is None:
            continue
        name = f"{op.type}_{index}"  # TFLite operators have no names

        def shape(tensor: int, name: str = name, op_type: str = op.type) -> tuple[int, ...]:
            if not 0 <= tensor < len(dims):
                raise unknown_shape(path, name, op_type, f"#{tensor}", "missing")
            if not dims[tensor] or not is_static(dims[tensor]):
                tensor_name = (tensors[tensor].Name() or b"").decode(errors="replace")
                raise unknown_shape(path, name, op_type, tensor_name, shown(dims[tensor]))
            return dims[tensor]

        counted.append(OpCost(op.type, name, formula(op, shape),
                              precision=_tflite_op_precision(schema, tensors, op, float_label)))

    biases = {
        op.inputs[_TFLITE_BIAS[op.type]]
        for op in ops
        if op.type in _TFLITE_BIAS and len(op.inputs) > _TFLITE_BIAS[op.type]
    }
    integer_types = {schema.TensorType.INT32, schema.TensorType.INT64}
    params = 0
    for index, tensor in enumerate(tensors):
        buffer_index = tensor.Buffer()
        if not 0 < buffer_index < model.BuffersLength():
            continue
        buffer = model.Buffers(buffer_index)
        # Models over 2 GB keep their buffers after the flatbuffer and only point at them.
        offset = buffer.Offset() if hasattr(buffer, "Offset") else 0
        if buffer.DataLength() == 0 and offset <= 1:
            continue
        if tensor.Type() in integer_types and index not in biases:
            continue  # shapes, axes, indices
        params += numel(dims[index])
    return ModelCost(sum(op.macs for op in counted), params, tuple(counted), _TFLITE_COUNTED,
                     precision=_tflite_precision(schema, tensors, ops))


def _integer_types(schema: Any) -> set[int]:
    return {schema.TensorType.INT8, schema.TensorType.UINT8, schema.TensorType.INT16}


def _tflite_op_precision(schema: Any, tensors: list[Any], op: _TfliteOp, float_label: str) -> str:
    """One counted op: ``int8`` when its data input is integer, else the model's float precision."""
    data = op.inputs[0] if op.inputs else -1
    return "int8" if 0 <= data < len(tensors) and tensors[data].Type() in _integer_types(schema) else float_label


def _tflite_precision(schema: Any, tensors: list[Any], ops: list[_TfliteOp]) -> str:
    """From the counted ops: ``int8`` if their inputs are integer, ``fp16`` if their weights are half."""
    integer = _integer_types(schema)
    compute = [op for op in ops if op.type in TFLITE_MACS and len(op.inputs) > 1]
    if any(tensors[op.inputs[0]].Type() in integer for op in compute if op.inputs[0] >= 0):
        return "int8"
    if any(t.Type() == schema.TensorType.FLOAT16 for t in tensors):
        return "fp16"
    return "fp32"
