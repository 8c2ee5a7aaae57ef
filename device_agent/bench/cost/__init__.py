"""Model cost: multiply-accumulates (MACs), FLOPs (= 2 x MACs) and parameters of a model file.

Why: a latency alone does not say whether the model or the device is slow; MACs per second
set against the CPU's peak (:mod:`device_agent.bench.hardware`) does, as a roofline.

What is counted follows fvcore, thop and what papers report: the MACs of convolutions
(depthwise, grouped and transposed included) and of matrix products (Gemm, MatMul,
fully-connected, batch-matmul), at the batch size of the model's static shapes. Element-wise
ops, pooling, activations and normalization are not counted. Parameters are the elements of
the constant tensors; quantization scales and zero-points, operator settings (clip bounds,
pads) and integer shape/index tensors are left out, so an FP32 model and its INT8 version
report the same count. Other constants (YOLO anchor grids, say) do count: a file does not say
which constants were trained.

Readers register by file suffix in :data:`COUNTERS`: ``.onnx`` (:mod:`.onnx`: ``onnx`` with
its shape inference for intermediate shapes) and ``.tflite`` (:mod:`.tflite`: the flatbuffer
read with LiteRT's generated schema or the ``tflite`` package; no interpreter). Both modules
import their reader on use: a device may have neither.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_agent.errors import CostError
from device_agent.registry import Registry


@dataclass(frozen=True)
class OpCost:
    """The MACs of one counted compute op."""

    op: str
    """Operator type as the format names it, e.g. ``Conv`` or ``CONV_2D``."""
    name: str
    """Node name, or ``<op>_<index>`` (index in graph order) when the node has none."""
    macs: int
    precision: str = "fp32"
    """What this op computes in: ``int8`` (quantized inputs and weights), ``fp16`` or ``fp32``."""


@dataclass(frozen=True)
class ModelCost:
    """MACs and parameters of a model, and one sentence saying what was counted."""

    macs: int
    params: int
    ops: tuple[OpCost, ...]
    """Every counted compute op, in graph order."""
    counted: str
    """What is counted, in one sentence shown to users next to the numbers."""
    precision: str = "fp32"
    """What the counted ops compute in: ``int8`` (quantized), ``fp16`` (half weights) or ``fp32``."""

    @property
    def flops(self) -> int:
        """Floating-point (or integer) operations: one MAC is a multiply and an add."""
        return 2 * self.macs

    def by_op_type(self) -> dict[str, int]:
        """MACs summed per op type, largest first."""
        totals: dict[str, int] = {}
        for op in self.ops:
            totals[op.op] = totals.get(op.op, 0) + op.macs
        return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))

    def macs_by_precision(self) -> dict[str, int]:
        """MACs summed per precision the ops compute in, largest first: a mixed-precision model has
        several (``{"int8": ..., "fp32": ...}``), which is what its peak must be weighed by."""
        totals: dict[str, int] = {}
        for op in self.ops:
            totals[op.precision] = totals.get(op.precision, 0) + op.macs
        return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))

    def to_json(self) -> dict[str, Any]:
        return {
            "macs": self.macs,
            "flops": self.flops,
            "params": self.params,
            "by_op_type": self.by_op_type(),
            "counted": self.counted,
            "precision": self.precision,
        }


Counter = Callable[[Path], ModelCost]
COUNTERS: Registry[Counter] = Registry("cost counter")
"""Cost counters by lower-case file suffix (``.onnx``, ``.tflite``)."""


def register_counter(suffix: str) -> Callable[[Counter], Counter]:
    """Register the decorated function as the cost counter for files ending in ``suffix``."""
    return COUNTERS.register(suffix)


def model_cost(path: Path | str) -> ModelCost:
    """MACs, FLOPs and parameters of the model file at ``path``, chosen by its suffix.

    Raises :class:`CostError` for an unknown suffix, a missing or unreadable file, a missing
    optional reader module, or a counted op whose shapes are not static.
    """
    path = Path(path)
    counter = COUNTERS.get(path.suffix.lower())
    if counter is None:
        expected = " or ".join(COUNTERS.names())
        raise CostError(f"cannot count the cost of {str(path)!r}: expected a {expected} file")
    if not path.is_file():
        raise CostError(f"cannot count the cost of {str(path)!r}: the file does not exist")
    return counter(path)


def numel(shape: Iterable[int]) -> int:
    return math.prod(shape)


def unknown_shape(path: Path, node: str, op: str, tensor: str, shown: str) -> CostError:
    return CostError(
        f"cannot count the MACs of node {node!r} ({op}) in {str(path)!r}: the shape of {tensor!r} is "
        f"{shown}; the shapes must be static (fix the input shapes of the model first)"
    )


def is_static(dims: tuple[int | str, ...]) -> bool:
    return all(isinstance(d, int) and d > 0 for d in dims)


def shown(dims: tuple[int | str, ...]) -> str:
    return "[" + ", ".join(map(str, dims)) + "]"


# The counters register themselves; they import their readers (onnx, LiteRT) only when used.
from device_agent.bench.cost import onnx as _onnx  # noqa: E402,F401  isort: skip
from device_agent.bench.cost import tflite as _tflite  # noqa: E402,F401  isort: skip
