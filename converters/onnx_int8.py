"""``onnx-int8-static``: post-training static INT8 quantization for ONNX Runtime.

The defaults are the settings measured to make ONNX Runtime's CPU provider run integer
kernels (see benchmarks/quantize.py): QDQ format, uint8 activations (asymmetric, so a
ReLU6 output uses the whole range), int8 per-channel symmetric weights. With these,
every Conv of a MobileNetV2 fuses into QLinearConv/ConvInteger-class kernels. The
``ort-default`` preset reproduces ``quantize_static`` with its own defaults, for comparison.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np

from converters.base import PassReport, register_pass, timed
from converters.errors import ConversionError, MissingDependencyError

Preset = Literal["edgekit", "ort-default"]
CalibMethod = Literal["minmax", "percentile", "entropy"]
COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def _quantization() -> Any:
    try:
        from onnxruntime import quantization
    except ImportError as exc:
        raise MissingDependencyError("onnxruntime", "host", "INT8 quantization") from exc
    return quantization


class ArrayReader:
    """Feeds calibration samples (``[N, *input_shape]`` per input) to ORT's calibrator."""

    def __init__(self, input_names: Sequence[str], samples: Sequence[np.ndarray]) -> None:
        if not samples or len(samples[0]) == 0:
            raise ConversionError("INT8 calibration needs at least one sample; got none")
        self._names = list(input_names)
        self._samples = samples
        self._iter: Iterator[dict[str, np.ndarray]] | None = None

    def _feeds(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(self._samples[0])):
            yield {name: arr[i : i + 1] for name, arr in zip(self._names, self._samples)}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._iter is None:
            self._iter = self._feeds()
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = None


def quantized_compute_nodes(model_path: Path) -> tuple[int, int]:
    """(compute nodes fed by a DequantizeLinear, all compute nodes): how much runs in integer."""
    import onnx

    model = onnx.load(str(model_path))
    producers = {out: node.op_type for node in model.graph.node for out in node.output}
    compute = [n for n in model.graph.node if n.op_type in COMPUTE_OPS]
    fed = [n for n in compute if n.input and producers.get(n.input[0]) == "DequantizeLinear"]
    return len(fed), len(compute)


class _DropHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage() and \
            "run pre-processing before quantization" not in record.getMessage()


@contextmanager
def _quiet_preprocess_hint() -> Iterator[None]:
    """ORT logs a hint to run its pre-processing; ``onnx-prepare`` already did that job."""
    root = logging.getLogger()
    hint = _DropHint()
    root.addFilter(hint)
    try:
        yield
    finally:
        root.removeFilter(hint)


@register_pass("onnx-int8-static")
def quantize_int8_static(
    src: Path,
    dst: Path,
    /,
    *,
    calibration: Sequence[np.ndarray],
    input_names: Sequence[str],
    preset: Preset = "edgekit",
    calibrate_method: CalibMethod = "minmax",
    nodes_to_exclude: Sequence[str] = (),
) -> PassReport:
    """Quantize ``src`` to INT8 with ``calibration`` (one array ``[N, ...]`` per model input)."""
    q = _quantization()
    method = {
        "minmax": q.CalibrationMethod.MinMax,
        "percentile": q.CalibrationMethod.Percentile,
        "entropy": q.CalibrationMethod.Entropy,
    }[calibrate_method]
    if preset == "edgekit":
        settings: dict[str, Any] = dict(
            quant_format=q.QuantFormat.QDQ,
            activation_type=q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8,
            per_channel=True,
            reduce_range=False,
            calibrate_method=method,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
    else:
        settings = {}
    dst.parent.mkdir(parents=True, exist_ok=True)
    with timed() as elapsed, _quiet_preprocess_hint():
        try:
            q.quantize_static(
                str(src),
                str(dst),
                ArrayReader(input_names, calibration),
                nodes_to_exclude=list(nodes_to_exclude) or None,
                **settings,
            )
        except (ValueError, RuntimeError, KeyError) as exc:
            raise ConversionError(f"onnxruntime quantize_static failed on {src.name}: {exc}") from exc
    fused, total = quantized_compute_nodes(dst)
    return PassReport(
        "onnx-int8-static",
        src,
        dst,
        elapsed(),
        {
            "preset": preset,
            "calibrate_method": calibrate_method if preset == "edgekit" else "minmax",
            "calibration_samples": int(len(calibration[0])),
            "excluded_nodes": list(nodes_to_exclude),
            "int8_compute_nodes": fused,
            "compute_nodes": total,
        },
    )
