"""Seq runs and boot spans, kept up to date at ingest so that accounting never scans the seq table.

The seq table holds one row per stored message (the dedup key); finding its holes means a window
query over every row: 0.3 s for 200,000 seqs on SQLite, and the fleet page asks for every
device's missing count on each refresh. Instead each ingest transaction folds its claimed seqs
into two small tables, which the same SQL updates on both backends:

- ``seq_runs (device, first_seq, last_seq, ts)``: the maximal runs of consecutive received seqs
  (a device that loses nothing has one row); ``ts`` is the newest message time in the run, so
  retention drops runs as it drops their seqs.
- ``boots (device, boot, first_seq, last_seq, received, ts)``: per agent run, its lowest and
  highest seq received and how many.

A batch touches, per device, only the runs that overlap or touch its seq span; all devices of a
batch together take one select, one delete and one insert of the merged runs, and one upsert of
the boots.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from edgekit.fleet.hub.store.batch import SeqRow
from edgekit.fleet.hub.store.sql import Execute, row_marks

Run = tuple[int, int, float]
"""``(first_seq, last_seq, newest ts)``."""


def merge_runs(runs: Sequence[Run]) -> list[Run]:
    """Runs sorted, overlapping or touching ones joined (keeping the newest ts)."""
    merged: list[Run] = []
    for first, last, ts in sorted(runs):
        if merged and first <= merged[-1][1] + 1:
            low, high, newest = merged[-1]
            merged[-1] = (low, max(high, last), max(newest, ts))
        else:
            merged.append((first, last, ts))
    return merged


def update(execute: Execute, rows: Sequence[SeqRow], *, placeholder: str, ts_sql: str = "ts",
           to_db: Callable[[float], Any] = float) -> None:
    """Fold newly claimed ``rows`` into ``seq_runs`` and ``boots``, in four statements whatever the devices.

    ``ts_sql`` reads ``ts`` as Unix seconds (``extract(epoch FROM ts)`` where it is a timestamp);
    ``to_db`` turns Unix seconds into the column's type. Few statements matter: each one releases and
    retakes Python's GIL, and beside paho's busy thread every retake waits (see ``sqlite.insert_rows``).
    """
    if not rows:
        return
    p = placeholder
    by_device: dict[str, list[SeqRow]] = {}
    boots: dict[tuple[str, str], tuple[int, int, int, float]] = {}
    for row in rows:
        by_device.setdefault(row.device, []).append(row)
        low, high, count, newest = boots.get((row.device, row.boot), (row.seq, row.seq, 0, row.ts))
        boots[(row.device, row.boot)] = (min(low, row.seq), max(high, row.seq), count + 1, max(newest, row.ts))
    windows = [(device, min(r.seq for r in new) - 1, max(r.seq for r in new) + 1) for device, new in by_device.items()]
    where = " OR ".join([f"(device = {p} AND last_seq >= {p} AND first_seq <= {p})"] * len(windows))
    params = tuple(value for window in windows for value in window)
    touched: dict[str, list[Run]] = {}
    for device, first, last, ts in execute(f"SELECT device, first_seq, last_seq, {ts_sql} FROM seq_runs "
                                           f"WHERE {where}", params):
        touched.setdefault(device, []).append((int(first), int(last), float(ts)))
    if touched:
        execute(f"DELETE FROM seq_runs WHERE {where}", params)
    runs = [(device, first, last, to_db(ts)) for device, new in by_device.items()
            for first, last, ts in merge_runs(touched.get(device, []) + [(r.seq, r.seq, r.ts) for r in new])]
    execute(f"INSERT INTO seq_runs (device, first_seq, last_seq, ts) VALUES {row_marks(p, 4, len(runs))}",
            tuple(value for run in runs for value in run))
    execute(f"INSERT INTO boots (device, boot, first_seq, last_seq, received, ts) VALUES {row_marks(p, 6, len(boots))} "
            "ON CONFLICT (device, boot) DO UPDATE SET "
            "first_seq = CASE WHEN excluded.first_seq < boots.first_seq THEN excluded.first_seq "
            "ELSE boots.first_seq END, "
            "last_seq = CASE WHEN excluded.last_seq > boots.last_seq THEN excluded.last_seq "
            "ELSE boots.last_seq END, "
            "received = boots.received + excluded.received, "
            "ts = CASE WHEN excluded.ts > boots.ts THEN excluded.ts ELSE boots.ts END",
            tuple(value for (device, boot), (low, high, count, newest) in boots.items()
                  for value in (device, boot, low, high, count, to_db(newest))))

