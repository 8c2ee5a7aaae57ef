"""A small JPEG of a frame, never over a byte cap, and boxes scaled into it (numpy and OpenCV only).

The frame is first scaled so its longer side is at most ``max_side``; then the JPEG quality
goes down in steps of :data:`QUALITY_STEP` to :data:`QUALITY_FLOOR` (at once when an attempt is
:data:`HOPELESS_RATIO` times over the cap); if it still does not fit,
the image is scaled down (by the square root of the byte ratio, at least by :data:`SCALE_STEP`,
since a JPEG's size goes roughly with its area) and encoded again at the floor quality, until it
fits or its longer side would fall below :data:`MIN_SIDE` (then there is no thumbnail: the cap is
never exceeded). Cost (``benchmarks/thumbnail.py``): see :mod:`device_agent.service.thumbnails`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from device_agent.errors import PreprocessError
from device_agent.pipeline.decoders.types import Detection
from device_agent.pipeline.preprocess import opencv

QUALITY_STEP = 10
"""JPEG quality lost per attempt before the image is scaled down."""
QUALITY_FLOOR = 30
"""Lowest quality tried (or the starting quality, when that is lower): below it a JPEG is mostly blocks."""
HOPELESS_RATIO = 3.0
"""An encode this many times over the cap skips the remaining quality steps: it saves encodes (~1 ms each)
when only scaling down will do."""
SCALE_STEP = 0.75
"""Each scale-down shrinks both sides by at least this factor."""
MIN_SIDE = 32
"""A thumbnail whose longer side would be smaller than this is not made."""



@dataclass(frozen=True)
class Jpeg:
    """An encoded thumbnail: the bytes, its size and how it was reached."""

    data: bytes
    width: int
    height: int
    quality: int
    attempts: int
    """imencode calls it took (1 when the first try fitted)."""


@dataclass(frozen=True)
class ScaledBox:
    """A detection in thumbnail pixels."""

    label: str
    score: float
    box_xyxy: tuple[float, float, float, float]


def encode_jpeg(image: np.ndarray, *, max_side: int, max_bytes: int, quality: int) -> Jpeg | None:
    """``image`` (HxWx3 BGR or HxW uint8) as a JPEG of at most ``max_bytes``; None if even the smallest does not fit.

    Raises :class:`PreprocessError` for an image OpenCV cannot encode (empty, wrong dtype)."""
    if image.ndim not in (2, 3) or image.size == 0 or image.dtype != np.uint8:
        raise PreprocessError(f"cannot make a thumbnail of a {image.dtype} array of shape {image.shape}")
    cv2 = opencv("alert thumbnails")
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    q, floor, attempts = quality, min(quality, QUALITY_FLOOR), 0
    while True:
        tw, th = max(1, round(w * scale)), max(1, round(h * scale))
        small = image if (tw, th) == (w, h) else cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
        while True:
            ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, q])
            attempts += 1
            if not ok:
                raise PreprocessError(f"OpenCV could not encode a {tw}x{th} JPEG")
            if buf.size <= max_bytes:
                return Jpeg(data=buf.tobytes(), width=tw, height=th, quality=q, attempts=attempts)
            if q <= floor:
                break
            # far over the cap, the steps cannot get there (80 -> 30 shrinks a JPEG ~2.3x): straight to the floor
            q = floor if buf.size > HOPELESS_RATIO * max_bytes else max(floor, q - QUALITY_STEP)
        if max(tw, th) <= MIN_SIDE:
            return None
        shrink = min(SCALE_STEP, 0.95 * math.sqrt(max_bytes / buf.size))
        scale = max(scale * shrink, MIN_SIDE / max(h, w))


def scale_boxes(detections: Iterable[Detection], *, frame_wh: tuple[int, int],
                thumb_wh: tuple[int, int]) -> list[ScaledBox]:
    """Each detection's frame-pixel box in thumbnail pixels, clipped to the thumbnail, rounded to 0.1 px."""
    sx, sy = thumb_wh[0] / frame_wh[0], thumb_wh[1] / frame_wh[1]
    out = []
    for d in detections:
        x0, y0, x1, y1 = d.box_xyxy
        box = (_clip(x0 * sx, thumb_wh[0]), _clip(y0 * sy, thumb_wh[1]),
               _clip(x1 * sx, thumb_wh[0]), _clip(y1 * sy, thumb_wh[1]))
        out.append(ScaledBox(label=d.label, score=round(float(d.score), 4), box_xyxy=box))
    return out


def _clip(value: float, limit: int) -> float:
    return round(min(max(float(value), 0.0), float(limit)), 1)
