"""The durable outbox: seq never reused, commits survive SIGKILL, bounds report exact gaps."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from device_agent.transport.outbox import SEQ_BLOCK, Gap, Outbox

TOPIC = "edgekit/v1/cam-01/results"


def test_add_builds_envelope_and_pending_is_in_seq_order(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", device_id="cam-01") as box:
        seqs = [box.add(TOPIC, {"frame": i, "seq": -5}) for i in range(5)]
        rows = box.pending()
        assert seqs == [1, 2, 3, 4, 5]
        assert [r.seq for r in rows] == seqs
        body = json.loads(rows[2].payload)
        assert body["frame"] == 2 and body["seq"] == 3  # the envelope wins over the body
        assert body["v"] == 1 and body["device"] == "cam-01" and body["boot"] == box.boot_id
        assert rows[0].qos == 1 and rows[0].retain is False and rows[0].topic == TOPIC
        assert [r.seq for r in box.pending(limit=2, after_seq=2)] == [3, 4]


def test_ack_deletes_and_depth_follows(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", device_id="d") as box:
        for i in range(3):
            box.add(TOPIC, {"i": i})
        assert box.depth() == 3 and box.oldest_age_s() is not None
        box.ack(2)
        box.ack(2)  # a duplicate PUBACK is harmless
        assert [r.seq for r in box.pending()] == [1, 3] and box.depth() == 2
        box.ack(1)
        box.ack(3)
        assert box.depth() == 0 and box.oldest_age_s() is None


def test_seq_keeps_increasing_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, device_id="d") as box:
        first = [box.add(TOPIC, {}) for _ in range(3)]
        boot1, count1 = box.boot_id, box.boot_count
        for s in first:
            box.ack(s)  # an empty table must not reset seq
    with Outbox(path, device_id="d") as box:
        assert box.add(TOPIC, {}) == 4
        assert box.boot_id != boot1 and box.boot_count == count1 + 1


_CHILD = """
import sys
from pathlib import Path
from device_agent.transport.outbox import Outbox
box = Outbox(Path(sys.argv[1]), device_id="d")
for i in range(50):
    print(box.add("edgekit/v1/d/results", {"i": i}), flush=True)
input()  # wait to be killed, connection still open
"""


def test_committed_rows_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    acknowledged = [int(child.stdout.readline()) for _ in range(50)]  # add() returned: committed
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    assert child.returncode == -signal.SIGKILL
    assert Path(str(path) + "-wal").exists()  # the process never checkpointed or closed
    with Outbox(path, device_id="d") as box:
        assert [r.seq for r in box.pending()] == acknowledged == list(range(1, 51))
        assert box.add(TOPIC, {}) == 51


def test_overflow_drops_oldest_and_reports_exact_range(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", device_id="d", max_rows=10) as box:
        for _ in range(10):
            box.add(TOPIC, {})
        box.ack(5)
        assert box.take_gaps() == []
        for _ in range(3):  # 10, 11, 11 rows: each add drops exactly what is over
            box.add(TOPIC, {})
        assert box.take_gaps() == [Gap(1, 1, 1, "overflow"), Gap(2, 2, 1, "overflow")]
        assert box.take_gaps() == []
        assert box.depth() == 10
        assert [r.seq for r in box.pending()] == [3, 4, 6, 7, 8, 9, 10, 11, 12, 13]
        box.max_rows = 4
        gap = box.enforce_limits()
        assert gap == Gap(first_seq=3, last_seq=9, count=6, reason="overflow")  # seq 5 was acked
        assert [r.seq for r in box.pending()] == [10, 11, 12, 13]
        assert box.enforce_limits() is None


def test_age_limit_drops_old_rows(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", device_id="d", max_age_s=0.3) as box:
        box.add(TOPIC, {})
        box.add(TOPIC, {})
        time.sleep(0.4)
        box.add(TOPIC, {})  # the add notices the age and drops the two old rows
        assert box.take_gaps() == [Gap(1, 2, 2, "age")]
        assert [r.seq for r in box.pending()] == [3]
        time.sleep(0.4)
        assert box.enforce_limits() == Gap(3, 3, 1, "age")
        assert box.depth() == 0


@pytest.mark.parametrize("damage", ["garbage", "bad-page"])
def test_corrupt_database_is_moved_aside_and_seq_keeps_increasing(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, device_id="d") as box:
        for i in range(400):
            box.add(TOPIC, {"pad": "x" * 200, "i": i})
        last = box.add(TOPIC, {})
    if damage == "garbage":
        path.write_bytes(b"this is not an sqlite database" * 100)
    else:  # keep the header, scribble over the b-tree pages
        data = bytearray(path.read_bytes())
        data[4096 + 100 : 4096 * 3] = b"\xff" * (4096 * 2 - 100)
        path.write_bytes(bytes(data))
    original = path.read_bytes()
    with Outbox(path, device_id="d") as box:
        assert box.recovered_from is not None
        assert box.recovered_from.name.startswith("o.db.corrupt-")
        assert box.recovered_from.read_bytes() == original  # kept for inspection, never deleted
        assert box.depth() == 0
        new = box.add(TOPIC, {})
        assert last < new <= last + SEQ_BLOCK + 1
        assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Outbox(path, device_id="d") as box:
        assert box.recovered_from is None and box.add(TOPIC, {}) == new + 1


def test_gap_events_are_pinned_rows_that_overflow_never_drops(tmp_path: Path) -> None:
    import json

    with Outbox(tmp_path / "o.db", device_id="d", max_rows=10, gap_topic="t/events", headroom=0.2) as box:
        for _ in range(40):
            box.add(TOPIC, {})
        rows = box.pending(limit=1000)
        gaps = [json.loads(r.payload) for r in rows if r.topic == "t/events"]
        kept = {r.seq for r in rows}
        assert len(gaps) >= 2 and all(g["kind"] == "gap" for g in gaps)
        assert len(rows) - len(gaps) <= 10  # only ordinary rows count against max_rows
        lost = {s for g in gaps for s in range(g["first_seq"], g["last_seq"] + 1)} - kept
        assert lost | kept == set(range(1, max(kept) + 1))  # every seq is kept or announced lost
        assert sum(g["count"] for g in gaps) == len(lost)
        assert len(gaps) < 40 - 10  # headroom: one gap event per block of drops, not one per row


def test_group_commit_keeps_order_and_commits_everything_on_close(tmp_path: Path) -> None:
    from device_agent.transport.committer import Committer

    commits = []
    with Outbox(tmp_path / "o.db", device_id="d") as box:
        committer = Committer(box, on_commit=lambda: commits.append(box.depth()), max_batch=50).start()
        for i in range(500):
            committer.put(TOPIC, {"i": i})
        committer.close()
        rows = box.pending(limit=1000)
        import json

        assert [json.loads(r.payload)["i"] for r in rows] == list(range(500))
        assert [r.seq for r in rows] == list(range(1, 501))
        assert 10 <= committer.batches < 500 and commits[-1] == 500  # batches of up to 50, one fsync each


def test_a_gap_lists_exactly_the_dropped_seqs_not_pinned_or_acked_ones_between_them(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", device_id="d", max_rows=3, gap_topic="t/events") as box:
        for _ in range(4):  # seq 1 overflows: gap event seq 5, pinned, waits between the rows
            box.add(TOPIC, {})
        (first,) = box.take_gaps()
        assert first.ranges == ((1, 1),)
        box.add(TOPIC, {})  # seq 6; seq 2 overflows, gap event 7
        assert [r.seq for r in box.pending()] == [3, 4, 5, 6, 7]
        box.add(TOPIC, {})  # seq 8; seq 3 overflows, gap event 9
        box.ack(6)  # delivered: not lost
        box.add(TOPIC, {})  # seq 10: 4, 8, 10 unpinned
        box.max_rows = 0
        gap = box.enforce_limits()
        assert gap is not None and gap.ranges == ((4, 4), (8, 8), (10, 10)) and gap.count == 3
        assert (gap.first_seq, gap.last_seq) == (4, 10)  # the old bounds, kept for compatibility
        assert gap.describe() == "4, 8, 10"
        waiting = {r.seq for r in box.pending()}
        assert waiting == {5, 7, 9, 11}  # the pinned gap events, none of them listed as lost
        events = {json.loads(r.payload)["seq"]: json.loads(r.payload) for r in box.pending()}
        assert events[11]["ranges"] == [[4, 4], [8, 8], [10, 10]] and events[11]["count"] == 3
        listed = {s for e in events.values() for a, b in e["ranges"] for s in range(a, b + 1)}
        assert listed == {1, 2, 3, 4, 8, 10}  # exactly the dropped seqs: not 5, 6, 7, 9 or 11
        assert all(e["count"] == sum(b - a + 1 for a, b in e["ranges"]) for e in events.values())


def test_gap_ranges_merge_a_run_and_split_at_every_acked_seq(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db", device_id="d", max_rows=100) as box:
        for _ in range(20):
            box.add(TOPIC, {})
        for seq in (5, 6, 12):
            box.ack(seq)
        box.max_rows = 2
        gap = box.enforce_limits()
        assert gap is not None and gap.ranges == ((1, 4), (7, 11), (13, 18)) and gap.count == 15
        assert gap.describe() == "1..4, 7..11, 13..18"


def test_command_requests_are_remembered_with_their_final_reply_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(path, device_id="d") as box:
        assert box.request_seen("r1", window_s=600) is None
        box.request_started("r1", "bench", window_s=600)
        seen = box.request_seen("r1", window_s=600)
        assert seen is not None and seen.reply is None and seen.command == "bench" and seen.boot == box.boot_id
        box.request_finished("r1", {"state": "done", "result": {"runs": 3}})
        box.request_finished("r1", {"state": "error"})  # a later "final" reply never overwrites the first
        first_boot = box.boot_id
    with Outbox(path, device_id="d") as box:  # a restart
        seen = box.request_seen("r1", window_s=600)
        assert seen is not None and seen.reply == {"state": "done", "result": {"runs": 3}} and seen.boot == first_boot
        assert box.request_seen("r1", window_s=0) is None  # outside the window: a new request
        box.request_finished("never-started", {"state": "done"})  # only accepted requests are recorded
        assert box.request_seen("never-started", window_s=600) is None
        time.sleep(0.05)
        box.request_started("r2", "bench", window_s=0.01)  # also forgets requests older than the window
        assert box.request_seen("r1", window_s=600) is None and box.request_seen("r2", window_s=600) is not None
        assert box.depth() == 0  # none of this is a message
