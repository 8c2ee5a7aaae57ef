"""Model outputs -> meaning: a registry of decoders keyed by the manifest's ``task.decoder``.

Importing this package registers the built-in decoders (``softmax-topk``, ``yolov8``,
``yolov8-heads``, ``yolov5``, ``ssd``, ``raw``); a new decoder is one module that uses :func:`register_decoder`
and is imported below.
"""

from __future__ import annotations

from device_agent.pipeline.decoders.boxes import iou_matrix, nms
from device_agent.pipeline.decoders.registry import DECODERS, Decoder, decode, get_decoder, register_decoder
from device_agent.pipeline.decoders.types import Classification, DecodeResult, Detection

# imported for their registration side effect
from device_agent.pipeline.decoders import raw, softmax_topk, ssd, yolov5, yolov8, yolov8_heads  # noqa: F401  isort: skip

__all__ = [
    "DECODERS",
    "Classification",
    "DecodeResult",
    "Decoder",
    "Detection",
    "decode",
    "get_decoder",
    "iou_matrix",
    "nms",
    "register_decoder",
]
