"""A video file as a source: finite, loopable, paced by the runner.

OpenCV reports a failed grab and the end of the file the same way (``read()`` gives False).
At that point this backend checks whether the file is still the one it opened (still there,
same size) and whether every frame the container announced was read; if not, the end was a
read error and :class:`SourceError` says so, so the runner reconnects instead of finishing.
Note that on POSIX a deleted file stays readable through the open handle: the deletion is
noticed at the end of the current pass (or of the next loop's reopen).
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np

from device_agent.errors import SourceError
from device_agent.sources.opencv import CaptureSource
from device_agent.sources.registry import SourceSpec, import_cv2, local_path, register_source


@register_source("video-file")
class VideoFileSource(CaptureSource):
    """A video file OpenCV can decode (FFmpeg: mp4, avi, mkv, ...)."""

    finite: ClassVar[bool] = True
    api_name = "CAP_ANY"
    what = "video file"

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        self.path = local_path(spec.uri)
        self._stat: os.stat_result | None = None
        self._announced = 0
        self._read = 0

    def target(self) -> str | int:
        return str(self.path)

    def open(self) -> None:
        try:
            self._stat = self.path.stat()
        except FileNotFoundError:
            raise SourceError(f"video file {self.spec.uri!r} does not exist") from None
        except OSError as exc:
            raise SourceError(f"video file {self.spec.uri!r} cannot be read: {exc}") from exc
        super().open()
        cap: Any = self._cap
        self._announced = max(0, int(cap.get(import_cv2().CAP_PROP_FRAME_COUNT) or 0))
        self._read = 0

    def read(self) -> np.ndarray | None:
        image = super().read()
        if image is not None:
            self._read += 1
            return image
        self._check_intact()
        return None

    def _check_intact(self) -> None:
        where = f"video file {self.spec.uri!r}"
        try:
            now = self.path.stat()
        except FileNotFoundError:
            raise SourceError(f"{where} was removed while it was read (after frame {self._read})") from None
        except OSError as exc:
            raise SourceError(f"{where} cannot be read any more: {exc}") from exc
        if self._stat is not None and (now.st_ino, now.st_size) != (self._stat.st_ino, self._stat.st_size):
            raise SourceError(
                f"{where} changed while it was read (size {self._stat.st_size} -> {now.st_size} bytes, "
                f"after frame {self._read}): truncated or rewritten"
            )
        if self._announced and self._read < self._announced:
            raise SourceError(f"{where} stopped decoding at frame {self._read} of {self._announced}: "
                              "corrupt or truncated")
