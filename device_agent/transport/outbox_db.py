"""The outbox's SQLite file: schema, opening with corruption recovery, transactions, seq reservation.

Split from :mod:`device_agent.transport.outbox` so that the queue operations read apart
from how the file is kept alive. Everything here is about surviving the ways an edge
device's storage fails; the queue semantics (seq, bounds, gaps, requests) live in the outbox.

Durability: WAL journal with ``synchronous=FULL``. Any committed transaction survives a
SIGKILL of the process already with ``NORMAL`` (the WAL frames are written before COMMIT
returns and the OS keeps them), but ``NORMAL`` can lose the last commits on power loss, which
is the usual way an edge device dies. ``FULL`` fsyncs the WAL on every commit.

A file that is not a database, or fails ``quick_check``, is moved aside (with its ``-wal`` and
``-shm``) as ``<name>.corrupt-<UTC stamp>`` and a fresh one is created; a locked, read-only or
full disk is an :class:`OutboxError`, never "corruption", so nothing is moved aside for it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from device_agent.errors import OutboxError

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages(
    seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL,
    qos INT NOT NULL, retain INT NOT NULL, created REAL NOT NULL, pinned INT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests(
    request_id TEXT PRIMARY KEY, command TEXT NOT NULL, received REAL NOT NULL, boot TEXT NOT NULL, reply TEXT);
CREATE INDEX IF NOT EXISTS requests_received ON requests(received);
"""


class _Corrupt(Exception):
    pass


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot open outbox {path}: {exc}") from exc
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise _Corrupt(f"quick_check: {check}")
        conn.executescript(SCHEMA)
    except sqlite3.OperationalError as exc:  # locked, read-only, no space: not corruption
        conn.close()
        raise OutboxError(f"cannot use outbox {path}: {exc}") from exc
    except (sqlite3.DatabaseError, _Corrupt) as exc:  # not a database / malformed
        conn.close()
        raise _Corrupt(str(exc)) from exc
    return conn


def _move_aside(path: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    return target


def open_database(path: Path) -> tuple[sqlite3.Connection, Path | None]:
    """The connection to the outbox at ``path`` and, when it was corrupt, where the old file went."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _connect(path), None
    except _Corrupt:
        recovered_from = _move_aside(path)
        try:
            return _connect(path), recovered_from
        except _Corrupt as exc:
            raise OutboxError(f"cannot create a fresh outbox at {path}: {exc}") from exc


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` when the block raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def read_reservation(seq_file: Path) -> int | None:
    """The seq reservation in ``seq_file``, None when it is missing or unreadable."""
    try:
        return int(seq_file.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def write_reservation(seq_file: Path, up_to: int) -> None:
    """Atomically replace the reservation with ``up_to``, fsynced (file and directory) before it returns."""
    tmp = seq_file.with_name(seq_file.name + ".tmp")
    with open(tmp, "w", encoding="ascii") as f:
        f.write(str(up_to))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, seq_file)
    dir_fd = os.open(seq_file.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
