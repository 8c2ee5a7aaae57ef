"""torch -> tflite through the isolated litert-torch environment: real conversions, real LiteRT runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from converters.errors import ConversionError  # noqa: E402
from converters.litert_env import litert_python  # noqa: E402
from converters.torch_tflite import export_program, torch_to_tflite  # noqa: E402


class SmallNet(torch.nn.Module):  # type: ignore[misc]
    """Conv-BN-ReLU6, a depthwise block with a residual add, global pool, linear: a MobileNet in miniature."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.BatchNorm2d(16), torch.nn.ReLU6())
        self.dw = torch.nn.Sequential(torch.nn.Conv2d(16, 16, 3, 1, 1, groups=16), torch.nn.ReLU6(),
                                      torch.nn.Conv2d(16, 16, 1))
        self.head = torch.nn.Linear(16, 10)

    def forward(self, x):  # type: ignore[no-untyped-def]
        x = self.stem(x)
        x = x + self.dw(x)
        return self.head(x.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
    return export_program(SmallNet().eval(), [x], tmp_path_factory.mktemp("p") / "small.pt2")


@pytest.fixture(scope="module")
def litert_env() -> Path:
    return litert_python(log=print)  # created once per machine (about a minute), then reused


def _run(path: Path, x_nhwc: np.ndarray) -> tuple[np.ndarray, dict, dict]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    if inp["dtype"] == np.int8:
        scale, zero = inp["quantization"]
        x_nhwc = np.clip(np.round(x_nhwc / scale) + zero, -128, 127).astype(np.int8)
    interpreter.set_tensor(inp["index"], x_nhwc)
    interpreter.invoke()
    y = interpreter.get_tensor(out["index"])
    if out["dtype"] == np.int8:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y, inp, out


def test_fp32_is_the_same_function_with_nhwc_input(litert_env: Path, program: Path, tmp_path: Path) -> None:
    report = torch_to_tflite(program, tmp_path / "small.tflite")
    assert report.details["max_relative_error"] < 1e-3
    x = np.random.default_rng(5).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
    y, inp, _ = _run(tmp_path / "small.tflite", np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    assert tuple(inp["shape"]) == (1, 64, 64, 3) and inp["dtype"] == np.float32
    expected = torch.export.load(str(program)).module()(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def test_int8_is_full_integer_and_agrees(litert_env: Path, program: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    calibration = rng.uniform(-1, 1, (16, 3, 64, 64)).astype(np.float32)
    report = torch_to_tflite(program, tmp_path / "small8.tflite", precision="int8", calibration=calibration)
    assert report.details["calibrated"] == 16
    x = rng.uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
    y, inp, out = _run(tmp_path / "small8.tflite", np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8 and inp["quantization"][0] > 0
    expected = torch.export.load(str(program)).module()(torch.from_numpy(x)).detach().numpy()
    cosine = float((y * expected).sum() / np.linalg.norm(y) / np.linalg.norm(expected))
    assert cosine > 0.99


def test_int8_keeps_the_named_layers_in_float(litert_env: Path, program: Path, tmp_path: Path) -> None:
    """Mixed precision: the stem convolution (weight ``stem.0.weight``) stays float, the rest is int8."""
    from converters.tflite_check import float_operators

    calibration = np.random.default_rng(1).uniform(-1, 1, (16, 3, 64, 64)).astype(np.float32)
    report = torch_to_tflite(program, tmp_path / "mixed.tflite", precision="int8", calibration=calibration,
                             float_layers=["stem.0.weight"])
    assert report.details["float_layers"] == 1
    floats = float_operators(tmp_path / "mixed.tflite")
    assert [f.op for f in floats].count("CONV_2D") == 1 and "DEPTHWISE_CONV_2D" not in {f.op for f in floats}
    x = np.random.default_rng(3).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
    y, inp, out = _run(tmp_path / "mixed.tflite", np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    assert inp["dtype"] == np.float32 and out["dtype"] == np.int8  # the float stem reads the float input
    expected = torch.export.load(str(program)).module()(torch.from_numpy(x)).detach().numpy()
    assert float((y * expected).sum() / np.linalg.norm(y) / np.linalg.norm(expected)) > 0.99
    with pytest.raises(ConversionError, match=r"float_layers not found in the program: \['stem.9.weight'\]"):
        torch_to_tflite(program, tmp_path / "bad.tflite", precision="int8", calibration=calibration,
                        float_layers=["stem.9.weight"])


def test_bad_requests_are_named(program: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConversionError, match="int8 needs calibration samples"):
        torch_to_tflite(program, tmp_path / "x.tflite", precision="int8")
    with pytest.raises(ConversionError, match="precision 'int4' is not supported"):
        torch_to_tflite(program, tmp_path / "x.tflite", precision="int4")
    monkeypatch.setenv("EDGEKIT_LITERT_PYTHON", str(tmp_path / "nope" / "python"))
    with pytest.raises(ConversionError, match="EDGEKIT_LITERT_PYTHON=.*does not exist"):
        torch_to_tflite(program, tmp_path / "x.tflite")


def test_a_module_converts_directly_and_routes_are_found_from_the_edges(litert_env: Path, tmp_path: Path) -> None:
    from converters.routes import Edge, find_route

    assert find_route("torch", "tflite") == [Edge("torch", "tflite")]
    assert find_route("tflite", "tflite") == []
    torch.manual_seed(1)
    x = np.random.default_rng(2).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
    report = torch_to_tflite(SmallNet().eval(), tmp_path / "m.tflite", example_input=[x])
    assert report.details["max_relative_error"] < 1e-3 and (tmp_path / "m.tflite").stat().st_size > 1000
    with pytest.raises(ConversionError, match="needs example_input"):
        torch_to_tflite(SmallNet(), tmp_path / "n.tflite")
    with pytest.raises(ConversionError, match="no conversion route from 'tflite' to 'onnx'"):
        find_route("tflite", "onnx")


def test_an_onnx_model_reaches_tflite_through_the_found_route(litert_env: Path, zoo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """onnx -> torch -> tflite on the zoo's MobileNetV3-Small (HardSwish, SE blocks): the same function as ORT."""
    import onnxruntime as ort

    from converters import PASSES
    from converters.routes import Edge, find_route

    route = find_route("onnx", "tflite")
    assert route == [Edge("onnx", "torch"), Edge("torch", "tflite")]
    model = zoo("mobilenetv3-small").onnx_path
    program = PASSES[route[0].key](model, tmp_path / "m.pt2").dst
    tflite = PASSES[route[1].key](program, tmp_path / "m.tflite").dst
    x = np.random.default_rng(4).uniform(-2, 2, (1, 3, 224, 224)).astype(np.float32)
    session = ort.InferenceSession(str(model))
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    y, inp, _ = _run(tflite, np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    assert tuple(inp["shape"]) == (1, 224, 224, 3)
    assert float(np.abs(y - expected).max()) / max(1.0, float(np.abs(expected).max())) < 1e-4


@pytest.fixture(scope="module")
def float_tflite(litert_env: Path, program: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return torch_to_tflite(program, tmp_path_factory.mktemp("f") / "small.tflite").dst


def _tensor_types(path: Path) -> set[str]:
    from ai_edge_litert.interpreter import Interpreter

    return {d["dtype"].__name__ for d in Interpreter(model_path=str(path)).get_tensor_details()}


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize("mode", ["fp16", "dynamic", "static"])
def test_ai_edge_quantizer_edges_from_a_float_tflite(float_tflite: Path, tmp_path: Path, mode: str) -> None:
    from converters.tflite_check import float_operators
    from converters.tflite_quantize import quantize_fp16, quantize_int8

    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)  # the model's own layout: NHWC
    dst = tmp_path / f"small.{mode}.tflite"
    if mode == "fp16":
        report = quantize_fp16(float_tflite, dst)
    else:
        calibration = rng.uniform(-1, 1, (16, 64, 64, 3)).astype(np.float32) if mode == "static" else None
        report = quantize_int8(float_tflite, dst, mode=mode, calibration=calibration)
    assert report.name == ("tflite->tflite-fp16" if mode == "fp16" else "tflite->tflite-int8")
    assert report.details["calibrated"] == (16 if mode == "static" else 0)
    y, inp, out = _run(dst, x)
    expected, _, _ = _run(float_tflite, x)
    assert _cosine(y.ravel(), expected.ravel()) > (0.999 if mode == "fp16" else 0.98)
    types = _tensor_types(dst)
    if mode == "fp16":
        assert "float16" in types and inp["dtype"] == np.float32  # half-size weights, float I/O
        assert dst.stat().st_size < float_tflite.stat().st_size  # (headers dominate a net this small)
    elif mode == "dynamic":
        assert "int8" in types and inp["dtype"] == np.float32 and out["dtype"] == np.float32
    else:
        assert inp["dtype"] == np.int8 and out["dtype"] == np.int8 and float_operators(dst) == []


def test_the_quantizer_edges_refuse_bad_input_clearly(float_tflite: Path, tmp_path: Path) -> None:
    from converters.tflite_quantize import quantize_int8

    with pytest.raises(ConversionError, match="static needs calibration samples"):
        quantize_int8(float_tflite, tmp_path / "x.tflite")
    with pytest.raises(ConversionError, match="mode 'int4' is not 'static' or 'dynamic'"):
        quantize_int8(float_tflite, tmp_path / "x.tflite", mode="int4")
    with pytest.raises(ConversionError, match=r"'nope.tflite' does not exist; expected a float .tflite model"):
        quantize_int8(Path("nope.tflite"), tmp_path / "x.tflite", mode="dynamic")
