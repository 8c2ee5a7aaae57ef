"""The default store: one SQLite file in WAL mode, nothing to set up.

- **WAL** lets the HTTP side read while the ingest writes: each reading thread has its own
  connection and sees the last committed batch; the one writer connection is behind a lock.
- **synchronous=FULL**: the hub acknowledges a message to the broker only after its batch is
  committed, and the broker then forgets it. With ``NORMAL`` a WAL commit survives a crash of
  the hub but not a power cut (the WAL is not fsynced at commit), so an acknowledged batch could
  vanish with no copy left anywhere. ``FULL`` costs one fsync per commit; batching (one
  transaction per :meth:`~edgekit.fleet.hub.store.base.Store.ingest`) pays it once per batch.
- **Batched**: a batch's seqs are claimed with one range query per device and written with
  ``executemany`` inside one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgekit.errors import StoreError
from edgekit.fleet.hub.store import seq_summary, sqlite_schema
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
from edgekit.fleet.hub.store.sql import row_marks


class SqliteStore(Store):
    """The store in the SQLite file ``path`` (created with its schema if absent)."""

    placeholder = "?"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = self._connect()
            with self._lock:
                self._writer.execute("PRAGMA journal_mode=WAL")
                sqlite_schema.migrate(self._writer)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the store {self.url}: {type(exc).__name__}: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA busy_timeout=30000")
        self._connections.append(connection)
        return connection

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"the store {self.url} is closed")
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            with self._lock:
                connection = self._connect()
            self._local.connection = connection
        return connection

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.url}: {type(exc).__name__}: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise StoreError(f"the store {self.url} is closed")
        with self._lock:
            try:
                self._writer.execute("BEGIN IMMEDIATE")
                try:
                    yield self._writer
                except BaseException:
                    self._writer.execute("ROLLBACK")
                    raise
                self._writer.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"store {self.url}: {type(exc).__name__}: {exc}") from exc

    # -- ingest

    def _write(self, batch: Batch) -> IngestReport:
        with self._transaction() as db:
            keys = self._claim(db, batch)
            claimed = batch.claimed(keys)
            seq_summary.update(lambda sql, params: db.execute(sql, params).fetchall(), batch.claimed_seqs(keys),
                               placeholder="?")
            self._insert(db, claimed)
            self._update_devices(db, batch, claimed)
            duplicates = batch.duplicates + len(batch.seqs) - sum(claimed.counts().values())
            counts = claimed.counts()
            db.execute("UPDATE counters SET value = value + CASE name WHEN 'results_stored' THEN ? "
                       "WHEN 'events_stored' THEN ? WHEN 'metrics_stored' THEN ? WHEN 'duplicates_dropped' THEN ? "
                       "ELSE 0 END", (counts["results"], counts["events"], counts["metrics"], duplicates))
        return IngestReport(stored=counts, duplicates=duplicates, statuses=len(batch.statuses), fresh=frozenset(keys))

    @staticmethod
    def _claim(db: sqlite3.Connection, batch: Batch) -> set[Key]:
        """Find the batch's seqs already stored (one query over every device's span: it returns only the
        duplicates, usually none; ``INSERT ... RETURNING`` would step, and retake the GIL, once per new row),
        then insert the others."""
        if not batch.seqs:
            return set()
        spans: dict[str, tuple[int, int]] = {}
        for row in batch.seqs:
            low, high = spans.get(row.device, (row.seq, row.seq))
            spans[row.device] = (min(low, row.seq), max(high, row.seq))
        where = " OR ".join(["(device = ? AND seq BETWEEN ? AND ?)"] * len(spans))
        taken = set(db.execute(f"SELECT device, seq FROM seqs WHERE {where}",
                               [value for device, span in spans.items() for value in (device, *span)]).fetchall())
        new = [row for row in batch.seqs if (row.device, row.seq) not in taken]
        insert_rows(db, "seqs (device, seq, boot, kind, ts)", [(r.device, r.seq, r.boot, r.kind, r.ts) for r in new])
        return {(r.device, r.seq) for r in new}

    @staticmethod
    def _insert(db: sqlite3.Connection, rows: ClaimedRows) -> None:
        insert_rows(db, "results (device, seq, boot, ts, model_name, model_version, model_precision, payload)",
                    [(r.device, r.seq, r.boot, r.ts, *r.columns, r.payload_json) for r in rows.results])
        insert_rows(db, "events (device, seq, boot, ts, kind, payload)",
                    [(r.device, r.seq, r.boot, r.ts, *r.columns, r.payload_json) for r in rows.events])
        insert_rows(db, "metrics (device, seq, boot, ts, payload)",
                    [(r.device, r.seq, r.boot, r.ts, r.payload_json) for r in rows.metrics])
        db.executemany("INSERT INTO lost (device, seq, boot, ts, first_seq, last_seq, reason) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [(r.device, r.seq, r.boot, r.ts, r.first_seq, r.last_seq, r.reason) for r in rows.lost])
        db.executemany("INSERT INTO alerts (device, kind, ts, state, seq, detail) VALUES (?, ?, ?, ?, ?, ?)",
                       [(a.device, a.kind, a.ts, a.state, a.seq, json.dumps(a.detail)) for a in rows.alerts])

    @staticmethod
    def _update_devices(db: sqlite3.Connection, batch: Batch, rows: ClaimedRows) -> None:
        insert_rows(db, "devices (id, last_seen)", list(batch.seen.items()),
                    suffix="ON CONFLICT (id) DO UPDATE SET last_seen = max(coalesce(last_seen, 0), excluded.last_seen)")
        db.executemany("UPDATE devices SET online = ?, status_ts = ?, agent = ?, model_name = ?, model_version = ?, "
                       "model_precision = ?, model_ts = ?, status = ? WHERE id = ? AND coalesce(status_ts, 0) <= ?",
                       [(s.online, s.ts, s.agent, *s.model, s.ts, s.payload_json, s.device, s.ts)
                        for s in batch.statuses.values()])
        newest: dict[str, Any] = {}
        for r in rows.results:
            if r.device not in newest or r.ts > newest[r.device].ts:
                newest[r.device] = r
        update_from_values(db, "model_name = v.column2, model_version = v.column3, model_precision = v.column4, "
                           "model_ts = v.column5", "coalesce(devices.model_ts, 0) < v.column5",
                           [(r.device, *r.columns, r.ts) for r in newest.values()])
        update_from_values(db, "metrics = v.column2, metrics_seq = v.column3",
                           "coalesce(devices.metrics_seq, 0) < v.column3",
                           [(r.device, r.payload_json, r.seq) for r in rows.latest_metrics().values()])

    def record_alert(self, alert: Alert) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO alerts (device, kind, ts, state, seq, detail) VALUES (?, ?, ?, ?, ?, ?)",
                       (alert.device, alert.kind, alert.ts, alert.state, alert.seq, json.dumps(alert.detail)))

    # -- queries

    def devices(self) -> list[Device]:
        rows = self._query("SELECT id, model_name, model_version, model_precision, agent, online, last_seen, status, "
                           "metrics FROM devices ORDER BY id")
        return [Device(id=r[0], model=ModelInfo(r[1], r[2], r[3]) if r[1] is not None else None, agent=r[4],
                       online=bool(r[5]), last_seen=r[6], status=_json(r[7]), metrics=_json(r[8])) for r in rows]

    def results(self, *, device: str | None = None, since: float | None = None,
                limit: int = DEFAULT_LIMIT) -> list[StoredResult]:
        where, params = sql_filters("?", device=device, since=since)
        rows = self._query("SELECT device, seq, boot, ts, model_name, model_version, model_precision, payload "
                           f"FROM results {where} ORDER BY ts DESC, seq DESC LIMIT ?", (*params, limit))
        return [StoredResult(r[0], r[1], r[2], r[3], ModelInfo(r[4], r[5], r[6]), json.loads(r[7])) for r in rows]

    def events(self, *, device: str | None = None, kind: str | None = None, since: float | None = None,
               limit: int = DEFAULT_LIMIT) -> list[StoredEvent]:
        where, params = sql_filters("?", device=device, since=since, kind=kind)
        rows = self._query(f"SELECT device, seq, boot, ts, kind, payload FROM events {where} "
                           "ORDER BY ts DESC, seq DESC LIMIT ?", (*params, limit))
        return [StoredEvent(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    def metrics(self, *, device: str | None = None, since: float | None = None,
                limit: int = DEFAULT_LIMIT) -> list[StoredMetrics]:
        where, params = sql_filters("?", device=device, since=since)
        rows = self._query(f"SELECT device, seq, boot, ts, payload FROM metrics {where} "
                           "ORDER BY ts DESC, seq DESC LIMIT ?", (*params, limit))
        return [StoredMetrics(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def alerts(self, *, device: str | None = None, kind: str | None = None, since: float | None = None,
               limit: int = DEFAULT_LIMIT) -> list[Alert]:
        where, params = sql_filters("?", device=device, since=since, kind=kind)
        rows = self._query(f"SELECT device, kind, ts, state, detail, seq FROM alerts {where} "
                           "ORDER BY ts DESC, id DESC LIMIT ?", (*params, limit))
        return [Alert(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

    # -- retention

    def enforce_retention(self, retention: Retention, *, now: float | None = None,
                          batch_rows: int = 5000) -> RetentionReport:
        now = time.time() if now is None else now
        keeps = {"results": retention.keep_results, "events": retention.keep_events,
                 "metrics": retention.keep_metrics, "alerts": retention.keep_alerts,
                 "lost": retention.seq_horizon(), "seqs": retention.seq_horizon(),
                 "seq_runs": retention.seq_horizon(), "boots": retention.seq_horizon()}
        deleted: dict[str, int] = {}
        for table, keep in keeps.items():
            if keep is None:
                continue
            with self._transaction() as db:  # one short transaction per table: ingest waits for one step at most
                cursor = db.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} "
                                    "WHERE ts < ? LIMIT ?)", (now - keep.total_seconds(), batch_rows))
                deleted[table] = cursor.rowcount
        return RetentionReport(deleted=deleted, more=any(n >= batch_rows for n in deleted.values()))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()


def _json(text: str | None) -> dict[str, Any] | None:
    return None if text is None else json.loads(text)


ROWS_PER_INSERT = 200
"""Rows per multi-row ``INSERT`` (at most 8 columns each: well under SQLite's 32766 parameters)."""


def insert_rows(db: sqlite3.Connection, table_columns: str, rows: list[tuple[Any, ...]], *,
                suffix: str = "") -> list[tuple[Any, ...]]:
    """``INSERT INTO table_columns VALUES (...), (...) suffix``, ``ROWS_PER_INSERT`` rows per statement; the
    rows a ``RETURNING`` suffix returns.

    Not ``executemany``: that steps SQLite once per row, releasing Python's GIL around each step and
    taking it back after. While paho's thread is busy reading a flood of messages every take-back waits
    for the GIL's switch interval: measured, a batch committed 6-8x slower beside a busy thread. One
    statement per 200 rows takes the GIL back once per 200 rows.
    """
    returned: list[tuple[Any, ...]] = []
    if not rows:
        return returned
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start:start + ROWS_PER_INSERT]
        marks = row_marks("?", len(rows[0]), len(chunk))
        returned += db.execute(f"INSERT INTO {table_columns} VALUES {marks} {suffix}",
                               [value for row in chunk for value in row]).fetchall()
    return returned


def update_from_values(db: sqlite3.Connection, assignments: str, condition: str, rows: list[tuple[Any, ...]]) -> None:
    """One ``UPDATE devices SET assignments FROM (VALUES ...) AS v WHERE devices.id = v.column1 AND condition``
    for every row (``v.column1`` the device id), instead of one statement per device (see :func:`insert_rows`)."""
    if not rows:
        return
    db.execute(f"UPDATE devices SET {assignments} FROM (VALUES {row_marks('?', len(rows[0]), len(rows))}) AS v "
               f"WHERE devices.id = v.column1 AND {condition}", [value for row in rows for value in row])
