"""The SQLite store's schema, as numbered migrations: a hub opens an older file and brings it up to date.

``schema_version`` holds the one number of the last migration applied; a file from a newer hub
(a number this hub does not know) is refused rather than written with the wrong schema.
"""

from __future__ import annotations

import sqlite3

from edgekit.fleet.hub.store.sql import apply_migrations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: the first schema
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        "INSERT INTO counters (name, value) VALUES ('results_stored', 0), ('events_stored', 0), "
        "('metrics_stored', 0), ('duplicates_dropped', 0)",
        "CREATE TABLE devices (id TEXT PRIMARY KEY, model_name TEXT, model_version TEXT, model_precision TEXT, "
        "model_ts REAL, agent TEXT, online INTEGER NOT NULL DEFAULT 0, status_ts REAL, last_seen REAL, status TEXT, "
        "metrics TEXT, metrics_seq INTEGER)",
        "CREATE TABLE seqs (device TEXT NOT NULL, seq INTEGER NOT NULL, boot TEXT NOT NULL, kind TEXT NOT NULL, "
        "ts REAL NOT NULL, PRIMARY KEY (device, seq))",
        "CREATE INDEX seqs_ts ON seqs (ts)",
        "CREATE TABLE results (device TEXT NOT NULL, seq INTEGER NOT NULL, boot TEXT NOT NULL, ts REAL NOT NULL, "
        "model_name TEXT NOT NULL, model_version TEXT NOT NULL, model_precision TEXT NOT NULL, "
        "payload TEXT NOT NULL, PRIMARY KEY (device, seq))",
        "CREATE INDEX results_device_ts ON results (device, ts)",
        "CREATE INDEX results_ts ON results (ts)",
        "CREATE TABLE events (device TEXT NOT NULL, seq INTEGER NOT NULL, boot TEXT NOT NULL, ts REAL NOT NULL, "
        "kind TEXT NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (device, seq))",
        "CREATE INDEX events_device_ts ON events (device, ts)",
        "CREATE INDEX events_kind_ts ON events (kind, ts)",
        "CREATE INDEX events_ts ON events (ts)",
        "CREATE TABLE metrics (device TEXT NOT NULL, seq INTEGER NOT NULL, boot TEXT NOT NULL, ts REAL NOT NULL, "
        "payload TEXT NOT NULL, PRIMARY KEY (device, seq))",
        "CREATE INDEX metrics_device_ts ON metrics (device, ts)",
        "CREATE INDEX metrics_ts ON metrics (ts)",
        "CREATE TABLE lost (device TEXT NOT NULL, seq INTEGER NOT NULL, boot TEXT NOT NULL, ts REAL NOT NULL, "
        "first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, reason TEXT NOT NULL)",
        "CREATE INDEX lost_device ON lost (device, first_seq)",
        "CREATE INDEX lost_ts ON lost (ts)",
        "CREATE TABLE alerts (id INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL, kind TEXT NOT NULL, "
        "ts REAL NOT NULL, state TEXT NOT NULL, seq INTEGER, detail TEXT NOT NULL)",
        "CREATE INDEX alerts_device_ts ON alerts (device, ts)",
        "CREATE INDEX alerts_ts ON alerts (ts)",
    ),
    (  # 2: seq runs and boot spans kept at ingest (seq_summary.py), filled from the seqs already stored
        "CREATE TABLE seq_runs (device TEXT NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, "
        "ts REAL NOT NULL, PRIMARY KEY (device, first_seq))",
        "CREATE INDEX seq_runs_ts ON seq_runs (ts)",
        "CREATE TABLE boots (device TEXT NOT NULL, boot TEXT NOT NULL, first_seq INTEGER NOT NULL, "
        "last_seq INTEGER NOT NULL, received INTEGER NOT NULL, ts REAL NOT NULL, PRIMARY KEY (device, boot))",
        "CREATE INDEX boots_ts ON boots (ts)",
        "INSERT INTO seq_runs (device, first_seq, last_seq, ts) SELECT device, min(seq), max(seq), max(ts) FROM "
        "(SELECT device, seq, ts, seq - row_number() OVER (PARTITION BY device ORDER BY seq) AS run FROM seqs) AS s "
        "GROUP BY device, run",
        "INSERT INTO boots (device, boot, first_seq, last_seq, received, ts) "
        "SELECT device, boot, min(seq), max(seq), count(*), max(ts) FROM seqs GROUP BY device, boot",
    ),
)
"""Migration ``n`` (1-based) brings a file from version ``n - 1`` to ``n``."""


def migrate(db: sqlite3.Connection) -> int:
    """Apply every migration the file lacks, all in one transaction; returns the version now."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = apply_migrations(lambda sql, params: db.execute(sql, params).fetchall(), MIGRATIONS, "?")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return version
