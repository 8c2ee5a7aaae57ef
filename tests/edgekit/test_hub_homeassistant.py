"""Home Assistant MQTT discovery through a real Mosquitto: configs retained, valid JSON, stable names and
unique_ids, one per rule, re-published on HA's birth message; and their templates rendered (Jinja) on a real
metrics payload, as HA renders them."""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from device_agent.protocol import Received, parse
from edgekit.errors import UsageError
from edgekit.fleet.hub.homeassistant import (
    HomeAssistant,
    homeassistant_args,
    homeassistant_from_args,
    node_id,
)
from edgekit.fleet.hub.store import IngestReport
from tests.support import protocol_samples as samples
from tests.support.mqtt_broker import Broker, wait_until


class Client:
    """A paho client (MQTT 5) recording ``(topic, payload, retained)`` of every message on ``topic``."""

    def __init__(self, broker: Broker, client_id: str, topic: str | None = None) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        if topic is not None:
            self.client.subscribe(topic, qos=1)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def received(self) -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return list(self.messages)

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        self.client.publish(topic, payload, qos, retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def hub_client(broker: Broker) -> Iterator[Client]:
    client = Client(broker, "hub")
    yield client
    client.close()


def _fresh(*messages: Received) -> IngestReport:
    fresh = frozenset((m.envelope.device, m.envelope.seq) for m in messages if m.envelope is not None)
    return IngestReport(stored={}, duplicates=0, fresh=fresh)


def _status(device: str = "cam-01") -> Received:
    return parse(f"edgekit/v1/{device}/status", samples.status(device=device))


def _rule(device: str, rule: str, seq: int) -> Received:
    payload = samples.message("events", seq, device=device, kind="alert", rule=rule)
    return parse(f"edgekit/v1/{device}/events", json.dumps(payload).encode())


def _configs(messages: list[tuple[str, bytes, bool]]) -> dict[str, dict[str, Any]]:
    return {topic: json.loads(payload) for topic, payload, _ in messages if topic.endswith("/config")}


def test_discovery_configs_are_retained_valid_and_stable(broker: Broker, hub_client: Client) -> None:
    ha = HomeAssistant()
    ha.start(hub_client.publish)
    messages = [_status("cam-01"), _status("cam.02"), _rule("cam-01", "person", 1)]
    ha.observe(messages, _fresh(*messages))
    ha.observe(messages, _fresh())  # statuses again (a retained replay): nothing changed, nothing re-sent

    late = Client(broker, "home-assistant", "homeassistant/#")  # subscribes after: sees only what is retained
    try:
        assert wait_until(lambda: len(late.received()) >= 17, 10), late.received()
        assert all(retained for _, _, retained in late.received())
        configs = _configs(late.received())
    finally:
        late.close()
    cam1 = {t: c for t, c in configs.items() if "/edgekit_cam-01/" in t}
    assert set(cam1) == {f"homeassistant/sensor/edgekit_cam-01/{o}/config"
                         for o in ("fps", "latency_p50", "outbox_depth", "drift_state")} | {
        f"homeassistant/binary_sensor/edgekit_cam-01/{o}/config"
        for o in ("alert_offline", "alert_fps", "alert_backlog", "alert_drift", "rule_person")}
    fps = cam1["homeassistant/sensor/edgekit_cam-01/fps/config"]
    assert fps["unique_id"] == "edgekit_cam-01_fps" and fps["state_topic"] == "edgekit/v1/cam-01/metrics"
    assert fps["device"] == {"identifiers": ["edgekit_cam-01"], "name": "cam-01", "manufacturer": "EdgeKit",
                             "model": "tiny 1 (fp32)", "sw_version": "0.1.0"}
    assert fps["availability"] == [{"topic": "edgekit/v1/cam-01/status", "value_template": "{{ value_json.state }}",
                                    "payload_available": "online", "payload_not_available": "offline"}]
    offline = cam1["homeassistant/binary_sensor/edgekit_cam-01/alert_offline/config"]
    assert offline["state_topic"] == "edgekit/v1/_hub/alerts/cam-01/offline" and offline["device_class"] == "problem"
    assert "availability" not in offline  # readable while the device is down
    assert cam1["homeassistant/binary_sensor/edgekit_cam-01/rule_person/config"]["state_topic"].endswith("cam-01/rule")
    assert node_id("cam.02") != node_id("cam_02") and node_id("cam.02").startswith("edgekit_cam_02_")
    unique = [c["unique_id"] for c in configs.values()]
    assert len(unique) == len(set(unique))
    assert HomeAssistant().configs("cam-01").keys() <= set(configs)  # the same names from a fresh hub


def test_configs_are_published_again_on_home_assistants_birth_message(broker: Broker, hub_client: Client) -> None:
    ha = HomeAssistant("ha")
    ha.start(hub_client.publish)
    ha.observe([_status()], _fresh())
    assert ha.subscriptions == ("ha/status",)
    watcher = Client(broker, "watcher", "ha/#")
    home_assistant = Client(broker, "home-assistant")
    forward = Client(broker, "hub-in", "ha/status")  # the hub's session hands its subscriptions to on_message
    forward.client.on_message = lambda _c, _u, msg: ha.on_message(msg.topic, msg.payload)
    try:
        assert wait_until(lambda: len(watcher.received()) == 8, 10)
        home_assistant.publish("ha/status", b"offline", 1, False)
        home_assistant.publish("ha/status", b"online", 1, False)
        assert wait_until(lambda: len([m for m in watcher.received() if not m[2] and m[0].endswith("/config")]) == 8,
                          10), watcher.received()
        again = _configs([m for m in watcher.received() if not m[2]])
        assert again == _configs([m for m in watcher.received() if m[2]])  # the same configs, sent live
    finally:
        for client in (watcher, home_assistant, forward):
            client.close()


def test_the_templates_render_on_a_real_metrics_payload() -> None:
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment()
    configs = HomeAssistant().configs("cam-01")
    metrics = samples.message("metrics", 1)
    drifting = {**metrics, "drift": {"brightness": {"counts": [1], "score": 0.3, "state": "alert"},
                                     "blur": {"counts": [1], "score": 0.0, "state": "ok"}}}

    def render(obj: str, value: dict[str, Any], component: str = "sensor") -> str:
        template = configs[f"homeassistant/{component}/edgekit_cam-01/{obj}/config"]["value_template"]
        return env.from_string(template).render(value_json=value).strip()

    assert render("fps", metrics) == "10.0" and render("latency_p50", metrics) == "1.0"
    assert render("latency_p50", {**metrics, "latency_ms": {}}) == "None"  # HA: unknown
    assert render("outbox_depth", metrics) == "0"
    assert render("drift_state", metrics) == "off" and render("drift_state", drifting) == "alert"
    assert render("alert_drift", {"open": ["brightness"]}, "binary_sensor") == "ON"
    assert render("alert_drift", {"open": []}, "binary_sensor") == "OFF"


def test_the_cli_flag_and_a_bad_prefix() -> None:
    parser = argparse.ArgumentParser()
    homeassistant_args(parser)
    assert homeassistant_from_args(parser.parse_args([])) is None
    made = homeassistant_from_args(parser.parse_args(["--homeassistant"]))
    assert made is not None and made.prefix == "homeassistant"
    other = homeassistant_from_args(parser.parse_args(["--homeassistant", "ha"]))
    assert other is not None and other.subscriptions == ("ha/status",)
    with pytest.raises(UsageError, match=r"--homeassistant 'home/#'"):
        HomeAssistant("home/#")
