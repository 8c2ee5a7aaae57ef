"""The open alerts: each ``(device, kind, key)`` raised once and cleared once, whatever the checks say meanwhile.

Checks run at every heartbeat and every second; the book turns their verdicts into transitions,
so a condition that stays true raises nothing more, and a clear with nothing open says nothing.
The key names which of a kind's alerts it is (a drift signal, a rule) and travels in the alert's
``detail["key"]``, so the book is rebuilt from the store when the hub restarts (:meth:`seed`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edgekit.fleet.hub.store import Alert

AlertKey = tuple[str, str, str]
"""``(device, kind, key)``."""


def key_of(alert: Alert) -> AlertKey:
    return alert.device, alert.kind, str(alert.detail.get("key", alert.detail.get("rule", "")))


def still_open(newest_first: Iterable[Alert]) -> dict[AlertKey, Alert]:
    """The alerts whose latest entry (of their key) is raised, newest first: the state the store's log left."""
    seen: set[AlertKey] = set()
    found: dict[AlertKey, Alert] = {}
    for alert in newest_first:
        key = key_of(alert)
        if key not in seen:
            seen.add(key)
            if alert.state == "raised":
                found[key] = alert
    return found


class AlertBook:
    """Which alerts are open now (not thread-safe: the engine holds its lock around it)."""

    def __init__(self) -> None:
        self.open: dict[AlertKey, Alert] = {}

    def seed(self, newest_first: Iterable[Alert]) -> None:
        """Open what the store's latest alert of each key left raised."""
        self.open.update(still_open(newest_first))

    def raise_(self, device: str, kind: str, key: str, ts: float, detail: dict[str, Any],
               seq: int | None = None) -> Alert | None:
        """The alert raised now, or None if it is already open."""
        if (device, kind, key) in self.open:
            return None
        alert = Alert(device, kind, ts, "raised", {"key": key, **detail}, seq)
        self.open[(device, kind, key)] = alert
        return alert

    def clear(self, device: str, kind: str, key: str, ts: float, detail: dict[str, Any] | None = None,
              seq: int | None = None) -> Alert | None:
        """The alert cleared now, or None if it was not open."""
        raised = self.open.pop((device, kind, key), None)
        if raised is None:
            return None
        return Alert(device, kind, ts, "cleared", {"key": key, "raised_ts": raised.ts, **(detail or {})}, seq)

    def is_open(self, device: str, kind: str, key: str = "") -> bool:
        return (device, kind, key) in self.open

    def open_keys(self, device: str, kind: str) -> list[str]:
        """The keys open for one device and kind, sorted."""
        return sorted(k for d, c, k in self.open if d == device and c == kind)
