"""The integer-only check on real TFLite files (built by tests/support/tflite_builder.py, run by LiteRT)."""

from __future__ import annotations

from pathlib import Path

import pytest

from converters.errors import ConversionError
from converters.tflite_check import float_operators, require_integer_only
from tests.support.tflite_builder import tiny_tflite_conv


def test_a_full_integer_model_passes(tmp_path: Path) -> None:
    path = tiny_tflite_conv(tmp_path / "int8.tflite", int8=True)
    assert float_operators(path) == []
    require_integer_only(path)


def test_every_float_operator_is_named(tmp_path: Path) -> None:
    path = tiny_tflite_conv(tmp_path / "float.tflite", int8=False)
    found = float_operators(path)
    assert [op.op for op in found] == ["CONV_2D", "DEPTHWISE_CONV_2D", "RESHAPE", "FULLY_CONNECTED"]
    assert [op.index for op in found] == [0, 1, 2, 3]
    assert "conv_out (float32)" in found[0].float_tensors
    with pytest.raises(ConversionError, match=r"not integer-only: 4 operator\(s\) would fall back to the CPU on "
                                              r"camera-npu-int8: #0 CONV_2D \(input \(float32\)"):
        require_integer_only(path, target="camera-npu-int8")


def test_an_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer")
    with pytest.raises(ConversionError, match="LiteRT cannot load .*bad.tflite"):
        float_operators(bad)
