"""Connection trouble is visible: refusals, TLS mistakes, half-open links, a full command queue.

Real Mosquitto 2.0 brokers, each set up to fail one way: an ACL that forbids the device's
results (PUBACK 0x87), the dynamic-security plugin forbidding its subscription (SUBACK
0x87), TLS with the wrong CA or none, SIGSTOP (a half-open link). Each test checks the
three ways trouble must show: one WARNING with the cause in words, the ``mqtt`` block of
:meth:`Publisher.stats` (the metrics heartbeat), and an ``mqtt`` event once the link allows.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from device_agent.transport.outbox import Outbox
from device_agent.transport.publisher import MAX_PENDING_COMMANDS, MqttSettings, Publisher, paho_keepalive_s
from tests.support.mqtt_broker import (  # noqa: F401  (fixtures)
    Broker,
    Collector,
    broker,
    broker_factory,
    make_certificates,
    wait_until,
)

DEVICE = "cam-01"
ROOT = f"edgekit/v1/{DEVICE}"


@pytest.fixture
def make_publisher(tmp_path: Path) -> Iterator[Callable[..., Publisher]]:
    """A Publisher whose events and busy replies go into its own outbox, as the agent's committer does."""
    made: list[Publisher] = []

    def make(b: Broker, **settings: Any) -> Publisher:
        box = Outbox(tmp_path / f"outbox{len(made)}.db", device_id=DEVICE)
        told: list[tuple[str, dict[str, Any]]] = []

        def on_event(suffix: str, body: dict[str, Any]) -> None:
            told.append((suffix, body))
            box.add(f"{ROOT}/{suffix}", body)
            pub.notify()

        s = MqttSettings(host=b.host, port=b.port, client_id=f"{DEVICE}-{len(made)}", **settings)
        pub = Publisher(s, box, device_id=DEVICE, status_body={}, max_inflight=20, on_event=on_event)
        pub.told = told  # type: ignore[attr-defined]
        made.append(pub)
        return pub

    yield make
    for pub in made:
        pub.stop(timeout=2)
        pub.outbox.close()


class JsonCollector(Collector):
    """Skips what is not JSON: the raw commands sent on purpose."""

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            json.loads(msg.payload)
        except ValueError:
            return
        super()._on_message(client, userdata, msg)


def warnings_matching(caplog: pytest.LogCaptureFixture, pattern: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and re.search(pattern, r.getMessage())]


def test_a_refused_publish_is_kept_retried_with_backoff_and_raised_once(
    broker_factory, make_publisher, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    # The device may write its status and events but not its results; a watcher may read everything.
    acl = (f"user cam\ntopic write {ROOT}/status\ntopic write {ROOT}/events\ntopic read {ROOT}/cmd/#\n"
           "user watcher\ntopic read edgekit/#\n")
    b = broker_factory(users={"cam": "pw", "watcher": "pw"}, acl=acl, debug_log=True)
    watcher = Collector(b, client_id="watcher", username="watcher", password="pw")
    pub = make_publisher(b, username="cam", password="pw")
    caplog.set_level(logging.INFO, logger="edgekit.agent")
    pub.start()
    assert pub.wait_connected(10), pub.last_error
    refused = pub.outbox.add(f"{ROOT}/results", {"frame": 1})
    pub.notify()
    started = time.monotonic()

    def denied() -> int:
        return len(re.findall(rf"Denied PUBLISH from {DEVICE}-0 .*'{ROOT}/results'", b.log.read_text()))

    assert watcher.wait_for(lambda c: any(e.get("state") == "publish-refused" for e in c.received("/events")), 10)
    (alarm,) = [e for e in watcher.received("/events") if e.get("kind") == "mqtt"]
    assert alarm["topic"] == f"{ROOT}/results" and alarm["code"] == 0x87 and alarm["reason"] == "Not authorized"
    assert alarm["refused_seq"] == refused and alarm["seq"] != refused
    time.sleep(max(0.0, 10.0 - (time.monotonic() - started)))
    attempts = denied()
    # 2 s doubling: sent at 0, 2, 6 s (then 14 s); every 2 s, as before, would be 5-6 in 10 s
    assert 2 <= attempts <= 4, f"{attempts} attempts in 10 s"
    assert [r.seq for r in pub.outbox.pending()] == [refused]  # kept; the alarm itself was delivered
    assert len(warnings_matching(caplog, r"refused publish to .*/results: Not authorized \(0x87\)")) == 1
    stats = pub.stats()
    assert stats["connected"] and stats["refused"] == {f"publish {ROOT}/results": "Not authorized (0x87)"}
    assert "Not authorized" in stats["last_error"] and f"seq {refused}" in (pub.last_error or "")
    print(f"refused row: {attempts} publish attempts in {time.monotonic() - started:.1f} s")
    watcher.close()


def test_a_refused_subscription_is_logged_and_raised(broker_factory, make_publisher,  # noqa: F811
                                                     caplog: pytest.LogCaptureFixture) -> None:
    b = broker_factory(dynsec={"users": {"cam": "pw"}, "default": {"subscribe": False}})
    pub = make_publisher(b, username="cam", password="pw")
    pub.start()
    assert pub.wait_connected(10), pub.last_error
    assert wait_until(lambda: any(body.get("state") == "subscribe-refused" for _, body in pub.told), 5), pub.told
    (event,) = [body for _, body in pub.told if body.get("kind") == "mqtt"]
    assert event["topic"] == f"{ROOT}/cmd/+" and event["code"] == 0x87
    assert warnings_matching(caplog, r"refused subscribe to .*/cmd/\+: Not authorized \(0x87\); "
                                     r"this device receives no commands")
    assert wait_until(lambda: pub.outbox.depth() == 0, 5)  # the event was published (publishing is allowed)


def test_tls_with_the_wrong_ca_is_a_named_error_logged_once(broker_factory, make_publisher, tmp_path: Path,  # noqa: F811
                                                            caplog: pytest.LogCaptureFixture) -> None:
    b = broker_factory(tls=True)
    other_ca = make_certificates(tmp_path / "other")["ca.crt"]
    pub = make_publisher(b, tls_ca=str(other_ca))
    pub.start()
    assert not pub.wait_connected(3.5)  # paho retries after 1 s, 2 s: three attempts
    assert pub.link.connect_failures >= 2
    (line,) = warnings_matching(caplog, "TLS certificate verification failed")  # once, not once per retry
    assert str(other_ca) in line and "CA" in line and "self-signed certificate" in line
    assert pub.last_error is not None and "TLS certificate verification failed" in pub.last_error
    assert pub.stats()["last_error"].startswith("TLS certificate verification failed")


def test_plaintext_to_a_tls_port_is_a_named_error(broker_factory, make_publisher,  # noqa: F811
                                                  caplog: pytest.LogCaptureFixture) -> None:
    b = broker_factory(tls=True)
    pub = make_publisher(b)
    pub.start()
    assert not pub.wait_connected(2.5)
    (line,) = warnings_matching(caplog, "closed the connection before answering CONNECT")
    assert f"if port {b.port} is a TLS listener, set mqtt.tls.ca" in line
    assert pub.stats()["state"] == "connecting" and not pub.stats()["connected"]


def test_a_half_open_link_is_noticed_within_one_and_a_half_keepalives(broker_factory, make_publisher,  # noqa: F811
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    keepalive_s = 5  # the least the agent config allows
    assert paho_keepalive_s(keepalive_s) == 2
    caplog.set_level(logging.INFO, logger="edgekit.agent")
    b = broker_factory()
    watcher = Collector(b, client_id="half-open-watcher", persistent=True)  # the broker keeps what it misses
    pub = make_publisher(b, keepalive=keepalive_s)
    pub.start()
    assert pub.wait_connected(10)
    b.freeze()  # TCP stays up (the kernel answers), MQTT does not: half-open
    frozen = time.monotonic()
    try:
        assert wait_until(lambda: not pub.connected, 1.5 * keepalive_s + 1)
        detected_s = time.monotonic() - frozen
    finally:
        b.thaw()
    print(f"half-open link noticed after {detected_s:.2f} s (keepalive {keepalive_s} s)")
    assert detected_s <= 1.5 * keepalive_s
    assert warnings_matching(caplog, r"lost: half-open connection: no answer to the keepalive ping")
    assert pub.wait_connected(15)
    assert watcher.wait_for(lambda c: any(e.get("state") == "restored" for e in c.received("/events")), 15)
    # Delivery is at least once: the watcher's own session can ride out the freeze and get the event
    # again, so it dedups by (device, seq) as the README tells every consumer to; one event remains.
    mqtt_events = {e["seq"]: e for e in watcher.received("/events") if e.get("kind") == "mqtt"}
    (event,) = mqtt_events.values()
    assert event["cause"].startswith("half-open connection") and event["was"] == "down"
    assert 0 < event["duration_s"] < 30 and event["since"] < time.time()
    stats = pub.stats()
    assert stats["connected"] and stats["reconnects"] == 1 and stats["disconnects"] == 1
    assert stats["last_error"].startswith("half-open connection")
    assert [r for r in caplog.records if r.levelno == logging.INFO
            and re.search(r"is back after [\d.]+ s down \(cause: half-open", r.getMessage())]
    watcher.close()


def test_a_full_command_queue_answers_busy_from_the_sender_thread(broker: Broker, make_publisher) -> None:  # noqa: F811
    pub = make_publisher(broker)
    pub.start()
    assert pub.wait_connected(10)
    watcher = JsonCollector(broker, client_id="busy-watcher")
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:  # nobody drains pub.commands: the agent is "busy"
        for i in range(MAX_PENDING_COMMANDS + 8):
            client.publish(f"{ROOT}/cmd/bench", json.dumps({"v": 1, "request_id": f"flood-{i}"}),
                           qos=1).wait_for_publish(5)
        client.publish(f"{ROOT}/cmd/bench", b"\xff no id", qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()
    busy_ids = {f"flood-{i}" for i in range(MAX_PENDING_COMMANDS, MAX_PENDING_COMMANDS + 8)}

    def replied(c: Collector) -> set[str]:
        return {b["request_id"] for t, b, _ in c.messages if "/reply/" in t and b.get("state") == "busy"}

    assert watcher.wait_for(lambda c: replied(c) == busy_ids and len(c.received("/events")) == 9, 10), replied(watcher)
    reply = next(b for t, b, _ in watcher.messages if t.endswith(f"/reply/flood-{MAX_PENDING_COMMANDS}"))
    assert reply["command"] == "bench" and "32 commands are already waiting" in reply["reason"]
    assert isinstance(reply["seq"], int)  # through the outbox, like every device message
    events = watcher.received("/events")
    assert all(e["kind"] == "command" and e["state"] == "busy" for e in events)
    assert [e["request_id"] for e in events].count(None) == 1  # the payload without an id: an event only
    assert pub.commands.qsize() == MAX_PENDING_COMMANDS and pub.stats()["commands_busy"] == 9
    watcher.close()
