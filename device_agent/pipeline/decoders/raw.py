"""``raw``: no decoding; the outputs are passed on as they are (for models we do not know)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from device_agent.bundle.manifest import TaskSpec
from device_agent.pipeline.decoders.registry import register_decoder
from device_agent.pipeline.decoders.types import DecodeResult
from device_agent.pipeline.preprocess import FrameTransform

KEY = "raw"


@register_decoder(KEY)
def decode_raw(
    outputs: Sequence[np.ndarray], task: TaskSpec, transform: FrameTransform | None = None
) -> DecodeResult:
    """The outputs unchanged, in ``DecodeResult.raw``; ``task`` and ``transform`` are not used."""
    return DecodeResult(decoder=KEY, kind="raw", raw=tuple(np.asarray(o) for o in outputs))
