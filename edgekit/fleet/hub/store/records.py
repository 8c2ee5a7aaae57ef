"""What the store hands back: small frozen records, the same from every backend.

Times are Unix seconds (float) on both sides of the interface; a backend converts at its edge
(PostgreSQL keeps ``timestamptz``). ``payload`` is the message as received, envelope and
unknown fields included, decoded from JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

SeqRange = tuple[int, int]
"""A run of seqs ``(first, last)``, both inclusive."""


@dataclass(frozen=True)
class ModelInfo:
    """The model a device runs (from its status) or that produced a result."""

    name: str
    version: str
    precision: str


@dataclass(frozen=True)
class Device:
    """One device and the latest of what it said: status, metrics, when the hub last heard from it."""

    id: str
    model: ModelInfo | None
    agent: str | None
    online: bool
    last_seen: float | None
    """When the hub last received anything from it (hub clock, Unix seconds)."""
    status: dict[str, Any] | None
    """The latest retained ``status`` payload (by its ``ts``), None before the first."""
    metrics: dict[str, Any] | None
    """The latest ``metrics`` payload (by seq), None before the first."""


@dataclass(frozen=True)
class StoredResult:
    device: str
    seq: int
    boot: str
    ts: float
    model: ModelInfo
    payload: dict[str, Any]


@dataclass(frozen=True)
class StoredEvent:
    device: str
    seq: int
    boot: str
    ts: float
    kind: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class StoredMetrics:
    device: str
    seq: int
    boot: str
    ts: float
    payload: dict[str, Any]


@dataclass(frozen=True)
class Alert:
    """An alert raised or cleared: a device's rule (``kind="rule"``, from its alert event), or one the hub
    raised itself (``drift``, ``offline``, ``backlog``, ``fps``...: :meth:`Store.record_alert`)."""

    device: str
    kind: str
    ts: float
    state: str = "raised"
    detail: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None
    """The device event's seq for a rule alert; None for the hub's own."""


@dataclass(frozen=True)
class IngestReport:
    """What one :meth:`Store.ingest` call did: messages stored per kind, duplicates dropped."""

    stored: dict[str, int]
    duplicates: int
    statuses: int = 0
    fresh: frozenset[tuple[str, int]] = frozenset()
    """The ``(device, seq)`` this call stored: what observers of new messages (metrics, alerts) may count."""

    @property
    def stored_total(self) -> int:
        return sum(self.stored.values())


@dataclass(frozen=True)
class BootSpan:
    """The seqs one agent run (boot) committed that the hub received: its lowest, highest and how many."""

    boot: str
    first_seq: int
    last_seq: int
    received: int


@dataclass(frozen=True)
class SeqAccount:
    """Every seq of one device accounted for, from the lowest the hub received to the highest.

    A seq in that span is received, announced ``lost`` by a gap event (the agent's outbox dropped
    it), or ``missing``: neither, yet (the broker may still deliver it, or it was lost unannounced).
    """

    device: str
    boots: tuple[BootSpan, ...]
    received: int
    lost: tuple[SeqRange, ...]
    missing: tuple[SeqRange, ...]

    @property
    def missing_count(self) -> int:
        return sum(last - first + 1 for first, last in self.missing)

    @property
    def lost_count(self) -> int:
        return sum(last - first + 1 for first, last in self.lost)


@dataclass(frozen=True)
class Stats:
    """Totals for ``/api/stats``: stored counts never go down (retention deletes rows, not history)."""

    results_stored: int
    events_stored: int
    metrics_stored: int
    duplicates_dropped: int
    missing: int
    lost: int
    devices: int


@dataclass(frozen=True)
class Retention:
    """How long each kind is kept; None keeps it for ever. ``--keep-results 30d`` sets ``keep_results``."""

    keep_results: timedelta | None = None
    keep_events: timedelta | None = None
    keep_metrics: timedelta | None = None
    keep_alerts: timedelta | None = None

    def seq_horizon(self) -> timedelta | None:
        """How long seq accounting is kept: as long as the longest-kept kind (for ever if any kind is)."""
        keeps = (self.keep_results, self.keep_events, self.keep_metrics)
        return None if any(k is None for k in keeps) else max(k for k in keeps if k is not None)


@dataclass(frozen=True)
class RetentionReport:
    """One retention step: rows deleted per table, day partitions dropped, and whether more is due."""

    deleted: dict[str, int]
    partitions_dropped: int = 0
    more: bool = False
