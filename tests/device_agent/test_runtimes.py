"""Contract tests every runtime passes: the same questions to onnxruntime and LiteRT."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from device_agent.errors import MissingDependencyError, RuntimeLoadError
from device_agent.runtimes import create_runtime, runtime_for_file
from tests.support.tinymodels import tiny_classifier, tiny_tflite


@pytest.fixture(params=["onnxruntime", "tflite"])
def model(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path, np.ndarray, object]:
    if request.param == "tflite":
        pytest.importorskip("ai_edge_litert", reason="LiteRT: pip install 'edgekit[tflite]'")
        path, weights, bias = tiny_tflite(tmp_path / "fc.tflite")
        x = np.arange(4, dtype=np.float32)[None]
        return request.param, path, x, x @ weights.T + bias
    path = tiny_classifier(tmp_path / "tiny.onnx")
    return request.param, path, np.zeros((1, 3, 32, 32), np.float32), None


def test_runtime_is_picked_by_file_and_reports_io(model) -> None:  # type: ignore[no-untyped-def]
    key, path, x, expected = model
    assert runtime_for_file(path) == key
    runtime = create_runtime(key, path, threads=1)
    assert runtime.inputs[0].shape == x.shape and runtime.inputs[0].dtype == "float32"
    out = runtime.run([x])
    assert out[0].shape == runtime.outputs[0].shape
    if expected is not None:
        np.testing.assert_allclose(out[0], expected, rtol=1e-5)


def test_wrong_input_is_a_clear_error(model) -> None:  # type: ignore[no-untyped-def]
    key, path, x, _ = model
    runtime = create_runtime(key, path)
    with pytest.raises(RuntimeLoadError, match=r"model expects"):
        runtime.run([np.zeros((1, 7), np.float32)])
    with pytest.raises(RuntimeLoadError, match=r"takes 1 inputs, got 2"):
        runtime.run([x, x])


def test_missing_file_and_unknown_runtime(tmp_path: Path) -> None:
    with pytest.raises(RuntimeLoadError, match=r"does not exist"):
        create_runtime("tflite", tmp_path / "nope.tflite")
    with pytest.raises(RuntimeLoadError, match=r"unknown runtime 'tensorrt'; known runtimes: onnxruntime, tflite"):
        create_runtime("tensorrt", tmp_path / "x.onnx")
    with pytest.raises(RuntimeLoadError, match=r"expected a .onnx or .tflite file"):
        runtime_for_file("model.pb")


@pytest.mark.parametrize(("key", "hidden", "extra"), [
    ("onnxruntime", ("onnxruntime",), "onnx"),
    ("tflite", ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"),
     "tflite"),
])
def test_a_runtime_that_is_not_installed_names_its_extra(key: str, hidden: tuple[str, ...], extra: str,
                                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent installs one runtime (edgekit[agent,onnx] or edgekit[agent,tflite]); a bundle for the other
    one says which extra to add, not an ImportError."""
    path = tmp_path / ("model.onnx" if key == "onnxruntime" else "model.tflite")
    path.touch()  # the runtime's import fails before the file is read
    for module in hidden:
        monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError, as when absent
    with pytest.raises(MissingDependencyError, match=rf"pip install 'edgekit\[{extra}\]'") as info:
        create_runtime(key, path)
    assert info.value.extra == extra and info.value.exit_code == 2
