"""Convolution, linear (Gemm, MatMul, Einsum), normalization and pooling ops."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from converters.onnx_torch_ops.registry import Node, _as_is, _torch_pads, op

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
    index = (slice(None), slice(None), *crop)  # batch and channels whole, spatial dims cropped
    return y[index]


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


# --- pooling ----------------------------------------------------------------------------------


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
    if x.dim() == 4:  # as adaptive_avg_pool2d, which INT8 quantizers annotate (a mean stays float)
        return F.adaptive_avg_pool2d(x, 1)
    return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


@op("GlobalMaxPool")
def global_max_pool(node: Node, x: Tensor) -> Tensor:
    return torch.amax(x, dim=tuple(range(2, x.dim())), keepdim=True)
