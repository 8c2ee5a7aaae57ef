"""Log lines that a misbehaving device or a down database would otherwise repeat thousands of times a second."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class Throttle:
    """At most one line per ``key`` every ``interval_s``; the next line says how many were held back."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def log(self, level: int, key: str, message: str, *args: object, exc_info: bool = False) -> bool:
        """Log ``message % args`` unless ``key`` was logged less than ``interval_s`` ago; True if it was."""
        now = self._clock()
        if now - self._last.get(key, float("-inf")) < self.interval_s:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        if len(self._last) > 1000:  # one key per device and topic: bounded, whatever devices send
            self._last.clear()
        self._last[key] = now
        held = self._held.pop(key, 0)
        suffix = f" ({held} more like it in the last {self.interval_s:.0f} s not logged)" if held else ""
        self._log.log(level, message + suffix, *args, exc_info=exc_info)
        return True
