"""``onnx-int8-static``: post-training static INT8 quantization for ONNX Runtime.

The defaults are the settings measured to make ONNX Runtime's CPU provider run integer
kernels (see benchmarks/quantize.py): QDQ format, uint8 activations (asymmetric, so a
ReLU6 output uses the whole range), int8 per-channel symmetric weights. With these,
every Conv of a MobileNetV2 fuses into QLinearConv/ConvInteger-class kernels. The
``ort-default`` preset reproduces ``quantize_static`` with its own defaults, for comparison.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np

from converters.base import PassReport, register_pass, timed
from converters.errors import ConversionError, MissingDependencyError
from converters.onnx_int8_memo import memoized_weight_quantization

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


def _nodes_of(model_path: Path, op_types: tuple[str, ...]) -> list[str]:
    """Names of the nodes of these types. Softmax stays float: 8 bits over [0, 1] flatten
    the distributions a YOLOv8 DFL head reads box edges from."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return [n.name for n in model.graph.node if n.op_type in op_types and n.name]


def output_tail(model_path: Path) -> list[str]:
    """Nodes between the last compute layers and the graph outputs (decode, concat, sigmoid ...).

    They are left in float: a detector's output tail concatenates box coordinates in pixels
    with class scores in [0, 1], and one 8-bit scale across both wipes out the scores.
    """
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    producers = {out: node for node in model.graph.node for out in node.output}
    tail: dict[str, None] = {}
    stack = [o.name for o in model.graph.output]
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        node = producers.get(name)
        if node is None or node.name in seen or node.op_type in COMPUTE_OPS:
            continue
        seen.add(node.name)
        tail[node.name] = None
        stack.extend(node.input)
    return list(tail)


def dequantize_outputs(path: Path) -> int:
    """Remove the QuantizeLinear/DequantizeLinear pair in front of each graph output, in place."""
    import onnx

    model = onnx.load(str(path))
    producers = {out: node for node in model.graph.node for out in node.output}
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    removed = 0
    for output in model.graph.output:
        dq = producers.get(output.name)
        q = producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if (dq is None or q is None or q.op_type != "QuantizeLinear" or q.input[0] not in producers
                or uses[q.input[0]] != 1):
            continue
        source = producers[q.input[0]]
        source.output[list(source.output).index(q.input[0])] = output.name
        model.graph.node.remove(dq)
        model.graph.node.remove(q)
        removed += 1
    if removed:
        used = {name for node in model.graph.node for name in node.input}
        for init in [i for i in model.graph.initializer if i.name not in used]:
            model.graph.initializer.remove(init)
        onnx.save(model, str(path))
    return removed


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


def _settings(q: Any, preset: Preset, calibrate_method: CalibMethod, calibration_cache: Path | None) -> dict[str, Any]:
    """``quantize_static``'s keyword options for ``preset``; ``ort-default`` keeps its own defaults (a cache aside)."""
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
    if calibration_cache is not None and "calibration_cache_path" in inspect.signature(q.quantize_static).parameters:
        settings["calibration_cache_path"] = str(calibration_cache)
    return settings


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
    calibration_cache: Path | None = None,
    float_outputs: bool | None = None,
) -> PassReport:
    """Quantize ``src`` to INT8 with ``calibration`` (one array ``[N, ...]`` per model input).

    ``calibration_cache`` (a JSON file) keeps the activation ranges of the first call, so
    re-quantizing with other ``nodes_to_exclude`` skips the calibration run. With
    ``float_outputs`` (default for the ``edgekit`` preset) the graph outputs are left in
    float: 256 levels across a classifier's logits turn near-ties into ties.
    """
    q = _quantization()
    settings = _settings(q, preset, calibrate_method, calibration_cache)
    keep_float = preset == "edgekit" if float_outputs is None else float_outputs
    tail = output_tail(src) if keep_float else []
    softmax = _nodes_of(src, ("Softmax",)) if preset == "edgekit" else []
    excluded = list(dict.fromkeys([*nodes_to_exclude, *tail, *softmax]))
    dst.parent.mkdir(parents=True, exist_ok=True)
    calibrated = calibration_cache is None or not calibration_cache.is_file()
    with timed() as elapsed, _quiet_preprocess_hint(), memoized_weight_quantization():
        try:
            q.quantize_static(
                str(src),
                str(dst),
                ArrayReader(input_names, calibration),
                nodes_to_exclude=excluded or None,
                **settings,
            )
        except (ValueError, RuntimeError, KeyError) as exc:
            raise ConversionError(f"onnxruntime quantize_static failed on {src.name}: {exc}") from exc
        if keep_float:
            dequantize_outputs(dst)
    fused, total = quantized_compute_nodes(dst)
    return PassReport(
        "onnx-int8-static",
        src,
        dst,
        elapsed(),
        {
            "preset": preset,
            "calibrate_method": calibrate_method if preset == "edgekit" else "minmax",
            "calibration_samples": len(calibration[0]),
            "calibration": "measured" if calibrated else "cached",  # ranges read from calibration_cache
            "excluded_nodes": list(nodes_to_exclude),
            "float_output_tail": tail,
            "int8_compute_nodes": fused,
            "compute_nodes": total,
        },
    )
