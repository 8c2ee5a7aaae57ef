"""``edgekit hub`` killed with SIGKILL mid-stream and restarted under the same client id: every seq stored exactly
once (issue 17). The hub runs as its own process, as in production; the devices keep publishing throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgekit.fleet.hub.store import store_from_url
from tests.support.hub_publisher import Publisher
from tests.support.mqtt_broker import Broker, wait_until
from tests.support.postgres import PostgresCluster, fresh_database, postgres_cluster  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
DEVICES = ["cam-01", "cam-02"]
SEQS = 2000  # per device: 4000 results


class HubProcess:
    """``python -m edgekit.cli.main hub ...`` with its log in a file."""

    def __init__(self, broker: Broker, db: str, log: Path) -> None:
        self.argv = [sys.executable, "-m", "edgekit.cli.main", "hub", "--broker", f"{broker.host}:{broker.port}",
                     "--db", db, "--http", "off", "--client-id", "crash-test", "--session-expiry", "10m",
                     "--log-level", "DEBUG"]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with self.log.open("a") as out:
            out.write(f"--- start {self.starts}\n")
            out.flush()
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=out, cwd=self.log.parent,
                                         env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert wait_until(lambda: self.text().count("subscribed at ") >= self.starts, 60), self.text()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.text()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return fresh_database(cluster, "hub_crash")


@pytest.fixture
def big_broker(tmp_path: Path) -> Iterator[Broker]:
    with Broker(tmp_path / "broker", max_queued_messages=100000) as b:
        yield b


def stored(db: str) -> Callable[[], int]:
    def count() -> int:
        with store_from_url(db) as store:
            return store.counters()["results_stored"]
    return count


def test_a_hub_killed_mid_stream_stores_every_seq_exactly_once(big_broker: Broker, db_url: str,
                                                               tmp_path: Path) -> None:
    total = len(DEVICES) * SEQS
    hub = HubProcess(big_broker, db_url, tmp_path / "hub.log")
    hub.start()
    publisher = Publisher(big_broker)
    stop = threading.Event()
    feeder = threading.Thread(target=publisher.results, args=(DEVICES, range(1, SEQS + 1)),
                              kwargs={"rate_per_s": 1000.0, "stop": stop}, daemon=True)
    started = time.monotonic()
    feeder.start()
    try:
        count = stored(db_url)
        for fraction in (0.2, 0.5):  # two crashes, each mid-stream, the publisher going on
            assert wait_until(lambda f=fraction: count() >= f * total, 60), hub.text()
            hub.kill()
            assert count() < total, "the stream ended before the kill: the test proves nothing"
            hub.start()
        feeder.join(60)
        assert not feeder.is_alive() and publisher.wait(60)
        assert wait_until(lambda: count() == total, 60), (count(), hub.text()[-3000:])
        elapsed = time.monotonic() - started
        assert hub.terminate() == 0, hub.text()
    finally:
        stop.set()
        publisher.close()
        if hub.proc is not None and hub.proc.poll() is None:
            hub.proc.kill()
    with store_from_url(db_url) as store:
        stats = store.stats()
        accounts = {a.device: a for a in store.seq_accounts()}
        rows = store.results(device="cam-01", limit=SEQS + 10)
    assert (stats.results_stored, stats.missing, stats.lost) == (total, 0, 0)
    assert {d: (a.received, a.missing) for d, a in accounts.items()} == dict.fromkeys(DEVICES, (SEQS, ()))
    assert sorted(r.seq for r in rows) == list(range(1, SEQS + 1))  # each seq once
    print(f"\n{db_url.split(':')[0]}: {total} results through 2 SIGKILLs in {elapsed:.1f} s, "
          f"{stats.duplicates_dropped} redelivered copies dropped")
    assert "hub stopped:" in hub.text()  # SIGTERM: committed, acknowledged, disconnected, closed
