"""The PostgreSQL store's schema, as numbered migrations applied by the hub under an advisory lock.

``results`` is partitioned by day on ``ts`` (declarative range partitioning): a day's partition
is created when the first result of that day arrives (:func:`partition_ddl`), and retention
drops whole days instead of deleting their rows one by one. Its primary key includes ``ts``
because a partitioned table's unique keys must contain the partition key; the dedup key
``(device, seq)`` is the ``seqs`` table's, claimed before any result is written.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import psycopg

from edgekit.fleet.hub.store.sql import apply_migrations, rows_of

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: the first schema
        "CREATE TABLE counters (name text PRIMARY KEY, value bigint NOT NULL)",
        "INSERT INTO counters (name, value) VALUES ('results_stored', 0), ('events_stored', 0), "
        "('metrics_stored', 0), ('duplicates_dropped', 0)",
        "CREATE TABLE devices (id text PRIMARY KEY, model_name text, model_version text, model_precision text, "
        "model_ts double precision, agent text, online boolean NOT NULL DEFAULT false, status_ts double precision, "
        "last_seen double precision, status jsonb, metrics jsonb, metrics_seq bigint)",
        "CREATE TABLE seqs (device text NOT NULL, seq bigint NOT NULL, boot text NOT NULL, kind text NOT NULL, "
        "ts timestamptz NOT NULL, PRIMARY KEY (device, seq))",
        "CREATE INDEX seqs_ts ON seqs (ts)",
        "CREATE TABLE results (device text NOT NULL, seq bigint NOT NULL, boot text NOT NULL, ts timestamptz NOT NULL, "
        "model_name text NOT NULL, model_version text NOT NULL, model_precision text NOT NULL, "
        "payload jsonb NOT NULL, PRIMARY KEY (device, seq, ts)) PARTITION BY RANGE (ts)",
        "CREATE INDEX results_device_ts ON results (device, ts)",
        "CREATE INDEX results_ts ON results (ts)",
        "CREATE TABLE events (device text NOT NULL, seq bigint NOT NULL, boot text NOT NULL, ts timestamptz NOT NULL, "
        "kind text NOT NULL, payload jsonb NOT NULL, PRIMARY KEY (device, seq))",
        "CREATE INDEX events_device_ts ON events (device, ts)",
        "CREATE INDEX events_kind_ts ON events (kind, ts)",
        "CREATE INDEX events_ts ON events (ts)",
        "CREATE TABLE metrics (device text NOT NULL, seq bigint NOT NULL, boot text NOT NULL, "
        "ts timestamptz NOT NULL, payload jsonb NOT NULL, PRIMARY KEY (device, seq))",
        "CREATE INDEX metrics_device_ts ON metrics (device, ts)",
        "CREATE INDEX metrics_ts ON metrics (ts)",
        "CREATE TABLE lost (device text NOT NULL, seq bigint NOT NULL, boot text NOT NULL, ts timestamptz NOT NULL, "
        "first_seq bigint NOT NULL, last_seq bigint NOT NULL, reason text NOT NULL)",
        "CREATE INDEX lost_device ON lost (device, first_seq)",
        "CREATE INDEX lost_ts ON lost (ts)",
        "CREATE TABLE alerts (id bigserial PRIMARY KEY, device text NOT NULL, kind text NOT NULL, "
        "ts timestamptz NOT NULL, state text NOT NULL, seq bigint, detail jsonb NOT NULL)",
        "CREATE INDEX alerts_device_ts ON alerts (device, ts)",
        "CREATE INDEX alerts_ts ON alerts (ts)",
    ),
    (  # 2: seq runs and boot spans kept at ingest (seq_summary.py), filled from the seqs already stored
        "CREATE TABLE seq_runs (device text NOT NULL, first_seq bigint NOT NULL, last_seq bigint NOT NULL, "
        "ts timestamptz NOT NULL, PRIMARY KEY (device, first_seq))",
        "CREATE INDEX seq_runs_ts ON seq_runs (ts)",
        "CREATE TABLE boots (device text NOT NULL, boot text NOT NULL, first_seq bigint NOT NULL, "
        "last_seq bigint NOT NULL, received bigint NOT NULL, ts timestamptz NOT NULL, PRIMARY KEY (device, boot))",
        "CREATE INDEX boots_ts ON boots (ts)",
        "INSERT INTO seq_runs (device, first_seq, last_seq, ts) SELECT device, min(seq), max(seq), max(ts) FROM "
        "(SELECT device, seq, ts, seq - row_number() OVER (PARTITION BY device ORDER BY seq) AS run FROM seqs) AS s "
        "GROUP BY device, run",
        "INSERT INTO boots (device, boot, first_seq, last_seq, received, ts) "
        "SELECT device, boot, min(seq), max(seq), count(*), max(ts) FROM seqs GROUP BY device, boot",
    ),
)
"""Migration ``n`` (1-based) brings a database from version ``n - 1`` to ``n``."""

_LOCK_KEY = 0x6564676B  # "edgk": one hub migrates at a time


def migrate(connection: psycopg.Connection) -> int:
    """Apply every migration the database lacks in one transaction (one hub at a time: an advisory lock);
    returns the version now."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        return apply_migrations(lambda sql, params: rows_of(connection.execute(sql, params)), MIGRATIONS, "%s")


def partition_name(day: date) -> str:
    return f"results_d{day:%Y%m%d}"


def day_of_partition(name: str) -> date | None:
    """The day a partition named by :func:`partition_name` holds, None for any other table."""
    if not name.startswith("results_d") or len(name) != len("results_d") + 8:
        return None
    try:
        return datetime.strptime(name[len("results_d"):], "%Y%m%d").replace(tzinfo=timezone.utc).date()
    except ValueError:
        return None


def partition_ddl(day: date) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the partition of UTC day ``day``."""
    end = day + timedelta(days=1)
    return (f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF results "
            f"FOR VALUES FROM ('{day.isoformat()} 00:00:00+00') TO ('{end.isoformat()} 00:00:00+00')")
