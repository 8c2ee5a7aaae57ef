"""Camera sources: a registry of backends keyed by kind, and a supervised runner.

    runner = SourceRunner("rtsp://cam/stream", name="door", on_state=print).start()
    frame = runner.frames.get(timeout=1.0)   # the newest frame, or None
    runner.stop()

Importing this package registers the built-in backends (``camera``, ``v4l2``, ``url``,
``gstreamer``, ``video-file``, ``image-folder``); a new backend is one module that uses
:func:`register_source` and is imported below.
"""

from __future__ import annotations

from device_agent.errors import SourceError, SourceStateError
from device_agent.sources.latest import LatestFrame
from device_agent.sources.registry import SOURCES, SourceBackend, SourceSpec, open_source, register_source, source_kind
from device_agent.sources.runner import SourceRunner
from device_agent.sources.types import ALLOWED_TRANSITIONS, Frame, SourceState, StateChange, transition

# imported for their registration side effect
from device_agent.sources import image_folder, opencv, video_file  # noqa: F401  isort: skip

__all__ = [
    "ALLOWED_TRANSITIONS",
    "SOURCES",
    "Frame",
    "LatestFrame",
    "SourceBackend",
    "SourceError",
    "SourceRunner",
    "SourceSpec",
    "SourceState",
    "SourceStateError",
    "StateChange",
    "open_source",
    "register_source",
    "source_kind",
    "transition",
]
