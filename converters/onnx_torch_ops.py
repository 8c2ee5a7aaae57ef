"""The ONNX ops ``onnx -> torch`` knows: an explicit registry, one small function per op.

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

:class:`OnnxModule` is here too because it is the only other code that needs torch at
import time; ``converters.onnx_torch`` (the pass) imports this module only when it runs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from onnx import TensorProto
from torch import Tensor, nn

from converters.errors import ConversionError

OpFn = Callable[..., "Tensor | Sequence[Tensor]"]
Prepare = Callable[["Node"], dict[int, "np.ndarray | None"]]

#: ONNX op type -> the function that computes it with torch ops.
OPS: dict[str, OpFn] = {}
#: ONNX op type -> which constant inputs the op reads at build time or wants in another form.
PREPARE: dict[str, Prepare] = {}
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
        plan_: dict[int, np.ndarray | None] = {i: None for i in static}
        plan_.update(prepare(node) if prepare else {})
        return plan_

    def decorate(fn: OpFn) -> OpFn:
        if op_type in OPS:
            raise ValueError(f"ONNX op {op_type!r} is registered twice")
        OPS[op_type], PREPARE[op_type] = fn, plan
        return fn

    return decorate


def _as_is(*indices: int) -> Prepare:
    """Constant inputs ``indices`` unchanged; weights and biases, registered as parameters."""
    return lambda node: {i: c for i in indices if (c := node.const(i)) is not None}


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
_VARIADIC: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"Max": torch.maximum, "Min": torch.minimum, "Sum": torch.add}

for _name, _fn in _UNARY.items():
    op(_name)(lambda node, x, _fn=_fn: _fn(x))
for _name, _fn in _BINARY.items():
    op(_name)(lambda node, a, b, _fn=_fn: _fn(a, b))
for _name, _fn in _VARIADIC.items():
    op(_name)(lambda node, *xs, _fn=_fn: functools.reduce(_fn, xs))


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


# --- convolution, linear, normalization ------------------------------------------------------


def _spatial_pads(node: Node, x: Tensor, kernel: Sequence[int], strides: Sequence[int],
                  dilations: Sequence[int]) -> list[int]:
    """ONNX pads ``[begin_1..begin_n, end_1..end_n]``, with ``auto_pad`` resolved on the static shape."""
    n, auto = len(kernel), node.attr("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        return list(node.attr("pads", [0] * 2 * n))
    if auto == "VALID":
        return [0] * 2 * n
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise node.fail(f"auto_pad {auto!r} is not supported")
    begin, end = [], []
    for size, k, s, d in zip(x.shape[2:], kernel, strides, dilations):
        total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
        small, big = total // 2, total - total // 2
        begin.append(small if auto == "SAME_UPPER" else big)
        end.append(big if auto == "SAME_UPPER" else small)
    return begin + end


def _torch_pads(pads: Sequence[int]) -> list[int]:
    """ONNX ``[b1..bn, e1..en]`` -> F.pad's ``[bn, en, ..., b1, e1]``, leading all-zero dims dropped."""
    n = len(pads) // 2
    out = [p for i in reversed(range(n)) for p in (pads[i], pads[i + n])]
    while len(out) > 2 and out[-2:] == [0, 0]:
        out = out[:-2]
    return out


def _pre_pad(x: Tensor, pads: Sequence[int], kernel: Sequence[int] | None = None,
             value: float = 0.0) -> tuple[Tensor, list[int]]:
    """Symmetric pads go to the torch op (pools: at most half a kernel); others to an explicit F.pad."""
    n = len(pads) // 2
    if list(pads[:n]) == list(pads[n:]) and (kernel is None or all(p <= k // 2 for p, k in zip(pads, kernel))):
        return x, list(pads[:n])
    return F.pad(x, _torch_pads(pads), value=value), [0] * n


def _dims(node: Node, n: int) -> None:
    if n not in (1, 2, 3):
        raise node.fail(f"{n}-D spatial data is not supported (1-D, 2-D and 3-D are)")


@op("Conv", prepare=_as_is(1, 2))
def conv(node: Node, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    n = w.dim() - 2
    _dims(node, n)
    strides, dilations = node.attr("strides", [1] * n), node.attr("dilations", [1] * n)
    x, padding = _pre_pad(x, _spatial_pads(node, x, w.shape[2:], strides, dilations))
    fn = (F.conv1d, F.conv2d, F.conv3d)[n - 1]
    return fn(x, w, b, strides, padding, dilations, node.attr("group", 1))


@op("ConvTranspose", prepare=_as_is(1, 2))
def conv_transpose(node: Node, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    n = w.dim() - 2
    _dims(node, n)
    strides, dilations = node.attr("strides", [1] * n), node.attr("dilations", [1] * n)
    extra = list(node.attr("output_padding", [0] * n))
    natural = [s * (i - 1) + e + (k - 1) * d + 1
               for s, i, e, k, d in zip(strides, x.shape[2:], extra, w.shape[2:], dilations)]
    auto, wanted = node.attr("auto_pad", "NOTSET"), node.attr("output_shape")
    if wanted is None and auto in ("SAME_UPPER", "SAME_LOWER"):
        wanted = [i * s for i, s in zip(x.shape[2:], strides)]
    if wanted is not None:  # pads follow from the output shape, as the ONNX spec says
        totals = [nat - out for nat, out in zip(natural, list(wanted)[-n:])]
        if min(totals) < 0:
            raise node.fail(f"output_shape {list(wanted)} is larger than the convolution gives")
        upper = auto == "SAME_UPPER"  # the spec puts the odd pixel first otherwise, NOTSET included
        pads = [t // 2 if upper else t - t // 2 for t in totals] + [t - t // 2 if upper else t // 2 for t in totals]
    else:
        pads = [0] * 2 * n if auto == "VALID" else list(node.attr("pads", [0] * 2 * n))
    fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[n - 1]
    if pads[:n] == pads[n:]:
        return fn(x, w, b, strides, pads[:n], extra, node.attr("group", 1), dilations)
    y = fn(x, w, b, strides, 0, extra, node.attr("group", 1), dilations)
    crop = tuple(slice(p, size - q) for p, q, size in zip(pads[:n], pads[n:], y.shape[2:]))
    return y[(slice(None), slice(None)) + crop]


def _gemm_weights(node: Node) -> dict[int, np.ndarray | None]:
    b, c = node.const(1), node.const(2)
    if b is None or b.ndim != 2:
        return {}
    weight = (b if node.attr("transB", 0) else b.T) * np.asarray(node.attr("alpha", 1.0), b.dtype)
    out: dict[int, np.ndarray | None] = {1: np.ascontiguousarray(weight)}
    if c is not None and c.shape in ((), (1,), (1, 1), (weight.shape[0],), (1, weight.shape[0])):
        out[2] = np.broadcast_to(c.reshape(-1), weight.shape[:1]) * np.asarray(node.attr("beta", 1.0), c.dtype)
    return out


@op("Gemm", prepare=_gemm_weights)
def gemm(node: Node, a: Tensor, b: Tensor, c: Tensor | None = None) -> Tensor:
    a = a.t() if node.attr("transA", 0) else a
    beta = node.attr("beta", 1.0)
    if 1 in node.prepared:  # b is the [N, K] weight with alpha folded in
        y = F.linear(a, b, c if 2 in node.prepared else None)
        return y if c is None or 2 in node.prepared else y + beta * c
    y = node.attr("alpha", 1.0) * (a @ (b.t() if node.attr("transB", 0) else b))
    return y if c is None else y + beta * c


def _linear_weight(node: Node) -> dict[int, np.ndarray | None]:
    b = node.const(1)
    return {1: np.ascontiguousarray(b.T)} if b is not None and b.ndim == 2 else {}  # F.linear takes [N, K]


@op("MatMul", prepare=_linear_weight)
def matmul(node: Node, a: Tensor, b: Tensor) -> Tensor:
    return F.linear(a, b) if 1 in node.prepared else torch.matmul(a, b)


@op("Einsum")
def einsum(node: Node, *xs: Tensor) -> Tensor:
    return torch.einsum(node.attr("equation"), *xs)


@op("BatchNormalization", prepare=_as_is(1, 2))
def batch_norm(node: Node, x: Tensor, scale: Tensor, bias: Tensor, mean_: Tensor, var: Tensor) -> Tensor:
    if node.attr("training_mode", 0):
        raise node.fail("training_mode=1 is not supported (inference graphs only)")
    return F.batch_norm(x, mean_, var, scale, bias, training=False, eps=node.attr("epsilon", 1e-5))


@op("InstanceNormalization", prepare=_as_is(1, 2))
def instance_norm(node: Node, x: Tensor, scale: Tensor, bias: Tensor) -> Tensor:
    return F.instance_norm(x, weight=scale, bias=bias, eps=node.attr("epsilon", 1e-5))


@op("LayerNormalization", prepare=_as_is(1, 2))
def layer_norm(node: Node, x: Tensor, scale: Tensor, bias: Tensor | None = None) -> Tensor:
    shape, eps = tuple(x.shape[node.attr("axis", -1) % x.dim():]), node.attr("epsilon", 1e-5)
    if tuple(scale.shape) == shape and (bias is None or tuple(bias.shape) == shape):
        return F.layer_norm(x, shape, scale, bias, eps)
    y = F.layer_norm(x, shape, eps=eps) * scale  # broadcastable, not full-shape, scale and bias
    return y if bias is None else y + bias


# --- pooling and reductions ------------------------------------------------------------------


def _pool_geometry(node: Node, x: Tensor) -> tuple[list[int], list[int], list[int], list[int]]:
    kernel = list(node.attr("kernel_shape"))
    n = len(kernel)
    _dims(node, n)
    strides, dilations = list(node.attr("strides", [1] * n)), list(node.attr("dilations", [1] * n))
    return kernel, strides, dilations, _spatial_pads(node, x, kernel, strides, dilations)


@op("MaxPool")
def max_pool(node: Node, x: Tensor) -> Tensor:
    kernel, strides, dilations, pads = _pool_geometry(node, x)
    x, padding = _pre_pad(x, pads, kernel, value=float("-inf"))
    fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[len(kernel) - 1]
    return fn(x, kernel, strides, padding, dilations, ceil_mode=bool(node.attr("ceil_mode", 0)))


@op("AveragePool")
def avg_pool(node: Node, x: Tensor) -> Tensor:
    kernel, strides, dilations, pads = _pool_geometry(node, x)
    if any(d != 1 for d in dilations):
        raise node.fail(f"dilations {dilations} are not supported")
    fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[len(kernel) - 1]
    ceil, count_pads = bool(node.attr("ceil_mode", 0)), bool(node.attr("count_include_pad", 0))
    padded, padding = _pre_pad(x, pads, kernel)
    if padded is x:
        return fn(x, kernel, strides, padding, ceil_mode=ceil, count_include_pad=count_pads)
    total = fn(padded, kernel, strides, 0, ceil_mode=ceil)
    if count_pads:
        return total
    # Asymmetric pads that must not count: divide by the pooled share of real pixels.
    ones = F.pad(torch.ones_like(x[:, :1]), _torch_pads(pads))
    return total / fn(ones, kernel, strides, 0, ceil_mode=ceil)


@op("GlobalAveragePool")
def global_avg_pool(node: Node, x: Tensor) -> Tensor:
    return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


@op("GlobalMaxPool")
def global_max_pool(node: Node, x: Tensor) -> Tensor:
    return torch.amax(x, dim=tuple(range(2, x.dim())), keepdim=True)


def _reducer(fn: Callable[[Tensor, list[int], bool], Tensor]) -> OpFn:
    def reduce(node: Node, x: Tensor, _axes: Tensor | None = None) -> Tensor:
        axes = node.axes(1)
        if not axes and node.attr("noop_with_empty_axes", 0):
            return x
        dims = sorted({a % x.dim() for a in axes} if axes else set(range(x.dim())))
        return fn(x, dims, bool(node.attr("keepdims", 1)))

    return reduce


def _prod(x: Tensor, dims: list[int], keep: bool) -> Tensor:
    for d in reversed(dims):
        x = torch.prod(x, d, keepdim=keep)
    return x


op("ReduceMean", static=(1,))(_reducer(lambda x, d, k: torch.mean(x, d, keepdim=k)))
op("ReduceSum", static=(1,))(_reducer(lambda x, d, k: torch.sum(x, d, keepdim=k)))
op("ReduceMax", static=(1,))(_reducer(lambda x, d, k: torch.amax(x, d, keepdim=k)))
op("ReduceMin", static=(1,))(_reducer(lambda x, d, k: torch.amin(x, d, keepdim=k)))
op("ReduceProd", static=(1,))(_reducer(_prod))
op("ReduceSumSquare", static=(1,))(_reducer(lambda x, d, k: torch.sum(x * x, d, keepdim=k)))
op("ReduceL2", static=(1,))(_reducer(lambda x, d, k: torch.sqrt(torch.sum(x * x, d, keepdim=k))))


def _arg(fn: Callable[..., Tensor]) -> OpFn:
    def arg(node: Node, x: Tensor) -> Tensor:
        axis, keep = node.attr("axis", 0) % x.dim(), bool(node.attr("keepdims", 1))
        if not node.attr("select_last_index", 0):
            return fn(x, axis, keepdim=keep)
        return (x.shape[axis] - 1) - fn(torch.flip(x, [axis]), axis, keepdim=keep)

    return arg


op("ArgMax")(_arg(torch.argmax))
op("ArgMin")(_arg(torch.argmin))


@op("TopK", static=(1,))
def topk(node: Node, x: Tensor, _k: Tensor | None = None) -> tuple[Tensor, Tensor]:
    k = node.ints(1) or [int(node.attr("k", 1))]
    values, indices = torch.topk(x, k[0], dim=node.attr("axis", -1), largest=bool(node.attr("largest", 1)),
                                 sorted=bool(node.attr("sorted", 1)))
    return values, indices


# --- shapes and indexing -----------------------------------------------------------------------


@op("Shape")
def shape(node: Node, x: Tensor) -> Tensor:
    return torch.tensor(list(x.shape)[node.attr("start", 0):node.attr("end")], dtype=torch.int64)


@op("Size")
def size(node: Node, x: Tensor) -> Tensor:
    return torch.tensor(x.numel(), dtype=torch.int64)


@op("Constant")
def constant(node: Node) -> Tensor:
    for key, dtype in (("value", None), ("value_float", torch.float32), ("value_floats", torch.float32),
                       ("value_int", torch.int64), ("value_ints", torch.int64)):
        if key in node.attrs:
            value = node.attrs[key]
            return torch.from_numpy(np.array(value)) if dtype is None else torch.tensor(value, dtype=dtype)
    raise node.fail(f"only numeric constants are supported, got attributes {sorted(node.attrs)}")


@op("ConstantOfShape", static=(0,))
def constant_of_shape(node: Node, _shape: Tensor | None = None) -> Tensor:
    value = torch.from_numpy(np.array(node.attr("value", np.zeros(1, np.float32))).reshape(-1))
    return torch.full(node.ints(0) or [], value[0].item(), dtype=value.dtype)


@op("Range", static=(0, 1, 2))
def range_(node: Node, *_: Tensor | None) -> Tensor:
    start, limit, delta = (node.const(i) for i in range(3))
    if start is None or limit is None or delta is None:
        raise node.fail("only constant start, limit and delta are supported")
    return torch.from_numpy(np.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype))


@op("Cast")
def cast(node: Node, x: Tensor) -> Tensor:
    to = node.attr("to")
    if to not in DTYPES:
        raise node.fail(f"casting to ONNX type {TensorProto.DataType.Name(to)} is not supported")
    return x.to(DTYPES[to])


@op("CastLike")
def cast_like(node: Node, x: Tensor, like: Tensor) -> Tensor:
    return x.to(like.dtype)


@op("Dropout", static=(1, 2))
def dropout(node: Node, x: Tensor, *_: Tensor | None) -> tuple[Tensor, Tensor]:
    return x, torch.ones_like(x, dtype=torch.bool)  # inference: identity, and a mask of all kept


@op("Flatten")
def flatten(node: Node, x: Tensor) -> Tensor:
    axis = node.attr("axis", 1) % (x.dim() + 1) if x.dim() else 0
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


@op("Reshape", static=(1,))
def reshape(node: Node, x: Tensor, _shape: Tensor | None = None) -> Tensor:
    keep_zero = bool(node.attr("allowzero", 0))
    target = [x.shape[i] if s == 0 and not keep_zero else s for i, s in enumerate(node.ints(1) or [])]
    return x.reshape(target)


@op("Transpose")
def transpose(node: Node, x: Tensor) -> Tensor:
    return x.permute(list(node.attr("perm", reversed(range(x.dim())))))


@op("Squeeze", static=(1,))
def squeeze(node: Node, x: Tensor, _axes: Tensor | None = None) -> Tensor:
    axes = node.axes(1)
    drop = {a % x.dim() for a in axes} if axes else {i for i, d in enumerate(x.shape) if d == 1}
    return x.reshape([d for i, d in enumerate(x.shape) if i not in drop])


@op("Unsqueeze", static=(1,))
def unsqueeze(node: Node, x: Tensor, _axes: Tensor | None = None) -> Tensor:
    axes = node.axes(1) or []
    shape = list(x.shape)
    for a in sorted(a % (x.dim() + len(axes)) for a in axes):
        shape.insert(a, 1)
    return x.reshape(shape)


@op("Concat")
def concat(node: Node, *xs: Tensor) -> Tensor:
    return torch.cat(xs, node.attr("axis"))


@op("Split", static=(1,))
def split(node: Node, x: Tensor, _split: Tensor | None = None) -> tuple[Tensor, ...]:
    axis = node.attr("axis", 0) % x.dim()
    sizes = list(node.attr("split", [])) or node.ints(1)
    if not sizes:  # equal parts; with opset 18's num_outputs the last one may be smaller
        count, dim = int(node.attr("num_outputs", len(node.outputs))), x.shape[axis]
        chunk = -(-dim // count)
        sizes = [chunk] * (count - 1) + [dim - chunk * (count - 1)]
        if sizes[-1] < 0:
            raise node.fail(f"cannot split {dim} into {count} parts")
    return tuple(torch.split(x, sizes, axis))


def _clamp(v: int, low: int, high: int) -> int:
    return max(low, min(high, v))


@op("Slice", static=(1, 2, 3, 4))
def slice_(node: Node, x: Tensor, *_: Tensor | None) -> Tensor:
    starts = list(node.attr("starts", [])) or node.ints(1) or []
    ends = list(node.attr("ends", [])) or node.ints(2) or []
    axes = node.axes(3) or list(range(len(starts)))
    steps = node.ints(4) or [1] * len(starts)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis, index = axis % x.dim(), [slice(None)] * x.dim()
        dim = x.shape[axis]
        start, end = start + dim if start < 0 else start, end + dim if end < 0 else end
        if step > 0:
            index[axis] = slice(_clamp(start, 0, dim), _clamp(end, 0, dim), step)
        else:  # torch has no negative steps: flip, then walk forward from the mirrored start
            start, end = _clamp(start, 0, dim - 1), _clamp(end, -1, dim - 1)
            x, index[axis] = torch.flip(x, [axis]), slice(dim - 1 - start, dim - 1 - end, -step)
        x = x[tuple(index)]
    return x


def _gather_indices(node: Node) -> dict[int, np.ndarray | None]:
    indices, data = node.const(1), node.shapes[0]
    if indices is None or data is None:
        return {}
    if indices.ndim == 0:
        return {1: None}  # a scalar index becomes x.select(axis, i)
    dim = data[node.attr("axis", 0) % len(data)]
    return {1: np.where(indices < 0, indices + dim, indices).astype(np.int64)}


@op("Gather", prepare=_gather_indices)
def gather(node: Node, x: Tensor, indices: Tensor | None) -> Tensor:
    axis = node.attr("axis", 0) % x.dim()
    if indices is None:
        return x.select(axis, int(node.const(1)))  # type: ignore[arg-type]
    if 1 not in node.prepared:
        indices = torch.where(indices < 0, indices + x.shape[axis], indices)
    picked = torch.index_select(x, axis, indices.reshape(-1))
    return picked.reshape(x.shape[:axis] + indices.shape + x.shape[axis + 1:])


@op("GatherElements")
def gather_elements(node: Node, x: Tensor, indices: Tensor) -> Tensor:
    axis = node.attr("axis", 0) % x.dim()
    return torch.gather(x, axis, torch.where(indices < 0, indices + x.shape[axis], indices))


@op("Expand", static=(1,))
def expand(node: Node, x: Tensor, _shape: Tensor | None = None) -> Tensor:
    return x.expand(*np.broadcast_shapes(tuple(x.shape), tuple(node.ints(1) or [])))


@op("Tile", static=(1,))
def tile(node: Node, x: Tensor, _repeats: Tensor | None = None) -> Tensor:
    return x.repeat(node.ints(1) or [])


@op("Pad", static=(1, 2, 3))
def pad(node: Node, x: Tensor, *_: Tensor | None) -> Tensor:
    pads = list(node.attr("pads", [])) or node.ints(1) or []
    axes = node.ints(3)
    if axes:
        r, full = x.dim(), [0] * 2 * x.dim()
        for k, a in enumerate(axes):
            full[a % r], full[a % r + r] = pads[k], pads[k + len(axes)]
        pads = full
    mode = node.attr("mode", "constant")
    modes = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}
    if mode not in modes:
        raise node.fail(f"mode {mode!r} is not supported")
    if mode != "constant":
        return F.pad(x, _torch_pads(pads), mode=modes[mode])
    value = node.const(2)
    if node.has(2) and value is None:
        raise node.fail("a constant_value computed at run time is not supported")
    fill = node.attr("value", 0.0) if value is None or value.size == 0 else value.item()
    return F.pad(x, _torch_pads(pads), value=fill)


@op("DepthToSpace")
def depth_to_space(node: Node, x: Tensor) -> Tensor:
    b, (n, c, h, w) = node.attr("blocksize"), x.shape
    if node.attr("mode", "DCR") == "DCR":
        y = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(n, c // (b * b), b, b, h, w).permute(0, 1, 4, 2, 5, 3)
    return y.reshape(n, c // (b * b), h * b, w * b)


@op("SpaceToDepth")
def space_to_depth(node: Node, x: Tensor) -> Tensor:
    b, (n, c, h, w) = node.attr("blocksize"), x.shape
    y = x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * b * b, h // b, w // b)


# --- Resize ----------------------------------------------------------------------------------------

_ROUNDING: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "round_prefer_floor": lambda v: np.ceil(v - 0.5), "round_prefer_ceil": lambda v: np.floor(v + 0.5),
    "floor": np.floor, "ceil": np.ceil,
}


def _onnx_nearest(node: Node, size: int, out: int, scale: float) -> np.ndarray:
    """The source index of every output pixel along one axis, by the ONNX spec."""
    x, mode = np.arange(out, dtype=np.float64), node.attr("coordinate_transformation_mode", "half_pixel")
    if mode == "asymmetric":
        src = x / scale
    elif mode in ("half_pixel", "pytorch_half_pixel"):
        src = (x + 0.5) / scale - 0.5 if out > 1 or mode == "half_pixel" else np.zeros(out)
    elif mode == "align_corners":
        src = x * (size - 1) / (out - 1) if out > 1 else np.zeros(out)
    else:
        raise node.fail(f"coordinate_transformation_mode {mode!r} is not supported with mode 'nearest'")
    rounding = node.attr("nearest_mode", "round_prefer_floor")
    return np.clip(_ROUNDING[rounding](src), 0, size - 1).astype(np.int64)


def _torch_nearest(size: int, out: int, ratio: float, exact: bool) -> np.ndarray:
    x = np.arange(out, dtype=np.float32)
    return np.minimum(np.floor(((x + 0.5) if exact else x) * np.float32(ratio)), size - 1).astype(np.int64)


@op("Resize", static=(1, 2, 3))
def resize(node: Node, x: Tensor, *_: Tensor | None) -> Tensor:
    if node.attr("antialias", 0) or node.attr("keep_aspect_ratio_policy", "stretch") != "stretch":
        raise node.fail("antialias and keep_aspect_ratio_policy are not supported")
    rank, axes = x.dim(), [a % x.dim() for a in node.attr("axes", range(x.dim()))]
    scales_in, sizes_in = node.const(2), node.ints(3)
    if node.has(2) and scales_in is None:
        raise node.fail("scales computed at run time are not supported")
    scales, sizes = [1.0] * rank, list(x.shape)
    if sizes_in:
        for a, s in zip(axes, sizes_in):
            sizes[a], scales[a] = s, s / x.shape[a]
    elif scales_in is not None and scales_in.size:
        for a, s in zip(axes, scales_in.reshape(-1).tolist()):
            scales[a], sizes[a] = s, math.floor(x.shape[a] * s)
    else:
        raise node.fail("neither scales nor sizes is given")
    if sizes[:2] != list(x.shape[:2]) or rank not in (3, 4, 5):
        raise node.fail(f"only spatial dims of N, C, ... data resize; got sizes {sizes} for shape {list(x.shape)}")
    mode, coord = node.attr("mode", "nearest"), node.attr("coordinate_transformation_mode", "half_pixel")
    by_size = {"size": sizes[2:]} if sizes_in else {"scale_factor": scales[2:], "recompute_scale_factor": False}
    ratios = [i / o if sizes_in else 1 / s for i, o, s in zip(x.shape[2:], sizes[2:], scales[2:])]
    if mode == "nearest":
        wanted = [_onnx_nearest(node, i, o, s) for i, o, s in zip(x.shape[2:], sizes[2:], scales[2:])]
        for name, exact in (("nearest", False), ("nearest-exact", True)):
            if all(np.array_equal(w, _torch_nearest(i, o, r, exact))
                   for w, i, o, r in zip(wanted, x.shape[2:], sizes[2:], ratios)):
                return F.interpolate(x, mode=name, **by_size)  # type: ignore[arg-type]
        raise node.fail(f"nearest with {coord!r} and nearest_mode {node.attr('nearest_mode', 'round_prefer_floor')!r} "
                        "picks pixels neither torch 'nearest' nor 'nearest-exact' does for these sizes")
    corners = {"half_pixel": False, "align_corners": True,
               "pytorch_half_pixel": False if min(sizes[2:]) > 1 else None}.get(coord)
    torch_mode = {"linear": ("linear", "bilinear", "trilinear")[rank - 3], "cubic": "bicubic" if rank == 4 else ""}
    if mode not in torch_mode or not torch_mode[mode] or corners is None:
        raise node.fail(f"mode {mode!r} with coordinate_transformation_mode {coord!r} on rank-{rank} data has no "
                        "torch interpolate equivalent (linear/cubic support half_pixel, pytorch_half_pixel, align_corners)")
    if mode == "cubic" and (node.attr("cubic_coeff_a", -0.75) != -0.75 or node.attr("exclude_outside", 0)):
        raise node.fail("cubic takes only cubic_coeff_a=-0.75 and exclude_outside=0 (torch's bicubic)")
    return F.interpolate(x, mode=torch_mode[mode], align_corners=corners, **by_size)  # type: ignore[arg-type]


# --- the module ---------------------------------------------------------------------------------


class Ref(NamedTuple):
    """Where a step finds an input at run time: the value table, or an attribute of the module."""

    key: str
    on_module: bool


@dataclass(frozen=True)
class Step:
    """One run-time node: the op function, its node, and where each input comes from."""

    fn: OpFn
    node: Node
    refs: tuple[Ref | None, ...]


class OnnxModule(nn.Module):
    """An ONNX graph as a torch module: ``forward`` runs the steps, in order, with plain torch ops.

    Build it with :func:`converters.onnx_torch.onnx_to_torch`. Constants live on the module
    (parameters for weights, buffers for the rest); ``forward`` takes the graph inputs
    positionally, in ONNX order, and returns the outputs as a tuple (one output: the tensor).
    """

    def __init__(self, *, input_names: Sequence[str], output_names: Sequence[str], steps: Sequence[Step],
                 output_refs: Sequence[Ref], tensors: Mapping[str, tuple[Tensor, bool]]) -> None:
        super().__init__()
        for key, (tensor, is_parameter) in tensors.items():
            if is_parameter:
                self.register_parameter(key, nn.Parameter(tensor, requires_grad=False))
            else:
                self.register_buffer(key, tensor)
        self.input_names, self.output_names = tuple(input_names), tuple(output_names)
        self.steps, self._output_refs = tuple(steps), tuple(output_refs)

    def _fetch(self, values: dict[str, Tensor], ref: Ref | None) -> Tensor | None:
        if ref is None:
            return None
        return getattr(self, ref.key) if ref.on_module else values[ref.key]

    def forward(self, *inputs: Tensor) -> Tensor | tuple[Tensor, ...]:
        if len(inputs) != len(self.input_names):
            raise TypeError(f"expected {len(self.input_names)} inputs {list(self.input_names)}, got {len(inputs)}")
        values = dict(zip(self.input_names, inputs))
        for step in self.steps:
            outputs = step.fn(step.node, *(self._fetch(values, r) for r in step.refs))
            outputs = (outputs,) if isinstance(outputs, Tensor) else outputs
            values.update((name, value) for name, value in zip(step.node.outputs, outputs) if name)
        results = tuple(self._fetch(values, r) for r in self._output_refs)
        return results[0] if len(results) == 1 else results  # type: ignore[return-value]
