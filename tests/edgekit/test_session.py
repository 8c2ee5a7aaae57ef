"""The fleet side's one MQTT session (edgekit.fleet.session): address parsing, errors, a round trip."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgekit.errors import EdgeKitError, RemoteError, UsageError
from edgekit.fleet.session import MqttSession, parse_broker
from tests.support.mqtt_broker import Broker, free_port, wait_until


@pytest.mark.parametrize("text", ["localhost", ":1883", "host:", "host:0", "host:65536", "host:x"])
def test_a_broker_address_without_a_usable_port_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match=r"expected HOST:PORT"):
        parse_broker(text)


def test_a_broker_address_is_split_at_the_last_colon() -> None:
    assert parse_broker("::1:1883") == ("::1", 1883)
    assert MqttSession("127.0.0.1:1883", topic="t", purpose="p").address == "127.0.0.1:1883"


@pytest.mark.parametrize("error", [EdgeKitError, RemoteError])
def test_an_unreachable_broker_raises_the_callers_error(error: type[EdgeKitError]) -> None:
    session = MqttSession(f"127.0.0.1:{free_port()}", topic="t", purpose="p", error=error)
    with pytest.raises(error, match=r"cannot reach the broker at 127\.0\.0\.1:\d+"):
        session.start()


def test_a_session_subscribes_on_connect_and_hands_over_plain_values(broker: Broker) -> None:
    got: list[tuple[str, bytes]] = []
    subscribed: list[list[str]] = []
    acked: list[tuple[int, bool, str]] = []
    arrived = threading.Event()

    def on_message(topic: str, payload: bytes) -> None:
        got.append((topic, payload))
        arrived.set()

    with MqttSession(f"{broker.host}:{broker.port}", topic="edgekit/v1/+/events", purpose="a test",
                     on_message=on_message, on_subscribed=subscribed.append,
                     on_published=lambda mid, failed, reason: acked.append((mid, failed, reason))) as session:
        assert wait_until(lambda: subscribed == [[]], 5)
        other = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        other.connect(broker.host, broker.port)
        other.loop_start()
        try:
            other.publish("edgekit/v1/cam-01/events", b'{"x": 1}', qos=1).wait_for_publish(5)
            other.publish("edgekit/v1/cam-01/results", b"not subscribed", qos=1).wait_for_publish(5)
        finally:
            other.disconnect()
            other.loop_stop()
        assert arrived.wait(5)
        info = session.publish("edgekit/v1/cam-01/cmd/none", b"{}")
        assert wait_until(lambda: any(mid == info.mid for mid, _, _ in acked), 5)
    assert got == [("edgekit/v1/cam-01/events", b'{"x": 1}')]
    assert all(not failed for _, failed, _ in acked)
