"""The source registry: each backend module registers itself under a kind; the URI picks the kind.

    "0"                       camera      (integer camera index)
    "/dev/video2"             v4l2        (a V4L2 device node)
    "rtsp://...", "http://.." url         (network stream through FFmpeg)
    "v4l2src ! ... ! appsink" gstreamer   (a pipeline: contains " ! ")
    "clips/street.mp4"        video-file  (an existing file)
    "frames/"                 image-folder (an existing folder of images)

:func:`open_source` resolves the kind and builds the backend (without opening it: the runner
opens it in a helper thread, because an open can hang). A URI that fits no kind is a
:class:`SourceError` that names the URI and lists what is accepted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import ClassVar, Protocol, TypeVar

import numpy as np

from device_agent.errors import SourceError
from device_agent.registry import Registry

EXPECTED = (
    "a camera index (e.g. '0'), a device node '/dev/videoN', an rtsp:// or http(s):// URL, "
    "a GStreamer pipeline (elements joined by ' ! '), a video file, or a folder of images"
)
_URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
_DEVICE = re.compile(r"^/dev/(video\d+|v4l/.+)$")


@dataclass(frozen=True)
class SourceSpec:
    """What to open and how patiently. ``kind`` forces a backend instead of guessing from the URI."""

    uri: str
    kind: str | None = None
    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0


class SourceBackend(Protocol):
    """One connection to a camera, stream, file or folder. Not thread-safe: one thread owns it."""

    kind: ClassVar[str]
    finite: ClassVar[bool]  # a file or folder: it ends, can loop, and is paced to an fps

    def __init__(self, spec: SourceSpec) -> None: ...

    def open(self) -> None:
        """Connect; raise :class:`SourceError` saying why on failure."""

    def read(self) -> np.ndarray | None:
        """The next HxWx3 uint8 BGR image; ``None`` at the end of the stream or on a failed grab.

        Raises :class:`SourceError` when the source broke in a way the caller should know
        (a file that vanished or shrank mid-stream)."""

    def close(self) -> None:
        """Release the device or file; safe to call twice and after a failed open."""


B = TypeVar("B", bound=type)
SOURCES: Registry[type[SourceBackend]] = Registry("source kind")


def register_source(kind: str) -> Callable[[B], B]:
    """Class decorator: make a backend available under ``kind``."""

    def add(cls: B) -> B:
        SOURCES.register(kind, cls)
        cls.kind = kind  # type: ignore[attr-defined]
        return cls

    return add


def source_kind(uri: str) -> str:
    """The kind a URI names; :class:`SourceError` naming the URI and what is accepted if none."""
    text = uri.strip()
    if not text:
        raise SourceError(f"empty source URI; expected {EXPECTED}")
    if " ! " in text:
        return "gstreamer"
    if text.isdigit():
        return "camera"
    if _DEVICE.match(text):
        return "v4l2"
    scheme, sep, _ = text.partition("://")
    if sep:
        if scheme.lower() in _URL_SCHEMES:
            return "url"
        if scheme.lower() != "file":
            raise SourceError(f"source URI {uri!r} has the unsupported scheme '{scheme}://'; expected {EXPECTED}")
        text = text[len("file://") :]
    path = Path(text).expanduser()
    if path.is_dir():
        return "image-folder"
    if path.is_file():
        return "video-file"
    if text.endswith(("/", "\\")) or not path.suffix:
        raise SourceError(f"source URI {uri!r}: no such folder; expected an existing folder of images, or {EXPECTED}")
    raise SourceError(f"source URI {uri!r}: no such file; expected an existing video file, or {EXPECTED}")


def open_source(spec: SourceSpec | str) -> SourceBackend:
    """Resolve ``spec`` to its registered backend and build it, not yet opened."""
    if isinstance(spec, str):
        spec = SourceSpec(uri=spec)
    kind = spec.kind or source_kind(spec.uri)
    try:
        cls = SOURCES[kind]
    except KeyError:
        known = ", ".join(SOURCES.names()) or "none"
        raise SourceError(f"unknown source kind {kind!r} for {spec.uri!r}; known kinds: {known}") from None
    return cls(spec)


def local_path(uri: str) -> Path:
    """The filesystem path of a file or folder URI (``file://`` stripped, ``~`` expanded)."""
    text = uri.strip()
    if text.startswith("file://"):
        text = text[len("file://") :]
    return Path(text).expanduser()


QUIET_NATIVE_LOGS = {"OPENCV_LOG_LEVEL": "ERROR", "OPENCV_FFMPEG_LOGLEVEL": "-8"}
"""OpenCV's and FFmpeg's own stderr lines, silenced unless the user set these variables.

A camera that is away prints a ``[tcp @ 0x...] Connection refused`` from FFmpeg and a
``[ WARN:...] VIDEOIO(FFMPEG)`` from OpenCV at *every* reconnect attempt, forever, straight to
the journal. The runner already logs each state change once with its reason, so these are
noise; ``OPENCV_FFMPEG_LOGLEVEL=-8`` is FFmpeg's AV_LOG_QUIET. Both are read by the native
code when it first logs or opens a stream, so they are set before cv2 is imported. To debug a
camera, set them yourself (e.g. ``OPENCV_FFMPEG_LOGLEVEL=32``, ``OPENCV_LOG_LEVEL=INFO``).
"""


def import_cv2() -> ModuleType:
    """OpenCV, or :class:`MissingDependencyError` naming the ``agent`` extra."""
    for name, value in QUIET_NATIVE_LOGS.items():
        os.environ.setdefault(name, value)
    try:
        import cv2
    except ImportError as exc:
        from device_agent.errors import MissingDependencyError

        raise MissingDependencyError("cv2", "agent", "reading camera frames") from exc
    if os.environ.get("OPENCV_LOG_LEVEL") == QUIET_NATIVE_LOGS["OPENCV_LOG_LEVEL"]:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # also when cv2 was imported earlier
    return cv2
