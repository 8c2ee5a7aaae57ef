"""Per-device counts for the fleet table and a device page.

- **Missing seqs**: :func:`missing_counts`, from :meth:`Store.seq_accounts`, read per request:
  the store keeps each device's seq runs at ingest, so this reads a few rows per device (about
  1 ms for 100 devices, however many seqs are stored), and every request sees current counts.
- **Open alerts**: the store keeps alerts as a log of raised and cleared; an alert is open when
  the latest entry of its ``(device, kind, rule or signal)`` says raised. Read from the newest
  :data:`ALERT_WINDOW` entries (one indexed, bounded query).
"""

from __future__ import annotations

from collections.abc import Iterable

from edgekit.fleet.hub.store import Alert, Store

ALERT_WINDOW = 2000
"""How many of the newest alert entries decide which alerts are open."""


def alert_key(alert: Alert) -> tuple[str, str, str]:
    """What identifies one alert across its raised and cleared entries."""
    detail = alert.detail
    return alert.device, alert.kind, str(detail.get("rule") or detail.get("signal") or detail.get("key") or "")


def open_alerts(alerts: Iterable[Alert]) -> list[Alert]:
    """The alerts (given newest first) whose latest entry is raised, newest first."""
    seen: set[tuple[str, str, str]] = set()
    still_open = []
    for alert in alerts:
        key = alert_key(alert)
        if key in seen:
            continue
        seen.add(key)
        if alert.state == "raised":
            still_open.append(alert)
    return still_open


def open_alert_counts(store: Store, device: str | None = None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for alert in open_alerts(store.alerts(device=device, limit=ALERT_WINDOW)):
        counts[alert.device] = counts.get(alert.device, 0) + 1
    return counts


def missing_counts(store: Store) -> dict[str, int]:
    """Seqs neither received nor announced lost, per device (a device with none may be absent)."""
    return {account.device: account.missing_count for account in store.seq_accounts()}
