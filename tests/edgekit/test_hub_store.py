"""The hub's store contract: every test runs on SQLite and on a real PostgreSQL (tests/support/postgres.py).

Messages are real contract messages (tests/support/protocol_samples.py) parsed by
:func:`device_agent.protocol.parse`, exactly what the hub's ingest hands the store.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from device_agent.protocol import Received, parse
from edgekit.errors import EdgeKitError, StoreError, UsageError
from edgekit.fleet.hub.store import Alert, Retention, Store, parse_store_url, store_from_url
from edgekit.fleet.hub.store.accounting import merge, subtract
from tests.support import protocol_samples as samples
from tests.support.postgres import PostgresCluster, fresh_database, postgres_cluster  # noqa: F401  (fixture)

T0 = 1.7e9
DAY = 86400.0
_names = itertools.count()


def msg(topic: str, seq: int, *, device: str = "cam-01", boot: str = "boot-1", ts: float = T0,
        **fields: Any) -> Received:
    """A parsed message on ``topic`` (``results``, ``metrics``, ``events`` with the event's ``kind=``)."""
    payload = {**samples.message(topic, seq, device=device, **fields), "boot": boot, "ts": ts}
    return parse(f"edgekit/v1/{device}/{topic}", json.dumps(payload).encode())


def result(seq: int, **kw: Any) -> Received:
    return msg("results", seq, **kw)


def status(device: str = "cam-01", **fields: Any) -> Received:
    return parse(f"edgekit/v1/{device}/status", samples.status(device=device, **fields))


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """``open_store()`` opens the test's store (again, after a close: a reopen sees the same data)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hub.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        url = fresh_database(cluster, f"hub_{next(_names)}")
    opened: list[Store] = []

    def opener() -> Store:
        opened.append(store_from_url(url))
        return opened[-1]

    yield opener
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], Store]) -> Store:
    return open_store()


def test_results_are_stored_once_and_duplicates_counted(store: Store) -> None:
    first = store.ingest([result(s, ts=T0 + s) for s in (1, 2, 3)] + [result(2, ts=T0 + 2)])
    assert first.stored == {"results": 3, "events": 0, "metrics": 0} and first.duplicates == 1
    assert first.fresh == {("cam-01", 1), ("cam-01", 2), ("cam-01", 3)}
    again = store.ingest([result(3, ts=T0 + 3), result(4, ts=T0 + 4)])  # a redelivery across batches
    assert again.stored["results"] == 1 and again.duplicates == 1 and again.fresh == {("cam-01", 4)}
    rows = store.results(device="cam-01", limit=10)
    assert [r.seq for r in rows] == [4, 3, 2, 1]  # newest first, each seq once
    assert rows[0].model.name == "tiny" and rows[0].payload["result"]["classifications"][0]["label"] == "cat"
    stats = store.stats()
    assert (stats.results_stored, stats.duplicates_dropped, stats.missing) == (4, 2, 0)


def test_seq_is_the_dedup_key_across_kinds(store: Store) -> None:
    store.ingest([result(1), msg("metrics", 2), msg("events", 3, kind="alert")])
    report = store.ingest([msg("metrics", 1), result(2), result(3)])  # same seqs, other kinds: duplicates
    assert report.stored_total == 0 and report.duplicates == 3


def test_missing_and_lost_seqs_are_accounted_per_device_and_boot(store: Store) -> None:
    store.ingest([result(s, boot="boot-1") for s in (1, 2, 3)] + [result(s, boot="boot-2") for s in (9, 10)]
                 + [result(2, device="cam-02")])
    [cam1, cam2] = store.seq_accounts()
    assert cam1.missing == ((4, 8),) and cam1.lost == () and cam1.received == 5
    assert [(b.boot, b.first_seq, b.last_seq, b.received) for b in cam1.boots] == [("boot-1", 1, 3, 3),
                                                                                    ("boot-2", 9, 10, 2)]
    assert cam2.device == "cam-02" and cam2.missing == ()
    # the agent's outbox announces 5-6 lost (and seq 11 is the gap event itself)
    store.ingest([msg("events", 11, boot="boot-2", kind="gap", first_seq=5, last_seq=6, count=2,
                      ranges=[[5, 6]], reason="overflow")])
    [cam1] = store.seq_accounts("cam-01")
    assert cam1.lost == ((5, 6),) and cam1.missing == ((4, 4), (7, 8))
    assert (store.stats().missing, store.stats().lost) == (3, 2)
    store.ingest([result(4), result(7), result(8)])  # late deliveries fill the holes
    assert store.seq_accounts("cam-01")[0].missing == ()
    assert store.stats().missing == 0


def test_devices_carry_the_latest_status_metrics_and_model(store: Store) -> None:
    store.ingest([status(ts=T0 + 10)], received_at=T0 + 11)
    store.ingest([status(ts=T0 + 5, state="offline")], received_at=T0 + 12)  # an older retained status does not win
    store.ingest([msg("metrics", 1, fps=12.5), msg("metrics", 2, fps=14.0)], received_at=T0 + 20)
    [device] = store.devices()
    assert device.id == "cam-01" and device.online and device.agent == "0.1.0"
    assert device.model is not None and (device.model.name, device.model.version) == ("tiny", "1")
    assert device.status is not None and device.status["state"] == "online"
    assert device.metrics is not None and device.metrics["fps"] == 14.0
    assert device.last_seen == T0 + 20
    store.ingest([status(ts=T0 + 30, state="offline")])
    assert store.device("cam-01").online is False  # type: ignore[union-attr]
    assert store.device("nope") is None
    # a result from a newer model (after the last status) updates the device's model
    store.ingest([result(3, ts=T0 + 40, model={"name": "tiny", "version": "2", "precision": "int8"})])
    assert store.device("cam-01").model.version == "2"  # type: ignore[union-attr]


def test_queries_filter_by_device_kind_and_since(store: Store) -> None:
    store.ingest([result(1, ts=T0), result(2, ts=T0 + 60), result(1, device="cam-02", ts=T0 + 30),
                  msg("events", 3, kind="alert", ts=T0 + 61), msg("events", 4, kind="gap", first_seq=9,
                                                                 last_seq=9, ts=T0 + 62)])
    assert [r.seq for r in store.results(device="cam-01", since=T0 + 1)] == [2]
    assert [(r.device, r.seq) for r in store.results(limit=2)] == [("cam-01", 2), ("cam-02", 1)]
    assert [e.kind for e in store.events()] == ["gap", "alert"]
    assert [e.seq for e in store.events(kind="alert", device="cam-01", since=T0)] == [3]
    assert store.events(device="cam-02") == []
    assert store.results(device="cam-01")[0].ts == pytest.approx(T0 + 60)


def test_alerts_list_rule_alerts_and_the_hubs_own(store: Store) -> None:
    store.ingest([msg("events", 1, kind="alert", ts=T0 + 1)])
    store.ingest([msg("events", 1, kind="alert", ts=T0 + 1)])  # a duplicate raises nothing twice
    store.record_alert(Alert(device="cam-02", kind="drift", ts=T0 + 2, detail={"psi": 0.3}))
    alerts = store.alerts()
    assert [(a.device, a.kind, a.state) for a in alerts] == [("cam-02", "drift", "raised"),
                                                             ("cam-01", "rule", "raised")]
    assert alerts[0].detail == {"psi": 0.3} and alerts[1].detail["rule"] == "r" and alerts[1].seq == 1
    assert [a.kind for a in store.alerts(kind="rule")] == ["rule"]
    assert [a.device for a in store.alerts(device="cam-02", since=T0 + 2)] == ["cam-02"]


def test_a_reopened_store_keeps_everything(open_store: Callable[[], Store]) -> None:
    store = open_store()
    store.ingest([status(), result(1), result(3), msg("metrics", 4), msg("events", 5, kind="alert")])
    store.ingest([result(1)])
    before = (store.stats(), store.devices(), store.results(), store.events(), store.alerts(), store.seq_accounts())
    store.close()
    reopened = open_store()
    assert (reopened.stats(), reopened.devices(), reopened.results(), reopened.events(), reopened.alerts(),
            reopened.seq_accounts()) == before
    assert reopened.ingest([result(3)]).duplicates == 1  # dedup survives the restart


def test_retention_deletes_in_small_steps_and_keeps_the_totals(store: Store) -> None:
    now = T0 + 10 * DAY
    old = [result(s, ts=T0 + s) for s in range(1, 8)]  # ten days old
    recent = [result(s, ts=now - 60 + s) for s in range(8, 11)]
    store.ingest(old + recent + [msg("metrics", 11, ts=T0), msg("events", 12, kind="alert", ts=T0)])
    retention = Retention(keep_results=timedelta(days=2), keep_alerts=timedelta(days=1))
    steps = []
    while True:
        report = store.enforce_retention(retention, now=now, batch_rows=3)
        steps.append(report)
        if not report.more:
            break
    assert [r.seq for r in store.results(limit=100)] == [10, 9, 8]
    assert len(store.metrics()) == 1 and len(store.events()) == 1  # kept for ever by default
    assert store.alerts() == []
    assert store.stats().results_stored == 10  # a total, not a count of rows kept
    assert sum(r.deleted.get("results", 0) for r in steps) + sum(r.partitions_dropped for r in steps) >= 1
    assert store.ingest([result(1, ts=T0 + 1)]).duplicates == 1  # seqs outlive their rows: still deduplicated


def test_postgres_results_are_partitioned_by_day_and_retention_drops_days(
        postgres_cluster: PostgresCluster) -> None:  # noqa: F811  (the fixture)
    import psycopg

    url = fresh_database(postgres_cluster, f"hub_{next(_names)}")
    with store_from_url(url) as store, psycopg.connect(url) as connection:
        store.ingest([result(s, ts=T0 + s * DAY) for s in range(1, 5)])

        def partitions() -> int:
            row = connection.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'results'::regclass")
            return int(row.fetchone()[0])  # type: ignore[index]

        assert partitions() == 4
        report = store.enforce_retention(Retention(keep_results=timedelta(days=1)), now=T0 + 4.5 * DAY)
        assert report.partitions_dropped >= 2 and partitions() <= 2
        assert [r.seq for r in store.results()] == [4]


def test_a_writer_and_a_reader_run_at_once(store: Store) -> None:
    failures: list[BaseException] = []
    done = threading.Event()

    def write() -> None:
        try:
            for start in range(1, 400, 20):
                store.ingest([result(s, ts=T0 + s) for s in range(start, start + 20)])
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)
        finally:
            done.set()

    def read() -> None:
        seen = 0
        try:
            while not done.is_set():
                count = store.stats().results_stored
                assert count >= seen, "the reader saw the total go down"
                seen = count
                store.results(limit=5)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert store.stats().results_stored == 400 and store.stats().missing == 0


@pytest.mark.parametrize(("url", "backend", "target"), [
    ("sqlite:///hub.db", "sqlite", "hub.db"), ("sqlite:////var/lib/hub.db", "sqlite", "/var/lib/hub.db"),
    ("data/hub.db", "sqlite", "data/hub.db"), ("postgresql://u:pw@db:5432/hub", "postgresql", "postgresql://u:pw@db:5432/hub"),
    ("postgres://db/hub", "postgresql", "postgresql://db/hub"),
])
def test_store_urls(url: str, backend: str, target: str) -> None:
    parsed = parse_store_url(url)
    assert (parsed.backend, parsed.target) == (backend, target)
    assert "pw" not in parsed.shown


@pytest.mark.parametrize("url", ["mysql://db/hub", "", "sqlite://", "sqlite:///:memory:", "postgresql:///hub"])
def test_a_bad_store_url_is_a_usage_error_naming_it(url: str) -> None:
    with pytest.raises(UsageError, match="store URL") as caught:
        parse_store_url(url)
    assert repr(url.strip()) in str(caught.value) and caught.value.exit_code == 2


def test_an_unreachable_postgres_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError, match=r"postgresql://u:\*\*\*@127.0.0.1:1/hub") as caught:
        store_from_url("postgresql://u:secret@127.0.0.1:1/hub")
    assert "secret" not in str(caught.value) and isinstance(caught.value, EdgeKitError)


def test_a_store_from_a_newer_hub_is_refused(tmp_path: Path) -> None:
    import sqlite3

    with store_from_url(tmp_path / "hub.db"):
        pass
    with sqlite3.connect(tmp_path / "hub.db") as db:
        db.execute("INSERT INTO schema_version (version) VALUES (99)")
    with pytest.raises(StoreError, match="version 99, newer"):
        store_from_url(tmp_path / "hub.db")


def test_seq_runs_merge_and_subtract() -> None:
    assert merge([(5, 6), (1, 3), (4, 4), (9, 9)]) == ((1, 6), (9, 9))
    assert subtract([(1, 10)], [(3, 4), (6, 6), (10, 12)]) == ((1, 2), (5, 5), (7, 9))
    assert subtract([(1, 3)], []) == ((1, 3),)


def test_seq_accounting_follows_out_of_order_batches(store: Store) -> None:
    store.ingest([result(s) for s in (9, 5, 1)])
    store.ingest([result(3), result(12, boot="boot-2")])
    [account] = store.seq_accounts()
    assert account.missing == ((2, 2), (4, 4), (6, 8), (10, 11)) and account.received == 5
    store.ingest([result(s) for s in (2, 4, 6, 7, 8)] + [result(11, boot="boot-2"), result(10, boot="boot-2")])
    [account] = store.seq_accounts()
    assert account.missing == () and account.received == 12
    assert [(b.boot, b.first_seq, b.last_seq, b.received) for b in account.boots] == [("boot-1", 1, 9, 9),
                                                                                      ("boot-2", 10, 12, 3)]


def test_an_older_store_gets_its_seq_summary_from_the_seqs_it_holds(tmp_path: Path) -> None:
    import sqlite3

    from edgekit.fleet.hub.store import sqlite_schema

    with sqlite3.connect(tmp_path / "hub.db") as db:  # a version-1 file, as the first hub wrote it
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for statement in sqlite_schema.MIGRATIONS[0]:
            db.execute(statement)
        db.execute("INSERT INTO schema_version (version) VALUES (1)")
        db.executemany("INSERT INTO seqs (device, seq, boot, kind, ts) VALUES (?, ?, 'b', 'results', ?)",
                       [("cam-01", s, T0 + s) for s in (1, 2, 3, 7, 8)] + [("cam-02", 4, T0)])
    with store_from_url(tmp_path / "hub.db") as store:
        [cam1, cam2] = store.seq_accounts()
        assert cam1.missing == ((4, 6),) and cam1.received == 5 and cam2.received == 1
        store.ingest([result(s, boot="b") for s in (4, 5, 6)])
        assert store.seq_accounts("cam-01")[0].missing == ()
