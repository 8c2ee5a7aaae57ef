"""The op registry of ``onnx -> torch``: ``OPS``, the ``@op`` decorator, :class:`Node`.

An op function gets the :class:`Node` (attributes parsed, the build-time value of every
constant input at hand) and the input tensors, and returns a tensor or a tuple of them. The
same function runs while the module is built, on example or constant tensors (which folds
shape arithmetic into constants and checks every attribute early), and then in ``forward``.

Inputs an op lists in ``static`` (shapes, axes, pads, scales) are read at build time with
``node.ints``/``node.const`` and arrive as ``None`` when they are constants. A ``prepare``
hook turns constant inputs into the tensors the op wants at run time, such as a transposed
Linear weight; the module registers floating-point ones as ``nn.Parameter``, so Conv and
Linear weights reach ``F.conv2d``/``F.linear`` as parameters, not as tensors computed by
other ops (the PT2E quantizer looks for exactly that).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from onnx import TensorProto
from torch import Tensor

from converters.errors import ConversionError
from device_agent.registry import Registry

OpFn = Callable[..., "Tensor | Sequence[Tensor]"]
Prepare = Callable[["Node"], dict[int, "np.ndarray | None"]]

#: ONNX op type -> the function that computes it with torch ops.
OPS: Registry[OpFn] = Registry("ONNX op")
#: ONNX op type -> which constant inputs the op reads at build time or wants in another form.
PREPARE: Registry[Prepare] = Registry("ONNX op plan")
#: Ops whose outputs are known at build time whatever their inputs (all shapes are static).
ALWAYS_CONSTANT = frozenset({"Shape", "Size"})

DTYPES: dict[int, torch.dtype] = {
    TensorProto.FLOAT: torch.float32, TensorProto.DOUBLE: torch.float64, TensorProto.FLOAT16: torch.float16,
    TensorProto.BFLOAT16: torch.bfloat16, TensorProto.INT8: torch.int8, TensorProto.UINT8: torch.uint8,
    TensorProto.INT16: torch.int16, TensorProto.INT32: torch.int32, TensorProto.INT64: torch.int64,
    TensorProto.BOOL: torch.bool,
}


@dataclass(frozen=True)
class Node:
    """One ONNX node as the op functions see it.

    ``consts[i]`` is input ``i``'s value when it is known at build time (``None`` when it is
    computed at run time or absent), ``shapes[i]`` its static shape either way.
    """

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any]
    consts: tuple[np.ndarray | None, ...]
    shapes: tuple[tuple[int, ...] | None, ...]
    opset: int
    prepared: frozenset[int] = frozenset()  # inputs that arrive as what ``prepare`` made of them

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def has(self, i: int) -> bool:
        return i < len(self.inputs) and bool(self.inputs[i])

    def const(self, i: int) -> np.ndarray | None:
        return self.consts[i] if self.has(i) else None

    def ints(self, i: int) -> list[int] | None:
        """A constant integer input as a list; ``None`` when absent (or empty)."""
        if not self.has(i):
            return None
        value = self.const(i)
        if value is None:
            raise self.fail(f"input {i} ({self.inputs[i]!r}) is computed at run time; only a constant is supported")
        return [int(v) for v in value.reshape(-1)] or None

    def axes(self, i: int) -> list[int] | None:
        """``axes`` as an attribute (older opsets) or as input ``i`` (newer ones)."""
        return list(self.attrs["axes"]) if "axes" in self.attrs else self.ints(i)

    def fail(self, what: str) -> ConversionError:
        return ConversionError(f"onnx->torch: {self.op_type} node {self.name!r}: {what}")


def op(op_type: str, *, static: Sequence[int] = (), prepare: Prepare | None = None) -> Callable[[OpFn], OpFn]:
    """Register ``fn`` for ``op_type``; ``static`` inputs are read at build time (see the module doc)."""

    def plan(node: Node) -> dict[int, np.ndarray | None]:
        plan_: dict[int, np.ndarray | None] = dict.fromkeys(static)
        plan_.update(prepare(node) if prepare else {})
        return plan_

    def decorate(fn: OpFn) -> OpFn:
        OPS.register(op_type, fn)
        PREPARE.register(op_type, plan)
        return fn

    return decorate


def _as_is(*indices: int) -> Prepare:
    """Constant inputs ``indices`` unchanged; weights and biases, registered as parameters."""
    return lambda node: {i: c for i in indices if (c := node.const(i)) is not None}


def _torch_pads(pads: Sequence[int]) -> list[int]:
    """ONNX ``[b1..bn, e1..en]`` -> F.pad's ``[bn, en, ..., b1, e1]``, leading all-zero dims dropped."""
    n = len(pads) // 2
    out = [p for i in reversed(range(n)) for p in (pads[i], pads[i + n])]
    while len(out) > 2 and out[-2:] == [0, 0]:
        out = out[:-2]
    return out
