"""``yolov8``: Ultralytics YOLOv8/v11 detection head -> thresholded, NMS'd detections.

The exported head is ``[1, 4 + nc, N]``: per candidate ``cx, cy, w, h`` in input
pixels, then ``nc`` class scores already passed through a sigmoid (no objectness).
Some exports transpose it to ``[1, N, 4 + nc]``; both are read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from device_agent.bundle.manifest import TaskSpec
from device_agent.pipeline.decoders._detections import select_detections
from device_agent.pipeline.decoders.boxes import cxcywh_to_xyxy
from device_agent.pipeline.decoders.registry import first_output, register_decoder, shape_error
from device_agent.pipeline.decoders.types import DecodeResult
from device_agent.pipeline.preprocess import FrameTransform

KEY = "yolov8"


def candidates_last(out: np.ndarray, num_labels: int) -> np.ndarray:
    """The head as ``[N, 4 + nc]``, whichever of the two layouts it came in.

    With labels the channel axis is the one of size ``4 + len(labels)``; without, it is
    the smaller axis (a head has far more candidates than channels).
    """
    expected = "[1, 4+nc, N] or [1, N, 4+nc] with nc >= 1"
    if num_labels:
        expected = f"[1, {4 + num_labels}, N] or [1, N, {4 + num_labels}] (4 box values + {num_labels} labels)"
    if out.ndim != 3 or out.shape[0] != 1:
        raise shape_error(KEY, out.shape, expected)
    a, b = out.shape[1], out.shape[2]
    rows: np.ndarray  # [N, 4+nc]; numpy types out[0] as Any
    if num_labels:
        channels = 4 + num_labels
        if a == channels:
            rows = out[0].T
            return rows
        if b == channels:
            rows = out[0]
            return rows
        raise shape_error(KEY, out.shape, expected)
    if min(a, b) < 5:
        raise shape_error(KEY, out.shape, expected, "fewer than 5 channels")
    rows = out[0].T if a <= b else out[0]
    return rows


@register_decoder(KEY)
def decode_yolov8(
    outputs: Sequence[np.ndarray], task: TaskSpec, transform: FrameTransform | None = None
) -> DecodeResult:
    """Score = best class score; threshold, class-aware NMS, cap, then map to the frame."""
    out = first_output(outputs, KEY, "[1, 4+nc, N]")
    preds = candidates_last(out, len(task.labels))
    return select_detections(KEY, cxcywh_to_xyxy(preds[:, :4]), preds[:, 4:], task, transform)
