"""Records and states of a camera source: a frame, the source's state machine, a state change.

A source moves through explicit states; :data:`ALLOWED_TRANSITIONS` is the whole machine and
:func:`transition` refuses anything else, so a supervisor bug shows up as an error, not as a
camera that silently reports "streaming" while it reconnects.

    STARTING ──> STREAMING <──> STALLED
        │            │             │
        └──────> RECONNECTING <────┘      (RECONNECTING -> RECONNECTING: the next attempt)
    every state ──> STOPPED (terminal)
"""

from __future__ import annotations

from typing import Any

import enum
from dataclasses import dataclass, field

import numpy as np

from device_agent.errors import AgentError


class SourceError(AgentError):
    """A camera source cannot be used: unknown URI, missing file or folder, failed open or read."""


class SourceStateError(SourceError):
    """A state change that the source's state machine does not allow (a bug in the caller)."""


class SourceState(enum.Enum):
    """Where a source is in its life."""

    STARTING = "starting"  # opening for the first time, no frame yet
    STREAMING = "streaming"  # frames arrive
    STALLED = "stalled"  # opened, but no good frame for longer than the stall limit
    RECONNECTING = "reconnecting"  # the connection failed; waiting out a backoff, then reopening
    STOPPED = "stopped"  # finished (end of a file) or stopped by its owner; terminal


_S = SourceState
ALLOWED_TRANSITIONS: dict[SourceState, frozenset[SourceState]] = {
    _S.STARTING: frozenset({_S.STREAMING, _S.RECONNECTING, _S.STOPPED}),
    _S.STREAMING: frozenset({_S.STALLED, _S.RECONNECTING, _S.STOPPED}),
    _S.STALLED: frozenset({_S.STREAMING, _S.RECONNECTING, _S.STOPPED}),
    _S.RECONNECTING: frozenset({_S.STREAMING, _S.RECONNECTING, _S.STOPPED}),
    _S.STOPPED: frozenset(),
}


def transition(old: SourceState, new: SourceState) -> SourceState:
    """Return ``new`` if ``old -> new`` is allowed; raise :class:`SourceStateError` otherwise."""
    if new not in ALLOWED_TRANSITIONS[old]:
        allowed = ", ".join(s.name for s in sorted(ALLOWED_TRANSITIONS[old], key=lambda s: s.name)) or "none"
        raise SourceStateError(f"illegal source state change {old.name} -> {new.name}; from {old.name} allowed: {allowed}")
    return new


@dataclass(frozen=True)
class Frame:
    """One image from a source.

    ``frame_id`` increases strictly per source, across reconnects and loops;
    ``captured_ns`` is ``time.monotonic_ns()`` when the agent received the image (use it for
    ages and latencies); ``wall_time`` is ``time.time()`` at the same moment (for reports).
    """

    frame_id: int
    source: str
    captured_ns: int
    wall_time: float
    image: np.ndarray = field(repr=False)  # HxWx3 uint8 BGR
    prepared: Any = field(default=None, repr=False)  # what the runner's ``prepare`` made of the image

    @property
    def size_wh(self) -> tuple[int, int]:
        return int(self.image.shape[1]), int(self.image.shape[0])


@dataclass(frozen=True)
class StateChange:
    """A source changed state; published to ``on_state`` and, by the agent, on ``events``.

    ``attempt`` is the reconnect attempt number (1, 2, ...) for RECONNECTING and 0 otherwise;
    ``retry_in_s`` is the backoff the runner waits before that attempt's reopen.
    """

    source: str
    old: SourceState
    new: SourceState
    reason: str
    at_wall_time: float
    attempt: int = 0
    retry_in_s: float | None = None
