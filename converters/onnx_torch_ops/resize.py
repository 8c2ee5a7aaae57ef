"""Resize, mapped onto ``F.interpolate`` only where torch picks the same pixels as the ONNX spec."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from converters.onnx_torch_ops.registry import Node, op

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
    by_size: dict[str, Any] = {"size": sizes[2:]} if sizes_in else {"scale_factor": scales[2:],
                                                                     "recompute_scale_factor": False}
    ratios = [i / o if sizes_in else 1 / s for i, o, s in zip(x.shape[2:], sizes[2:], scales[2:])]
    if mode == "nearest":
        wanted = [_onnx_nearest(node, i, o, s) for i, o, s in zip(x.shape[2:], sizes[2:], scales[2:])]
        for name, exact in (("nearest", False), ("nearest-exact", True)):
            if all(np.array_equal(w, _torch_nearest(i, o, r, exact))
                   for w, i, o, r in zip(wanted, x.shape[2:], sizes[2:], ratios)):
                return F.interpolate(x, mode=name, **by_size)
        raise node.fail(f"nearest with {coord!r} and nearest_mode {node.attr('nearest_mode', 'round_prefer_floor')!r} "
                        "picks pixels neither torch 'nearest' nor 'nearest-exact' does for these sizes")
    corners = {"half_pixel": False, "align_corners": True,
               "pytorch_half_pixel": False if min(sizes[2:]) > 1 else None}.get(coord)
    torch_mode = {"linear": ("linear", "bilinear", "trilinear")[rank - 3], "cubic": "bicubic" if rank == 4 else ""}
    if mode not in torch_mode or not torch_mode[mode] or corners is None:
        raise node.fail(f"mode {mode!r} with coordinate_transformation_mode {coord!r} on rank-{rank} data has no "
                        "torch interpolate equivalent "
                        "(linear/cubic support half_pixel, pytorch_half_pixel, align_corners)")
    if mode == "cubic" and (node.attr("cubic_coeff_a", -0.75) != -0.75 or node.attr("exclude_outside", 0)):
        raise node.fail("cubic takes only cubic_coeff_a=-0.75 and exclude_outside=0 (torch's bicubic)")
    return F.interpolate(x, mode=torch_mode[mode], align_corners=corners, **by_size)
