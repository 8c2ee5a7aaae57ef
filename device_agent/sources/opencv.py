"""Live sources through ``cv2.VideoCapture``: camera index, V4L2 device, network URL, GStreamer.

Each kind pins OpenCV's API preference instead of letting it guess (a guess can pick a backend
that blocks differently or cannot read the stream at all): V4L2 for device nodes, FFmpeg for
URLs (with its open and read timeouts, so a dead RTSP server returns instead of hanging),
GStreamer for pipelines.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import numpy as np

from device_agent.errors import SourceError
from device_agent.sources.registry import SourceSpec, import_cv2, register_source


def as_bgr(image: np.ndarray, where: str) -> np.ndarray:
    """HxWx3 uint8 BGR from what OpenCV returned (gray and BGRA are converted)."""
    cv2 = import_cv2()
    if image.dtype != np.uint8:
        raise SourceError(f"{where} gave a frame of dtype {image.dtype}; expected uint8")
    converted: np.ndarray  # cv2 comes from import_cv2, a module typed as such: its results are Any
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        converted = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        return converted
    if image.ndim == 3 and image.shape[2] == 4:
        converted = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        return converted
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise SourceError(f"{where} gave a frame of shape {list(image.shape)}; expected HxWx3")


class CaptureSource:
    """Shared ``cv2.VideoCapture`` handling; a subclass names its API preference and target."""

    kind: ClassVar[str] = "opencv"
    finite: ClassVar[bool] = False
    api_name: ClassVar[str] = "CAP_ANY"
    what: ClassVar[str] = "capture"

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self._cap: Any = None

    def target(self) -> str | int:
        return self.spec.uri.strip()

    def open_params(self, cv2: Any) -> list[int]:
        """``VideoCapture`` open parameters (pairs of property id and value)."""
        return []

    def check_available(self, cv2: Any) -> None:
        """Raise :class:`SourceError` when this OpenCV build lacks the backend."""

    def open(self) -> None:
        cv2 = import_cv2()
        self.check_available(cv2)
        api = getattr(cv2, self.api_name)
        try:
            cap = cv2.VideoCapture(self.target(), api, self.open_params(cv2))
        except cv2.error as exc:
            raise SourceError(f"OpenCV ({self.api_name}) could not open {self.what} {self.spec.uri!r}: {exc}") from exc
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"OpenCV ({self.api_name}) could not open {self.what} {self.spec.uri!r}")
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            raise SourceError(f"{self.what} {self.spec.uri!r} is not open")
        try:
            ok, image = self._cap.read()
        except import_cv2().error as exc:
            raise SourceError(f"reading {self.what} {self.spec.uri!r} failed: {exc}") from exc
        if not ok or image is None:
            return None
        return as_bgr(image, f"{self.what} {self.spec.uri!r}")

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


@register_source("camera")
class CameraIndexSource(CaptureSource):
    """``"0"``: the n-th camera; V4L2 on Linux, OpenCV's choice elsewhere."""

    api_name = "CAP_V4L2" if sys.platform.startswith("linux") else "CAP_ANY"
    what = "camera"

    def target(self) -> str | int:
        return int(self.spec.uri.strip())


@register_source("v4l2")
class V4L2DeviceSource(CaptureSource):
    """``/dev/videoN`` (or ``/dev/v4l/by-id/...``) through V4L2."""

    api_name = "CAP_V4L2"
    what = "V4L2 device"

    def open(self) -> None:
        super().open()
        # V4L2 waits in select(); bound it so an unplugged camera fails a read, not hangs one.
        self._cap.set(import_cv2().CAP_PROP_READ_TIMEOUT_MSEC, self.spec.read_timeout_s * 1000.0)


@register_source("url")
class StreamURLSource(CaptureSource):
    """``rtsp://``, ``http(s)://`` and other network streams through FFmpeg, with timeouts."""

    api_name = "CAP_FFMPEG"
    what = "stream"

    def open_params(self, cv2: Any) -> list[int]:
        params = []
        for name, seconds in (("CAP_PROP_OPEN_TIMEOUT_MSEC", self.spec.open_timeout_s),
                              ("CAP_PROP_READ_TIMEOUT_MSEC", self.spec.read_timeout_s)):  # fmt: skip
            prop = getattr(cv2, name, None)  # absent before OpenCV 4.6: rely on the runner's timeouts
            if prop is not None:
                params += [prop, max(1, int(seconds * 1000))]
        return params


@register_source("gstreamer")
class GStreamerSource(CaptureSource):
    """A GStreamer pipeline ending in ``appsink``; needs an OpenCV built with GStreamer."""

    api_name = "CAP_GSTREAMER"
    what = "GStreamer pipeline"

    def check_available(self, cv2: Any) -> None:
        registry = getattr(cv2, "videoio_registry", None)
        if registry is not None and not registry.hasBackend(cv2.CAP_GSTREAMER):
            raise SourceError(
                f"GStreamer pipeline {self.spec.uri!r} needs an OpenCV built with GStreamer; this one "
                "(e.g. the opencv-python wheel) has none: use the distribution's python3-opencv "
                "or build OpenCV with -DWITH_GSTREAMER=ON"
            )
