"""The hub's store interface: what the ingest writes and what the API and dashboard read.

One :class:`Store`, two backends (:mod:`.sqlite`, :mod:`.postgres`), both run by the same
contract tests (``tests/edgekit/test_hub_store.py``). The interface is the contract; SQL stays
inside the backends.

- **Ingest** takes parsed messages (:class:`device_agent.protocol.Received`) in batches and
  commits each batch in one transaction; when :meth:`Store.ingest` returns, the batch is durable
  and the hub may acknowledge it to the broker. ``(device, seq)`` is stored once: a redelivered
  message is counted in ``duplicates_dropped`` and not stored again, whatever batch it comes in.
- **Seq accounting** (:meth:`Store.seq_accounts`): every seq between a device's lowest and
  highest received is received, announced lost by a gap event, or missing; read from the runs
  and boot spans the ingest keeps (:mod:`.seq_summary`), never from a scan of every seq.
- **Retention** (:meth:`Store.enforce_retention`) deletes in small steps and says whether more
  is due, so a hub interleaves it with ingest instead of stalling behind one long delete.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from device_agent.protocol import Received
from edgekit.fleet.hub.store.accounting import account
from edgekit.fleet.hub.store.batch import Batch, prepare
from edgekit.fleet.hub.store.records import (
    Alert,
    BootSpan,
    Device,
    IngestReport,
    Retention,
    RetentionReport,
    SeqAccount,
    SeqRange,
    Stats,
    StoredEvent,
    StoredMetrics,
    StoredResult,
)

COUNTERS = ("results_stored", "events_stored", "metrics_stored", "duplicates_dropped")
"""Totals kept in the store itself, so they survive a restart and retention."""

DEFAULT_LIMIT = 100


class Store(abc.ABC):
    """Where the hub keeps every device's messages; a context manager that closes the store."""

    url: str
    """The store's URL without a password (for messages and logs)."""

    def ingest(self, messages: Iterable[Received], *, received_at: float | None = None) -> IngestReport:
        """Store one batch of parsed messages in one transaction; returns what was stored and dropped.

        ``received_at`` (hub clock, Unix seconds; now by default) becomes the devices' ``last_seen``.
        Replies are not stored. Raises :class:`~edgekit.errors.StoreError` when the database fails;
        then nothing of the batch is stored.
        """
        return self._write(prepare(messages, time.time() if received_at is None else received_at))

    @abc.abstractmethod
    def _write(self, batch: Batch) -> IngestReport:
        """Claim the batch's seqs and write the claimed rows, devices and counters in one transaction."""

    @abc.abstractmethod
    def record_alert(self, alert: Alert) -> None:
        """Keep an alert the hub raised or cleared itself (drift, offline, backlog...)."""

    @abc.abstractmethod
    def devices(self) -> list[Device]:
        """Every device the hub has heard from, by id, with its latest status and metrics."""

    def device(self, device_id: str) -> Device | None:
        """One device, or None if the hub never heard from it."""
        return next((d for d in self.devices() if d.id == device_id), None)

    @abc.abstractmethod
    def results(self, *, device: str | None = None, since: float | None = None,
                limit: int = DEFAULT_LIMIT) -> list[StoredResult]:
        """Results with ``ts >= since`` (of one device, or all), newest first, at most ``limit``."""

    @abc.abstractmethod
    def events(self, *, device: str | None = None, kind: str | None = None, since: float | None = None,
               limit: int = DEFAULT_LIMIT) -> list[StoredEvent]:
        """Events matching every filter given, newest first, at most ``limit``."""

    @abc.abstractmethod
    def metrics(self, *, device: str | None = None, since: float | None = None,
                limit: int = DEFAULT_LIMIT) -> list[StoredMetrics]:
        """Metrics messages with ``ts >= since``, newest first, at most ``limit``."""

    @abc.abstractmethod
    def alerts(self, *, device: str | None = None, kind: str | None = None, since: float | None = None,
               limit: int = DEFAULT_LIMIT) -> list[Alert]:
        """Alerts (the devices' rule alerts and the hub's own) matching every filter, newest first."""

    placeholder: str
    """The driver's parameter marker in SQL: ``?`` (sqlite3) or ``%s`` (psycopg)."""

    @abc.abstractmethod
    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of one read-only query (both drivers take the same SQL here but for the placeholder)."""

    def seq_accounts(self, device: str | None = None) -> list[SeqAccount]:
        """Every device's seqs accounted for (received, lost, missing), by device id."""
        where, params = sql_filters(self.placeholder, device=device)
        boots: dict[str, list[BootSpan]] = {}
        for d, boot, low, high, count in self._query(
                f"SELECT device, boot, first_seq, last_seq, received FROM boots {where}", params):
            boots.setdefault(d, []).append(BootSpan(boot, int(low), int(high), int(count)))
        holes: dict[str, list[SeqRange]] = {}
        for d, first, last in self._query(  # PostgreSQL needs the subquery's alias, SQLite takes it
                "SELECT device, prev + 1, first_seq - 1 FROM (SELECT device, first_seq, lag(last_seq) OVER "
                f"(PARTITION BY device ORDER BY first_seq) AS prev FROM seq_runs {where}) AS s "
                "WHERE first_seq - prev > 1", params):
            holes.setdefault(d, []).append((first, last))
        lost: dict[str, list[SeqRange]] = {}
        for d, first, last in self._query(f"SELECT device, first_seq, last_seq FROM lost {where}", params):
            lost.setdefault(d, []).append((first, last))
        return [account(d, boots.get(d, []), holes.get(d, []), lost.get(d, [])) for d in sorted(set(boots) | set(lost))]

    def counters(self) -> dict[str, int]:
        """The running totals named in :data:`COUNTERS`."""
        found = dict(self._query("SELECT name, value FROM counters"))
        return {name: int(found.get(name, 0)) for name in COUNTERS}

    def stats(self) -> Stats:
        """Totals for ``/api/stats``."""
        counts = self.counters()
        accounts = self.seq_accounts()
        return Stats(results_stored=counts["results_stored"], events_stored=counts["events_stored"],
                     metrics_stored=counts["metrics_stored"], duplicates_dropped=counts["duplicates_dropped"],
                     missing=sum(a.missing_count for a in accounts), lost=sum(a.lost_count for a in accounts),
                     devices=len(self.devices()))

    @abc.abstractmethod
    def enforce_retention(self, retention: Retention, *, now: float | None = None,
                          batch_rows: int = 5000) -> RetentionReport:
        """Delete at most ``batch_rows`` expired rows per table (drop whole expired day partitions where the
        backend has them); ``more`` says a further call has work. Each step is its own short transaction."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection; the store cannot be used afterwards."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def sql_filters(placeholder: str, since_sql: str = "{}", **values: Any) -> tuple[str, tuple[Any, ...]]:
    """``WHERE`` over the given columns, skipping None values; ``since`` means ``ts >= since_sql``
    (``since_sql`` wraps the placeholder: ``to_timestamp({})`` where ``ts`` is a timestamp)."""
    clauses, params = [], []
    for name, value in values.items():
        if value is not None:
            clauses.append(f"ts >= {since_sql.format(placeholder)}" if name == "since" else f"{name} = {placeholder}")
            params.append(value)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)
