"""``ssd``: SSD heads with anchors (TF Object Detection API / MediaPipe layout).

Outputs: box encodings ``[1, N, 4]`` as ``(ty, tx, th, tw)`` against the manifest's anchors
``(y_center, x_center, height, width)``, and class logits ``[1, N, C]`` (``C`` counts a
leading background column when ``background_class``). Decoding, with scales ``(sy, sx,
sh, sw)``: ``y = ty / sy * ha + ya``, ``h = exp(th / sh) * ha``, likewise for x and w; scores
are sigmoids. Boxes are normalized, then scaled to the model input and mapped to the frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from device_agent.bundle.manifest import TaskSpec
from device_agent.errors import DecodeError
from device_agent.pipeline.decoders._detections import select_detections
from device_agent.pipeline.decoders.registry import register_decoder, shape_error
from device_agent.pipeline.decoders.types import DecodeResult
from device_agent.pipeline.preprocess import FrameTransform

KEY = "ssd"


def decode_boxes(encodings: np.ndarray, anchors_yxhw: np.ndarray, scales: Sequence[float]) -> np.ndarray:
    """``[N, 4]`` encodings + anchors -> ``[N, 4]`` normalized ``x0, y0, x1, y1``."""
    sy, sx, sh, sw = scales
    ya, xa, ha, wa = anchors_yxhw.T
    y = encodings[:, 0] / sy * ha + ya
    x = encodings[:, 1] / sx * wa + xa
    h = np.exp(encodings[:, 2] / sh) * ha
    w = np.exp(encodings[:, 3] / sw) * wa
    return np.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], axis=1)


@register_decoder(KEY)
def decode_ssd(outputs: Sequence[np.ndarray], task: TaskSpec, transform: FrameTransform | None = None) -> DecodeResult:
    if not task.anchors_yxhw:
        raise DecodeError("decoder 'ssd' needs the anchors in the manifest's task.anchors_yxhw; none are given")
    anchors = np.asarray(task.anchors_yxhw, dtype=np.float32)
    n = len(anchors)
    boxes = next((o for o in outputs if o.ndim == 3 and o.shape[1:] == (n, 4)), None)
    scores = next((o for o in outputs if o.ndim == 3 and o.shape[1] == n and o is not boxes), None)
    if boxes is None or scores is None:
        raise shape_error(KEY, tuple(o.shape for o in outputs), f"[1, {n}, 4] box encodings and [1, {n}, C] scores")
    logits = scores[0, :, 1:] if task.background_class else scores[0]
    class_scores = 1.0 / (1.0 + np.exp(-logits.astype(np.float32)))
    box_xyxy = decode_boxes(boxes[0].astype(np.float32), anchors, task.box_scales)
    if transform is not None and transform.input_wh != (0, 0):
        box_xyxy = box_xyxy * np.array([*transform.input_wh, *transform.input_wh], dtype=np.float32)
    return select_detections(KEY, box_xyxy, class_scores, task, transform)
