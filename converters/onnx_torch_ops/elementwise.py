"""Elementwise ops: math, comparisons, logic, and activations (Softmax included)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from converters.onnx_torch_ops.registry import Node, op

# --- elementwise ---------------------------------------------------------------------------

_UNARY: dict[str, Callable[[Tensor], Tensor]] = {
    "Abs": torch.abs, "Neg": torch.neg, "Sqrt": torch.sqrt, "Exp": torch.exp, "Log": torch.log,
    "Reciprocal": torch.reciprocal, "Floor": torch.floor, "Ceil": torch.ceil, "Round": torch.round,
    "Sign": torch.sign, "Sin": torch.sin, "Cos": torch.cos, "Erf": torch.erf, "Not": torch.logical_not,
    "Relu": F.relu, "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "HardSwish": F.hardswish,
    "Softplus": F.softplus, "Softsign": F.softsign, "Mish": F.mish, "Identity": lambda x: x,
}
_BINARY: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Equal": torch.eq, "Greater": torch.gt,
    "Less": torch.lt, "GreaterOrEqual": torch.ge, "LessOrEqual": torch.le, "And": torch.logical_and,
    "Or": torch.logical_or, "Xor": torch.logical_xor,
}
_VARIADIC: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "Max": torch.maximum, "Min": torch.minimum, "Sum": torch.add,
}

# one loop variable per table: each has its own callable type
for _name, _unary in _UNARY.items():
    op(_name)(lambda node, x, _fn=_unary: _fn(x))
for _name, _binary in _BINARY.items():
    op(_name)(lambda node, a, b, _fn=_binary: _fn(a, b))
for _name, _variadic in _VARIADIC.items():
    op(_name)(lambda node, *xs, _fn=_variadic: functools.reduce(_fn, xs))


@op("Mean")
def mean(node: Node, *xs: Tensor) -> Tensor:
    return functools.reduce(torch.add, xs) / len(xs)


@op("Div")
def div(node: Node, a: Tensor, b: Tensor) -> Tensor:
    return a / b if a.is_floating_point() else torch.div(a, b, rounding_mode="trunc")  # ONNX truncates ints


@op("Mod")
def mod(node: Node, a: Tensor, b: Tensor) -> Tensor:
    return torch.fmod(a, b) if node.attr("fmod", 0) else torch.remainder(a, b)


def _scalar_exponent(node: Node) -> dict[int, np.ndarray | None]:
    exponent = node.const(1)
    return {1: None} if exponent is not None and exponent.size == 1 else {}


@op("Pow", prepare=_scalar_exponent)
def pow_(node: Node, x: Tensor, exponent: Tensor | None) -> Tensor:
    if exponent is None:  # a scalar exponent stays a Python number: aten.pow.Tensor_Scalar
        return x ** float(node.const(1).item())  # type: ignore[union-attr]
    return torch.pow(x, exponent)


@op("Where")
def where(node: Node, cond: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return torch.where(cond, a, b)


# --- activations -----------------------------------------------------------------------------


@op("LeakyRelu")
def leaky_relu(node: Node, x: Tensor) -> Tensor:
    return F.leaky_relu(x, node.attr("alpha", 0.01))


@op("Elu")
def elu(node: Node, x: Tensor) -> Tensor:
    return F.elu(x, node.attr("alpha", 1.0))


def _prelu_slope(node: Node) -> dict[int, np.ndarray | None]:
    """A slope that is one value per channel (dim 1, numpy broadcasting) becomes F.prelu's ``[C]``."""
    slope, shape = node.const(1), node.shapes[0]
    if slope is None or shape is None or len(shape) < 2 or slope.ndim > len(shape):
        return {}
    aligned = (1,) * (len(shape) - slope.ndim) + slope.shape
    if any(d != 1 for i, d in enumerate(aligned) if i != 1) or aligned[1] not in (1, shape[1]):
        return {}
    return {1: slope.reshape(-1)}


@op("PRelu", prepare=_prelu_slope)
def prelu(node: Node, x: Tensor, slope: Tensor) -> Tensor:
    return F.prelu(x, slope) if 1 in node.prepared else torch.where(x >= 0, x, x * slope)


@op("Clip", static=(1, 2))
def clip(node: Node, x: Tensor, low: Tensor | None = None, high: Tensor | None = None) -> Tensor:
    bounds: list[Any] = []
    for i, given, key in ((1, low, "min"), (2, high, "max")):
        if key in node.attrs:  # before opset 11
            bounds.append(node.attrs[key])
        else:  # a constant bound is a Python number; one computed at run time stays a tensor
            value = node.const(i)
            bounds.append(given if value is None else value.item())
    return x if bounds == [None, None] else torch.clamp(x, *bounds)


@op("HardSigmoid")
def hard_sigmoid(node: Node, x: Tensor) -> Tensor:
    alpha, beta = node.attr("alpha", 0.2), node.attr("beta", 0.5)
    if math.isclose(alpha, 1 / 6, rel_tol=1e-6) and beta == 0.5:
        return F.hardsigmoid(x)
    return torch.clamp(x * alpha + beta, 0.0, 1.0)


@op("Gelu")
def gelu(node: Node, x: Tensor) -> Tensor:
    return F.gelu(x, approximate=node.attr("approximate", "none"))


def _softmax_like(node: Node, x: Tensor, fn: Callable[..., Tensor]) -> Tensor:
    if node.opset >= 13:
        return fn(x, node.attr("axis", -1))
    axis = node.attr("axis", 1) % x.dim()  # before opset 13: softmax over the flattened trailing dims
    return fn(x.reshape(math.prod(x.shape[:axis]), -1), 1).reshape(x.shape)


@op("Softmax")
def softmax(node: Node, x: Tensor) -> Tensor:
    return _softmax_like(node, x, F.softmax)


@op("LogSoftmax")
def log_softmax(node: Node, x: Tensor) -> Tensor:
    return _softmax_like(node, x, F.log_softmax)
