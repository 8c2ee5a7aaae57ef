"""The candidates of an ``optimize`` run for a TFLite target (Raspberry Pi, phones, NPU cameras).

The route to TFLite is found, not hard-coded: the prepared ONNX reference goes along
``converters.routes.find_route("onnx", "tflite")`` (today ``onnx -> torch -> tflite``); its
last edge converts once per precision. Every candidate is validated against the ONNX
reference on the same held-out samples (moved to NHWC and int8 where the model wants them),
exactly as the ONNX Runtime candidates are.

- ``fp32``: the same function in LiteRT (the speed reference of a TFLite target); a TFLite
  model given by the user is its own fp32 candidate.
- ``fp16``: the fp32 file with float16 weights (``tflite -> tflite-fp16``, ai-edge-quantizer).
- ``int8-dynamic``: int8 weights, activations quantized at run time (``tflite -> tflite-int8``
  dynamic); float I/O, so never on an int8-only target.
- ``int8`` from a TFLite model: ``tflite -> tflite-int8`` static, calibrated, int8 I/O.
- ``int8`` from ONNX or PyTorch: PT2E static INT8: int8 weights per channel, int8 activations calibrated on the
  calibration samples, int8 input and output. On a target that requires int8 I/O (an NPU)
  every operator must be integer: one that is not is named and blocks the candidate.
  A detector whose decoder has a splitter (:mod:`edgekit.optimize.heads`) is cut at its raw heads
  first, with NHWC head outputs; its tail runs in the agent's decoder and is put back for
  validation, so it is judged on the same detections as the original.
- ``int8-mixed-K`` (targets that run float operators): when ``int8`` misses the budget, the
  K layer chains INT8 hurts most stay float, K searched as on the ONNX Runtime path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converters import PASSES
from converters.base import PassReport
from converters.onnx_torch import weight_attributes
from converters.routes import find_route
from converters.tflite_check import float_operators
from device_agent.runtimes import create_runtime
from edgekit.optimize.candidates.onnx import (
    Candidate,
    Workspace,
    evaluate,
    rank_float_chains,
    search_mixed,
)
from edgekit.optimize.heads import SPLITTERS, HeadSplit
from edgekit.optimize.model_io import in_layout
from edgekit.optimize.sensitivity import describe

TFLITE_PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class TfliteSource:
    """What the last edge converts: a program, and the head split it was cut with (if any)."""

    program: Path
    onnx: Path  # the ONNX model the program was converted from (layer names for mixed precision)
    split: HeadSplit | None = None


def torch_program(ws: Workspace, onnx_model: Path | None = None, name: str = "model") -> Path:
    """``onnx_model`` (default: the reference) carried to the last edge before TFLite (a torch program)."""
    route = find_route("onnx", "tflite")
    path: Path = onnx_model or ws.reference
    with ws.steps.step(f"Converting {name} along {' -> '.join(['onnx', *[e.dst for e in route[:-1]]])}"):
        for edge in route[:-1]:
            path = PASSES[edge.key](path, ws.work_dir / f"{name}.{edge.dst}.pt2").dst
    return path


def int8_source(ws: Workspace, full: TfliteSource) -> TfliteSource:
    """The source of INT8 candidates: the model cut at its heads where the decoder has a splitter."""
    splitter = SPLITTERS.get(ws.task.decoder) if ws.task.kind == "detection" else None
    if splitter is None:
        return full
    with ws.steps.step(f"Cutting the {ws.task.decoder} detector before its decode tail"):
        split = splitter(ws.reference, ws.task, ws.work_dir / "heads.onnx", ws.calibration[0][:1])
    return TfliteSource(torch_program(ws, split.path, "heads"), split.path, split)


def build_tflite(ws: Workspace, source: TfliteSource, precision: str, *, int8_only: bool = False,
                 float_nodes: tuple[str, ...] = (), attributes: dict[str, str] | None = None,
                 name: str | None = None) -> list[Candidate]:
    """One TFLite candidate at ``precision``, converted, validated and (``int8_only``) checked for float ops.

    ``float_nodes`` (int8): ONNX nodes of ``source.onnx`` to keep in float, a mixed-precision candidate;
    ``attributes``: :func:`weight_attributes` of ``source.onnx``, when the caller has it already."""
    route = find_route("onnx", "tflite")
    convert = PASSES[route[-1].key]
    name = name or precision
    dst = ws.work_dir / f"model.{name}.tflite"
    split = source.split
    heads = {"nhwc_outputs": list(range(len(split.heads)))} if split else {}
    if precision == "fp32":
        with ws.steps.step("Converting to TFLite FP32 (litert-torch)"):
            report = convert(source.program, dst, precision="fp32", **heads)
    else:
        calibration = np.asarray(ws.calibration[0], dtype=np.float32)
        if float_nodes and attributes is None:
            attributes = weight_attributes(source.onnx)
        attributes = attributes or {}
        float_layers = [attributes[n] for n in float_nodes if n in attributes]  # a split model lacks its tail's layers
        mixed = f", {len(float_layers)} layers in float" if float_layers else ""
        with ws.steps.step(f"Converting to TFLite INT8 ({len(calibration)} calibration samples, int8 I/O{mixed})"):
            report = convert(source.program, dst, precision="int8", calibration=calibration, float_layers=float_layers,
                             **heads)
    if split:
        report.details["head_split"] = split.details()
    note = f"LiteRT {precision}, NHWC input" + (
        f"; cut at {len(split.heads)} heads, tail decoded on the CPU" if split else "")
    agreement = evaluate(ws, dst, f"TFLite {name.upper()}", adapt=split.to_reference if split else None)
    candidate = Candidate(name, precision, dst, agreement, [report], note=note, task=split.task if split else None,
                          excluded_nodes=float_nodes)
    return [_check_integer(candidate, int8_only)]


def build_tflite_mixed(ws: Workspace, source: TfliteSource, full: Candidate) -> list[Candidate]:
    """INT8 that missed the budget, again with the layer chains INT8 hurts most kept in float.

    The chains are ranked on the ONNX reference with ONNX Runtime INT8 (a re-quantization per
    chain, seconds each, where a TFLite conversion takes half a minute); the same chains are then
    kept float in the PT2E quantizer. For targets that run float operators (not an int8-only NPU).
    """
    ranked = rank_float_chains(ws)
    attributes = weight_attributes(source.onnx)  # once for every attempt: it rebuilds the module
    full.note += f"; missed the budget; chains that help most in float: {describe(ranked, 3)}"

    def attempt(count: int) -> Candidate:
        nodes = tuple(node for chain in ranked[:count] for node in chain.nodes)
        candidate = build_tflite(ws, source, "int8", float_nodes=nodes, attributes=attributes,
                                 name=f"int8-mixed-{count}")[0]
        candidate.precision = "int8-mixed"
        candidate.note += f"; {count} layer chain(s) ({len(nodes)} layers) kept in float, chosen by output SNR gain"
        return candidate

    return search_mixed(ws, len(ranked), attempt)


def build_quantized(ws: Workspace, fp32: Path, name: str, *, int8_only: bool = False) -> list[Candidate]:
    """``fp16``, ``int8-dynamic`` or ``int8`` (static) from the fp32 TFLite file, with ai-edge-quantizer."""
    dst = ws.work_dir / f"model.{name}.tflite"
    report: PassReport
    if name == "fp16":
        with ws.steps.step("Converting to TFLite FP16 weights (ai-edge-quantizer)"):
            report = PASSES["tflite->tflite-fp16"](fp32, dst)
        note = "float16 weights; fp16 compute where the CPU has FP16 arithmetic"
    elif name == "int8-dynamic":
        with ws.steps.step("Quantizing to TFLite dynamic-range INT8 (ai-edge-quantizer)"):
            report = PASSES["tflite->tflite-int8"](fp32, dst, mode="dynamic")
        note = "int8 weights, activations quantized at run time, float I/O"
    else:
        model_input = create_runtime("tflite", fp32).inputs[0]
        calibration = in_layout(model_input, np.asarray(ws.calibration[0], dtype=np.float32))
        with ws.steps.step(f"Quantizing to TFLite INT8 ({len(calibration)} calibration samples, ai-edge-quantizer)"):
            report = PASSES["tflite->tflite-int8"](fp32, dst, mode="static", calibration=calibration)
        note = "static int8, int8 I/O (ai-edge-quantizer)"
    candidate = Candidate(name, name, dst, evaluate(ws, dst, f"TFLite {name.upper()}"), [report], note=note)
    return [_check_integer(candidate, int8_only)]


def _check_integer(candidate: Candidate, int8_only: bool) -> Candidate:
    """On an int8-only target, every operator must be integer: name the ones that are not."""
    if int8_only:
        floats = float_operators(candidate.path)
        if floats:
            shown = "; ".join(str(op) for op in floats[:6]) + (
                f"; and {len(floats) - 6} more" if len(floats) > 6 else "")
            candidate.blocker = f"{len(floats)} operator(s) stay float and would fall back to the CPU: {shown}"
    return candidate
