"""The contract held end to end: everything a real agent publishes parses through the protocol.

A real agent (in-process) runs a tiny model on a real video against a real Mosquitto, with a
heartbeat every 0.3 s, alert rules that fire, a bench command, a malformed command and a
retained one; a subscriber on ``edgekit/v1/#`` records every message, and each one must pass
:func:`device_agent.protocol.parse` with its topic: zero failures, every topic kind seen.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from device_agent.errors import ProtocolError
from device_agent.protocol import Topics, parse, parse_topic
from device_agent.service.agent import Agent
from device_agent.service.config import load_config
from edgekit.content import samples
from edgekit.optimize.pipeline import optimize
from tests.support.agent_config import seen_rules, write_agent_config
from tests.support.mqtt_broker import Broker, Collector, broker, wait_until  # noqa: F401  (fixture)
from tests.support.tinymodels import tiny_classifier

DEVICE = "cam-proto"
TOPICS = Topics(DEVICE)


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory, photo_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("proto-bundle")
    model = tiny_classifier(root / "tiny.onnx")
    return optimize(model, target="x86-cpu", output=root / "b", precision="fp32", calib=photo_dir, max_drop=100).bundle


def _config(folder: Path, bundle: Path, video: Path, b: Broker) -> Path:
    return write_agent_config(folder, device=DEVICE, bundle=bundle, video=video, broker=b,
                              source="fps = 20\nloop = true\n",
                              extra=f"[publish]\nmetrics_interval_s = 0.3\n\n{seen_rules()}")


def _send(b: Broker, name: str, payload: bytes, *, retain: bool = False) -> None:
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"proto-{name}-{retain}")
    client.connect(b.host, b.port)
    client.loop_start()
    client.publish(TOPICS.cmd(name), payload, qos=1, retain=retain).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def _replies(collector: Collector, request_id: str) -> list[str]:
    return [body["state"] for body in collector.received(f"/reply/{request_id}")]


def test_every_message_a_running_agent_publishes_parses_through_the_protocol(
        tiny_bundle: Path, broker: Broker, tmp_path: Path) -> None:  # noqa: F811
    video = samples.write_video(tmp_path / "clip.mp4", seconds=2, fps=10, size_wh=(160, 120))
    collector = Collector(broker, client_id="proto-collector")
    agent = Agent(load_config(_config(tmp_path, tiny_bundle, video, broker)))
    runner = threading.Thread(target=agent.run, kwargs={"flush_timeout_s": 5.0}, daemon=True)
    runner.start()
    try:
        assert collector.wait_for(lambda c: len(c.received("/results")) >= 5, 30), "no results"
        _send(broker, "bench", json.dumps({"v": 1, "request_id": "bench-1", "runs": 5, "warmup": 1,
                                           "profile": False}).encode())
        _send(broker, "bench", b'{"v": 1, "request_id": "bad-1", "runs": "five"}')
        _send(broker, "format-disk", b'{"v": 1, "request_id": "bad-2"}')
        _send(broker, "bench", b'{"v": 1, "request_id": "kept-1"}', retain=True)
        assert collector.wait_for(lambda c: "done" in _replies(c, "bench-1") and _replies(c, "bad-1") == ["error"]
                                  and _replies(c, "bad-2") == ["error"] and _replies(c, "kept-1") == ["refused"], 90), \
            collector.received("/reply/")
        assert collector.wait_for(lambda c: len(c.received("/metrics")) >= 2, 10)
    finally:
        agent.stop_event.set()
        runner.join(30)
    assert not runner.is_alive()
    assert collector.wait_for(lambda c: any(b.get("state") == "offline" for b in c.received("/status")), 10)
    collector.close()

    failures, kinds, event_kinds = [], set(), set()
    for topic, body, _retained in collector.messages:
        where = parse_topic(topic)
        if where is not None and where.kind == "cmd":
            continue  # what we sent, not what the device published
        try:
            received = parse(topic, json.dumps(body).encode())
        except ProtocolError as exc:
            failures.append(str(exc))
            continue
        kinds.add(received.kind)
        event_kinds.add(getattr(received.message, "kind", None) if received.kind == "events" else None)
    assert failures == []
    assert kinds == {"status", "results", "events", "metrics", "reply"}
    assert {"model", "camera", "alert", "command", "bench"} <= event_kinds, event_kinds
