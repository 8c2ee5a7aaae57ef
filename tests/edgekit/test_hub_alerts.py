"""The hub's alerts: each kind raised once and cleared once, hysteresis, the webhook against a real HTTP
server, the MQTT topic through a real Mosquitto, cohort drift, and thresholds refused by name.

Messages are real contract messages (tests/support/protocol_samples.py) parsed by
:func:`device_agent.protocol.parse`, stored in a real SQLite store, then observed, as the hub does.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from device_agent.protocol import Body, DriftEvent, Received, body_of, parse
from edgekit.errors import UsageError
from edgekit.fleet.hub.alerts import (
    COHORT_DEVICE,
    AlertEngine,
    AlertRules,
    MqttSink,
    WebhookSink,
    alert_args,
    alerts_from_args,
    cohort_drift,
)
from edgekit.fleet.hub.observer import Publish
from edgekit.fleet.hub.store import Alert, Device, ModelInfo, Store, store_from_url
from tests.support import protocol_samples as samples
from tests.support.mqtt_broker import Broker, Collector, wait_until

T0 = 1.7e9


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A sink that keeps what it is sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[Alert, list[str]]] = []

    def start(self, publish: Publish) -> None:
        pass

    def send(self, alert: Alert, open_keys: list[str]) -> None:
        self.sent.append((alert, open_keys))

    def close(self) -> None:
        pass

    def of(self, kind: str) -> list[tuple[str, str, str]]:
        return [(a.device, a.state, str(a.detail.get("key", ""))) for a, _ in self.sent if a.kind == kind]


class Hub:
    """A store and an engine fed the way the hub's ingest feeds them."""

    def __init__(self, store: Store, rules: AlertRules | None = None) -> None:
        self.store, self.clock, self.sink = store, Clock(), Recorder()
        self.engine = AlertEngine(store, rules or AlertRules(), [self.sink], clock=self.clock)
        self.engine.start(lambda *_: None)
        self.seq: dict[str, int] = {}

    def feed(self, *messages: Received) -> None:
        report = self.store.ingest(messages, received_at=self.clock.now)
        self.engine.observe(messages, report)

    def at(self, seconds: float) -> Hub:
        self.clock.now = T0 + seconds
        return self

    def message(self, topic: str, device: str = "cam-01", **fields: Any) -> Received:
        seq = self.seq[device] = self.seq.get(device, 0) + 1
        payload = {**samples.message(topic, seq, device=device, **fields), "ts": self.clock.now}
        return parse(f"edgekit/v1/{device}/{topic}", json.dumps(payload).encode())

    def event(self, body: Body, device: str = "cam-01") -> Received:
        """An event built through its model, with the envelope the outbox adds."""
        seq = self.seq[device] = self.seq.get(device, 0) + 1
        payload = {**body_of(body), "v": 1, "device": device, "seq": seq, "boot": "boot-1", "ts": self.clock.now}
        return parse(f"edgekit/v1/{device}/events", json.dumps(payload).encode())

    def status(self, device: str = "cam-01", **fields: Any) -> Received:
        fields.setdefault("ts", self.clock.now)
        return parse(f"edgekit/v1/{device}/status", samples.status(device=device, **fields))

    def beat(self, device: str = "cam-01", *, frames: int = 0, read: int = 0, depth: int = 0,
             **fields: Any) -> Received:
        return self.message("metrics", device, frames=frames, outbox_depth=depth,
                            sources={"cam": {"frames_read": read}}, **fields)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with store_from_url(f"sqlite:///{tmp_path / 'hub.db'}") as s:
        yield s


@pytest.fixture
def hub(store: Store) -> Hub:
    return Hub(store)


def _stored(store: Store, kind: str) -> list[tuple[str, str]]:
    return [(a.device, a.state) for a in reversed(store.alerts(kind=kind))]


# -- each kind raised once and cleared once -------------------------------------------------------

def test_a_devices_rule_alert_is_forwarded_once_and_stored_once(hub: Hub) -> None:
    raised = hub.message("events", kind="alert", rule="person", state="raised")
    hub.feed(raised, raised)  # a redelivery in the same batch: the store drops it, the engine never sees it fresh
    hub.feed(hub.message("events", kind="alert", rule="person", state="cleared", score=None, frames=None))
    assert hub.sink.of("rule") == [("cam-01", "raised", "person"), ("cam-01", "cleared", "person")]
    assert _stored(hub.store, "rule") == [("cam-01", "raised"), ("cam-01", "cleared")]  # the ingest's, not twice


def test_a_devices_drift_alert_is_raised_then_cleared_when_back_to_warn(hub: Hub) -> None:
    def drift(state: str, previous: str) -> Received:
        return hub.event(DriftEvent(signal="brightness", state=state, previous=previous, score=0.3,  # type: ignore[arg-type]
                                    threshold=0.25, window=300))

    hub.feed(drift("warn", "ok"))
    hub.feed(drift("alert", "warn"))
    hub.feed(drift("alert", "alert"))
    hub.feed(drift("warn", "alert"))
    hub.feed(drift("ok", "warn"))
    assert hub.sink.of("drift") == [("cam-01", "raised", "brightness"), ("cam-01", "cleared", "brightness")]
    assert _stored(hub.store, "drift") == [("cam-01", "raised"), ("cam-01", "cleared")]


def test_a_silent_device_is_offline_once_and_cleared_when_heard(hub: Hub) -> None:
    hub.feed(hub.status(), hub.beat())
    hub.engine.tick(T0 + 59)
    assert hub.sink.of("offline") == []
    for t in (61, 62, 120):
        hub.engine.tick(T0 + t)
    assert hub.sink.of("offline") == [("cam-01", "raised", "")]
    assert hub.sink.sent[-1][0].detail["reason"] == "silent"
    hub.at(130).feed(hub.beat())
    hub.engine.tick(T0 + 131)
    assert hub.sink.of("offline") == [("cam-01", "raised", ""), ("cam-01", "cleared", "")]


def test_an_offline_status_raises_after_the_delay_and_online_clears(hub: Hub) -> None:
    hub.feed(hub.status())
    hub.at(10).feed(hub.status(state="offline"))
    hub.engine.tick(T0 + 69)
    assert hub.sink.of("offline") == []
    hub.engine.tick(T0 + 71)
    assert hub.sink.of("offline") == [("cam-01", "raised", "")] and hub.sink.sent[-1][0].detail["reason"] == "offline"
    hub.at(200).feed(hub.status())
    hub.engine.tick(T0 + 201)
    assert hub.sink.of("offline") == [("cam-01", "raised", ""), ("cam-01", "cleared", "")]
    assert _stored(hub.store, "offline") == [("cam-01", "raised"), ("cam-01", "cleared")]


def test_a_growing_backlog_is_raised_once_and_cleared_once_drained(hub: Hub) -> None:
    depths = [0, 10, 20, 30, 40, 50, 60, 70, 80, 75, 0]  # six growths in a row at 60, more after, then draining
    for i, depth in enumerate(depths):
        hub.at(10 * i).feed(hub.beat(depth=depth))
        if depth == 60:
            assert hub.sink.of("backlog") == [("cam-01", "raised", "")]
    assert hub.sink.of("backlog") == [("cam-01", "raised", ""), ("cam-01", "cleared", "")]
    assert hub.sink.sent[-1][0].detail["depth"] == 75  # draining and under 80 % of the limit


def test_a_backlog_over_the_limit_is_raised_at_once(store: Store) -> None:
    hub = Hub(store, AlertRules(backlog_limit=100))
    hub.feed(hub.beat(depth=500))
    assert hub.sink.of("backlog") == [("cam-01", "raised", "")]


def test_fps_below_half_of_what_the_device_could_do_is_raised_and_cleared(hub: Hub) -> None:
    hub.feed(hub.status(measured_fps=100.0))
    frames = read = 0
    for i, rate in enumerate([100, 30, 30, 55, 80]):  # fps between heartbeats 10 s apart; the camera gives 100
        frames, read = frames + rate * 10, read + 1000
        hub.at(10 * i).feed(hub.beat(frames=frames, read=read))
    # 30 < 50 raises; 55 is above 50 but not above 60 (the clear margin): still open; 80 clears
    assert hub.sink.of("fps") == [("cam-01", "raised", ""), ("cam-01", "cleared", "")]
    raised = next(a for a, _ in hub.sink.sent if a.kind == "fps")
    assert raised.detail["fps"] == 30 and raised.detail["expected_fps"] == 100


def test_a_camera_slower_than_the_model_is_no_fps_alert(hub: Hub) -> None:
    hub.feed(hub.status(measured_fps=500.0))
    for i in range(5):  # a 10 fps camera, every frame inferred
        hub.at(10 * i).feed(hub.beat(frames=100 * i, read=100 * i))
    assert hub.sink.of("fps") == []


def test_an_agent_without_measured_fps_is_not_judged_on_fps(hub: Hub) -> None:
    hub.feed(hub.status())  # an older agent: no measured_fps in its status
    for i in range(4):
        hub.at(10 * i).feed(hub.beat(frames=i, read=1000 * i))
    assert hub.sink.of("fps") == []


def test_hysteresis_no_flood_from_values_hovering_at_a_threshold(hub: Hub) -> None:
    hub.feed(hub.status(measured_fps=100.0))
    frames = read = 0
    for i in range(20):  # 48, 52, 48, 52... fps against a threshold of 50
        frames, read = frames + (480 if i % 2 else 520), read + 1000
        hub.at(10 * i).feed(hub.beat(frames=frames, read=read))
        hub.engine.tick(T0 + 10 * i)
    assert hub.sink.of("fps") == [("cam-01", "raised", "")]
    assert hub.sink.of("offline") == []


def test_open_alerts_survive_a_hub_restart_and_are_not_raised_again(store: Store) -> None:
    first = Hub(store)
    first.feed(first.status())
    first.engine.tick(T0 + 100)
    assert first.sink.of("offline") == [("cam-01", "raised", "")]
    again = Hub(store)  # a new engine on the same store
    again.engine.tick(T0 + 200)
    assert again.sink.of("offline") == []
    again.at(300).feed(again.beat())
    assert again.sink.of("offline") == [("cam-01", "cleared", "")]


# -- sinks -------------------------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    """A real HTTP endpoint that records each POSTed JSON body; its first ``failures`` POSTs answer 500."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Endpoint)
        self.received: list[dict[str, Any]] = []
        self.failures = 1


class _Endpoint(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.server.failures > 0:
            self.server.failures -= 1
            self.send_response(500)
        else:
            self.server.received.append(body)
            self.send_response(204)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[_Server]:
    server = _Server()  # the first POST fails: the sink must retry
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_webhook_posts_each_alert_to_a_real_http_server_retrying_a_failure(
        store: Store, endpoint: _Server) -> None:
    url = f"http://127.0.0.1:{endpoint.server_address[1]}/hook"
    webhook = WebhookSink(url, timeout_s=2.0, retries=2, backoff_s=0.05)
    engine = AlertEngine(store, AlertRules(webhook=url), [webhook], clock=lambda: T0)
    engine.start(lambda *_: None)
    hub = Hub(store)
    hub.engine = engine
    hub.feed(hub.message("events", kind="alert", rule="person", state="raised"))
    assert webhook.flush(10)
    assert [(b["v"], b["device"], b["kind"], b["key"], b["state"]) for b in endpoint.received] == [
        (1, "cam-01", "rule", "person", "raised")]
    assert (webhook.sent, webhook.failed, webhook.dropped) == (1, 0, 0)
    engine.close()


def test_a_dead_webhook_is_counted_and_never_blocks(store: Store) -> None:
    # a server that takes the connection (the kernel's backlog) and never answers: each attempt waits its timeout,
    # so the sender holds at most one alert while 20 are sent, and the queue of 2 overflows whatever the timing
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        webhook = WebhookSink(f"http://127.0.0.1:{hung.getsockname()[1]}/", timeout_s=0.5, retries=1,
                              backoff_s=0.01, queue_size=2)
        alert = Alert("cam-01", "offline", T0, detail={"key": ""})
        started = time.monotonic()
        for _ in range(20):
            webhook.send(alert, [""])
        assert time.monotonic() - started < 0.5  # queued or dropped, never waited on
        assert webhook.dropped >= 17
        assert wait_until(lambda: webhook.failed >= 1, 10)
        webhook.close(timeout_s=1.0)
        assert not webhook._thread.is_alive()  # closing gives up on what is left: nothing outlives the hub


def test_alerts_reach_the_mqtt_topic_through_a_real_broker(store: Store, broker: Broker) -> None:
    publisher = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="hub-test",
                            protocol=mqtt.MQTTv5)
    publisher.connect(broker.host, broker.port)
    publisher.loop_start()
    collector = Collector(broker)
    try:
        engine = AlertEngine(store, AlertRules(), None, clock=lambda: T0)  # default sinks: the MQTT topic
        assert [type(s) for s in engine.sinks] == [MqttSink]
        engine.start(lambda topic, body, qos, retain: publisher.publish(topic, body, qos, retain).wait_for_publish(5))
        hub = Hub(store)
        hub.engine = engine
        hub.feed(hub.status())
        engine.tick(T0 + 100)
        assert collector.wait_for(lambda c: c.received("_hub/alerts"), 10)
        [alert] = collector.received("_hub/alerts")
        assert (alert["v"], alert["device"], alert["kind"], alert["state"]) == (1, "cam-01", "offline", "raised")
        def summary() -> list[dict[str, Any]]:
            return [m for t, m, _ in collector.messages if t == "edgekit/v1/_hub/alerts/cam-01/offline"]

        assert collector.wait_for(lambda _: len(summary()) == 2, 10), summary()
        assert summary()[0]["open"] == [] and summary()[1]["open"] == [""]  # published when first seen, then raised
        late = Collector(broker, client_id="late")  # retained: a consumer that comes later sees what is open now
        assert late.wait_for(lambda c: any(t.endswith("cam-01/offline") and r for t, _, r in c.messages), 10)
        late.close()
    finally:
        collector.close()
        publisher.loop_stop()
        publisher.disconnect()


# -- cohort drift ----------------------------------------------------------------------------------

def _device(name: str, counts: list[int], *, version: str = "1", online: bool = True) -> Device:
    drift = {"brightness": {"counts": counts, "edges": [100.0], "baseline_counts": [500, 500], "score": 0.0,
                            "state": "ok"}}
    return Device(name, ModelInfo("tiny", version, "int8"), "0.1.0", online, T0, None, {"drift": drift})


def test_opposite_shifts_alert_each_device_but_not_the_cohort() -> None:
    a, b = _device("cam-a", [80, 20]), _device("cam-b", [20, 80])
    alone = [cohort_drift([d])[0].signals["brightness"] for d in (a, b)]
    assert [s.state for s in alone] == ["alert", "alert"] and alone[0].psi > 0.25
    [merged] = cohort_drift([a, b])
    assert merged.name == "tiny@1" and merged.devices == ("cam-a", "cam-b")
    signal = merged.signals["brightness"]
    assert signal.counts == [100, 100] and signal.psi == pytest.approx(0.0) and signal.state == "ok"


def test_a_common_shift_is_the_cohorts_and_cohorts_are_per_model_version() -> None:
    devices = [_device("cam-a", [80, 20]), _device("cam-b", [75, 25]), _device("cam-c", [50, 50], version="2"),
               _device("cam-d", [90, 10], online=False)]  # offline: its last window is not the fleet now
    cohorts = {c.name: c for c in cohort_drift(devices, min_devices=2)}
    assert set(cohorts) == {"tiny@1", "tiny@2"} and cohorts["tiny@2"].signals == {}  # one device: not judged
    assert cohorts["tiny@1"].signals["brightness"].state == "alert"
    assert cohorts["tiny@1"].signals["brightness"].devices == ("cam-a", "cam-b")


def test_the_engine_raises_a_cohort_drift_alert_once_and_clears_it(hub: Hub) -> None:
    def window(counts: list[int]) -> dict[str, Any]:
        return {"brightness": {"counts": counts, "edges": [100.0], "baseline_counts": [500, 500], "score": 0.3,
                               "state": "alert"}}

    for device in ("cam-a", "cam-b"):
        hub.feed(hub.status(device), hub.beat(device, drift=window([85, 15])))
    hub.engine.tick(T0 + 10)
    hub.engine.tick(T0 + 20)
    [cohort] = hub.engine.cohorts
    assert cohort.signals["brightness"].state == "alert"
    for device in ("cam-a", "cam-b"):
        hub.feed(hub.beat(device, drift=window([52, 48])))
    hub.engine.tick(T0 + 30)
    assert hub.sink.of("drift") == [(COHORT_DEVICE, "raised", "tiny@1:brightness"),
                                    (COHORT_DEVICE, "cleared", "tiny@1:brightness")]
    raised = hub.store.alerts(device=COHORT_DEVICE, kind="drift")[-1]
    assert raised.detail["cohort"] == "tiny@1" and raised.detail["devices"] == ["cam-a", "cam-b"]


# -- thresholds ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "names"), [
    ({"offline_after_s": 0}, "--offline-after 0"),
    ({"fps_below": 1.5}, "--fps-below 1.5"),
    ({"fps_below": -0.1}, "--fps-below"),
    ({"backlog_limit": 0}, "--backlog-limit"),
    ({"drift_warn": 0.3, "drift_alert": 0.25}, "warn < alert"),
    ({"topic": "edgekit/+/alerts"}, "--alerts-topic"),
    ({"webhook": "ftp://host/x"}, "--webhook 'ftp://host/x'"),
    ({"offline_after_s": float("nan")}, "--offline-after nan"),
])
def test_bad_thresholds_are_refused_by_name(fields: dict[str, Any], names: str) -> None:
    with pytest.raises(UsageError, match=names.replace("+", r"\+")):
        AlertRules(**fields)


def test_the_cli_flags_make_the_rules() -> None:
    parser = argparse.ArgumentParser()
    alert_args(parser)
    rules = alerts_from_args(parser.parse_args(["--offline-after", "2m", "--fps-below", "0.3", "--webhook",
                                                "http://127.0.0.1:9/x", "--alerts-topic", "site/alerts"]))
    assert (rules.offline_after_s, rules.fps_below, rules.webhook, rules.topic) == (120.0, 0.3,
                                                                                     "http://127.0.0.1:9/x",
                                                                                     "site/alerts")
    assert alerts_from_args(parser.parse_args([])) == AlertRules()
    with pytest.raises(UsageError, match="--offline-after 'soon'"):
        alerts_from_args(parser.parse_args(["--offline-after", "soon"]))
