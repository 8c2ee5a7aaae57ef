"""``yolov8-heads``: a YOLOv8/v11 model cut before its decode tail, decoded here on the CPU.

An integer-only accelerator (an NPU camera) cannot run the decode tail of a YOLOv8 export:
the DFL softmax, the anchor arithmetic and the final concatenation of pixel boxes with 0-1
scores, which no single int8 scale represents. So EdgeKit cuts the model at its raw heads
and the tail runs here, in numpy, on the dequantized head outputs:

- per level (stride 8, 16, 32, ...), the box head ``[1, H, W, 4*reg_max]`` (DFL logits:
  ``reg_max`` bins for each of left, top, right, bottom) and the class head
  ``[1, H, W, nc]`` (logits before the sigmoid), NHWC or NCHW, as separate tensors or as one
  ``[.., 4*reg_max + nc]`` tensor per level (Ultralytics' concatenation order);
- each box side is the expectation of its softmax over ``arange(reg_max)``, in stride units
  from the cell centre; scores are the sigmoid of the class logits.

Only candidates whose best class logit clears the score threshold are decoded (the sigmoid
is monotonic), so the tail costs little more than reading the class heads.
:func:`predictions` gives the full ``[1, 4 + nc, N]`` tensor of the uncut model, which is
how the optimizer proves the cut model computes the same detections as the original.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from device_agent.bundle.manifest import TaskSpec
from device_agent.errors import DecodeError
from device_agent.pipeline.decoders._detections import select_detections
from device_agent.pipeline.decoders.registry import register_decoder, shape_error
from device_agent.pipeline.decoders.types import DecodeResult
from device_agent.pipeline.preprocess import FrameTransform

KEY = "yolov8-heads"
#: Bins per box side when the class count is unknown (Ultralytics' ``reg_max``).
DEFAULT_REG_MAX = 16
#: Stride of the finest level when neither the task nor the frame transform gives the input size (P3).
BASE_STRIDE = 8
_EXPECTED = ("per level [1, H, W, 4*reg_max] box and [1, H, W, nc] class heads (NHWC or NCHW), "
             "or one [1, H, W, 4*reg_max+nc]")


@dataclass(frozen=True)
class Level:
    """One output level: DFL logits ``[H*W, 4*reg_max]``, class logits ``[H*W, nc]``, grid and stride."""

    box: np.ndarray
    cls: np.ndarray
    grid_hw: tuple[int, int]
    stride: float

    @property
    def reg_max(self) -> int:
        return int(self.box.shape[1]) // 4

    def centres(self, rows: np.ndarray) -> np.ndarray:
        """Cell centres ``[n, 2]`` (x, y) in grid units of the flattened ``rows`` (row-major, as exported)."""
        ys, xs = np.divmod(rows, self.grid_hw[1])
        centres: np.ndarray = np.stack([xs + 0.5, ys + 0.5], axis=1).astype(np.float32)
        return centres

    def boxes_xyxy(self, rows: np.ndarray) -> np.ndarray:
        """Boxes ``[n, 4]`` in input pixels for the given rows: DFL expectation around the cell centre."""
        logits = self.box[rows].reshape(len(rows), 4, self.reg_max).astype(np.float32)
        logits -= logits.max(axis=2, keepdims=True)
        weights = np.exp(logits)
        sides = (weights @ np.arange(self.reg_max, dtype=np.float32)) / weights.sum(axis=2)  # [n, 4] l, t, r, b
        centre = self.centres(rows)
        return np.concatenate([centre - sides[:, :2], centre + sides[:, 2:]], axis=1) * self.stride


def _sigmoid(x: np.ndarray) -> np.ndarray:
    y: np.ndarray = 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))
    return y


def _read(
    maps: list[np.ndarray], channels_last: bool, num_labels: int
) -> list[tuple[tuple[int, int], np.ndarray, np.ndarray]] | None:
    """``(grid_hw, box [H*W, 4*reg_max], cls [H*W, nc])`` per level, finest first, under one layout;
    None where that layout does not fit a YOLOv8 head."""
    groups: dict[tuple[int, int], list[np.ndarray]] = {}
    for m in maps:
        hwc = m[0] if channels_last else np.moveaxis(m[0], 0, -1)
        groups.setdefault(hwc.shape[:2], []).append(hwc.reshape(-1, hwc.shape[2]))
    totals = {sum(t.shape[1] for t in ts) for ts in groups.values()}
    if len(totals) != 1 or any(len(ts) > 2 for ts in groups.values()):
        return None
    total = totals.pop()
    box_channels = total - num_labels if num_labels else 4 * DEFAULT_REG_MAX
    if box_channels <= 0 or box_channels % 4 or total <= box_channels:
        return None
    levels = []
    for grid, ts in sorted(groups.items(), key=lambda kv: -kv[0][0] * kv[0][1]):
        if len(ts) == 2:  # separate heads: the box one has the DFL channels
            if box_channels not in (ts[0].shape[1], ts[1].shape[1]):
                return None
            box, cls = ts if ts[0].shape[1] == box_channels else ts[::-1]
        else:  # one tensor per level, box channels first
            box, cls = ts[0][:, :box_channels], ts[0][:, box_channels:]
        levels.append((grid, box, cls))
    h0, w0 = levels[0][0]
    if any(h0 % h or w0 % w or h0 // h != w0 // w for (h, w), _, _ in levels):
        return None  # every level's grid divides the finest one by the same factor both ways
    return levels


def split_levels(outputs: Sequence[np.ndarray], task: TaskSpec, transform: FrameTransform | None = None) -> list[Level]:
    """The head outputs as levels, finest first, whatever their order and layout."""
    maps = [np.asarray(o, dtype=np.float32) for o in outputs]
    if not maps or any(m.ndim != 4 or m.shape[0] != 1 for m in maps):
        raise shape_error(KEY, tuple(maps[0].shape) if maps else (), _EXPECTED, f"got {len(maps)} output(s)")
    num_labels = len(task.labels)
    readings = {layout: _read(maps, layout == "NHWC", num_labels) for layout in ("NHWC", "NCHW")}
    fitting = [layout for layout, levels in readings.items() if levels is not None]
    shapes = ", ".join(str(list(m.shape)) for m in maps)
    if len(fitting) != 1:
        why = "no layout fits" if not fitting else "both NHWC and NCHW fit; give one level per stride"
        raise DecodeError(f"decoder {KEY!r}: outputs {shapes} are not YOLOv8 heads ({why}); expected {_EXPECTED}"
                          + (f" with nc={num_labels} labels" if num_labels else ""))
    levels = readings[fitting[0]]
    assert levels is not None
    if task.strides is not None and len(task.strides) != len(levels):
        raise DecodeError(f"decoder {KEY!r}: task.strides has {len(task.strides)} values for {len(levels)} "
                          f"output levels ({shapes})")
    h0 = levels[0][0][0]
    input_h = transform.input_wh[1] if transform is not None and transform.input_wh[1] else h0 * BASE_STRIDE
    return [Level(box, cls, grid, float(task.strides[i]) if task.strides is not None else input_h / grid[0])
            for i, (grid, box, cls) in enumerate(levels)]


def predictions(outputs: Sequence[np.ndarray], task: TaskSpec, transform: FrameTransform | None = None) -> np.ndarray:
    """The uncut model's output ``[1, 4 + nc, N]``: ``cx, cy, w, h`` in input pixels, then sigmoid scores."""
    columns = []
    for level in split_levels(outputs, task, transform):
        xyxy = level.boxes_xyxy(np.arange(level.box.shape[0]))
        cxcywh = np.concatenate([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], axis=1)
        columns.append(np.concatenate([cxcywh, _sigmoid(level.cls)], axis=1))
    stacked: np.ndarray = np.concatenate(columns, axis=0).T[None].astype(np.float32)
    return stacked


@register_decoder(KEY)
def decode_yolov8_heads(
    outputs: Sequence[np.ndarray], task: TaskSpec, transform: FrameTransform | None = None
) -> DecodeResult:
    """Decode only the candidates above the score threshold, then the usual threshold, NMS and cap."""
    p = task.score_threshold
    logit = -math.inf if p <= 0.0 else math.inf if p >= 1.0 else math.log(p / (1.0 - p))
    boxes, scores = [], []
    for level in split_levels(outputs, task, transform):
        rows = np.flatnonzero(level.cls.max(axis=1) >= logit)
        boxes.append(level.boxes_xyxy(rows))
        scores.append(_sigmoid(level.cls[rows]))
    nc = scores[0].shape[1]
    return select_detections(KEY, np.concatenate(boxes).reshape(-1, 4), np.concatenate(scores).reshape(-1, nc), task,
                             transform)
