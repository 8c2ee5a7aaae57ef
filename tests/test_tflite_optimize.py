"""edgekit optimize for TFLite targets: ONNX in, a validated LiteRT bundle out, run by the agent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from device_agent.agent import Agent  # noqa: E402
from device_agent.config import load_config  # noqa: E402
from edgekit import samples  # noqa: E402
from edgekit.errors import OptimizeFailed, UsageError  # noqa: E402
from edgekit.optimize import optimize  # noqa: E402
from tests.mqtt_broker import Broker, Collector  # noqa: E402
from tests.test_agent import write_config  # noqa: E402


@pytest.fixture(scope="module")
def rpi5_int8(zoo, photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    model = zoo("mobilenetv3-small")
    result = optimize(model.onnx_path, target="rpi5", output=tmp_path_factory.mktemp("b") / "rpi5", precision="int8",
                      calib=photo_dir, preprocess=model.preprocess, labels=model.task.labels, task="classification",
                      max_drop=100, max_samples=80)
    return result.bundle


def test_the_rpi5_bundle_is_a_validated_full_integer_tflite(rpi5_int8: Path) -> None:
    manifest = json.loads((rpi5_int8 / "manifest.json").read_text())
    assert manifest["target"] == {"name": "rpi5", "runtime": "tflite", "providers": ["XNNPACK"], "threads": 4}
    assert manifest["model"]["format"] == "tflite" and manifest["model"]["file"] == "model.int8.tflite"
    assert manifest["precision"] == "int8" and manifest["preprocess"]["layout"] == "NHWC"
    (inp,) = manifest["inputs"]
    assert inp["shape"] == [1, 224, 224, 3] and inp["dtype"] == "int8" and inp["layout"] == "NHWC"
    assert inp["quantization"]["scale"] > 0
    report = json.loads((rpi5_int8 / "report.json").read_text())
    names = {c["name"]: c for c in report["candidates"]}
    assert set(names) == {"fp32", "int8"}
    assert names["fp32"]["value"] == pytest.approx(100.0)  # the same function in LiteRT as in ONNX Runtime
    assert names["int8"]["latency_ms"]["p50"] > 0 and names["int8"]["passes"][0]["name"] == "torch->tflite"


def test_the_agent_runs_the_tflite_bundle_on_a_video(rpi5_int8: Path, broker: Broker, tmp_path: Path) -> None:
    clip = samples.write_video(tmp_path / "clip.mp4", seconds=2, fps=10, size_wh=(320, 240))
    collector = Collector(broker)
    agent = Agent(load_config(write_config(tmp_path / "agent", rpi5_int8, clip, broker)))  # golden self test included
    assert agent.run() == 0
    assert collector.wait_for(lambda c: len(c.received("/results")) >= 20, timeout=10)
    first = collector.received("/results")[0]
    assert first["model"]["precision"] == "int8" and first["result"]["kind"] == "classification"
    top = first["result"]["classifications"]
    assert len(top) >= 1 and np.isfinite(top[0]["score"]) and 0 <= top[0]["score"] <= 1
    collector.close()


def test_camera_npu_names_the_operators_that_stay_float(zoo, photo_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = zoo("mobilenetv3-small")
    with pytest.raises(OptimizeFailed, match=r"int8: \d+ operator\(s\) stay float and would fall back to the CPU: #\d+ "):
        optimize(model.onnx_path, target="camera-npu-int8", output=tmp_path / "npu", calib=photo_dir,
                 preprocess=model.preprocess, task="classification", max_drop=100, max_samples=60)
    assert not (tmp_path / "npu").exists()


def test_fp16_tflite_is_refused_clearly(zoo, photo_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match="fp16 for the TFLite target 'rpi5' is not built yet"):
        optimize(zoo("mobilenetv3-small").onnx_path, target="rpi5", output=tmp_path / "x", precision="fp16",
                 calib=photo_dir)


def test_camera_npu_gets_a_full_integer_efficientnet(zoo, photo_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The pretrained EfficientNet-Lite0 (ReLU6, residual adds): every operator integer, int8 in and out."""
    from converters.tflite_check import float_operators

    model = zoo("efficientnet-lite0")
    result = optimize(model.onnx_path, target="camera-npu-int8", output=tmp_path / "npu", calib=photo_dir,
                      preprocess=model.preprocess, labels=model.task.labels, task="classification", max_drop=100,
                      max_samples=60)
    manifest = json.loads((result.bundle / "manifest.json").read_text())
    assert manifest["precision"] == "int8" and manifest["target"]["name"] == "camera-npu-int8"
    assert manifest["inputs"][0]["dtype"] == "int8" and manifest["outputs"][0]["dtype"] == "int8"
    assert float_operators(result.bundle / manifest["model"]["file"]) == []
    fp32 = next(c for c in result.report["candidates"] if c["name"] == "fp32")
    assert "integer models only" in fp32["blocker"]  # timed as the reference, never shipped
