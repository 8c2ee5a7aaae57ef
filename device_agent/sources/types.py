"""Records and states of a camera source: a frame, the source's state machine, a state change.

A source moves through explicit states; :data:`ALLOWED_TRANSITIONS` is the whole machine and
:func:`transition` refuses anything else, so a supervisor bug shows up as an error, not as a
camera that silently reports "streaming" while it reconnects.

    STARTING ──> STREAMING <──> STALLED
        │            │             │
        └──────> RECONNECTING <────┘      (RECONNECTING -> RECONNECTING: the next attempt)
    every state ──> STOPPED (terminal)

STOPPED means one of two things only: a finite source (file, folder) without ``loop`` reached
its end, or the owner stopped the runner. A live source never stops by itself: whatever it
does (stalls, drops, refuses connections, sends garbage) it goes through STALLED and
RECONNECTING and is retried forever, so an agent can never take a dead camera for a finished one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from device_agent.errors import SourceStateError

DEFAULT_STALL_AFTER_S = 3.0
"""No good frame for this long: the source is STALLED and reconnected. 3 s keeps a stall's
detection under 5 s including the watchdog's 50 ms poll, and is still 75 frame periods at 25 fps."""

READ_TIMEOUT_MARGIN_S = 2.0
"""The default read timeout is the stall limit plus this margin. A read must not give up before
the stall watchdog fires, or a stall would be reported as a read error (or, before this rule, as
the end of the stream); by the time the read times out, its connection is already abandoned and
the timeout only ends that thread and closes its capture."""


def default_read_timeout_s(stall_after_s: float) -> float:
    """The read (and open) timeout that goes with a stall limit: ``stall_after_s`` + :data:`READ_TIMEOUT_MARGIN_S`."""
    return stall_after_s + READ_TIMEOUT_MARGIN_S


class SourceState(enum.Enum):
    """Where a source is in its life."""

    STARTING = "starting"  # opening for the first time, no frame yet
    STREAMING = "streaming"  # frames arrive
    STALLED = "stalled"  # opened, but no good frame for longer than the stall limit
    RECONNECTING = "reconnecting"  # the connection failed; waiting out a backoff, then reopening
    STOPPED = "stopped"  # finished (end of a finite file or folder) or stopped by its owner; terminal


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
        raise SourceStateError(f"illegal source state change {old.name} -> {new.name}; "
                               f"from {old.name} allowed: {allowed}")
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
