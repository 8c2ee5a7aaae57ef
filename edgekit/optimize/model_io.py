"""Feeding one set of samples to models of different layouts and types, and reading them back.

The reference and the calibration data are NCHW float (the ONNX model's own input). A TFLite
candidate takes NHWC, and a full-integer one int8 with a scale and zero point. These two
functions move samples into a model's input form and its outputs back to float, so every
candidate is validated and timed on the very same samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from device_agent.pipeline.preprocess import dequantize_values, quantize_values
from device_agent.runtimes import TensorInfo


def in_layout(info: TensorInfo, x: np.ndarray) -> np.ndarray:
    """Samples ``[N, ...]`` in the reference's layout moved to ``info``'s (NCHW -> NHWC where the
    model takes NHWC), still float; the batch size may differ from the model's."""
    if (x.ndim == 4 and tuple(x.shape[1:]) != tuple(info.shape[1:])
            and x.shape[2:] + x.shape[1:2] == tuple(info.shape[1:])):
        return np.ascontiguousarray(np.moveaxis(x, 1, -1))
    return x


def adapt_feeds(infos: Sequence[TensorInfo], feeds: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``feeds`` (the reference's layout, float) in each input's layout and type."""
    adapted = []
    for info, x in zip(infos, feeds, strict=True):
        x = in_layout(info, x)
        if tuple(x.shape) != tuple(info.shape):
            raise ValueError(f"sample of shape {list(x.shape)} does not fit input {info.name!r} {list(info.shape)}")
        adapted.append(x.astype(info.dtype, copy=False) if info.quantization is None
                       else quantize_values(x, info.dtype, *info.quantization))
    return adapted


def float_outputs(infos: Sequence[TensorInfo], outputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Integer outputs of a quantized model back to float; float outputs as they are."""
    return [out if info.quantization is None else dequantize_values(out, *info.quantization)
            for info, out in zip(infos, outputs, strict=True)]
