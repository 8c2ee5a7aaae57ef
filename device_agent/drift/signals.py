"""What drift watches in each frame: cheap statistics of the model's input and of its result.

Input statistics are taken on the *resized* frame (the model's input size, before colour
conversion and normalization), not the camera's full frame: host and device then see the same
pixels (optimize recovers them from its calibration tensors, :func:`luma_of_tensor`), blur is
measured at one scale whatever the camera's resolution, and the cost is that of a 224x224 image
rather than a 640x480 one (``benchmarks/drift.py``).

- ``brightness``: mean luma (0-255); ``contrast``: its standard deviation; ``dynamic_range``:
  the spread between its 5th and 95th percentiles.
- ``blur``: variance of the 4-neighbour Laplacian of luma (low: blurred or defocused).
- ``underexposed`` / ``overexposed``: fraction of pixels with luma under 16 / at 240 or more.
- ``top1_confidence``: the best score in the result (0 when a detector found nothing);
  ``detections``: objects per frame (detectors only); the class mix: top-1 label of a
  classifier, every detection's label of a detector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device_agent.bundle.manifest import PreprocessSpec
from device_agent.pipeline.decoders.types import DecodeResult

INPUT_SIGNALS = ("brightness", "contrast", "dynamic_range", "blur", "underexposed", "overexposed")
UNDER_LUMA, OVER_LUMA = 16, 240
_BGR_TO_LUMA = np.array([0.114, 0.587, 0.299], dtype=np.float32)  # ITU-R BT.601, as OpenCV's BGR2GRAY


def luma_of_bgr(image_bgr: np.ndarray) -> np.ndarray:
    """HxW float32 luma of an HxWx3 BGR image (uint8 or float)."""
    luma: np.ndarray = image_bgr.astype(np.float32, copy=False) @ _BGR_TO_LUMA
    return luma


def luma_of_tensor(tensor: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Luma of one model input (``[C, H, W]``/``[H, W, C]`` or with a batch of one) made by ``spec``.

    Undoes ``(pixel * scale - mean) / std`` and the colour order, so optimize measures its
    calibration tensors on the pixels the device measures frames on.
    """
    x = np.asarray(tensor, dtype=np.float32)
    if x.ndim == 4:
        x = x[0]
    if spec.layout == "NCHW":
        x = x.transpose(1, 2, 0)
    channels = x.shape[-1]
    pixels = (x * np.asarray(spec.std[:channels], dtype=np.float32)
              + np.asarray(spec.mean[:channels], dtype=np.float32)) / np.float32(spec.scale)
    if spec.color == "GRAY" or channels == 1:
        return np.asarray(pixels[..., 0], dtype=np.float32)
    return luma_of_bgr(pixels[..., ::-1] if spec.color == "RGB" else pixels)


def input_signals(luma: np.ndarray) -> tuple[float, ...]:
    """The :data:`INPUT_SIGNALS` of one frame's luma, in that order.

    One 256-bin histogram gives the mean, spread, percentiles and exposure fractions; only the
    Laplacian needs another pass.
    """
    levels = np.clip(luma + 0.5, 0, 255).astype(np.uint8)
    hist = np.bincount(levels.ravel(), minlength=256).astype(np.float64)
    n = hist.sum()
    values = np.arange(256, dtype=np.float64)
    mean = float(hist @ values / n)
    std = float(np.sqrt(max(hist @ (values - mean) ** 2 / n, 0.0)))
    cdf = np.cumsum(hist) / n
    spread = float(np.searchsorted(cdf, 0.95) - np.searchsorted(cdf, 0.05))
    under, over = float(cdf[UNDER_LUMA - 1]), float(1.0 - cdf[OVER_LUMA - 1])
    if min(luma.shape) >= 3:
        lap = luma[1:-1, :-2] + luma[1:-1, 2:] + luma[:-2, 1:-1] + luma[2:, 1:-1] - 4.0 * luma[1:-1, 1:-1]
        blur = float(lap.var())
    else:
        blur = 0.0
    return mean, std, spread, blur, under, over


@dataclass(frozen=True)
class OutputSignals:
    """What drift reads in one decoded result."""

    top1_confidence: float | None  # None: a decoder with no scores (raw)
    detections: int | None  # None: not a detector
    classes: tuple[str, ...]


def output_signals(result: DecodeResult) -> OutputSignals:
    """Top-1 confidence, detection count and labels of one result."""
    if result.kind == "classification":
        best = max(result.classifications, key=lambda c: c.score, default=None)
        if best is None:
            return OutputSignals(None, None, ())
        return OutputSignals(best.score, None, (best.label or str(best.class_id),))
    if result.kind == "detection":
        top = max((d.score for d in result.detections), default=0.0)
        return OutputSignals(top, len(result.detections),
                             tuple(d.label or str(d.class_id) for d in result.detections))
    return OutputSignals(None, None, ())
