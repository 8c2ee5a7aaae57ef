"""The PostgreSQL store (``--db postgresql://...``): psycopg 3, a schema the hub creates and migrates,
results partitioned by day.

- **Batched**: a batch's seqs are claimed with one ``INSERT ... SELECT FROM unnest(arrays) ON
  CONFLICT DO NOTHING RETURNING`` (one round trip tells which are new), results go in with
  ``COPY``, the rest with ``executemany`` (psycopg pipelines it); all in one transaction.
- **Partitions on demand**: before a batch, the days its results fall on get their partition
  (``CREATE TABLE IF NOT EXISTS ... PARTITION OF``, in its own short transaction, remembered).
- **Retention** drops whole expired days, then deletes what is left before the cutoff in
  batches, each its own transaction.
- Sessions run in UTC, so a day partition is a UTC day.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from typing import Any

from edgekit.errors import MissingDependencyError, StoreError
from edgekit.fleet.hub.store import seq_summary
from edgekit.fleet.hub.store.base import DEFAULT_LIMIT, Store, sql_filters
from edgekit.fleet.hub.store.batch import Batch, ClaimedRows, Key
from edgekit.fleet.hub.store.records import (
    Alert,
    Device,
    IngestReport,
    ModelInfo,
    Retention,
    RetentionReport,
    StoredEvent,
    StoredMetrics,
    StoredResult,
)
from edgekit.fleet.hub.store.sql import rows_of
from edgekit.fleet.hub.store.url import redact

try:
    import psycopg
    from psycopg.types.json import Jsonb
except ImportError:  # pragma: no cover - exercised where the hub extra is missing
    psycopg = None  # type: ignore[assignment]

_SINCE = "to_timestamp({})"
_EPOCH = "extract(epoch FROM ts)::float8"


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


class PostgresStore(Store):
    """The store in the PostgreSQL database ``url`` (its schema created or migrated on open)."""

    placeholder = "%s"

    def __init__(self, url: str) -> None:
        if psycopg is None:
            raise MissingDependencyError("psycopg", "hub", "the PostgreSQL store")
        self.url = redact(url)
        self._dsn = url
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._partitions: set[date] = set()
        self._closed = False
        self._writer = self._connect()
        self._reader = self._connect()
        with self._guard():
            from edgekit.fleet.hub.store import postgres_schema

            postgres_schema.migrate(self._writer)

    def _connect(self) -> psycopg.Connection:
        try:
            connection = psycopg.connect(self._dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the store {self.url}: {type(exc).__name__}: {exc}") from exc
        connection.execute("SET TIME ZONE 'UTC'")
        return connection

    @contextmanager
    def _guard(self) -> Iterator[None]:
        if self._closed:
            raise StoreError(f"the store {self.url} is closed")
        try:
            yield
        except psycopg.Error as exc:
            raise StoreError(f"store {self.url}: {type(exc).__name__}: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection]:
        with self._write_lock, self._guard(), self._writer.transaction():
            yield self._writer

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._read_lock, self._guard():
            return self._reader.execute(sql, params).fetchall()

    # -- ingest

    def _write(self, batch: Batch) -> IngestReport:
        self._ensure_partitions({_utc(row.ts).date() for row in batch.seqs if row.kind == "results"})
        with self._transaction() as db:
            keys = self._claim(db, batch)
            claimed = batch.claimed(keys)
            seq_summary.update(lambda sql, params: rows_of(db.execute(sql, params)), batch.claimed_seqs(keys),
                               placeholder="%s", ts_sql=_EPOCH, to_db=_utc)
            self._insert(db, claimed)
            self._update_devices(db, batch, claimed)
            counts = claimed.counts()
            duplicates = batch.duplicates + len(batch.seqs) - sum(counts.values())
            with db.cursor() as cursor:
                cursor.executemany("UPDATE counters SET value = value + %s WHERE name = %s",
                                   [(counts["results"], "results_stored"), (counts["events"], "events_stored"),
                                    (counts["metrics"], "metrics_stored"), (duplicates, "duplicates_dropped")])
        return IngestReport(stored=counts, duplicates=duplicates, statuses=len(batch.statuses), fresh=frozenset(keys))

    def _ensure_partitions(self, days: set[date]) -> None:
        from edgekit.fleet.hub.store.postgres_schema import partition_ddl

        for day in sorted(days - self._partitions):
            with self._transaction() as db:
                db.execute(partition_ddl(day))
            self._partitions.add(day)

    @staticmethod
    def _claim(db: psycopg.Connection, batch: Batch) -> set[Key]:
        if not batch.seqs:
            return set()
        columns = list(zip(*[(r.device, r.seq, r.boot, r.kind, r.ts) for r in batch.seqs]))
        rows = db.execute("INSERT INTO seqs (device, seq, boot, kind, ts) SELECT d, s, b, k, to_timestamp(t) FROM "
                          "unnest(%s::text[], %s::bigint[], %s::text[], %s::text[], %s::float8[]) AS u(d, s, b, k, t) "
                          "ON CONFLICT DO NOTHING RETURNING device, seq",
                          [list(c) for c in columns]).fetchall()
        return {(device, int(seq)) for device, seq in rows}

    @staticmethod
    def _insert(db: psycopg.Connection, rows: ClaimedRows) -> None:
        with db.cursor() as cursor:
            if rows.results:
                with cursor.copy("COPY results (device, seq, boot, ts, model_name, model_version, model_precision, "
                                 "payload) FROM STDIN") as copy:
                    for r in rows.results:
                        copy.write_row((r.device, r.seq, r.boot, _utc(r.ts), *r.columns, r.payload_json))
            cursor.executemany("INSERT INTO events (device, seq, boot, ts, kind, payload) "
                               "VALUES (%s, %s, %s, %s, %s, %s::jsonb)",
                               [(r.device, r.seq, r.boot, _utc(r.ts), *r.columns, r.payload_json) for r in rows.events])
            cursor.executemany("INSERT INTO metrics (device, seq, boot, ts, payload) "
                               "VALUES (%s, %s, %s, %s, %s::jsonb)",
                               [(r.device, r.seq, r.boot, _utc(r.ts), r.payload_json) for r in rows.metrics])
            cursor.executemany("INSERT INTO lost (device, seq, boot, ts, first_seq, last_seq, reason) "
                               "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                               [(r.device, r.seq, r.boot, _utc(r.ts), r.first_seq, r.last_seq, r.reason)
                                for r in rows.lost])
            cursor.executemany("INSERT INTO alerts (device, kind, ts, state, seq, detail) "
                               "VALUES (%s, %s, %s, %s, %s, %s)",
                               [(a.device, a.kind, _utc(a.ts), a.state, a.seq, Jsonb(a.detail)) for a in rows.alerts])

    @staticmethod
    def _update_devices(db: psycopg.Connection, batch: Batch, rows: ClaimedRows) -> None:
        newest: dict[str, Any] = {}
        for r in rows.results:
            if r.device not in newest or r.ts > newest[r.device].ts:
                newest[r.device] = r
        with db.cursor() as cursor:
            cursor.executemany("INSERT INTO devices (id, last_seen) VALUES (%s, %s) ON CONFLICT (id) DO UPDATE SET "
                               "last_seen = greatest(devices.last_seen, excluded.last_seen)",
                               sorted(batch.seen.items()))
            cursor.executemany("UPDATE devices SET online = %s, status_ts = %s, agent = %s, model_name = %s, "
                               "model_version = %s, model_precision = %s, model_ts = %s, status = %s::jsonb "
                               "WHERE id = %s AND coalesce(status_ts, 0) <= %s",
                               [(s.online, s.ts, s.agent, *s.model, s.ts, s.payload_json, s.device, s.ts)
                                for s in batch.statuses.values()])
            cursor.executemany("UPDATE devices SET model_name = %s, model_version = %s, model_precision = %s, "
                               "model_ts = %s WHERE id = %s AND coalesce(model_ts, 0) < %s",
                               [(*r.columns, r.ts, r.device, r.ts) for r in newest.values()])
            cursor.executemany("UPDATE devices SET metrics = %s::jsonb, metrics_seq = %s "
                               "WHERE id = %s AND coalesce(metrics_seq, 0) < %s",
                               [(r.payload_json, r.seq, r.device, r.seq) for r in rows.latest_metrics().values()])

    def record_alert(self, alert: Alert) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO alerts (device, kind, ts, state, seq, detail) VALUES (%s, %s, %s, %s, %s, %s)",
                       (alert.device, alert.kind, _utc(alert.ts), alert.state, alert.seq, Jsonb(alert.detail)))

    # -- queries

    def devices(self) -> list[Device]:
        rows = self._query("SELECT id, model_name, model_version, model_precision, agent, online, last_seen, status, "
                           "metrics FROM devices ORDER BY id")
        return [Device(id=r[0], model=ModelInfo(r[1], r[2], r[3]) if r[1] is not None else None, agent=r[4],
                       online=bool(r[5]), last_seen=r[6], status=r[7], metrics=r[8]) for r in rows]

    def results(self, *, device: str | None = None, since: float | None = None,
                limit: int = DEFAULT_LIMIT) -> list[StoredResult]:
        where, params = sql_filters("%s", _SINCE, device=device, since=since)
        rows = self._query(f"SELECT device, seq, boot, {_EPOCH}, model_name, model_version, model_precision, payload "
                           f"FROM results {where} ORDER BY ts DESC, seq DESC LIMIT %s", (*params, limit))
        return [StoredResult(r[0], r[1], r[2], r[3], ModelInfo(r[4], r[5], r[6]), r[7]) for r in rows]

    def events(self, *, device: str | None = None, kind: str | None = None, since: float | None = None,
               limit: int = DEFAULT_LIMIT) -> list[StoredEvent]:
        where, params = sql_filters("%s", _SINCE, device=device, since=since, kind=kind)
        rows = self._query(f"SELECT device, seq, boot, {_EPOCH}, kind, payload FROM events {where} "
                           "ORDER BY ts DESC, seq DESC LIMIT %s", (*params, limit))
        return [StoredEvent(*r) for r in rows]

    def metrics(self, *, device: str | None = None, since: float | None = None,
                limit: int = DEFAULT_LIMIT) -> list[StoredMetrics]:
        where, params = sql_filters("%s", _SINCE, device=device, since=since)
        rows = self._query(f"SELECT device, seq, boot, {_EPOCH}, payload FROM metrics {where} "
                           "ORDER BY ts DESC, seq DESC LIMIT %s", (*params, limit))
        return [StoredMetrics(*r) for r in rows]

    def alerts(self, *, device: str | None = None, kind: str | None = None, since: float | None = None,
               limit: int = DEFAULT_LIMIT) -> list[Alert]:
        where, params = sql_filters("%s", _SINCE, device=device, since=since, kind=kind)
        rows = self._query(f"SELECT device, kind, {_EPOCH}, state, detail, seq FROM alerts {where} "
                           "ORDER BY ts DESC, id DESC LIMIT %s", (*params, limit))
        return [Alert(*r) for r in rows]

    # -- retention

    def enforce_retention(self, retention: Retention, *, now: float | None = None,
                          batch_rows: int = 5000) -> RetentionReport:
        now = time.time() if now is None else now
        dropped = 0 if retention.keep_results is None else self._drop_days(now - retention.keep_results.total_seconds())
        keeps = {"results": retention.keep_results, "events": retention.keep_events,
                 "metrics": retention.keep_metrics, "alerts": retention.keep_alerts,
                 "lost": retention.seq_horizon(), "seqs": retention.seq_horizon(),
                 "seq_runs": retention.seq_horizon(), "boots": retention.seq_horizon()}
        deleted: dict[str, int] = {}
        for table, keep in keeps.items():
            if keep is None:
                continue
            # results is partitioned: a ctid is unique only within one partition, so its own key picks the rows
            key, picked = ("(device, seq, ts)", "device, seq, ts") if table == "results" else ("ctid", "ctid")
            with self._transaction() as db:
                cursor = db.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT {picked} FROM {table} "
                                    "WHERE ts < to_timestamp(%s) LIMIT %s)", (now - keep.total_seconds(), batch_rows))
                deleted[table] = cursor.rowcount
        return RetentionReport(deleted=deleted, partitions_dropped=dropped,
                               more=any(n >= batch_rows for n in deleted.values()))

    def _drop_days(self, cutoff: float) -> int:
        from edgekit.fleet.hub.store.postgres_schema import day_of_partition

        names = [name for (name,) in self._query("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON "
                                                 "c.oid = i.inhrelid WHERE i.inhparent = 'results'::regclass")]
        expired = [(name, day) for name in names if (day := day_of_partition(name)) is not None
                   and datetime.combine(day + timedelta(days=1), datetime.min.time(), timezone.utc).timestamp()
                   <= cutoff]
        for name, day in expired:
            with self._transaction() as db:
                db.execute(f"DROP TABLE IF EXISTS {name}")
            self._partitions.discard(day)
        return len(expired)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._write_lock, self._read_lock:
            self._writer.close()
            self._reader.close()

