"""``softmax-topk``: a classifier's ``[1, C]`` logits or probabilities -> its top-k classes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from device_agent.bundle.manifest import TaskSpec
from device_agent.pipeline.decoders._detections import label_for
from device_agent.pipeline.decoders.registry import first_output, register_decoder, shape_error
from device_agent.pipeline.decoders.types import Classification, DecodeResult
from device_agent.pipeline.preprocess import FrameTransform

KEY = "softmax-topk"
_EXPECTED = "[1, C] (C class logits or probabilities; [1, C, 1, 1] is accepted too)"
# a row is taken as probabilities already when it is non-negative and sums to 1 within this
_SUM_TOLERANCE = 1e-3


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the max so large logits do not overflow."""
    shifted = np.asarray(logits, dtype=np.float64) - np.max(logits, axis=-1, keepdims=True)
    e = np.exp(shifted)
    probabilities: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return probabilities


def as_probabilities(row: np.ndarray) -> np.ndarray:
    """A row of scores as probabilities: unchanged if it already is, softmax otherwise."""
    row = np.asarray(row, dtype=np.float64)
    if row.min() >= 0.0 and abs(float(row.sum()) - 1.0) <= _SUM_TOLERANCE:
        return row
    return softmax(row)


@register_decoder(KEY)
def decode_softmax_topk(
    outputs: Sequence[np.ndarray], task: TaskSpec, transform: FrameTransform | None = None
) -> DecodeResult:
    """Top ``task.top_k`` classes by probability, best first; ``transform`` is not used."""
    out = first_output(outputs, KEY, _EXPECTED)
    # a 1x1 spatial tail is what a conv head without flatten gives
    if out.ndim < 2 or out.shape[0] != 1 or any(d != 1 for d in out.shape[2:]) or out.shape[1] < 1:
        raise shape_error(KEY, out.shape, _EXPECTED)
    num_classes = out.shape[1]
    if task.labels and len(task.labels) != num_classes:
        raise shape_error(KEY, out.shape, f"[1, {len(task.labels)}]", f"the task has {len(task.labels)} labels")
    probs = as_probabilities(out.reshape(num_classes))
    k = min(task.top_k, num_classes)
    top = np.argsort(-probs, kind="stable")[:k]
    classifications = tuple(
        Classification(class_id=int(c), label=label_for(int(c), task.labels), score=float(probs[c])) for c in top
    )
    return DecodeResult(decoder=KEY, kind="classification", classifications=classifications)
