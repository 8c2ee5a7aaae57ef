"""Bias correction moves the quantized model's per-channel output means back to the float model's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters.errors import ConversionError
from converters.onnx_bias_correction import correct_bias
from converters.onnx_int8 import quantize_int8_static
from converters.onnx_prepare import prepare_onnx
from edgekit.optimize.measure import run_all
from edgekit.optimize.sensitivity import snr_db
from tests.support.tinymodels import tiny_classifier


def test_bias_correction_raises_output_snr(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    reference = prepare_onnx(tiny_classifier(tmp_path / "tiny.onnx", size=32), tmp_path / "ref.onnx").dst
    calib = [rng.uniform(0, 1, (48, 3, 32, 32)).astype(np.float32)]
    held_out = [rng.uniform(0, 1, (32, 3, 32, 32)).astype(np.float32)]
    quantized = quantize_int8_static(reference, tmp_path / "q.onnx", calibration=calib, input_names=["input"]).dst
    calls: list[tuple[int, int]] = []
    report = correct_bias(quantized, tmp_path / "c.onnx", reference=reference, calibration=calib, input_names=["input"],
                          progress=lambda done, total: calls.append((done, total)))
    assert report.details["layers"] == 3  # conv1, conv2, fc
    assert calls == [(1, 3), (2, 3), (3, 3)]  # layer i of N, for the progress display
    float_out = run_all(reference, held_out)
    before = snr_db(float_out, run_all(quantized, held_out))
    after = snr_db(float_out, run_all(report.dst, held_out))
    assert after > before


def test_a_float_model_has_nothing_to_correct(tmp_path: Path) -> None:
    model = tiny_classifier(tmp_path / "tiny.onnx")
    with pytest.raises(ConversionError, match="no quantized layer with an int32 bias"):
        correct_bias(model, tmp_path / "c.onnx", reference=model, calibration=[np.zeros((2, 3, 32, 32), np.float32)],
                     input_names=["input"])
