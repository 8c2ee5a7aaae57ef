"""Publishing policies: every frame, only on change, or at most N per second."""

from __future__ import annotations

import time
from collections.abc import Callable

from device_agent.pipeline.decoders import DecodeResult


def signature(result: DecodeResult) -> tuple[object, ...]:
    """What 'the result changed' means: the set of top labels (classification) or detected labels."""
    if result.classifications:
        return ("cls", result.classifications[0].label)
    return ("det", tuple(sorted(d.label for d in result.detections)))


class PublishPolicy:
    def __init__(self, kind: str, *, max_per_second: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        if kind not in ("every", "on-change", "rate"):
            raise ValueError(f"unknown publish policy {kind!r}; expected every, on-change or rate")
        self.kind = kind
        self._min_interval = 1.0 / max_per_second
        self._clock = clock
        self._last: dict[str, tuple[object, ...]] = {}
        self._last_time: dict[str, float] = {}
        self.suppressed = 0

    def should_publish(self, source: str, result: DecodeResult) -> bool:
        if self.kind == "every":
            return True
        if self.kind == "on-change":
            sig = signature(result)
            if self._last.get(source) == sig:
                self.suppressed += 1
                return False
            self._last[source] = sig
            return True
        now = self._clock()
        if now - self._last_time.get(source, float("-inf")) < self._min_interval:
            self.suppressed += 1
            return False
        self._last_time[source] = now
        return True
