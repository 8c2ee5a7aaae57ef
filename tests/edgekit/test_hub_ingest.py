"""The hub's ingest on a real Mosquitto: stored once, duplicates dropped, bad payloads rejected and acknowledged,
nothing acknowledged before it is committed, a persistent session across a hub outage, broker failover, HTTP."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from device_agent.protocol import Received
from edgekit.errors import StoreError
from edgekit.fleet.hub.ingest import IngestOptions
from edgekit.fleet.hub.observer import Observer, Publish, is_fresh
from edgekit.fleet.hub.service import Hub, HubOptions, device_subscriptions
from edgekit.fleet.hub.store import IngestReport, Store, store_from_url
from edgekit.fleet.hub.store.batch import Batch
from edgekit.fleet.hub.store.sqlite import SqliteStore
from edgekit.fleet.hub.web import create_app
from edgekit.fleet.session import Persistence
from tests.support import protocol_samples as samples
from tests.support.hub_publisher import Publisher, result_payload
from tests.support.mqtt_broker import Broker, free_port, wait_until


@pytest.fixture
def big_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker that queues enough for a hub that is away (Mosquitto's default keeps 1000 per client)."""
    with Broker(tmp_path / "broker", max_queued_messages=100000) as b:
        yield b


def make_hub(broker: Broker | str, store: Store, *, client_id: str = "hub-test", observers: Sequence[Observer] = (),
             http: bool = False) -> Hub:
    address = broker if isinstance(broker, str) else f"{broker.host}:{broker.port}"
    options = HubOptions(client_id=client_id, persistence=Persistence(session_expiry_s=600, receive_maximum=1000),
                         ingest=IngestOptions(batch_max=200, batch_wait_s=0.02),
                         http=("127.0.0.1", 0) if http else None)
    return Hub(broker=address, store=store, options=options, observers=observers,
               app_factory=create_app if http else None).start()


def test_the_hub_subscribes_to_every_devices_four_kinds() -> None:
    assert device_subscriptions() == ("edgekit/v1/+/status", "edgekit/v1/+/results", "edgekit/v1/+/events",
                                      "edgekit/v1/+/metrics")


def test_messages_are_stored_once_and_bad_payloads_rejected_without_a_crash(big_broker: Broker, tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    hub = make_hub(big_broker, store_from_url(tmp_path / "hub.db"))
    publisher = Publisher(big_broker)
    try:
        assert wait_until(lambda: hub.session.subscribed, 10)
        publisher.publish("edgekit/v1/cam-01/status", samples.status(device="cam-01"), retain=True)
        publisher.results(["cam-01", "cam-02"], range(1, 301))
        publisher.results(["cam-01"], range(1, 21))  # redelivered copies
        bad = [("edgekit/v1/cam-01/results", b"{not json"),
               ("edgekit/v1/cam-01/events", json.dumps({**samples.message("events", 400, kind="alert"),
                                                        "kind": "no-such-kind"}).encode()),
               ("edgekit/v1/cam-01/results", json.dumps({**samples.message("results", 401), "seq": "x"}).encode()),
               ("edgekit/v1/cam-03/results", result_payload("cam-04", 1))]  # device not the topic's
        for topic, payload in bad:
            publisher.publish(topic, payload)
        assert publisher.wait(30)
        assert wait_until(lambda: hub.stats().received == 1 + 620 + 4, 30), hub.stats()
        stats = hub.store.stats()
        assert (stats.results_stored, stats.duplicates_dropped, stats.missing) == (600, 20, 0)
        assert hub.stats().rejected == 4 and hub.stats().duplicates == 20
        device = hub.store.device("cam-01")
        assert device is not None and device.model is not None and device.model.name == "tiny"  # retained status
        assert "rejected a message from device cam-01 on edgekit/v1/cam-01/results: payload is not JSON" in caplog.text
        publisher.publish("edgekit/v1/cam-02/results", result_payload("cam-02", 301))  # still ingesting
        assert wait_until(lambda: hub.store.stats().results_stored == 601, 10)
    finally:
        publisher.close()
        hub.stop()


class Recorder(Observer):
    subscriptions = ("test/extra/#",)

    def __init__(self) -> None:
        self.fresh: list[tuple[str, int]] = []
        self.other: list[tuple[str, bytes]] = []
        self.connects = 0
        self.ticks = 0
        self.publish: Publish | None = None
        self.closed = False

    def start(self, publish: Publish) -> None:
        self.publish = publish

    def observe(self, messages: Sequence[Received], report: IngestReport) -> None:
        self.fresh += [(m.device, m.envelope.seq) for m in messages if m.envelope and is_fresh(m, report)]

    def on_message(self, topic: str, payload: bytes) -> None:
        self.other.append((topic, payload))

    def on_connect(self) -> None:
        self.connects += 1

    def tick(self, now: float) -> None:
        self.ticks += 1

    def close(self) -> None:
        self.closed = True


class Broken(Observer):
    def observe(self, messages: Sequence[Received], report: IngestReport) -> None:
        raise RuntimeError("an observer bug")

    def tick(self, now: float) -> None:
        raise RuntimeError("a tick bug")


def test_observers_see_each_fresh_message_once_and_a_broken_one_stops_nothing(
        big_broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    hub = make_hub(big_broker, store_from_url(tmp_path / "hub.db"), observers=[Broken(), recorder])
    publisher = Publisher(big_broker)
    try:
        assert wait_until(lambda: recorder.connects == 1, 10)
        publisher.results(["cam-01"], range(1, 51))
        publisher.results(["cam-01"], range(1, 11))
        publisher.publish("test/extra/ping", b"hello")
        assert publisher.wait(10)
        assert wait_until(lambda: hub.store.stats().results_stored == 50 and hub.stats().received == 60, 10)
        assert sorted(recorder.fresh) == [("cam-01", s) for s in range(1, 51)]  # the copies not told again
        assert wait_until(lambda: recorder.other == [("test/extra/ping", b"hello")], 5)
        assert wait_until(lambda: recorder.ticks >= 1, 5)
        assert recorder.publish is not None
        recorder.publish("test/extra/out", b"x", 1, False)
        assert "observer Broken failed in observe" in caplog.text and "RuntimeError: an observer bug" in caplog.text
    finally:
        publisher.close()
        hub.stop()
    assert recorder.closed


class FailingStore(SqliteStore):
    """The real SQLite store, failing every commit while ``down`` is set (a database outage)."""

    down = threading.Event()

    def _write(self, batch: Batch) -> IngestReport:
        if self.down.is_set():
            raise StoreError(f"cannot reach the store {self.url}: connection refused (test)")
        return super()._write(batch)


def test_nothing_is_acknowledged_while_the_store_fails_and_all_is_stored_when_it_is_back(
        big_broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = FailingStore(tmp_path / "hub.db")
    store.down.set()
    hub = make_hub(big_broker, store, client_id="hub-outage")
    publisher = Publisher(big_broker)
    try:
        assert wait_until(lambda: hub.session.subscribed, 10)
        publisher.results(["cam-01"], range(1, 101))
        assert publisher.wait(10)
        assert wait_until(lambda: hub.stats().store_failures >= 2, 10)
        assert hub.stats().unhappy is not None and "connection refused (test)" in hub.stats().unhappy
        assert "the store failed; " in caplog.text and "kept unacknowledged" in caplog.text
        hub.stop()  # stopping during the outage: nothing acknowledged, the broker keeps all 100
        store = FailingStore(tmp_path / "hub.db")
        store.down.clear()
        hub = make_hub(big_broker, store, client_id="hub-outage")
        assert wait_until(lambda: hub.store.stats().results_stored == 100, 20), hub.store.stats()
        assert hub.store.stats().missing == 0
    finally:
        FailingStore.down.clear()
        publisher.close()
        hub.stop()


def test_a_hub_that_was_away_gets_everything_published_meanwhile(big_broker: Broker, tmp_path: Path) -> None:
    hub = make_hub(big_broker, store_from_url(tmp_path / "hub.db"), client_id="hub-away")
    assert wait_until(lambda: hub.session.subscribed, 10)
    hub.stop()  # a clean stop: the session stays on the broker for session_expiry_s
    publisher = Publisher(big_broker)
    try:
        publisher.results(["cam-01", "cam-02"], range(1, 1501))  # 3000 messages, beyond Mosquitto's default 1000
        assert publisher.wait(30)
        hub = make_hub(big_broker, store_from_url(tmp_path / "hub.db"), client_id="hub-away")
        assert wait_until(lambda: hub.store.stats().results_stored == 3000, 60), hub.store.stats()
        assert hub.store.stats().missing == 0
    finally:
        publisher.close()
        hub.stop()


def test_brokers_are_tried_in_order_and_the_http_app_serves_the_stats(big_broker: Broker, tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    dead = f"127.0.0.1:{free_port()}"
    hub = make_hub(f"{dead},{big_broker.host}:{big_broker.port}", store_from_url(tmp_path / "hub.db"), http=True)
    publisher = Publisher(big_broker)
    try:
        assert wait_until(lambda: hub.session.subscribed, 15)
        assert hub.session.address == f"{big_broker.host}:{big_broker.port}"
        assert f"the broker at {dead} is unreachable (ConnectionRefusedError" in caplog.text
        publisher.results(["cam-01"], range(1, 6))
        assert publisher.wait(10)
        assert wait_until(lambda: hub.store.stats().results_stored == 5, 10)
        assert hub.http is not None
        with urllib.request.urlopen(f"http://{hub.http.address}/api/stats", timeout=10) as response:
            body = json.loads(response.read())
        assert body["results_stored"] == 5 and body["duplicates_dropped"] == 0 and body["missing"] == 0
    finally:
        publisher.close()
        hub.stop()
