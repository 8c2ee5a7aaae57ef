"""The candidates of an ``optimize`` run for a TFLite target (Raspberry Pi, phones, NPU cameras).

The route to TFLite is found, not hard-coded: the prepared ONNX reference goes along
``converters.routes.find_route("onnx", "tflite")`` (today ``onnx -> torch -> tflite``); its
last edge converts once per precision. Every candidate is validated against the ONNX
reference on the same held-out samples (moved to NHWC and int8 where the model wants them),
exactly as the ONNX Runtime candidates are.

- ``fp32``: the same function in LiteRT (the speed reference of a TFLite target).
- ``int8``: PT2E static INT8: int8 weights per channel, int8 activations calibrated on the
  calibration samples, int8 input and output. On a target that requires int8 I/O (an NPU)
  every operator must be integer: one that is not is named and blocks the candidate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from converters import PASSES
from converters.routes import find_route
from converters.tflite_check import float_operators
from edgekit.candidates import Candidate, Workspace, evaluate

TFLITE_PRECISIONS = ("fp32", "int8")


def torch_program(ws: Workspace) -> Path:
    """The reference carried to the last edge before TFLite (a torch program), once per run."""
    route = find_route("onnx", "tflite")
    path: Path = ws.reference
    with ws.steps.step(f"Converting the reference along {' -> '.join(['onnx', *[e.dst for e in route[:-1]]])}"):
        for edge in route[:-1]:
            path = PASSES[edge.key](path, ws.work_dir / f"model.{edge.dst}.pt2").dst
    return path


def build_tflite(ws: Workspace, program: Path, precision: str, *, int8_only: bool = False) -> list[Candidate]:
    """One TFLite candidate at ``precision``, converted, validated and (``int8_only``) checked for float ops."""
    route = find_route("onnx", "tflite")
    convert = PASSES[route[-1].key]
    dst = ws.work_dir / f"model.{precision}.tflite"
    if precision == "fp32":
        with ws.steps.step("Converting to TFLite FP32 (litert-torch)"):
            report = convert(program, dst, precision="fp32")
    else:
        calibration = np.asarray(ws.calibration[0], dtype=np.float32)
        with ws.steps.step(f"Converting to TFLite INT8 ({len(calibration)} calibration samples, int8 I/O)"):
            report = convert(program, dst, precision="int8", calibration=calibration)
    candidate = Candidate(precision, precision, dst, evaluate(ws, dst, f"TFLite {precision.upper()}"),
                          [report], note=f"LiteRT {precision}, NHWC input")
    if int8_only:
        floats = float_operators(dst)
        if floats:
            shown = "; ".join(str(op) for op in floats[:6]) + (f"; and {len(floats) - 6} more" if len(floats) > 6 else "")
            candidate.blocker = f"{len(floats)} operator(s) stay float and would fall back to the CPU: {shown}"
    return [candidate]
