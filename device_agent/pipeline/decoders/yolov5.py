"""``yolov5``: YOLOv5-style head ``[1, N, 5 + nc]`` -> thresholded, NMS'd detections.

Per candidate: ``cx, cy, w, h`` in input pixels, an objectness, then ``nc`` class
probabilities; a class's score is objectness times its probability.
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

KEY = "yolov5"


@register_decoder(KEY)
def decode_yolov5(
    outputs: Sequence[np.ndarray], task: TaskSpec, transform: FrameTransform | None = None
) -> DecodeResult:
    """Score = objectness x class probability; threshold, class-aware NMS, cap, map to frame."""
    num_labels = len(task.labels)
    expected = f"[1, N, {5 + num_labels}] (4 box values, objectness, {num_labels} labels)" if num_labels else (
        "[1, N, 5+nc] with nc >= 1"
    )
    out = first_output(outputs, KEY, expected)
    if out.ndim != 3 or out.shape[0] != 1 or out.shape[2] < 6:
        raise shape_error(KEY, out.shape, expected)
    if num_labels and out.shape[2] != 5 + num_labels:
        raise shape_error(KEY, out.shape, expected)
    preds = out[0]
    class_scores = preds[:, 4:5] * preds[:, 5:]
    return select_detections(KEY, cxcywh_to_xyxy(preds[:, :4]), class_scores, task, transform)
