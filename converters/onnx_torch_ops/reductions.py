"""Reductions over axes: ReduceMean and friends, ArgMax/ArgMin, TopK."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from converters.onnx_torch_ops.registry import Node, OpFn, op


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


def _mean(x: Tensor, dims: list[int], keep: bool) -> Tensor:
    if x.dim() == 4 and dims == [2, 3]:  # a global average pool: the form INT8 quantizers annotate
        pooled = F.adaptive_avg_pool2d(x, 1)
        return pooled if keep else pooled.flatten(1)
    return torch.mean(x, dims, keepdim=keep)


op("ReduceMean", static=(1,))(_reducer(_mean))
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
