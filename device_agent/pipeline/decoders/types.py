"""Frozen result records every decoder returns, and their JSON form.

Boxes are ``box_xyxy`` in frame pixels when the decoder was given a
:class:`~device_agent.pipeline.preprocess.FrameTransform`, in model-input pixels otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

ResultKind = Literal["classification", "detection", "raw"]


@dataclass(frozen=True)
class Classification:
    """One class of a classifier's top-k: ``score`` is a probability in [0, 1]."""

    class_id: int
    label: str
    score: float

    def to_json(self) -> dict[str, Any]:
        return {"class_id": self.class_id, "label": self.label, "score": self.score}


@dataclass(frozen=True)
class Detection:
    """One detected object after thresholding and NMS."""

    class_id: int
    label: str
    score: float
    box_xyxy: tuple[float, float, float, float]

    def to_json(self) -> dict[str, Any]:
        return {
            "class_id": self.class_id,
            "label": self.label,
            "score": self.score,
            "box_xyxy": list(self.box_xyxy),
        }


@dataclass(frozen=True)
class DecodeResult:
    """What one inference means: the decoder's key and kind, and the records it produced.

    ``raw`` holds the model's outputs only for the ``raw`` decoder; structured decoders
    leave it empty so a result stays small enough to queue and publish.
    """

    decoder: str
    kind: ResultKind
    classifications: tuple[Classification, ...] = ()
    detections: tuple[Detection, ...] = ()
    # arrays do not compare or hash usefully; equality is over the decoded records
    raw: tuple[np.ndarray, ...] = field(default=(), compare=False)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; raw outputs are summarised by shape and dtype, not dumped."""
        return {
            "decoder": self.decoder,
            "kind": self.kind,
            "classifications": [c.to_json() for c in self.classifications],
            "detections": [d.to_json() for d in self.detections],
            "raw": [{"shape": list(a.shape), "dtype": str(a.dtype)} for a in self.raw],
        }
