"""MACs and parameters of real tiny ONNX and TFLite files, counted by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from device_agent.bench.cost import COUNTERS, ModelCost, OpCost, model_cost
from device_agent.errors import AgentError, CostError
from tests.support.tflite_builder import (
    Op,
    Tensor,
    batch_matmul_options,
    tiny_tflite_conv,
    transpose_conv_options,
    write_tflite,
)
from tests.support.tinymodels import tiny_classifier, tiny_tflite

# tiny_classifier at 32x32, 10 classes, by hand:
#   conv1 3->16, 3x3, stride 2: output [1, 16, 16, 16] = 4096 x (3 x 3 x 3)  = 110_592
#   conv2 16->32, 3x3:          output [1, 32, 16, 16] = 8192 x (16 x 3 x 3) = 1_179_648
#   fc 32->10:                  1 x 10 x 32                                  = 320
TINY_MACS = {"conv1": 110_592, "conv2": 1_179_648, "fc": 320}
TINY_PARAMS = (16 * 3 * 3 * 3 + 16) + (32 * 16 * 3 * 3 + 32) + (10 * 32 + 10)  # 5418


def test_onnx_tiny_classifier(tmp_path: Path) -> None:
    cost = model_cost(tiny_classifier(tmp_path / "tiny.onnx"))
    assert [(op.op, op.name, op.macs) for op in cost.ops] == [
        ("Conv", "conv1", 110_592),
        ("Conv", "conv2", 1_179_648),
        ("Gemm", "fc", 320),
    ]
    assert cost.macs == sum(TINY_MACS.values()) == 1_290_560
    assert cost.flops == 2 * cost.macs
    assert cost.params == TINY_PARAMS
    assert cost.by_op_type() == {"Conv": 1_290_240, "Gemm": 320}
    assert cost.to_json() == {
        "macs": 1_290_560,
        "flops": 2_581_120,
        "params": 5418,
        "by_op_type": {"Conv": 1_290_240, "Gemm": 320},
        "counted": cost.counted,
        "precision": "fp32",
    }
    assert "not counted" in cost.counted


def test_onnx_size_and_classes_scale_the_count(tmp_path: Path) -> None:
    cost = model_cost(str(tiny_classifier(tmp_path / "tiny64.onnx", size=64, classes=7)))
    assert cost.macs == 4 * (110_592 + 1_179_648) + 7 * 32
    assert cost.params == TINY_PARAMS - (10 * 32 + 10) + (7 * 32 + 7)


def _quantized(float_path: Path, out: Path, quant_format: str, *, float_nodes: tuple[str, ...] = ()) -> Path:
    """``float_path`` quantized by onnxruntime (QDQ or QOperator), ``float_nodes`` left in float."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class RandomImages(CalibrationDataReader):
        """A few random frames: enough for the quantizer to choose its scales."""

        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self._feeds = iter([{"input": rng.normal(size=(1, 3, 32, 32)).astype(np.float32)} for _ in range(4)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    quantize_static(
        str(float_path),
        str(out),
        RandomImages(),
        quant_format=QuantFormat.QDQ if quant_format == "QDQ" else QuantFormat.QOperator,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=list(float_nodes),
    )
    return out


@pytest.mark.parametrize("quant_format", ["QDQ", "QOperator"])
def test_onnx_quantized_model_costs_the_same_as_float(tmp_path: Path, quant_format: str) -> None:
    import onnx

    float_path = tiny_classifier(tmp_path / "float.onnx")
    int8_path = _quantized(float_path, tmp_path / f"int8_{quant_format}.onnx", quant_format)
    op_types = {node.op_type for node in onnx.load(str(int8_path)).graph.node}
    # QDQ keeps Conv/Gemm between DequantizeLinear nodes; QOperator writes QLinearConv and com.microsoft ops.
    assert ("DequantizeLinear" in op_types) if quant_format == "QDQ" else ({"QLinearConv", "QGemm"} <= op_types)

    float_cost, int8_cost = model_cost(float_path), model_cost(int8_path)
    assert int8_cost.macs == float_cost.macs == 1_290_560
    assert int8_cost.params == float_cost.params == TINY_PARAMS
    assert sorted(op.macs for op in int8_cost.ops) == sorted(op.macs for op in float_cost.ops)
    assert (float_cost.precision, int8_cost.precision) == ("fp32", "int8")
    assert float_cost.macs_by_precision() == {"fp32": 1_290_560}
    assert int8_cost.macs_by_precision() == {"int8": 1_290_560}


@pytest.mark.parametrize("quant_format", ["QDQ", "QOperator"])
def test_onnx_mixed_precision_model_counts_its_macs_per_precision(tmp_path: Path, quant_format: str) -> None:
    """A node the quantizer left in float computes in float: the precision mix the peak must be weighed by."""
    float_path = tiny_classifier(tmp_path / "float.onnx")
    mixed = model_cost(_quantized(float_path, tmp_path / "mixed.onnx", quant_format, float_nodes=("conv2",)))
    conv2 = 32 * 16 * 16 * 16 * 9
    assert mixed.macs == 1_290_560 and mixed.precision == "int8"
    assert mixed.macs_by_precision() == {"fp32": conv2, "int8": 1_290_560 - conv2}
    assert {op.name: op.precision for op in mixed.ops}["conv2"] == "fp32"


def test_onnx_dynamic_shape_is_refused(tmp_path: Path) -> None:
    path = tiny_classifier(tmp_path / "dynamic.onnx", batch="N")
    expected = r"node 'conv1' \(Conv\) in '.*dynamic\.onnx'.*\[N, 16, 16, 16\].*must be static"
    with pytest.raises(CostError, match=expected):
        model_cost(path)


def test_missing_file_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(CostError, match=r"cannot count the cost of '.*absent\.onnx': the file does not exist"):
        model_cost(tmp_path / "absent.onnx")
    weights = tmp_path / "x.pt"
    weights.write_bytes(b"\x00")
    with pytest.raises(CostError, match=r"cannot count the cost of '.*x\.pt': expected a \.onnx or \.tflite file"):
        model_cost(weights)
    assert issubclass(CostError, AgentError)
    assert set(COUNTERS) == {".onnx", ".tflite"}


def test_not_a_model(tmp_path: Path) -> None:
    fake = tmp_path / "fake.tflite"
    fake.write_bytes(b"definitely not a flatbuffer")
    with pytest.raises(CostError, match=r"'.*fake\.tflite': not a TFLite flatbuffer"):
        model_cost(fake)
    fake_onnx = tmp_path / "fake.onnx"
    fake_onnx.write_bytes(b"\xff\xff\xff\xff not a protobuf")
    with pytest.raises(CostError, match=r"cannot read the ONNX model '.*fake\.onnx'"):
        model_cost(fake_onnx)


def test_missing_reader_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A device without onnx / LiteRT: the module is made unimportable, not replaced."""
    onnx_path = tiny_classifier(tmp_path / "tiny.onnx")
    tflite_path, _, _ = tiny_tflite(tmp_path / "fc.tflite")
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(CostError, match=r"ONNX model needs the Python module 'onnx' \(pip install onnx\)"):
        model_cost(onnx_path)
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "tflite", None)
    with pytest.raises(CostError, match=r"needs the Python module 'ai_edge_litert' .* or 'tflite'"):
        model_cost(tflite_path)


def test_tflite_package_reads_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without LiteRT's generated schema, the ``tflite`` package reads the flatbuffer the same way."""
    path = tiny_tflite_conv(tmp_path / "conv.tflite", int8=True)
    with_litert = model_cost(path)
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    assert model_cost(path) == with_litert


def test_by_op_type_is_largest_first() -> None:
    cost = ModelCost(60, 0, (OpCost("Gemm", "a", 10), OpCost("Conv", "b", 20), OpCost("Gemm", "c", 30)), "test")
    assert list(cost.by_op_type().items()) == [("Gemm", 40), ("Conv", 20)]


# --- TFLite -------------------------------------------------------------------------------


def test_tflite_fully_connected(tmp_path: Path) -> None:
    path, _, _ = tiny_tflite(tmp_path / "fc.tflite")
    cost = model_cost(path)
    assert cost.ops == (OpCost("FULLY_CONNECTED", "FULLY_CONNECTED_0", 12),)
    assert (cost.macs, cost.params) == (12, 15)
    assert "subgraph 0" in cost.counted


# By hand: CONV_2D output [1,8,8,4] = 256 x (3 x 3 x 3) = 6912; DEPTHWISE output [1,4,4,4] = 64 x (3 x 3) = 576;
# FULLY_CONNECTED output [1,5] x 64 = 320. Params: 108 + 4 + 36 + 4 + 320 + 5 = 477 (the int32 new_shape is not one).
CONV_MACS = [
    ("CONV_2D", "CONV_2D_0", 6912),
    ("DEPTHWISE_CONV_2D", "DEPTHWISE_CONV_2D_1", 576),
    ("FULLY_CONNECTED", "FULLY_CONNECTED_3", 320),
]
CONV_PARAMS = 477


def _run(path: Path) -> dict[str, tuple[int, ...]]:
    """Run the model once in LiteRT; the shapes LiteRT computed for every tensor, by name."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.ones(detail["shape"], dtype=detail["dtype"]))
    interpreter.invoke()
    output = interpreter.get_output_details()[0]
    assert interpreter.get_tensor(output["index"]).shape == tuple(output["shape"])
    return {d["name"]: tuple(int(x) for x in d["shape"]) for d in interpreter.get_tensor_details()}


@pytest.mark.parametrize("int8", [False, True], ids=["float32", "int8"])
def test_tflite_convolutions(tmp_path: Path, int8: bool) -> None:
    path = tiny_tflite_conv(tmp_path / "conv.tflite", int8=int8)
    shapes = _run(path)  # the file is a real model, and the shapes the count uses are LiteRT's
    assert shapes["conv_out"] == (1, 8, 8, 4) and shapes["dw_out"] == (1, 4, 4, 4) and shapes["output"] == (1, 5)

    cost = model_cost(path)
    assert [(op.op, op.name, op.macs) for op in cost.ops] == CONV_MACS
    assert cost.macs == 7808
    assert cost.params == CONV_PARAMS  # int8 weights and int32 biases count; the int32 shape does not
    assert cost.by_op_type() == {"CONV_2D": 6912, "DEPTHWISE_CONV_2D": 576, "FULLY_CONNECTED": 320}
    assert cost.precision == ("int8" if int8 else "fp32")
    assert cost.macs_by_precision() == {("int8" if int8 else "fp32"): 7808}


def test_tflite_buffers_stored_after_the_flatbuffer_count(tmp_path: Path) -> None:
    path = tiny_tflite_conv(tmp_path / "external.tflite", external=frozenset({"conv_w", "fc_w"}))
    assert _run(path)["output"] == (1, 5)
    assert model_cost(path).params == CONV_PARAMS


def test_tflite_transpose_conv_and_batch_matmul(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tensors = [
        Tensor("image", (1, 4, 4, 4)),  # 0
        Tensor("output_shape", (4,), "INT32", np.array([1, 8, 8, 2], dtype=np.int32)),  # 1
        # 2: filter [Cout, kh, kw, Cin]
        Tensor("tconv_w", (2, 3, 3, 4), data=rng.normal(size=(2, 3, 3, 4)).astype(np.float32)),
        Tensor("upsampled", (1, 8, 8, 2)),  # 3
        Tensor("lhs", (1, 2, 3)),  # 4
        Tensor("rhs", (1, 3, 5), data=rng.normal(size=(1, 3, 5)).astype(np.float32)),  # 5
        Tensor("product", (1, 2, 5)),  # 6
    ]
    ops = [
        Op("TRANSPOSE_CONV", (1, 2, 0), (3,), transpose_conv_options()),
        Op("BATCH_MATMUL", (4, 5), (6,), batch_matmul_options()),
    ]
    path = write_tflite(tmp_path / "tconv.tflite", tensors, ops, [0, 4], [3, 6])
    shapes = _run(path)
    assert shapes["upsampled"] == (1, 8, 8, 2) and shapes["product"] == (1, 2, 5)
    cost = model_cost(path)
    # TRANSPOSE_CONV: 64 input elements x 2 x 3 x 3 = 1152; BATCH_MATMUL: 10 outputs x K 3 = 30.
    assert [(op.op, op.macs) for op in cost.ops] == [("TRANSPOSE_CONV", 1152), ("BATCH_MATMUL", 30)]
    assert cost.params == 2 * 3 * 3 * 4 + 3 * 5  # the output_shape int32 tensor is not a parameter
