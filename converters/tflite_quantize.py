"""TFLite -> quantized TFLite with ai-edge-quantizer: the edges ``tflite -> tflite-fp16`` and
``tflite -> tflite-int8``.

They take a float TFLite file, whether the user brought it or ``torch -> tflite`` wrote it,
and run in the isolated LiteRT environment (:mod:`converters.litert_env`), where
ai-edge-quantizer is installed beside litert-torch:

- ``tflite->tflite-fp16``: weights stored as float16 (half the size; XNNPACK computes in fp16
  on ARM cores with FP16 arithmetic, such as the Raspberry Pi 5's Cortex-A76, and in fp32 on
  x86, where it is no faster).
- ``tflite->tflite-int8``: ``static`` (default): int8 per-channel weights and int8 activations
  calibrated on real samples, int8 input and output; ``dynamic``: int8 weights, activations
  quantized at run time (no calibration, float input and output).

Calibration samples are given in the model's own input layout (NHWC for an image model).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from converters.base import PassReport, register_pass, timed
from converters.errors import ConversionError
from converters.litert_env import run_worker

_WORKER = Path(__file__).with_name("aeq_worker.py")


def _quantize(key: str, src: Path, dst: Path, mode: str, calibration: np.ndarray | None,
              log: Callable[[str], None] | None) -> PassReport:
    if not Path(src).is_file():
        raise ConversionError(f"{key}: {str(src)!r} does not exist; expected a float .tflite model")
    with timed() as elapsed, tempfile.TemporaryDirectory(prefix="edgekit-aeq-") as tmp:
        request: dict[str, Any] = {"model": str(src), "output": str(dst), "mode": mode, "calibration": None}
        if calibration is not None:
            request["calibration"] = str(Path(tmp) / "calibration.npy")
            np.save(request["calibration"], np.asarray(calibration, dtype=np.float32))
        dst.parent.mkdir(parents=True, exist_ok=True)
        summary = run_worker(_WORKER, request, log=log, what=f"ai-edge-quantizer ({mode}) on {str(src)!r}")
    return PassReport(key, Path(src), dst, elapsed(), {"mode": mode, "calibrated": summary["calibrated"],
                                                       "quantizer_seconds": summary["seconds"]})


@register_pass("tflite->tflite-fp16")
def quantize_fp16(src: Path, dst: Path, /, *, log: Callable[[str], None] | None = None) -> PassReport:
    """Float16 weights, float compute and I/O."""
    return _quantize("tflite->tflite-fp16", src, dst, "fp16", None, log)


@register_pass("tflite->tflite-int8")
def quantize_int8(src: Path, dst: Path, /, *, mode: str = "static", calibration: np.ndarray | None = None,
                  log: Callable[[str], None] | None = None) -> PassReport:
    """INT8: ``static`` (calibrated activations, int8 I/O) or ``dynamic`` (activations at run time)."""
    if mode not in ("static", "dynamic"):
        raise ConversionError(f"tflite->tflite-int8: mode {mode!r} is not 'static' or 'dynamic'")
    if mode == "static" and (calibration is None or len(calibration) == 0):
        raise ConversionError("tflite->tflite-int8 static needs calibration samples (an array [N, ...] of real "
                              "inputs in the model's layout)")
    return _quantize("tflite->tflite-int8", src, dst, "int8" if mode == "static" else "int8-dynamic",
                     calibration if mode == "static" else None, log)
