"""Real TFLite flatbuffers written without TensorFlow, for tests that need a ``.tflite`` model.

Built with the ``tflite`` PyPI package's generated schema builders and ``flatbuffers``:

* :class:`Tensor` and :class:`Op` describe one subgraph, :func:`write_tflite` writes it;
* ``conv_options``, ``depthwise_options``, ``fc_options``, ``transpose_conv_options``,
  ``batch_matmul_options``, ``mean_options`` return the ``Op.options`` builder of that op;
* :func:`tiny_tflite_conv` is a tiny CNN whose MACs are easy to count by hand;
* :func:`conv_stack_tflite` is a MobileNet-like float32 classifier big enough to time
  (216 M MACs, 227 k parameters, about 2-3 ms per inference on 2 AVX-512 cores at its defaults).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

OptionsBuilder = Callable[[Any], tuple[int, int]]
"""Writes an operator's builtin options with a ``flatbuffers.Builder``: -> (BuiltinOptions type, offset)."""


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    type: str = "FLOAT32"  # a tflite.TensorType name
    data: np.ndarray | None = None  # constant data; None for activations
    scale: float | None = None  # per-tensor quantization, zero point 0


@dataclass(frozen=True)
class Op:
    code: str  # a tflite.BuiltinOperator name
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: OptionsBuilder | None = None  # builder -> (BuiltinOptions type, offset)


def write_tflite(path: Path, tensors: list[Tensor], ops: list[Op], inputs: list[int], outputs: list[int],
                 *, external: frozenset[str] = frozenset()) -> Path:
    """Write a one-subgraph TFLite flatbuffer with the ``tflite`` package's builders.

    Tensor ``i`` gets buffer ``i + 1`` (buffer 0 is the empty one); a tensor without ``data``
    gets an empty buffer. Tensors named in ``external`` keep their data after the flatbuffer,
    pointed at by the buffer's offset and size, as the converter does for models over 2 GB.
    """
    import flatbuffers
    import tflite

    b = flatbuffers.Builder(4096)
    data_offset = 1 << 16  # where external data starts in the file; the flatbuffer is smaller
    tail = bytearray()

    def vector(start: Callable[..., None], items: list[int], prepend: Callable[[int], None]) -> int:
        start(b, len(items))
        for item in reversed(items):
            prepend(item)
        return b.EndVector()

    buffers = []
    for t in [None, *tensors]:
        raw = t.data.tobytes() if t is not None and t.data is not None else b""
        if t is not None and t.name in external:
            tflite.BufferStart(b)
            tflite.BufferAddOffset(b, data_offset + len(tail))
            tflite.BufferAddSize(b, len(raw))
            tail.extend(raw)
        else:
            vec = b.CreateByteVector(raw) if raw else None
            tflite.BufferStart(b)
            if vec is not None:
                tflite.BufferAddData(b, vec)
        buffers.append(tflite.BufferEnd(b))
    tensor_offsets = []
    for index, t in enumerate(tensors):
        name = b.CreateString(t.name)
        shape = vector(tflite.TensorStartShapeVector, list(t.shape), b.PrependInt32)
        quant = None
        if t.scale is not None:
            scale = vector(tflite.QuantizationParametersStartScaleVector, [t.scale], b.PrependFloat32)
            zero = vector(tflite.QuantizationParametersStartZeroPointVector, [0], b.PrependInt64)
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, scale)
            tflite.QuantizationParametersAddZeroPoint(b, zero)
            quant = tflite.QuantizationParametersEnd(b)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, getattr(tflite.TensorType, t.type))
        tflite.TensorAddBuffer(b, index + 1)
        tflite.TensorAddName(b, name)
        if quant is not None:
            tflite.TensorAddQuantization(b, quant)
        tensor_offsets.append(tflite.TensorEnd(b))
    codes = list(dict.fromkeys(op.code for op in ops))
    op_offsets = []
    for op in ops:
        options = op.options(b) if op.options else None
        op_inputs = vector(tflite.OperatorStartInputsVector, list(op.inputs), b.PrependInt32)
        op_outputs = vector(tflite.OperatorStartOutputsVector, list(op.outputs), b.PrependInt32)
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, codes.index(op.code))
        tflite.OperatorAddInputs(b, op_inputs)
        tflite.OperatorAddOutputs(b, op_outputs)
        if options is not None:
            tflite.OperatorAddBuiltinOptionsType(b, options[0])
            tflite.OperatorAddBuiltinOptions(b, options[1])
        op_offsets.append(tflite.OperatorEnd(b))
    code_offsets = []
    for code in codes:
        tflite.OperatorCodeStart(b)
        # Codes up to 127 live in the deprecated int8 field too; readers take the larger one.
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, getattr(tflite.BuiltinOperator, code))
        tflite.OperatorCodeAddBuiltinCode(b, getattr(tflite.BuiltinOperator, code))
        tflite.OperatorCodeAddVersion(b, 1)
        code_offsets.append(tflite.OperatorCodeEnd(b))
    sg_tensors = vector(tflite.SubGraphStartTensorsVector, tensor_offsets, b.PrependUOffsetTRelative)
    sg_inputs = vector(tflite.SubGraphStartInputsVector, inputs, b.PrependInt32)
    sg_outputs = vector(tflite.SubGraphStartOutputsVector, outputs, b.PrependInt32)
    sg_ops = vector(tflite.SubGraphStartOperatorsVector, op_offsets, b.PrependUOffsetTRelative)
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, sg_tensors)
    tflite.SubGraphAddInputs(b, sg_inputs)
    tflite.SubGraphAddOutputs(b, sg_outputs)
    tflite.SubGraphAddOperators(b, sg_ops)
    subgraph = tflite.SubGraphEnd(b)
    model_codes = vector(tflite.ModelStartOperatorCodesVector, code_offsets, b.PrependUOffsetTRelative)
    subgraphs = vector(tflite.ModelStartSubgraphsVector, [subgraph], b.PrependUOffsetTRelative)
    model_buffers = vector(tflite.ModelStartBuffersVector, buffers, b.PrependUOffsetTRelative)
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, model_codes)
    tflite.ModelAddSubgraphs(b, subgraphs)
    tflite.ModelAddBuffers(b, model_buffers)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    flat = bytes(b.Output())
    if tail and len(flat) >= data_offset:
        raise ValueError(f"the flatbuffer ({len(flat)} bytes) does not fit before the external data at {data_offset}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(flat + (b"\0" * (data_offset - len(flat)) + bytes(tail) if tail else b""))
    return path


# --- builtin options ---------------------------------------------------------------------
# Each helper returns the ``Op.options`` callable. Fields at their schema default are not
# written (flatbuffers skips them), so e.g. activation="NONE" writes the same bytes as leaving it out.


def conv_options(stride: int = 1, padding: str = "SAME", activation: str = "RELU", dilation: int = 1) -> OptionsBuilder:
    """CONV_2D options: square ``stride`` and ``dilation``, a ``tflite.Padding`` and ``ActivationFunctionType`` name."""

    def build(b: Any) -> tuple[int, int]:
        import tflite

        tflite.Conv2DOptionsStart(b)
        tflite.Conv2DOptionsAddPadding(b, getattr(tflite.Padding, padding))
        tflite.Conv2DOptionsAddStrideW(b, stride)
        tflite.Conv2DOptionsAddStrideH(b, stride)
        tflite.Conv2DOptionsAddDilationWFactor(b, dilation)
        tflite.Conv2DOptionsAddDilationHFactor(b, dilation)
        tflite.Conv2DOptionsAddFusedActivationFunction(b, getattr(tflite.ActivationFunctionType, activation))
        return tflite.BuiltinOptions.Conv2DOptions, tflite.Conv2DOptionsEnd(b)

    return build


def depthwise_options(stride: int = 2, padding: str = "SAME", activation: str = "NONE", depth_multiplier: int = 1,
                      dilation: int = 1) -> OptionsBuilder:
    """DEPTHWISE_CONV_2D options (the default is the stride-2, no-activation one of :func:`tiny_tflite_conv`)."""

    def build(b: Any) -> tuple[int, int]:
        import tflite

        tflite.DepthwiseConv2DOptionsStart(b)
        tflite.DepthwiseConv2DOptionsAddPadding(b, getattr(tflite.Padding, padding))
        tflite.DepthwiseConv2DOptionsAddStrideW(b, stride)
        tflite.DepthwiseConv2DOptionsAddStrideH(b, stride)
        tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, depth_multiplier)
        tflite.DepthwiseConv2DOptionsAddDilationWFactor(b, dilation)
        tflite.DepthwiseConv2DOptionsAddDilationHFactor(b, dilation)
        tflite.DepthwiseConv2DOptionsAddFusedActivationFunction(b, getattr(tflite.ActivationFunctionType, activation))
        return tflite.BuiltinOptions.DepthwiseConv2DOptions, tflite.DepthwiseConv2DOptionsEnd(b)

    return build


def fc_options(activation: str = "NONE") -> OptionsBuilder:
    """FULLY_CONNECTED options: weights [units, K], float or per-tensor int8."""

    def build(b: Any) -> tuple[int, int]:
        import tflite

        tflite.FullyConnectedOptionsStart(b)
        tflite.FullyConnectedOptionsAddFusedActivationFunction(b, getattr(tflite.ActivationFunctionType, activation))
        return tflite.BuiltinOptions.FullyConnectedOptions, tflite.FullyConnectedOptionsEnd(b)

    return build


def transpose_conv_options(stride: int = 2, padding: str = "SAME") -> OptionsBuilder:
    """TRANSPOSE_CONV options; its inputs are (output_shape, filter [Cout, kh, kw, Cin], input)."""

    def build(b: Any) -> tuple[int, int]:
        import tflite

        tflite.TransposeConvOptionsStart(b)
        tflite.TransposeConvOptionsAddPadding(b, getattr(tflite.Padding, padding))
        tflite.TransposeConvOptionsAddStrideW(b, stride)
        tflite.TransposeConvOptionsAddStrideH(b, stride)
        return tflite.BuiltinOptions.TransposeConvOptions, tflite.TransposeConvOptionsEnd(b)

    return build


def batch_matmul_options(adj_x: bool = False, adj_y: bool = False) -> OptionsBuilder:
    """BATCH_MATMUL options: ``adj_x`` / ``adj_y`` transpose the last two axes of the left / right operand."""

    def build(b: Any) -> tuple[int, int]:
        import tflite

        tflite.BatchMatMulOptionsStart(b)
        tflite.BatchMatMulOptionsAddAdjX(b, adj_x)
        tflite.BatchMatMulOptionsAddAdjY(b, adj_y)
        return tflite.BuiltinOptions.BatchMatMulOptions, tflite.BatchMatMulOptionsEnd(b)

    return build


def mean_options(keep_dims: bool = False) -> OptionsBuilder:
    """MEAN (and the other reducers') options; the axes are the op's second, int32 input."""

    def build(b: Any) -> tuple[int, int]:
        import tflite

        tflite.ReducerOptionsStart(b)
        tflite.ReducerOptionsAddKeepDims(b, keep_dims)
        return tflite.BuiltinOptions.ReducerOptions, tflite.ReducerOptionsEnd(b)

    return build


# --- models ------------------------------------------------------------------------------


def tiny_tflite_conv(path: Path, *, int8: bool = False, external: frozenset[str] = frozenset()) -> Path:
    """A real TFLite model with the ops a CNN is made of, small enough to count by hand.

    input [1,8,8,3] -> CONV_2D 3x3 to 4 channels -> DEPTHWISE_CONV_2D 3x3 stride 2
    -> RESHAPE [1,64] -> FULLY_CONNECTED 5.

    Float32, or int8 with per-tensor scales and int32 biases (what a converter writes).
    Tensor names: input, conv_w, conv_b, conv_out, dw_w, dw_b, dw_out, new_shape, flat, fc_w, fc_b, output.
    """
    rng = np.random.default_rng(0)

    def weights(shape: tuple[int, ...], scale: float) -> Tensor:
        if int8:
            return Tensor("", shape, "INT8", rng.integers(-127, 128, shape, dtype=np.int8), scale)
        return Tensor("", shape, "FLOAT32", rng.normal(0, 0.3, shape).astype(np.float32))

    def bias(size: int, scale: float) -> Tensor:
        if int8:
            return Tensor("", (size,), "INT32", rng.integers(-100, 100, size, dtype=np.int32), scale)
        return Tensor("", (size,), "FLOAT32", rng.normal(0, 0.1, size).astype(np.float32))

    def activation(shape: tuple[int, ...], scale: float) -> Tensor:
        return Tensor("", shape, "INT8", None, scale) if int8 else Tensor("", shape)

    specs = {
        "input": activation((1, 8, 8, 3), 0.05),  # 0
        "conv_w": weights((4, 3, 3, 3), 0.02),  # 1
        "conv_b": bias(4, 0.001),  # 2
        "conv_out": activation((1, 8, 8, 4), 0.1),  # 3
        "dw_w": weights((1, 3, 3, 4), 0.02),  # 4
        "dw_b": bias(4, 0.002),  # 5
        "dw_out": activation((1, 4, 4, 4), 0.1),  # 6
        "new_shape": Tensor("", (2,), "INT32", np.array([1, 64], dtype=np.int32)),  # 7
        "flat": activation((1, 64), 0.1),  # 8
        "fc_w": weights((5, 64), 0.02),  # 9
        "fc_b": bias(5, 0.002),  # 10
        "output": activation((1, 5), 0.2),  # 11
    }
    tensors = [Tensor(name, t.shape, t.type, t.data, t.scale) for name, t in specs.items()]
    ops = [
        Op("CONV_2D", (0, 1, 2), (3,), conv_options()),
        Op("DEPTHWISE_CONV_2D", (3, 4, 5), (6,), depthwise_options()),
        Op("RESHAPE", (6, 7), (8,)),
        Op("FULLY_CONNECTED", (8, 9, 10), (11,), fc_options()),
    ]
    return write_tflite(path, tensors, ops, [0], [11], external=external)


def conv_stack_tflite(path: Path, *, size: int = 224, channels: int = 32, blocks: int = 6, classes: int = 100,
                      seed: int = 0) -> Path:
    """A MobileNet-v1-like float32 classifier, real enough to time in LiteRT (XNNPACK).

    input [1,size,size,3] NHWC
    -> stem: CONV_2D 3x3 stride 2 to ``channels``, RELU6
    -> ``blocks`` x (DEPTHWISE_CONV_2D 3x3, RELU6 -> CONV_2D 1x1, RELU6); block ``i`` has stride 2
       when ``i`` is odd (so the resolution halves every other block), and its 1x1 conv doubles the
       channels on block 0 and on every stride-2 block, up to 256 (as MobileNet v1 does)
    -> MEAN over H, W (keep_dims false) -> FULLY_CONNECTED to ``classes`` (logits, no activation).

    All padding is SAME, so a stride-2 layer's output side is ceil(side / 2). Weights are seeded
    normal with He scaling (std sqrt(2 / fan_in)), biases small, so activations stay finite.
    At the defaults: 224 -> 112 (stem) -> 112, 56, 56, 28, 28, 14, channels 32 -> 64, 128, 128,
    256, 256, 256; 215_732_224 MACs and 226_788 parameters (the parameters do not depend on
    ``size``; ``size=160`` gives 110_080_000 MACs). Tensors are named ``input``, ``stem_w``/``stem_b``/``stem``,
    ``block{i}_dw_w``/``_dw_b``/``_dw``, ``block{i}_pw_w``/``_pw_b``/``_pw``, ``mean_axes``,
    ``pooled``, ``fc_w``, ``fc_b``, ``logits``.
    """
    rng = np.random.default_rng(seed)
    tensors: list[Tensor] = []
    ops: list[Op] = []

    def add(name: str, shape: tuple[int, ...], data: np.ndarray | None = None, type: str = "FLOAT32") -> int:
        tensors.append(Tensor(name, shape, type, data))
        return len(tensors) - 1

    def he(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        return rng.normal(0, math.sqrt(2.0 / fan_in), shape).astype(np.float32)

    def small(n: int) -> np.ndarray:
        return rng.normal(0, 0.01, n).astype(np.float32)

    side, c = -(-size // 2), channels
    x = add("input", (1, size, size, 3))
    w = add("stem_w", (c, 3, 3, 3), he((c, 3, 3, 3), 3 * 3 * 3))
    bias = add("stem_b", (c,), small(c))
    y = add("stem", (1, side, side, c))
    ops.append(Op("CONV_2D", (x, w, bias), (y,), conv_options(stride=2, activation="RELU6")))
    x = y
    for i in range(blocks):
        stride = 2 if i % 2 == 1 else 1
        side = -(-side // stride)
        w = add(f"block{i}_dw_w", (1, 3, 3, c), he((1, 3, 3, c), 3 * 3))
        bias = add(f"block{i}_dw_b", (c,), small(c))
        y = add(f"block{i}_dw", (1, side, side, c))
        ops.append(Op("DEPTHWISE_CONV_2D", (x, w, bias), (y,), depthwise_options(stride=stride, activation="RELU6")))
        x = y
        c_out = min(2 * c, 256) if (i == 0 or stride == 2) else c
        c_out = max(c_out, c)  # never shrinks, even if ``channels`` starts above 256
        w = add(f"block{i}_pw_w", (c_out, 1, 1, c), he((c_out, 1, 1, c), c))
        bias = add(f"block{i}_pw_b", (c_out,), small(c_out))
        y = add(f"block{i}_pw", (1, side, side, c_out))
        ops.append(Op("CONV_2D", (x, w, bias), (y,), conv_options(stride=1, activation="RELU6")))
        x, c = y, c_out
    axes = add("mean_axes", (2,), np.array([1, 2], dtype=np.int32), "INT32")
    y = add("pooled", (1, c))
    ops.append(Op("MEAN", (x, axes), (y,), mean_options(keep_dims=False)))
    w = add("fc_w", (classes, c), rng.normal(0, math.sqrt(1.0 / c), (classes, c)).astype(np.float32))
    bias = add("fc_b", (classes,), small(classes))
    logits = add("logits", (1, classes))
    ops.append(Op("FULLY_CONNECTED", (y, w, bias), (logits,), fc_options()))
    return write_tflite(path, tensors, ops, [0], [logits])
