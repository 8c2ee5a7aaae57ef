"""Remote benchmark: `edgekit benchmark --device` asks a running agent over a real Mosquitto.

One agent (a real bundle, a real looping video) serves the whole module; every test checks
that it is still publishing results afterwards, so a command that took it down would show.
The unit tests of the command schema need no broker.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from device_agent.bench.options import BenchOptions
from device_agent.errors import CommandError
from device_agent.protocol.commands import COMMANDS, BenchCommand, parse_command, request_id_of
from device_agent.service.agent import Agent
from device_agent.service.config import load_config
from edgekit.content import samples
from edgekit.errors import RemoteError, UsageError
from edgekit.fleet.remote import remote_benchmark
from edgekit.optimize.pipeline import optimize
from tests.device_agent.test_agent import write_config
from tests.support.mqtt_broker import Broker, Collector, free_port

DEVICE = "cam-01"  # write_config's device id


# -- the command schema, no broker -----------------------------------------------------------


def _bench(**fields: Any) -> bytes:
    return json.dumps({"v": 1, "request_id": "r1", **fields}).encode()


def test_a_valid_bench_command_parses_with_its_defaults() -> None:
    cmd = parse_command("bench", _bench(runs=30, warmup=5))
    assert isinstance(cmd, BenchCommand)
    assert ((cmd.request_id, cmd.runs, cmd.warmup, cmd.duration_s, cmd.profile, cmd.samples)
            == ("r1", 30, 5, None, True, False))
    assert parse_command("bench", _bench(duration_s=2)).duration_s == 2.0  # a JSON integer is a fine number of seconds


@pytest.mark.parametrize(("payload", "names"), [
    (_bench(runs=-5), ["'runs'", "-5"]),
    (_bench(runs="30"), ["'runs'", "'30'"]),  # strict: a string is not a number
    (_bench(runs=True), ["'runs'", "True"]),  # nor is a boolean
    (_bench(duration_s=301), ["'duration_s'", "301"]),
    (_bench(runs=5, duration_s=2), ["'duration_s'", "not both"]),
    (_bench(format="all"), ["'format'", "Extra inputs"]),
    (_bench(model_sha256="abc"), ["'model_sha256'", "'abc'"]),
    (json.dumps({"v": 2, "request_id": "r1"}).encode(), ["'v'", "2"]),
    (json.dumps({"v": 1}).encode(), ["'request_id'", "required"]),
    (json.dumps({"v": 1, "request_id": "a/b"}).encode(), ["'request_id'", "'a/b'"]),
])
def test_a_bad_bench_command_names_the_key_and_the_value(payload: bytes, names: list[str]) -> None:
    with pytest.raises(CommandError, match="command 'bench'") as err:
        parse_command("bench", payload)
    for name in names:
        assert name in str(err.value)


@pytest.mark.parametrize(("name", "payload", "match"), [
    ("format-disk", _bench(), r"unknown command; the allowed commands are: bench"),
    ("bench", b"runs=5", "payload is not JSON"),
    ("bench", b"[1, 2]", "payload must be a JSON object, got list"),
    ("bench", b"x" * 70_000, "at most 65536"),
])
def test_unknown_or_unreadable_commands_are_refused(name: str, payload: bytes, match: str) -> None:
    with pytest.raises(CommandError, match=match):
        parse_command(name, payload)


def test_request_id_is_recovered_from_an_invalid_payload_when_it_can_be() -> None:
    assert request_id_of(_bench(runs=-5)) == "r1"
    with pytest.raises(CommandError) as err:
        parse_command("bench", _bench(runs=-5, bogus=1))
    assert err.value.request_id == "r1"
    assert request_id_of(b"not json") is None
    assert request_id_of(b'["r1"]') is None
    assert request_id_of(b'{"request_id": 5}') is None
    assert request_id_of(b'{"request_id": "../../status"}') is None  # would not be one topic level
    assert request_id_of(json.dumps({"request_id": "x" * 65}).encode()) is None


def test_a_busy_reply_ends_the_remote_wait_with_the_devices_reason() -> None:
    import queue
    from types import SimpleNamespace

    from edgekit.fleet.remote import _exchange

    events: queue.Queue[tuple[Any, ...]] = queue.Queue()
    events.put(("subscribed", []))
    events.put(("message", json.dumps({"v": 1, "request_id": "r1", "state": "busy", "command": "bench",
                                       "device": DEVICE, "seq": 7, "boot": "b1", "ts": 1.7e9,  # a whole envelope
                                       "reason": "32 commands are already waiting"}).encode()))
    client = SimpleNamespace(publish=lambda *_a, **_k: SimpleNamespace(mid=1))
    with pytest.raises(RemoteError, match="device 'cam-01' is busy and did not run the bench command: 32 commands"):
        _exchange(events, client, device=DEVICE, name="bench", request_id="r1", payload="{}",
                  reply_topic=f"edgekit/v1/{DEVICE}/reply/r1",
                  broker="b", timeout_s=5, notify=lambda _s: None)


def test_every_command_field_is_described_and_unknown_keys_are_forbidden() -> None:
    for schema in COMMANDS.values():
        assert schema.model_config.get("extra") == "forbid"
        assert all(field.description for field in schema.model_fields.values()), schema.__name__


# -- against a running agent ---------------------------------------------------------------


class JsonCollector(Collector):
    """The shared collector, skipping payloads that are not JSON (the bad commands sent on purpose)."""

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if "/cmd/" in msg.topic:  # what the tests send, on purpose malformed or 50 KB deep
            return
        try:
            json.loads(msg.payload)
        except ValueError:
            return
        super()._on_message(client, userdata, msg)


def publish_command(broker: Broker, name: str, payload: bytes, *, retain: bool = False) -> None:
    """Publish a raw command as any MQTT client could, bypassing edgekit.fleet.remote's checks."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(f"edgekit/v1/{DEVICE}/cmd/{name}", payload, qos=1, retain=retain).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


@dataclass
class LiveAgent:
    broker: Broker
    collector: Collector
    agent: Agent
    thread: threading.Thread
    bundle: Path

    @property
    def address(self) -> str:
        return f"{self.broker.host}:{self.broker.port}"

    def replies(self, request_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        with self.collector._cond:
            return [(t, b) for t, b, _ in self.collector.messages
                    if "/reply/" in t and (request_id is None or t.endswith(f"/reply/{request_id}"))]

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [b for b in self.collector.received("/events") if b.get("kind") == kind]

    def assert_still_publishing(self, more: int = 5) -> None:
        before = len(self.collector.received("/results"))
        assert self.collector.wait_for(lambda c: len(c.received("/results")) >= before + more, timeout=15), \
            "the agent stopped publishing results"
        assert self.thread.is_alive()

    def send(self, name: str, payload: bytes, *, retain: bool = False) -> None:
        publish_command(self.broker, name, payload, retain=retain)

    def wait_reply(self, request_id: str, state: str, timeout: float = 15) -> dict[str, Any]:
        assert self.collector.wait_for(
            lambda _c: any(b.get("state") == state for _, b in self.replies(request_id)), timeout=timeout
        ), f"no {state!r} reply for {request_id}: {self.replies(request_id)}"
        return next(b for _, b in self.replies(request_id) if b.get("state") == state)


@pytest.fixture(scope="module")
def live(zoo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAgent]:  # type: ignore[no-untyped-def]
    """MobileNetV3-small fp32 (the quickest real bundle to build) on a looping 10 fps video."""
    work = tmp_path_factory.mktemp("remote")
    photos = work / "photos"
    samples.write_image_folder(photos, count=16, seed=3)
    model = zoo("mobilenetv3-small")
    bundle = optimize(model.onnx_path, target="x86-cpu", output=work / "bundle", precision="fp32", calib=photos,
                      preprocess=model.preprocess, labels=model.task.labels, task="classification", max_drop=100).bundle
    clip = samples.write_video(work / "clip.mp4", seconds=2, fps=10, size_wh=(320, 240))
    broker = Broker(work / "broker").start()
    collector = JsonCollector(broker, client_id="remote-collector")
    config = write_config(work / "agent", bundle, clip, broker, source_lines="loop = true\nfps = 10")
    agent = Agent(load_config(config))
    thread = threading.Thread(target=agent.run, name="agent-under-test", daemon=True)
    thread.start()
    live = LiveAgent(broker, collector, agent, thread, bundle)
    try:
        assert collector.wait_for(lambda c: len(c.received("/results")) >= 3, timeout=30), "the agent did not start"
        yield live
    finally:
        agent.stop_event.set()
        thread.join(30)
        collector.close()
        broker.stop()
    assert not thread.is_alive()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_the_publisher_queues_commands_with_their_retain_flag(live: LiveAgent, tmp_path: Path, protocol: str) -> None:
    from device_agent.transport.outbox import Outbox
    from device_agent.transport.publisher import MqttSettings, Publisher

    device = f"queue-{protocol}"
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(live.broker.host, live.broker.port)
    client.loop_start()
    topic = f"edgekit/v1/{device}/cmd/bench"
    client.publish(topic, b'{"old": 1}', qos=1, retain=True).wait_for_publish(5)  # waiting before the device connects
    outbox = Outbox(tmp_path / "outbox.db", device_id=device)
    pub = Publisher(MqttSettings(host=live.broker.host, port=live.broker.port, client_id=device, protocol=protocol),
                    outbox, device_id=device, status_body={})
    try:
        pub.start()
        assert pub.wait_connected(10)
        assert pub.commands.get(timeout=5) == ("bench", b'{"old": 1}', True)
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)  # clears the retained one
        client.publish(topic, b'{"new": 1}', qos=1).wait_for_publish(5)
        received = [pub.commands.get(timeout=5) for _ in range(2)]
        assert received[-1] == ("bench", b'{"new": 1}', False)
    finally:
        client.disconnect()
        client.loop_stop()
        pub.stop(timeout=2)
        outbox.close()


def test_the_agent_handles_every_allowed_command(live: LiveAgent) -> None:
    assert set(live.agent._handlers) == set(COMMANDS)


def test_remote_benchmark_returns_the_devices_record(live: LiveAgent) -> None:
    states: list[str] = []
    record = remote_benchmark(live.address, DEVICE, options=BenchOptions(runs=30, warmup=5), bundle=live.bundle,
                              samples=True, timeout_s=60, on_state=states.append).to_json()
    assert states == ["sent", "running"]
    assert record["device"] == DEVICE and record["remote"] is True
    assert record["runs"] == 30 and len(record["samples_ms"]) == 30
    assert {"p50", "p90", "p99", "mean"} <= set(record["latency_ms"])
    assert record["latency_ms"]["p50"] > 0 and record["load_ms"] > 0 and record["first_ms"] > 0
    assert record["peak_rss_mb"] > 0
    assert record["model_file"].startswith(str(live.bundle))  # the agent's active bundle was measured

    # every reply went through the durable outbox: device and a seq, in order
    def done(_c: Collector) -> set[str]:
        return {t for t, b in live.replies() if b.get("state") == "done"}

    assert live.collector.wait_for(done, timeout=10)  # the second subscriber gets it on its own time
    (topic,) = done(live.collector)
    replies = [b for _, b in live.replies(topic.rsplit("/", 1)[-1])]
    assert [b["state"] for b in replies] == ["running", "done"]
    assert all(b["device"] == DEVICE and isinstance(b["seq"], int) and b["command"] == "bench" for b in replies)
    assert replies[0]["seq"] < replies[1]["seq"]

    # inference paused while the model was measured: no result between the bench's events
    started, finished = (next(b for b in live.events("bench") if b["state"] == s) for s in ("started", "finished"))
    assert started["request_id"] == finished["request_id"] == replies[0]["request_id"]
    assert not [b for b in live.collector.received("/results") if started["seq"] < b["seq"] < finished["seq"]]
    live.assert_still_publishing()


def test_the_cli_prints_the_devices_record_as_the_json_contract(live: LiveAgent, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from edgekit.cli.main import main as edgekit_main

    png = tmp_path / "remote.png"
    assert edgekit_main(["benchmark", "--device", DEVICE, "--broker", live.address, str(live.bundle), "--runs", "25",
                         "--warmup", "3", "--json", "--plot", str(png)]) == 0
    result = json.loads(capsys.readouterr().out)
    (record,) = result["models"]
    assert result["device"] == DEVICE and record["device"] == DEVICE and record["remote"] is True
    assert {"p50", "p90", "p99", "mean", "load_ms", "first_ms"} <= set(record["latency_ms"])
    assert all(k in record for k in ("load_ms", "first_ms", "peak_rss_mb", "runs")) and record["runs"] == 25
    assert "samples_ms" not in record  # asked for the plot only
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert edgekit_main(["benchmark", "--device", DEVICE, str(live.bundle)]) == 2
    assert "--device needs --broker" in capsys.readouterr().err
    live.assert_still_publishing()


def test_bad_commands_get_an_error_reply_and_the_agent_stays_up(live: LiveAgent) -> None:
    live.send("bench", _bench(request_id="neg", runs=-5))
    live.send("bench", _bench(request_id="extra", runs=3, format="all"))
    live.send("format-disk", _bench(request_id="fmt"))
    live.send("bench", b"\x00not json")

    assert "key 'runs'" in live.wait_reply("neg", "error")["error"]
    assert "key 'format'" in live.wait_reply("extra", "error")["error"]
    assert "unknown command" in live.wait_reply("fmt", "error")["error"]
    expected = {("bench", "neg"), ("bench", "extra"), ("format-disk", "fmt"), ("bench", None)}

    def rejected_now() -> set[tuple[str, Any]]:
        return {(b["command"], b["request_id"]) for b in live.events("command") if b["state"] == "rejected"}

    assert live.collector.wait_for(lambda _c: len(live.events("command")) >= 4 and expected <= rejected_now(),
                                   timeout=10)
    rejected = {(b["command"], b["request_id"]) for b in live.events("command") if b["state"] == "rejected"}
    assert {("bench", "neg"), ("bench", "extra"), ("format-disk", "fmt"), ("bench", None)} <= rejected
    assert not live.replies("neg")[0][1].get("result")
    live.assert_still_publishing()


def test_a_retained_command_is_never_honoured(live: LiveAgent) -> None:
    live.send("bench", _bench(request_id="kept", runs=3, warmup=0, profile=False), retain=True)
    try:
        refused = live.wait_reply("kept", "refused")
    finally:
        live.send("bench", b"", retain=True)  # clear it from the broker
    assert refused["reason"] == "retained commands are never honoured"
    time.sleep(0.5)
    assert [b["state"] for _, b in live.replies("kept")] == ["refused"]  # it never ran
    assert not [b for b in live.events("bench") if b["request_id"] == "kept"]
    live.assert_still_publishing()


def test_a_different_model_is_refused_with_both_hashes(live: LiveAgent, zoo) -> None:  # type: ignore[no-untyped-def]
    from device_agent.bundle.verify import load_bundle, sha256_file

    other = zoo("mobilenetv3-small").onnx_path  # the source model, not the bundle's optimized one
    theirs, ours = sha256_file(other), load_bundle(live.bundle).manifest.model.sha256
    assert theirs != ours
    with pytest.raises(RemoteError, match="refused the bench command: model sha256 mismatch") as err:
        remote_benchmark(live.address, DEVICE, options=BenchOptions(runs=3), bundle=other, timeout_s=30)
    assert theirs in str(err.value) and ours in str(err.value)
    live.assert_still_publishing()


def test_no_agent_for_the_device_times_out_naming_device_and_topic(live: LiveAgent) -> None:
    started = time.monotonic()
    with pytest.raises(RemoteError) as err:
        remote_benchmark(live.address, "cam-99", options=BenchOptions(runs=3), timeout_s=2)
    assert time.monotonic() - started < 6
    message = str(err.value)
    assert "device 'cam-99' did not answer on edgekit/v1/cam-99/reply/" in message
    assert "within 2 s" in message and live.address in message


def test_broker_problems_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--broker 'localhost': expected HOST:PORT"):
        remote_benchmark("localhost", DEVICE, options=BenchOptions(runs=3))
    with pytest.raises(UsageError, match="--device 'cam/01'"):
        remote_benchmark("127.0.0.1:1883", "cam/01", options=BenchOptions(runs=3))
    port = free_port()  # nothing listens there
    with pytest.raises(RemoteError, match=f"cannot reach the broker at 127.0.0.1:{port}"):
        remote_benchmark(f"127.0.0.1:{port}", DEVICE, options=BenchOptions(runs=3), timeout_s=2)
    with pytest.raises(UsageError, match="does not exist"):
        remote_benchmark(f"127.0.0.1:{port}", DEVICE, options=BenchOptions(runs=3), bundle=tmp_path / "missing")


# -- one bad message, a repeated request, a flood: the agent keeps going ---------------------

NESTED_50KB = b"[" * 25_000 + b"]" * 25_000  # raised RecursionError in the parser: the agent exited 1
NESTED_WITH_ID = b'{"v":1,"request_id":"deep","x":' + b"[" * 20_000 + b"]" * 20_000 + b"}"
ENVELOPE = {"seq", "ts", "boot", "replay"}


def _distinct(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One body per seq (the outbox may resend one that was in flight), in seq order."""
    return sorted({b["seq"]: b for b in bodies}.values(), key=lambda b: b["seq"])


def test_a_50kb_nested_payload_live_and_retained_leaves_the_agent_running(live: LiveAgent) -> None:
    before = len(live.events("command"))
    live.send("bench", NESTED_50KB)
    live.send("bench", NESTED_WITH_ID)
    live.send("bench", NESTED_50KB, retain=True)  # as it would come back at every start
    try:
        error = live.wait_reply("deep", "error")["error"]
        assert "nested 20001 levels deep; at most 32 are accepted" in error
        assert live.collector.wait_for(lambda _c: len(live.events("command")) >= before + 3, timeout=10)
    finally:
        live.send("bench", b"", retain=True)
    rejected = live.events("command")[before:]
    assert any(e["request_id"] is None and "nested 25000 levels deep" in e["reason"] for e in rejected)
    assert any(e["request_id"] is None and e["reason"] == "retained commands are never honoured" for e in rejected)
    live.assert_still_publishing()


def test_the_same_request_id_runs_once_and_gets_its_reply_twice(live: LiveAgent) -> None:
    payload = _bench(request_id="idem-1", runs=3, warmup=0, profile=False)
    live.send("bench", payload)
    live.wait_reply("idem-1", "done", timeout=60)
    live.send("bench", payload)

    def done(_c: Collector) -> list[dict[str, Any]]:
        return [b for b in _distinct([b for _, b in live.replies("idem-1")]) if b["state"] == "done"]

    assert live.collector.wait_for(lambda c: len(done(c)) == 2, timeout=15), live.replies("idem-1")
    first, again = done(live.collector)
    assert ({k: v for k, v in first.items() if k not in ENVELOPE}
            == {k: v for k, v in again.items() if k not in ENVELOPE})
    assert again["replay"] is True and "replay" not in first and again["seq"] > first["seq"]
    assert [b["state"] for b in _distinct([b for _, b in live.replies("idem-1")])] == ["running", "done", "done"]
    assert [e["state"] for e in live.events("bench") if e["request_id"] == "idem-1"] == ["started", "finished"]
    assert any(e["state"] == "replayed" and e["request_id"] == "idem-1" for e in live.events("command"))
    live.assert_still_publishing()


def test_a_flood_while_a_bench_holds_the_loop_gets_busy_replies(live: LiveAgent) -> None:
    from device_agent.transport.publisher import MAX_PENDING_COMMANDS

    live.send("bench", _bench(request_id="holder", duration_s=4, warmup=0, profile=False))
    live.wait_reply("holder", "running", timeout=30)  # from here the agent's loop is inside the bench
    flood = [f"flood-{i}" for i in range(MAX_PENDING_COMMANDS + 8)]
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(live.broker.host, live.broker.port)
    client.loop_start()
    try:
        infos = [client.publish(f"edgekit/v1/{DEVICE}/cmd/bench", _bench(request_id=rid, runs=-1), qos=1)
                 for rid in flood]
        for info in infos:
            info.wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()

    def states(rid: str) -> list[str]:
        return [b["state"] for _, b in live.replies(rid)]

    assert live.collector.wait_for(lambda _c: all(states(rid) for rid in flood), timeout=60), \
        {rid: states(rid) for rid in flood}
    busy = [rid for rid in flood if "busy" in states(rid)]
    assert busy == flood[MAX_PENDING_COMMANDS:]  # the 32 that fit waited, the rest were told at once
    done = live.wait_reply("holder", "done", timeout=60)
    busy_seqs = [b["seq"] for rid in busy for _, b in live.replies(rid)]
    assert max(busy_seqs) < done["seq"]  # answered while the bench still held the loop
    waited = flood[:MAX_PENDING_COMMANDS]
    assert live.collector.wait_for(lambda _c: all(states(rid) == ["error"] for rid in waited), timeout=15)
    reply = next(b for _, b in live.replies(busy[0]))
    assert reply["command"] == "bench" and "commands are already waiting" in reply["reason"]
    assert live.agent.publisher.stats()["commands_busy"] >= len(busy)
    live.assert_still_publishing()


def test_metrics_carry_the_mqtt_link(live: LiveAgent) -> None:
    assert live.collector.wait_for(lambda c: any("mqtt" in m for m in c.received("/metrics")), timeout=15)
    link = [m for m in live.collector.received("/metrics") if "mqtt" in m][-1]["mqtt"]
    assert link["connected"] is True and link["state"] == "up" and link["reconnects"] == 0
    assert link["last_error"] is None and link["refused"] == {}


def test_a_request_id_is_remembered_across_an_agent_restart(live: LiveAgent, tmp_path: Path, broker_factory) -> None:  # type: ignore[no-untyped-def]
    broker = broker_factory()
    collector = JsonCollector(broker, client_id="restart-collector")
    clip = samples.write_video(tmp_path / "clip.mp4", seconds=2, fps=10, size_wh=(320, 240))
    config = load_config(write_config(tmp_path / "agent", live.bundle, clip, broker,
                                      source_lines="loop = true\nfps = 10"))
    payload = _bench(request_id="persist-1", runs=3, warmup=0, profile=False)

    def replies() -> list[dict[str, Any]]:
        return _distinct([b for t, b, _ in collector.messages if t.endswith("/reply/persist-1")])

    def run_agent(until: Callable[[], bool]) -> None:
        agent = Agent(config)
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        try:
            booted = {b["boot"] for b in collector.received("/results")}
            assert collector.wait_for(lambda c: {b["boot"] for b in c.received("/results")} - booted, timeout=30)
            publish_command(broker, "bench", payload)
            assert collector.wait_for(lambda _c: until(), timeout=60), replies()
            assert thread.is_alive()
        finally:
            agent.stop_event.set()
            thread.join(30)
        assert not thread.is_alive()

    run_agent(lambda: [b["state"] for b in replies()] == ["running", "done"])
    publish_command(broker, "bench", NESTED_50KB, retain=True)  # waiting for the next start
    try:
        run_agent(lambda: [b["state"] for b in replies()] == ["running", "done", "done"])
    finally:
        publish_command(broker, "bench", b"", retain=True)
    first, again = replies()[1:]
    assert again["replay"] is True and again["boot"] != first["boot"]  # a different run of the agent replied
    assert again["result"] == first["result"]
    started = [e for e in collector.received("/events") if e.get("kind") == "bench" and e["state"] == "started"]
    assert len(started) == 1  # it ran once
    retained = [e for e in collector.received("/events") if e.get("kind") == "command" and e.get("state") == "rejected"]
    assert any(e["reason"] == "retained commands are never honoured" for e in retained)
    collector.close()
