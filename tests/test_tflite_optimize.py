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


DETECTOR_BUDGET = 10.0  # detection F1 points vs the PyTorch original, on the held-out photos


@pytest.fixture(scope="module")
def detector_bundles(photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real trained YOLOv8n as a PyTorch module, to an INT8 TFLite bundle for rpi5 and for the NPU camera."""
    import torch

    from edgekit.zoo.yolo import PREPROCESS
    from edgekit.zoo.yolo_pretrained import load_pretrained

    net, labels = load_pretrained()
    root = tmp_path_factory.mktemp("detector")
    return {target: optimize(net, example_input=torch.zeros(1, 3, 320, 320), target=target, output=root / target,
                             precision="int8", calib=photo_dir, preprocess=PREPROCESS, labels=labels,
                             task="detection", max_drop=DETECTOR_BUDGET).bundle
            for target in ("rpi5", "camera-npu-int8")}


@pytest.mark.parametrize("target", ["rpi5", "camera-npu-int8"])
def test_a_pytorch_detector_becomes_a_full_integer_tflite_within_budget(detector_bundles: dict[str, Path],
                                                                         target: str) -> None:
    from converters.tflite_check import float_operators
    from device_agent.bundle import load_bundle

    bundle = load_bundle(detector_bundles[target])
    m = bundle.manifest
    assert m.source.format == "pytorch" and m.target.name == target and m.precision == "int8"
    # cut at the raw heads; the decode tail runs in the agent, on the CPU
    assert m.task.decoder == "yolov8-heads" and m.task.strides == [8.0, 16.0, 32.0] and len(m.task.labels) == 18
    assert sorted(o.shape for o in m.outputs) == sorted([1, g, g, c] for c in (18, 64) for g in (10, 20, 40))
    assert all(o.dtype == "int8" and o.quantization is not None for o in [*m.inputs, *m.outputs])
    assert float_operators(bundle.model_path) == []  # nothing would fall back to the CPU on an NPU
    assert m.validation is not None and m.validation.metric == "detection_f1" and m.validation.passed
    assert m.validation.optimized >= 100.0 - DETECTOR_BUDGET and m.validation.details["reference_boxes"] >= 10
    report = json.loads((bundle.root / "report.json").read_text())
    int8 = next(c for c in report["candidates"] if c["name"] == "int8")
    assert int8["passes"][0]["head_split"]["max_relative_error"] < 1e-4


def test_the_agent_runs_both_detector_bundles_on_a_video(detector_bundles: dict[str, Path], video_file: Path,
                                                         broker: Broker, tmp_path: Path) -> None:
    for target, bundle in detector_bundles.items():
        collector = Collector(broker)
        agent = Agent(load_config(write_config(tmp_path / target, bundle, video_file, broker)))  # self test first
        assert agent.run(max_frames=30) == 0
        assert collector.wait_for(lambda c: len(c.received("/results")) >= 30, timeout=10), target
        results = collector.received("/results")
        assert {r["result"]["kind"] for r in results} == {"detection"}
        boxes = [d for r in results for d in r["result"]["detections"]]
        assert boxes, f"{target}: no detection in 30 frames of people's photos"
        w, h = results[0]["frame"]["size_wh"]
        assert all(0 <= d["box_xyxy"][0] < d["box_xyxy"][2] <= w and 0 <= d["box_xyxy"][1] < d["box_xyxy"][3] <= h
                   for d in boxes)
        collector.close()
