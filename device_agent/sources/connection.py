"""One connection to a source: a daemon thread that owns one backend from open to close.

It opens the backend, reads, paces files to ``fps`` in real time, loops files and folders by
reopening them, and hands each image to ``deliver``. Only a finite backend (a file or folder)
can end with "eos"; a live one whose read gives nothing ends with "error", so it is reconnected.
An open or read that hangs (OpenCV can block on a dead RTSP server) hangs only this thread: the
supervisor abandons it by setting
``cancelled``, and the backend is closed if the call ever returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from device_agent.errors import AgentError
from device_agent.sources.registry import SourceSpec, open_source

log = logging.getLogger(__name__)


class Connection(threading.Thread):
    """One backend from open to close, in its own daemon thread."""

    def __init__(
        self,
        spec: SourceSpec,
        *,
        name: str,
        number: int,
        loop: bool,
        fps: float | None,
        deliver: Callable[[Connection, np.ndarray], None],
        wait_taken: Callable[[threading.Event], None] = lambda _cancelled: None,
        wake: threading.Event,
    ) -> None:
        super().__init__(name=f"source-{name}-conn{number}", daemon=True)
        self.spec, self.source_name, self.loop, self.fps = spec, name, loop, fps
        self._deliver, self._wake, self._wait_taken = deliver, wake, wait_taken
        self.cancelled = threading.Event()
        self.opened_ns: int | None = None
        self.outcome: str | None = None  # "eos" (only a finite source) or "error" once the thread is done
        self.reason = ""
        self.frames = 0
        self.first_frame_ns = 0
        self.last_frame_ns = 0

    def _finish(self, outcome: str, reason: str = "") -> None:
        self.reason, self.outcome = reason, outcome
        self._wake.set()

    def run(self) -> None:
        try:
            backend = open_source(self.spec)
            backend.open()
        except AgentError as exc:
            return self._finish("error", f"open failed: {exc}")
        except Exception as exc:  # a backend bug costs a reconnect now, not an open timeout; logged with traceback
            log.exception("source %s: backend raised unexpectedly while opening", self.source_name)
            return self._finish("error", f"open failed: backend raised {type(exc).__name__}: {exc}")
        try:
            if self.cancelled.is_set():
                return
            self.opened_ns = time.monotonic_ns()
            self._wake.set()
            period = 1.0 / self.fps if self.fps and backend.finite else None
            next_due, in_pass = time.monotonic(), 0
            while not self.cancelled.is_set():
                image = backend.read()
                if image is None:
                    if self.cancelled.is_set():
                        return  # abandoned while the read waited out its timeout: just close the backend
                    if not backend.finite:
                        # A live camera has no end: a read that gives nothing timed out, lost the
                        # connection or could not decode, and the runner must reconnect, not stop.
                        return self._finish("error", "read failed: the live stream gave no frame (timed out, "
                                            "closed or undecodable)")
                    if not self.loop:
                        return self._finish("eos")
                    if in_pass == 0:
                        return self._finish("error",
                                            "a pass over the source gave no frame; not looping an empty source")
                    backend.close()  # reopen rather than seek: notices a file that was replaced or removed
                    backend = open_source(self.spec)
                    backend.open()
                    in_pass = 0
                    continue
                in_pass += 1
                if period is not None:
                    delay = next_due - time.monotonic()
                    if delay > 0 and self.cancelled.wait(delay):
                        return
                    next_due = max(next_due + period, time.monotonic())  # behind: no burst to catch up
                self._deliver(self, image)
                if period is None and backend.finite:
                    # A file with no fps is read as fast as inference takes frames: wait until this
                    # one is taken, so no frame of the file is skipped (a camera never waits).
                    self._wait_taken(self.cancelled)
        except AgentError as exc:
            self._finish("error", f"read failed: {exc}")
        except Exception as exc:  # a backend bug must cost a reconnect, not the agent; logged with traceback
            log.exception("source %s: backend raised unexpectedly", self.source_name)
            self._finish("error", f"backend raised {type(exc).__name__}: {exc}")
        finally:
            backend.close()
