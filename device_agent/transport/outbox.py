"""Durable outbox: every message the agent publishes is committed here first.

A row is deleted only when the broker has acknowledged it (see :mod:`device_agent.transport.publisher`),
so a crash, a power cut or a dead broker loses nothing that was committed. The outbox is
bounded by row count and age; what the bounds drop is reported as a :class:`Gap` with the
exact ``seq`` ranges, so a consumer can tell "lost" from "late". The dropped rows are rarely
one run of seqs: rows already acknowledged, and pinned gap events still waiting, sit between
them, so a gap lists every run (``ranges``); ``first_seq``/``last_seq`` only bound them.

How the file is opened, recovered when corrupt and kept durable (WAL, ``synchronous=FULL``)
is :mod:`device_agent.transport.outbox_db`.

``seq`` is strictly increasing and never reused. ``meta.last_seq`` is updated in the same
transaction as the insert. In case the database is corrupt (and ``meta`` with it), a sidecar
file ``<path>.seq`` holds a *reservation*: a number at least as large as any seq ever handed
out, rewritten (atomically, fsynced) once every :data:`SEQ_BLOCK` seqs, before the first seq
of the new block is used. After a corruption the new database starts above the reservation;
the jump of at most ``SEQ_BLOCK`` numbers is harmless (consumers see it as a gap, which is
true: the corrupt file's rows were not delivered). If the sidecar is gone too, the wall clock
in milliseconds is the best remaining guess.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_agent.errors import OutboxError
from device_agent.protocol.base import body_of
from device_agent.protocol.events import GapEvent
from device_agent.transport.outbox_db import (
    open_database,
    read_reservation,
    transaction,
    write_reservation,
)

__all__ = ["SEQ_BLOCK", "Gap", "Outbox", "OutboxError", "OutboxRow", "SeenRequest"]

SEQ_BLOCK = 1000
"""How many seqs one write of the ``<path>.seq`` reservation covers."""

@dataclass(frozen=True)
class OutboxRow:
    """One committed, not yet acknowledged message."""

    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True)
class Gap:
    """Rows dropped by the outbox bounds: ``count`` rows, exactly the seqs in ``ranges``.

    ``ranges`` holds inclusive ``(first, last)`` runs of consecutive dropped seqs, in order;
    ``[first_seq, last_seq]`` bounds them and may include seqs that were delivered, or are
    still waiting (a pinned gap event), so only ``ranges`` names what was lost. It is left out
    of ``==`` so a gap written by hand as ``Gap(first, last, count, reason)`` still compares.
    """

    first_seq: int
    last_seq: int
    count: int
    reason: str  # "overflow" or "age"
    ranges: tuple[tuple[int, int], ...] = field(default=(), compare=False)

    def describe(self) -> str:
        """``3..4, 6..9`` (a run of one seq is written once)."""
        return ", ".join(str(a) if a == b else f"{a}..{b}" for a, b in self.ranges)


@dataclass(frozen=True)
class SeenRequest:
    """A command request the agent accepted earlier (see :meth:`Outbox.request_seen`)."""

    request_id: str
    command: str
    received: float  # wall-clock time it was accepted
    boot: str  # boot id of the agent that accepted it
    reply: dict[str, Any] | None  # its final reply body; None: it never finished (the agent stopped while it ran)


class Outbox:
    """SQLite outbox; thread-safe (one connection guarded by a lock)."""

    def __init__(
        self,
        path: Path,
        *,
        device_id: str,
        max_rows: int = 100_000,
        max_age_s: float = 7 * 86400,
        gap_topic: str | None = None,
        headroom: float = 0.0,
    ) -> None:
        """``gap_topic``: where the outbox itself records each drop as a gap event. Such a row is
        *pinned*: it does not count against ``max_rows`` and is never dropped, so the news of a
        loss cannot be lost. ``headroom``: on overflow, drop this fraction of ``max_rows`` more,
        so a long outage makes one gap event per block of rows, not one per row."""
        self.path = Path(path)
        self.device_id = device_id
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self.gap_topic = gap_topic
        self.headroom = headroom
        self.boot_id = str(uuid.uuid4())
        self._seq_file = self.path.with_name(self.path.name + ".seq")
        self._lock = threading.RLock()
        self._gaps: list[Gap] = []
        self._conn, self.recovered_from = open_database(self.path)
        self._init_meta()

    # -- opening ---------------------------------------------------------------------------

    def _init_meta(self) -> None:
        with self._lock, self._transaction():
            meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
            last_seq = int(meta.get("last_seq", 0))
            if "last_seq" not in meta:  # a new or recovered database: never go below old seqs
                reserved = self._read_reservation()
                last_seq = reserved if reserved is not None else (int(time.time() * 1000) if self.recovered_from else 0)
            self.boot_count = int(meta.get("boot_count", 0)) + 1
            self._put_meta("last_seq", last_seq)
            self._put_meta("boot_count", self.boot_count)
        self._last_seq = last_seq
        self._reserved = self._read_reservation() or 0
        self._depth: int = self._conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        self._pinned = self._conn.execute("SELECT count(*) FROM messages WHERE pinned = 1").fetchone()[0]

    def _read_reservation(self) -> int | None:
        return read_reservation(self._seq_file)

    def _reserve(self, up_to: int) -> None:
        write_reservation(self._seq_file, up_to)
        self._reserved = up_to

    def _put_meta(self, key: str, value: object) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, str(value)))

    def _transaction(self) -> AbstractContextManager[None]:
        return transaction(self._conn)

    # -- public API ------------------------------------------------------------------------

    def add(self, topic: str, body: dict[str, Any], *, qos: int = 1, retain: bool = False) -> int:
        """Commit one message and return its seq; the payload is ``body`` plus the envelope.

        The envelope (``v``, ``device``, ``seq``, ``boot``, ``ts``) overrides same-named body keys.
        If the bounds are exceeded, the oldest rows are dropped and a :class:`Gap` is queued for
        :meth:`take_gaps`.
        """
        return self.add_many([(topic, body)], qos=qos, retain=retain)[0]

    def add_many(self, entries: list[tuple[str, dict[str, Any]]], *, qos: int = 1, retain: bool = False) -> list[int]:
        """Commit several messages in one transaction (one fsync): group commit for a busy agent."""
        with self._lock:
            counters = (self._last_seq, self._depth, self._pinned)
            try:
                with self._transaction():
                    seqs = [self._insert_locked(topic, body, qos=qos, retain=retain) for topic, body in entries]
            except sqlite3.Error as exc:
                self._last_seq, self._depth, self._pinned = counters  # rolled back: so are the counters
                raise OutboxError(f"cannot commit to outbox {self.path}: {exc}") from exc
            too_old = self._oldest_created_locked() < time.time() - self.max_age_s
            if self._depth - self._pinned > self.max_rows or too_old:
                gap = self._enforce_locked()
                if gap is not None:
                    self._gaps.append(gap)
            return seqs

    def _insert_locked(self, topic: str, body: dict[str, Any], *, qos: int, retain: bool, pinned: bool = False) -> int:
        """Insert one row inside the caller's transaction; return its seq."""
        seq = self._last_seq + 1
        if seq > self._reserved:
            try:
                self._reserve(seq + SEQ_BLOCK)
            except OSError as exc:
                raise OutboxError(f"cannot write the seq reservation {self._seq_file}: {exc}") from exc
        envelope = {"v": 1, "device": self.device_id, "seq": seq, "boot": self.boot_id, "ts": time.time()}
        payload = json.dumps({**body, **envelope}, separators=(",", ":")).encode()
        self._conn.execute(
            "INSERT INTO messages(seq, topic, payload, qos, retain, created, pinned) VALUES (?,?,?,?,?,?,?)",
            (seq, topic, payload, qos, int(retain), time.time(), int(pinned)),
        )
        self._put_meta("last_seq", seq)
        self._last_seq = seq
        self._depth += 1
        self._pinned += int(pinned)
        return seq

    def pending(self, limit: int = 500, after_seq: int = 0) -> list[OutboxRow]:
        """Up to ``limit`` unacknowledged rows with seq > ``after_seq``, in seq order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, topic, payload, qos, retain FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [OutboxRow(s, t, bytes(p), q, bool(r)) for s, t, p, q, r in rows]

    def ack(self, seq: int) -> None:
        """Delete a row the broker has acknowledged (no error if it is already gone)."""
        self.ack_many([seq])

    def ack_many(self, seqs: list[int]) -> None:
        """Delete several acknowledged rows in one transaction (one fsync)."""
        if not seqs:
            return
        with self._lock, self._transaction():
            for seq in seqs:
                row = self._conn.execute("SELECT pinned FROM messages WHERE seq = ?", (seq,)).fetchone()
                if row is not None:
                    self._conn.execute("DELETE FROM messages WHERE seq = ?", (seq,))
                    self._depth -= 1
                    self._pinned -= int(row[0])

    def depth(self) -> int:
        with self._lock:
            return self._depth

    def oldest_age_s(self) -> float | None:
        """Age in seconds of the oldest unacknowledged row, None when empty."""
        with self._lock:
            oldest = self._oldest_created_locked()
        return None if oldest == float("inf") else max(0.0, time.time() - oldest)

    def enforce_limits(self) -> Gap | None:
        """Drop the oldest rows over ``max_rows`` or older than ``max_age_s``; return what was dropped.

        A gap found here is returned, not queued: the caller publishes it.
        """
        with self._lock:
            return self._enforce_locked()

    def take_gaps(self) -> list[Gap]:
        """Gaps created by :meth:`add`, oldest first; the list is emptied."""
        with self._lock:
            gaps, self._gaps = self._gaps, []
        return gaps

    # -- command requests (idempotency) -------------------------------------------------------
    #
    # Kept here, not in a second file, because a request and its reply must survive the same
    # crashes: the accepted request is committed before the command runs, the final reply
    # before it is queued for MQTT, so after any crash a repeated request_id either finds
    # its reply or finds that it was interrupted, and never runs twice.

    def request_seen(self, request_id: str, *, window_s: float) -> SeenRequest | None:
        """The request accepted under ``request_id`` within the last ``window_s`` seconds, if any."""
        with self._lock:
            row = self._conn.execute(
                "SELECT command, received, boot, reply FROM requests WHERE request_id = ? AND received >= ?",
                (request_id, time.time() - window_s),
            ).fetchone()
        if row is None:
            return None
        command, received, boot, reply = row
        return SeenRequest(request_id, command, float(received), boot, None if reply is None else json.loads(reply))

    def request_started(self, request_id: str, command: str, *, window_s: float) -> None:
        """Commit that ``request_id`` was accepted (before it runs); forget requests older than ``window_s``."""
        now = time.time()
        try:
            with self._lock, self._transaction():
                self._conn.execute("DELETE FROM requests WHERE received < ?", (now - window_s,))
                self._conn.execute(
                    "INSERT OR REPLACE INTO requests(request_id, command, received, boot, reply) VALUES (?,?,?,?,NULL)",
                    (request_id, command, now, self.boot_id),
                )
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot record command request {request_id!r} in {self.path}: {exc}") from exc

    def request_finished(self, request_id: str, reply: dict[str, Any]) -> None:
        """Commit the final reply of an accepted request; the first final reply stays (a later one is ignored)."""
        try:
            with self._lock, self._transaction():
                self._conn.execute("UPDATE requests SET reply = ? WHERE request_id = ? AND reply IS NULL",
                                   (json.dumps(reply, separators=(",", ":")), request_id))
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot record the reply to command request {request_id!r} "
                              f"in {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- bounds ----------------------------------------------------------------------------

    def _oldest_created_locked(self) -> float:
        row = self._conn.execute("SELECT created FROM messages WHERE pinned = 0 ORDER BY seq LIMIT 1").fetchone()
        return float("inf") if row is None else float(row[0])

    def _enforce_locked(self) -> Gap | None:
        # Both bounds drop a prefix in seq order; the larger prefix wins.
        aged = self._conn.execute(
            "SELECT max(seq) FROM messages WHERE pinned = 0 AND created < ?", (time.time() - self.max_age_s,)
        ).fetchone()[0]
        unpinned = self._depth - self._pinned
        over = unpinned - self.max_rows
        overflow = None
        if over > 0:
            over = min(unpinned, over + int(self.max_rows * self.headroom))
            overflow = self._conn.execute(
                "SELECT seq FROM messages WHERE pinned = 0 ORDER BY seq LIMIT 1 OFFSET ?", (over - 1,)
            ).fetchone()[0]
        if aged is None and overflow is None:
            return None
        cutoff, reason = max((aged or 0, "age"), (overflow or 0, "overflow"))
        with self._transaction():
            # runs of consecutive seqs: seq - row_number() is constant along a run
            ranges = tuple((a, b) for a, b in self._conn.execute(
                "SELECT min(seq), max(seq) FROM (SELECT seq, seq - row_number() OVER (ORDER BY seq) AS run "
                "FROM messages WHERE pinned = 0 AND seq <= ?) GROUP BY run ORDER BY 1", (cutoff,)
            ).fetchall())
            count = self._conn.execute("DELETE FROM messages WHERE pinned = 0 AND seq <= ?", (cutoff,)).rowcount
            self._depth -= count
            first, last = ranges[0][0], ranges[-1][1]
            gap = Gap(first_seq=first, last_seq=last, count=count, reason=reason, ranges=ranges)
            if self.gap_topic is not None:
                event = GapEvent(first_seq=first, last_seq=last, count=count, ranges=[list(r) for r in ranges],
                                 reason=reason)  # type: ignore[arg-type]  # reason is "age" or "overflow" above
                self._insert_locked(self.gap_topic, body_of(event), qos=1, retain=False, pinned=True)
        return gap
