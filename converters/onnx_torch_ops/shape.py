"""Shape and indexing ops: constants, casts, Reshape, Transpose, Concat, Split, Slice, Gather, Pad, ..."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from onnx import TensorProto
from torch import Tensor

from converters.onnx_torch_ops.registry import DTYPES, Node, _torch_pads, op


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
