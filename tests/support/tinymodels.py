"""Tiny ONNX models built with onnx.helper, for tests that need a real model but not a big one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny_classifier(path: Path, *, size: int = 32, classes: int = 10, batch: int | str = 1,
                    height: int | str | None = None, seed: int = 0) -> Path:
    """Conv-ReLU-Conv-ReLU-GlobalAveragePool-Flatten-Gemm, NCHW float32 input ``[batch, 3, size, size]``."""
    rng = np.random.default_rng(seed)
    h = size if height is None else height
    w = size if height is None else height
    weights = {
        "w1": rng.normal(0, 0.3, (16, 3, 3, 3)).astype(np.float32),
        "b1": rng.normal(0, 0.1, 16).astype(np.float32),
        "w2": rng.normal(0, 0.2, (32, 16, 3, 3)).astype(np.float32),
        "b2": rng.normal(0, 0.1, 32).astype(np.float32),
        "wf": rng.normal(0, 0.3, (classes, 32)).astype(np.float32),
        "bf": rng.normal(0, 0.1, classes).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["logits"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, h, w])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def tiny_tflite(path: Path, *, seed: int = 0) -> tuple[Path, np.ndarray, np.ndarray]:
    """A real TFLite flatbuffer (no TensorFlow needed): y = x @ W.T + b, x [1, 4], y [1, 3].

    Built with the ``tflite`` schema package's generated builders; returns (path, W, b).
    """
    import flatbuffers
    import tflite

    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(3, 4)).astype(np.float32)
    bias = rng.normal(size=3).astype(np.float32)
    b = flatbuffers.Builder(1024)

    def vector(start, items, prepend):  # type: ignore[no-untyped-def]
        start(b, len(items))
        for item in reversed(items):
            prepend(item)
        return b.EndVector()

    def buffer(data: bytes | None) -> int:
        vec = b.CreateByteVector(data) if data else None
        tflite.BufferStart(b)
        if vec is not None:
            tflite.BufferAddData(b, vec)
        return tflite.BufferEnd(b)

    def tensor(name: str, shape: list[int], buffer_index: int) -> int:
        name_off = b.CreateString(name)
        shape_off = vector(tflite.TensorStartShapeVector, shape, b.PrependInt32)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape_off)
        tflite.TensorAddType(b, tflite.TensorType.FLOAT32)
        tflite.TensorAddBuffer(b, buffer_index)
        tflite.TensorAddName(b, name_off)
        return tflite.TensorEnd(b)

    buffers = [buffer(None), buffer(weights.tobytes()), buffer(bias.tobytes()), buffer(None), buffer(None)]
    tensors = [tensor("input", [1, 4], 3), tensor("weights", [3, 4], 1), tensor("bias", [3], 2),
               tensor("output", [1, 3], 4)]
    tflite.FullyConnectedOptionsStart(b)
    tflite.FullyConnectedOptionsAddFusedActivationFunction(b, tflite.ActivationFunctionType.NONE)
    options = tflite.FullyConnectedOptionsEnd(b)
    op_inputs = vector(tflite.OperatorStartInputsVector, [0, 1, 2], b.PrependInt32)
    op_outputs = vector(tflite.OperatorStartOutputsVector, [3], b.PrependInt32)
    tflite.OperatorStart(b)
    tflite.OperatorAddOpcodeIndex(b, 0)
    tflite.OperatorAddInputs(b, op_inputs)
    tflite.OperatorAddOutputs(b, op_outputs)
    tflite.OperatorAddBuiltinOptionsType(b, tflite.BuiltinOptions.FullyConnectedOptions)
    tflite.OperatorAddBuiltinOptions(b, options)
    operator = tflite.OperatorEnd(b)
    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, tflite.BuiltinOperator.FULLY_CONNECTED)
    tflite.OperatorCodeAddBuiltinCode(b, tflite.BuiltinOperator.FULLY_CONNECTED)
    tflite.OperatorCodeAddVersion(b, 1)
    opcode = tflite.OperatorCodeEnd(b)
    sg_tensors = vector(tflite.SubGraphStartTensorsVector, tensors, b.PrependUOffsetTRelative)
    sg_inputs = vector(tflite.SubGraphStartInputsVector, [0], b.PrependInt32)
    sg_outputs = vector(tflite.SubGraphStartOutputsVector, [3], b.PrependInt32)
    sg_ops = vector(tflite.SubGraphStartOperatorsVector, [operator], b.PrependUOffsetTRelative)
    sg_name = b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, sg_tensors)
    tflite.SubGraphAddInputs(b, sg_inputs)
    tflite.SubGraphAddOutputs(b, sg_outputs)
    tflite.SubGraphAddOperators(b, sg_ops)
    tflite.SubGraphAddName(b, sg_name)
    subgraph = tflite.SubGraphEnd(b)
    codes = vector(tflite.ModelStartOperatorCodesVector, [opcode], b.PrependUOffsetTRelative)
    subgraphs = vector(tflite.ModelStartSubgraphsVector, [subgraph], b.PrependUOffsetTRelative)
    bufs = vector(tflite.ModelStartBuffersVector, buffers, b.PrependUOffsetTRelative)
    description = b.CreateString("edgekit test model")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes)
    tflite.ModelAddSubgraphs(b, subgraphs)
    tflite.ModelAddDescription(b, description)
    tflite.ModelAddBuffers(b, bufs)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    path.write_bytes(bytes(b.Output()))
    return path, weights, bias
