"""A one-slot, newest-frame-wins mailbox between a source and inference.

When inference is slower than the camera, a queue would grow and every result would describe
an older frame than the last; this slot keeps only the newest frame and counts the ones it
overwrote, so latency stays flat and the drop count tells how much was skipped.
"""

from __future__ import annotations

import threading
import time

from device_agent.sources.types import Frame


class LatestFrame:
    """Thread-safe slot: ``put`` overwrites, ``get`` returns the newest frame not yet returned."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._unseen = False
        self._closed = False
        self.dropped = 0  # frames overwritten before anyone took them
        self.put_count = 0

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._unseen:
                self.dropped += 1
            self._frame, self._unseen = frame, True
            self.put_count += 1
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Frame | None:
        """The newest unseen frame, waiting up to ``timeout`` seconds (None: forever) for one.

        Returns ``None`` on timeout, or at once when the slot is closed and empty.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._unseen:
                if self._closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            self._unseen = False
            self._cond.notify_all()
            return self._frame

    def wait_taken(self, cancelled: threading.Event, poll_s: float = 0.05) -> None:
        """Block until the frame in the slot has been taken, the slot closes, or ``cancelled`` is set."""
        with self._cond:
            while self._unseen and not self._closed and not cancelled.is_set():
                self._cond.wait(poll_s)

    def peek(self) -> Frame | None:
        """The newest frame, seen or not, without marking it seen."""
        with self._cond:
            return self._frame

    def close(self) -> None:
        """No more frames will come: wake every waiting ``get``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
