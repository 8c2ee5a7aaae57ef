"""Work an optimize run does once and shares across the INT8 and mixed-precision tries."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest

import converters.onnx_int8 as onnx_int8
from converters.onnx_bias_correction import correct_bias
from converters.onnx_int8 import quantize_int8_static
from converters.onnx_prepare import prepare_onnx
from device_agent.bundle.manifest import TaskSpec
from edgekit.optimize.candidates.onnx import Workspace, build_int8
from edgekit.optimize.measure import run_all
from edgekit.progress import Steps
from tests.support.tinymodels import tiny_classifier


def _reference(tmp_path: Path) -> tuple[Path, list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    reference = prepare_onnx(tiny_classifier(tmp_path / "tiny.onnx", size=32), tmp_path / "ref.onnx").dst
    calib = [rng.uniform(0, 1, (40, 3, 32, 32)).astype(np.float32)]
    held_out = [rng.uniform(0, 1, (24, 3, 32, 32)).astype(np.float32)]
    return reference, calib, held_out


def test_calibration_and_bias_shifts_are_measured_once_across_the_tries(tmp_path: Path) -> None:
    reference, calib, held_out = _reference(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    ws = Workspace(work, reference, ["input"], calib, held_out, run_all(reference, held_out),
                   TaskSpec(kind="classification", decoder="softmax-topk"), -1.0, Steps())
    candidates = build_int8(ws)  # a negative budget: every try misses, so every mixed try runs
    assert [c.name for c in candidates] == ["int8", "int8-mixed-1"]
    quantized = [c.passes[0].details for c in candidates]
    corrected = [c.passes[1].details for c in candidates]
    assert [q["calibration"] for q in quantized] == ["measured", "cached"]
    assert corrected[0]["measured"] == corrected[0]["layers"] == 3 and corrected[0]["reused"] == 0
    # conv1 -> conv2 stays float: only fc is quantized, and its shift is the one measured on full INT8
    assert corrected[1]["measured"] == 0 and corrected[1]["reused"] == 1


def test_reused_shifts_give_the_biases_a_measurement_would(tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    reference, calib, _ = _reference(tmp_path)
    quantized = quantize_int8_static(reference, tmp_path / "q.onnx", calibration=calib, input_names=["input"]).dst
    cache = tmp_path / "shifts.json"
    measured = correct_bias(quantized, tmp_path / "a.onnx", reference=reference, calibration=calib,
                            input_names=["input"], shift_cache=cache)
    reused = correct_bias(quantized, tmp_path / "b.onnx", reference=reference, calibration=calib,
                          input_names=["input"], shift_cache=cache)
    assert (measured.details["measured"], reused.details["measured"], reused.details["reused"]) == (3, 0, 3)
    assert reused.details["mean_abs_shift"] == measured.details["mean_abs_shift"]

    def initializers(path: Path) -> dict[str, bytes]:
        return {i.name: numpy_helper.to_array(i).tobytes() for i in onnx.load(str(path)).graph.initializer}

    assert initializers(tmp_path / "a.onnx") == initializers(tmp_path / "b.onnx")


def test_remembered_weight_quantization_writes_the_same_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference, calib, _ = _reference(tmp_path)
    ranges = tmp_path / "ranges.json"

    def quantize(name: str, exclude: tuple[str, ...]) -> bytes:
        path = quantize_int8_static(reference, tmp_path / name, calibration=calib, input_names=["input"],
                                    nodes_to_exclude=exclude, calibration_cache=ranges).dst
        return path.read_bytes()

    remembered = [quantize("m0.onnx", ()), quantize("m1.onnx", ("fc",)), quantize("m2.onnx", ())]
    monkeypatch.setattr(onnx_int8, "memoized_weight_quantization", contextlib.nullcontext)
    computed = [quantize("c0.onnx", ()), quantize("c1.onnx", ("fc",))]
    assert remembered == [computed[0], computed[1], computed[0]]
