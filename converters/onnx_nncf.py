"""``onnx-int8-nncf``: NNCF's post-training quantization of an ONNX model, default settings.

Kept as a pass so the benchmark compares it side by side with ``onnx-int8-static``. On
ONNX Runtime's CPU provider its output runs slower than ours (a Clip left between a Conv
and its QuantizeLinear blocks the fusion into integer kernels): see benchmarks/quantize.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from converters.base import PassReport, register_pass, timed
from converters.errors import ConversionError, MissingDependencyError
from converters.onnx_int8 import quantized_compute_nodes


@register_pass("onnx-int8-nncf")
def quantize_nncf(
    src: Path,
    dst: Path,
    /,
    *,
    calibration: Sequence[np.ndarray],
    input_names: Sequence[str],
) -> PassReport:
    """Quantize ``src`` with ``nncf.quantize`` (defaults) on ``calibration``."""
    try:
        import nncf
        import onnx
    except ImportError as exc:
        raise MissingDependencyError("nncf", "host", "NNCF quantization") from exc
    count = len(calibration[0])
    items = [{name: arr[i : i + 1] for name, arr in zip(input_names, calibration)} for i in range(count)]
    with timed() as elapsed:
        model = onnx.load(str(src))
        try:
            quantized = nncf.quantize(model, nncf.Dataset(items), subset_size=count)
        except (ValueError, RuntimeError, nncf.ValidationError) as exc:
            raise ConversionError(f"nncf.quantize failed on {src.name}: {exc}") from exc
        dst.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(quantized, str(dst))
    fused, total = quantized_compute_nodes(dst)
    return PassReport(
        "onnx-int8-nncf", src, dst, elapsed(), {"int8_compute_nodes": fused, "compute_nodes": total, "samples": count}
    )
