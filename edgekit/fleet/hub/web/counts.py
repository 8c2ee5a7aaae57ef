"""Per-device counts for the fleet table and a device page.

- **Missing seqs**: :func:`missing_counts`, from :meth:`Store.seq_accounts`, read per request:
  the store keeps each device's seq runs at ingest, so this reads a few rows per device (about
  1 ms for 100 devices, however many seqs are stored), and every request sees current counts.
- **Open alerts**: the store keeps alerts as a log of raised and cleared; an alert is open when
  the latest entry of its ``(device, kind, key)`` says raised (keyed as the alert engine keys it). Read from the newest
  :data:`ALERT_WINDOW` entries (one indexed, bounded query).
"""

from __future__ import annotations

from collections.abc import Iterable

from edgekit.fleet.hub.alerts.book import still_open
from edgekit.fleet.hub.store import Alert, Store

ALERT_WINDOW = 2000
"""How many of the newest alert entries decide which alerts are open."""


def open_alerts(alerts: Iterable[Alert]) -> list[Alert]:
    """The alerts (given newest first) whose latest entry is raised, newest first; keyed as the alert engine
    keys them (:func:`~edgekit.fleet.hub.alerts.book.key_of`), so the page and the engine agree."""
    return list(still_open(alerts).values())


def open_alert_counts(store: Store, device: str | None = None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for alert in open_alerts(store.alerts(device=device, limit=ALERT_WINDOW)):
        counts[alert.device] = counts.get(alert.device, 0) + 1
    return counts


def missing_counts(store: Store) -> dict[str, int]:
    """Seqs neither received nor announced lost, per device (a device with none may be absent)."""
    return {account.device: account.missing_count for account in store.seq_accounts()}
