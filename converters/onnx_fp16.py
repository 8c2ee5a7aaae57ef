"""``onnx-fp16``: float16 weights and activations, float32 inputs and outputs.

For GPU targets (Jetson): TensorRT and CUDA run fp16 natively. On a CPU provider fp16 is
slower than fp32 (measured), so CPU profiles do not list it.
"""

from __future__ import annotations

from pathlib import Path

from converters.base import PassReport, register_pass, timed
from converters.errors import ConversionError, MissingDependencyError


@register_pass("onnx-fp16")
def convert_fp16(src: Path, dst: Path, /, *, keep_io_types: bool = True) -> PassReport:
    """Convert ``src`` to fp16; with ``keep_io_types`` the device still feeds float32."""
    try:
        import onnx
        from onnxconverter_common import float16
    except ImportError as exc:
        raise MissingDependencyError("onnxconverter_common", "host", "FP16 conversion") from exc
    with timed() as elapsed:
        model = onnx.load(str(src))
        try:
            converted = float16.convert_float_to_float16(model, keep_io_types=keep_io_types)
        except (ValueError, RuntimeError) as exc:
            raise ConversionError(f"fp16 conversion of {src.name} failed: {exc}") from exc
        dst.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(converted, str(dst))
    return PassReport("onnx-fp16", src, dst, elapsed(), {"keep_io_types": keep_io_types})
