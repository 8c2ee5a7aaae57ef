"""Frame -> model input, exactly as the manifest's :class:`PreprocessSpec` declares.

The host calibrates and validates through this module and the device runs it, so both
sides feed the model the same tensors. Frames are HxWx3 uint8 BGR (what OpenCV gives).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np

from device_agent.bundle.manifest import PreprocessSpec, TensorSpec
from device_agent.errors import MissingDependencyError, PreprocessError


def opencv(purpose: str = "image preprocessing") -> ModuleType:
    """OpenCV, imported where used (the manifest layer must not need it), or :class:`MissingDependencyError`
    naming the ``agent`` extra and ``purpose``."""
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError("cv2", "agent", purpose) from exc
    return cv2


@dataclass(frozen=True)
class FrameTransform:
    """Maps model-input pixel coordinates back to the original frame.

    ``frame_x = (input_x - pad_x) / scale_x + crop_x`` and likewise for y.
    """

    frame_wh: tuple[int, int]
    scale_x: float
    scale_y: float
    pad_x: float = 0.0
    pad_y: float = 0.0
    crop_x: float = 0.0
    crop_y: float = 0.0
    input_wh: tuple[int, int] = (0, 0)  # the model input's size, for decoders that give normalized boxes

    def to_frame(self, box_xyxy: np.ndarray) -> np.ndarray:
        """Boxes ``[N, 4]`` in model-input pixels -> frame pixels, clipped to the frame."""
        boxes: np.ndarray = np.asarray(box_xyxy, dtype=np.float32).reshape(-1, 4).copy()
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - self.pad_x) / self.scale_x + self.crop_x
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - self.pad_y) / self.scale_y + self.crop_y
        w, h = self.frame_wh
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        return boxes


def resize_frame(frame_bgr: np.ndarray, spec: PreprocessSpec) -> tuple[np.ndarray, FrameTransform]:
    """Fit a frame to the model's input size by the spec's resize mode; no colour change."""
    cv2 = opencv()
    if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
        raise PreprocessError(
            f"a frame must be an HxWx3 uint8 BGR image, got shape {frame_bgr.shape} dtype {frame_bgr.dtype}"
        )
    h, w = frame_bgr.shape[:2]
    if h < 2 or w < 2:
        raise PreprocessError(f"frame of {w}x{h} pixels is too small to resize")
    tw, th = spec.size_wh
    if spec.resize == "stretch":
        out = cv2.resize(frame_bgr, (tw, th), interpolation=cv2.INTER_LINEAR)
        return out, FrameTransform((w, h), tw / w, th / h, input_wh=(tw, th))
    if spec.resize == "letterbox":
        r = min(tw / w, th / h)
        nw, nh = max(1, round(w * r)), max(1, round(h * r))
        resized = cv2.resize(frame_bgr, (nw, nh), interpolation=cv2.INTER_LINEAR)
        out = np.full((th, tw, 3), spec.pad_value, dtype=np.uint8)
        px, py = (tw - nw) // 2, (th - nh) // 2
        out[py : py + nh, px : px + nw] = resized
        return out, FrameTransform((w, h), nw / w, nh / h, px, py, input_wh=(tw, th))
    # center-crop: keep crop_fraction of the short side, centred, then resize to the input
    side = min(h, w) * spec.crop_fraction
    cw, ch = (side * tw / max(tw, th), side * th / max(tw, th)) if tw != th else (side, side)
    x0, y0 = round((w - cw) / 2), round((h - ch) / 2)
    crop = frame_bgr[y0 : y0 + round(ch), x0 : x0 + round(cw)]
    out = cv2.resize(crop, (tw, th), interpolation=cv2.INTER_LINEAR)
    return out, FrameTransform((w, h), tw / crop.shape[1], th / crop.shape[0], crop_x=x0, crop_y=y0, input_wh=(tw, th))


def to_tensor(image_bgr: np.ndarray, spec: PreprocessSpec, dtype: np.dtype = np.dtype(np.float32)) -> np.ndarray:
    """A resized HxWx3 BGR image -> a batch-of-one tensor in the spec's colour, scale and layout.

    ``(pixel * scale - mean) / std`` is folded into one multiply and one subtract per
    channel, done in place in the output layout: three passes over the pixels, not seven.
    """
    if spec.color == "RGB":
        image = image_bgr[..., ::-1]
    elif spec.color == "GRAY":
        image = opencv().cvtColor(image_bgr, opencv().COLOR_BGR2GRAY)[..., None]
    else:
        image = image_bgr
    channels = image.shape[-1]
    std = np.asarray(spec.std[:channels], dtype=np.float32)
    gain = np.float32(spec.scale) / std
    offset = np.asarray(spec.mean[:channels], dtype=np.float32) / std
    if spec.layout == "NCHW":
        x = np.empty((1, channels, *image.shape[:2]), dtype=np.float32)
        x[0] = image.transpose(2, 0, 1)  # the one copy that converts to float and changes layout
        x *= gain[None, :, None, None]
        x -= offset[None, :, None, None]
    else:
        x = image[None].astype(np.float32)
        x *= gain
        x -= offset
    return x if dtype == np.float32 else x.astype(dtype)


def preprocess(frame_bgr: np.ndarray, spec: PreprocessSpec) -> tuple[np.ndarray, FrameTransform]:
    """Frame -> (float32 input tensor, transform back to frame pixels)."""
    resized, transform = resize_frame(frame_bgr, spec)
    return to_tensor(resized, spec), transform


def quantize_values(x: np.ndarray, dtype: str, scale: float, zero_point: int) -> np.ndarray:
    """``q = clip(round(x / scale) + zero_point)`` in the integer ``dtype``: the one quantization formula."""
    info = np.iinfo(np.dtype(dtype))
    q: np.ndarray = np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(dtype)
    return q


def dequantize_values(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """``x = scale * (q - zero_point)`` in float32."""
    x: np.ndarray = (q.astype(np.float32) - zero_point) * np.float32(scale)
    return x


def quantize(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Float tensor -> the integer input an int8/uint8 model takes (``q = round(x / scale) + zero_point``)."""
    if spec.quantization is None:
        return x.astype(spec.dtype, copy=False)
    return quantize_values(x, spec.dtype, spec.quantization.scale, spec.quantization.zero_point)


def dequantize(outputs: list[np.ndarray], specs: list[TensorSpec]) -> list[np.ndarray]:
    """Integer outputs -> float (``x = scale * (q - zero_point)``); float outputs pass through."""
    return [
        out if spec.quantization is None
        else dequantize_values(out, spec.quantization.scale, spec.quantization.zero_point)
        for out, spec in zip(outputs, specs)
    ]
