"""The MQTT publisher against a real Mosquitto broker: order, crash of the broker, auth, TLS, will."""

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

from device_agent.errors import AgentError, PublisherAuthError
from device_agent.transport.outbox import Outbox
from device_agent.transport.publisher import MqttSettings, Publisher
from tests.support.mqtt_broker import Broker, Collector, broker, broker_factory, wait_until  # noqa: F401  (fixtures)

DEVICE = "cam-01"
RESULTS = f"edgekit/v1/{DEVICE}/results"
STATUS = {"agent_version": "0.1.0", "model": "tiny"}


@pytest.fixture
def make_publisher(tmp_path: Path) -> Iterator[Callable[..., Publisher]]:
    made: list[Publisher] = []

    def make(b: Broker, **settings: object) -> Publisher:
        box = Outbox(tmp_path / f"outbox{len(made)}.db", device_id=DEVICE)
        s = MqttSettings(host=b.host, port=b.port, client_id=f"{DEVICE}-{len(made)}", **settings)  # type: ignore[arg-type]
        pub = Publisher(s, box, device_id=DEVICE, status_body=STATUS, max_inflight=20)
        made.append(pub)
        return pub

    yield make
    for pub in made:
        pub.stop(timeout=2)
        pub.outbox.close()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_200_messages_arrive_in_order_and_outbox_drains(broker: Broker, make_publisher, protocol: str) -> None:  # noqa: F811
    collector = Collector(broker)
    pub = make_publisher(broker, protocol=protocol)
    pub.start()
    assert pub.wait_connected(10), pub.last_error
    for i in range(200):
        pub.outbox.add(RESULTS, {"frame": i})
        pub.notify()
    assert collector.wait_for(lambda c: len(c.seqs("/results")) == 200, 15), len(collector.seqs("/results"))
    bodies = collector.received("/results")
    assert [b["seq"] for b in bodies] == list(range(1, 201))  # one connection: in order, no duplicates
    assert [b["frame"] for b in bodies] == list(range(200))
    assert wait_until(lambda: pub.outbox.depth() == 0, 5)
    online = collector.received("/status")
    assert online and online[-1]["state"] == "online" and online[-1]["model"] == "tiny"
    collector.close()


def test_broker_crash_mid_stream_loses_nothing(broker_factory, make_publisher) -> None:  # noqa: F811
    b = broker_factory(persistence=True)
    # A persistent session on a persistent broker: what is published while the collector is
    # still reconnecting after the restart is queued for it, so only the publisher is tested.
    collector = Collector(b, client_id="crash-collector", persistent=True)
    assert wait_until(lambda: (b.workdir / "mosquitto.db").exists(), 5), "broker never saved its session state"
    pub = make_publisher(b)
    pub.start()
    assert pub.wait_connected(10), pub.last_error
    total, added = 300, []

    def produce() -> None:
        for i in range(total):
            added.append(pub.outbox.add(RESULTS, {"frame": i}))
            pub.notify()
            time.sleep(0.04)

    producer = threading.Thread(target=produce)
    producer.start()
    assert wait_until(lambda: len(collector.seqs("/results")) >= 40, 10)
    b.freeze()  # rows go out to a broker that never acknowledges them ...
    sent_before = len(collector.seqs("/results"))
    time.sleep(1.0)
    assert wait_until(lambda: pub.outbox.depth() >= 20, 10)  # a loaded machine may add fewer than 25 rows a second
    assert pub.outbox.depth() >= 20  # ... so they stay in the outbox
    b.stop()  # ... and the SIGKILL loses them on the broker side
    killed_at = time.monotonic()
    assert wait_until(lambda: not pub.connected, 5)
    time.sleep(max(0.0, 10.5 - (time.monotonic() - killed_at)))
    assert pub.outbox.depth() > 0  # the adds went on while the broker was away
    b.start()
    producer.join(30)
    assert len(added) == total and sent_before < total
    assert collector.wait_for(lambda c: len(c.seqs("/results")) == total, 45), (
        f"missing seqs: {sorted(set(added) - set(collector.seqs('/results')))[:20]}, last_error={pub.last_error}"
    )
    assert collector.seqs("/results") == added == list(range(1, total + 1))
    assert wait_until(lambda: pub.outbox.depth() == 0, 10)
    collector.close()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_wrong_password_fails_fast_and_names_the_user(broker_factory, make_publisher, protocol: str) -> None:  # noqa: F811
    b = broker_factory(users={"edge-device": "right"})
    pub = make_publisher(b, username="edge-device", password="wrong", protocol=protocol)
    pub.start()
    started = time.monotonic()
    with pytest.raises(PublisherAuthError, match=r"edge-device") as info:
        pub.wait_connected(10)
    assert time.monotonic() - started < 10
    assert isinstance(info.value, AgentError)
    assert f"127.0.0.1:{b.port}" in str(info.value) and pub.last_error == str(info.value)
    assert wait_until(lambda: b.log.read_text().count("not authorised") >= 1, 5)  # the broker logs after it answers
    refusals = b.log.read_text().count("not authorised")
    time.sleep(2.5)  # stopped reconnecting: the broker sees no further attempt
    assert b.log.read_text().count("not authorised") == refusals


@pytest.mark.parametrize("use_tool", [True, False], ids=["mosquitto_passwd", "python-pbkdf2"])
def test_right_password_connects(tmp_path: Path, make_publisher, use_tool: bool) -> None:
    with Broker(tmp_path / "b", users={"edge-device": "right"}, use_mosquitto_passwd=use_tool) as b:
        pub = make_publisher(b, username="edge-device", password="right")
        pub.start()
        assert pub.wait_connected(10), pub.last_error
        pub.stop(timeout=2)  # before the broker goes: a link lost after the test would log into a closed stream


def test_tls_broker_with_generated_ca(broker_factory, make_publisher) -> None:  # noqa: F811
    b = broker_factory(tls=True)
    assert b.certs is not None
    ca = str(b.certs["ca.crt"])
    collector = Collector(b, tls_ca=ca)
    pub = make_publisher(b, tls_ca=ca)
    pub.start()
    assert pub.wait_connected(10), pub.last_error
    for i in range(20):
        pub.outbox.add(RESULTS, {"frame": i})
    pub.notify()
    assert collector.wait_for(lambda c: c.seqs("/results") == list(range(1, 21)), 10)
    collector.close()


def test_stop_leaves_retained_offline_status(broker: Broker, make_publisher) -> None:  # noqa: F811
    pub = make_publisher(broker)
    pub.start()
    assert pub.wait_connected(10)
    pub.stop()
    assert not pub.connected
    late = Collector(broker, client_id="late")  # subscribes after the fact: sees only the retained one
    assert late.wait_for(lambda c: bool(c.received("/status")), 5)
    _topic, body, retained = next(m for m in late.messages if m[0].endswith("/status"))
    assert retained and body["state"] == "offline" and body["device"] == DEVICE and body["model"] == "tiny"
    late.close()


_CHILD = """
import sys
from pathlib import Path
from device_agent.transport.outbox import Outbox
from device_agent.transport.publisher import MqttSettings, Publisher
box = Outbox(Path(sys.argv[3]), device_id="cam-01")
pub = Publisher(MqttSettings(host="127.0.0.1", port=int(sys.argv[1]), client_id=sys.argv[2], keepalive=5),
                box, device_id="cam-01", status_body={"model": "tiny"})
pub.start()
print("connected" if pub.wait_connected(10) else pub.last_error, flush=True)
input()
"""


def test_last_will_when_publisher_process_is_killed(broker: Broker, tmp_path: Path) -> None:  # noqa: F811
    collector = Collector(broker)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(broker.port), "will-test", str(tmp_path / "child.db")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "connected"
        assert collector.wait_for(lambda c: [b["state"] for b in c.received("/status")] == ["online"], 5)
        os.kill(child.pid, signal.SIGKILL)
        assert collector.wait_for(lambda c: [b["state"] for b in c.received("/status")] == ["online", "offline"], 10)
        assert collector.received("/status")[-1]["device"] == DEVICE
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(5)
        collector.close()


def test_refused_publish_stays_queued(broker_factory, make_publisher) -> None:  # noqa: F811
    # MQTT 5: mosquitto answers a publish the ACL forbids with PUBACK "Not authorized" (0x87).
    b = broker_factory(acl="topic readwrite edgekit/v1/+/results\ntopic readwrite edgekit/v1/+/status\n")
    collector = Collector(b)
    pub = make_publisher(b)
    pub.start()
    assert pub.wait_connected(10)
    refused = pub.outbox.add(f"edgekit/v1/{DEVICE}/forbidden", {"x": 1})
    pub.outbox.add(RESULTS, {"x": 2})
    pub.notify()
    assert collector.wait_for(lambda c: c.seqs("/results") == [refused + 1], 5)
    assert wait_until(lambda: pub.last_error is not None and f"seq {refused}" in pub.last_error, 5), pub.last_error
    # seq 2 reaching the collector does not mean its PUBACK was handled yet: wait for the row itself
    assert wait_until(lambda: [r.seq for r in pub.outbox.pending()] == [refused], 5), \
        [r.seq for r in pub.outbox.pending()]
    assert [r.seq for r in pub.outbox.pending()] == [refused]
    collector.close()
