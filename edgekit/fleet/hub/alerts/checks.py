"""The per-device checks, as verdicts on numbers: should the ``offline``, ``fps`` or ``backlog`` alert be open?

Each returns ``(open, detail)``, or None when it has nothing to say (not enough data); the
:class:`~edgekit.fleet.hub.alerts.book.AlertBook` turns verdicts into one raise and one clear.
Each takes whether its alert is open now, so the way back is harder than the way in
(hysteresis): a value that hovers at a threshold does not raise and clear at every heartbeat.

**fps.** Frames inferred per second between two heartbeats of one agent run, against a fraction
of what the device could do: the bundle's measured fps (status ``measured_fps``), or the frames
its sources delivered in that time when fewer (a 10 fps camera cannot give a 200 fps model more
than 10). A file read without pacing waits for inference, so it delivers exactly what is inferred
and never raises this alert: there it cannot tell a slow device from a slow file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from device_agent.protocol import Metrics
from edgekit.fleet.hub.alerts.rules import AlertRules

Verdict = tuple[bool, dict[str, Any]] | None
MIN_INTERVAL_S = 1.0
"""Heartbeats closer than this are not compared for fps (a rate over a blink is noise)."""
BACKLOG_CLEAR = 0.8
"""A backlog alert clears once the outbox drains and holds at most this fraction of the limit."""


@dataclass(frozen=True)
class Beat:
    """The numbers of one heartbeat the checks compare with the next."""

    boot: str
    ts: float
    frames: int
    delivered: int
    """Frames read by every source since the agent started."""
    depth: int

    @classmethod
    def of(cls, metrics: Metrics) -> Beat:
        boot, ts = str(getattr(metrics, "boot", "")), float(getattr(metrics, "ts", 0.0))
        return cls(boot, ts, metrics.frames, sum(s.frames_read for s in metrics.sources.values()),
                   metrics.outbox_depth)


@dataclass
class DeviceState:
    """What the engine remembers of one device between messages."""

    online: bool | None = None
    down_since: float | None = None
    """When the hub learnt its status went offline (hub clock)."""
    last_seen: float | None = None
    """When the hub last received a message it sent now (hub clock; a retained status replayed is not one)."""
    measured_fps: float | None = None
    beat: Beat | None = None
    growth: int = 0
    """Heartbeats in a row at which the outbox grew."""


def offline_verdict(state: DeviceState, now: float, rules: AlertRules) -> Verdict:
    """Open once offline (by its status) or silent for longer than ``offline_after_s``; closing is the
    engine's, when the device is heard again."""
    since = state.down_since if state.online is False else state.last_seen
    if since is None or now - since <= rules.offline_after_s:
        return None
    reason = "offline" if state.online is False else "silent"
    return True, {"reason": reason, "since": since, "for_s": round(now - since, 1),
                  "after_s": rules.offline_after_s}


def fps_verdict(previous: Beat | None, beat: Beat, measured_fps: float | None, rules: AlertRules,
                is_open: bool) -> Verdict:
    """Open while the rate between two heartbeats is below ``fps_below`` of what the device could do."""
    if measured_fps is None or rules.fps_below == 0 or previous is None or previous.boot != beat.boot:
        return None
    elapsed = beat.ts - previous.ts
    if elapsed < MIN_INTERVAL_S:
        return None
    fps = (beat.frames - previous.frames) / elapsed
    delivered = (beat.delivered - previous.delivered) / elapsed
    if delivered <= 0:
        return None  # the sources gave nothing: a camera problem, told by its own events
    expected = min(measured_fps, delivered)
    threshold = rules.fps_below * expected * ((1 + rules.fps_clear_margin) if is_open else 1.0)
    return fps < threshold, {"fps": round(fps, 2), "expected_fps": round(expected, 2),
                             "measured_fps": measured_fps, "delivered_fps": round(delivered, 2),
                             "threshold_fps": round(rules.fps_below * expected, 2)}


def backlog_verdict(previous: Beat | None, beat: Beat, growth: int, rules: AlertRules,
                    is_open: bool) -> Verdict:
    """Open when the outbox grew ``backlog_growth`` heartbeats in a row or holds over ``backlog_limit``;
    closed once it drains (or is empty) and holds at most 80 % of the limit."""
    detail = {"depth": beat.depth, "growth": growth, "limit": rules.backlog_limit}
    if not is_open:
        return growth >= rules.backlog_growth or beat.depth > rules.backlog_limit, detail
    draining = beat.depth == 0 or (previous is not None and beat.depth < previous.depth)
    return not (draining and beat.depth <= BACKLOG_CLEAR * rules.backlog_limit), detail
