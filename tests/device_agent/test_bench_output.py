"""What the benchmark says it measured: the peak of the precision mix computed, the pipeline's
publish stage timed as the agent does it (group commit on its own thread)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device_agent.bench.options import BenchOptions
from device_agent.bench.runner import benchmark_model
from tests.support.tinymodels import tiny_classifier

CONV2_MACS = 32 * 16 * 16 * 16 * 9
TOTAL_MACS = 1_290_560
TARGET = {"target": "test-board", "target_peak_gops": {"int8": 1000.0, "fp32": 250.0}}


def _mixed(tmp_path: Path) -> Path:
    """The tiny classifier in QDQ INT8 with conv2 (most of its MACs) left in float, as a mixed candidate."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self._feeds = iter([{"input": rng.normal(size=(1, 3, 32, 32)).astype(np.float32)} for _ in range(4)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    out = tmp_path / "mixed.onnx"
    quantize_static(str(tiny_classifier(tmp_path / "float.onnx")), str(out), Frames(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=["conv2"])
    return out


def test_a_mixed_model_is_set_against_the_peak_of_its_precision_mix(tmp_path: Path) -> None:
    options = BenchOptions(runs=5, warmup=1, profile=False, **TARGET)
    record = benchmark_model(_mixed(tmp_path), options)
    assert record.precision == "int8" and record.peak is not None and record.gops is not None
    fp32_share = CONV2_MACS / TOTAL_MACS
    # at peak: the INT8 MACs at 1000 GOP/s and the float ones at 250 GOP/s; not the pure INT8 1000
    expected = 1.0 / ((1 - fp32_share) / 1000.0 + fp32_share / 250.0)
    assert record.peak.gops == pytest.approx(expected, rel=1e-3) and record.peak.gops < 500
    assert record.peak.precision == "fp32+int8"
    assert "of MACs fp32 at 250 GOP/s" in record.peak.source and "target profile test-board" in record.peak.source
    assert record.percent_of_peak == pytest.approx(100.0 * record.gops / record.peak.gops, rel=1e-2)


def test_a_pure_model_keeps_its_own_peak(tmp_path: Path) -> None:
    options = BenchOptions(runs=5, warmup=1, profile=False, **TARGET)
    record = benchmark_model(tiny_classifier(tmp_path / "float.onnx"), options)
    assert record.peak is not None and (record.peak.precision, record.peak.gops) == ("fp32", 250.0)
