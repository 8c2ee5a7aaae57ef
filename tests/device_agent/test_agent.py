"""The agent end to end: a real bundle, a real video, a real Mosquitto, real faults.

Each fault test counts what a subscriber really received. Every message the agent
publishes (results, events, metrics) takes the next seq of one counter, so "nothing lost"
means: the distinct seqs received cover 1..max with no hole.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from device_agent.service.agent import Agent
from device_agent.service.config import load_config
from edgekit.content import samples
from edgekit.optimize.pipeline import optimize
from tests.support.mqtt_broker import Broker, Collector

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lite0_bundle(zoo, photo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """The pretrained EfficientNet-Lite0, INT8, as `edgekit optimize` writes it."""
    model = zoo("efficientnet-lite0")
    result = optimize(model.onnx_path, target="x86-cpu", output=tmp_path_factory.mktemp("b") / "lite0",
                      precision="int8", calib=photo_dir, preprocess=model.preprocess, labels=model.task.labels,
                      task="classification", max_drop=100)
    return result.bundle


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return samples.write_video(tmp_path_factory.mktemp("v") / "street.mp4", seconds=4, fps=10, size_wh=(320, 240))


def write_config(folder: Path, bundle: Path, source: Path | str, broker: Broker, *, source_lines: str = "",
                 mqtt_lines: str = "", outbox_lines: str = "", tables: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "agent.toml"
    path.write_text(f"""device_id = "cam-01"
bundle = "{bundle}"

[[sources]]
uri = "{source}"
{source_lines}

[mqtt]
host = "{broker.host}"
port = {broker.port}
{mqtt_lines}

[outbox]
path = "{folder / 'outbox.db'}"
{outbox_lines}

{tables}
""")
    return path


def no_holes(seqs: list[int]) -> bool:
    return bool(seqs) and seqs == list(range(1, seqs[-1] + 1))


def went_offline(collector: Collector) -> bool:
    """The agent's offline status arrived: it is published after the last PUBACK, so every
    message of that connection has reached the collector before it (QoS 1 keeps order)."""
    return any(b.get("state") == "offline" for b in collector.received("/status"))


def spawn_agent(config: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "device_agent.cli", "run", "--config", str(config), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_every_frame_of_a_video_becomes_a_result(lite0_bundle: Path, clip: Path, broker: Broker,
                                                 tmp_path: Path) -> None:
    collector = Collector(broker)
    config = load_config(write_config(tmp_path, lite0_bundle, clip, broker))
    agent = Agent(config)
    assert agent.run() == 0
    assert collector.wait_for(lambda c: any(b.get("state") == "offline" for b in c.received("/status")), timeout=10)
    results = collector.received("/results")
    assert len(results) == 40  # 4 s at 10 fps: a file without fps is read frame by frame, none skipped
    first = results[0]
    assert first["device"] == "cam-01" and first["frame"]["size_wh"] == [320, 240]
    assert first["model"]["precision"] == "int8" and first["result"]["kind"] == "classification"
    assert set(first["latency_ms"]) >= {"preprocess", "infer", "postprocess", "capture_age"}
    assert no_holes(sorted({b["seq"] for _, b, _ in collector.messages if "seq" in b}))
    kinds = [b.get("kind") for b in collector.received("/events")]
    assert "model" in kinds and "camera" in kinds
    assert agent.outbox.depth() == 0
    collector.close()


def test_broker_killed_for_ten_seconds_mid_stream_loses_nothing(
    lite0_bundle: Path, tmp_path: Path, broker_factory
) -> None:  # type: ignore[no-untyped-def]
    broker = broker_factory(persistence=True)
    collector = Collector(broker, client_id="outage-collector", persistent=True)
    video = samples.write_video(tmp_path / "long.mp4", seconds=30, fps=10, size_wh=(320, 240))
    config = write_config(tmp_path / "agent", lite0_bundle, video, broker, source_lines="fps = 10",
                          tables="[publish]\nmetrics_interval_s = 2")
    agent = spawn_agent(config)
    try:
        assert collector.wait_for(lambda c: len(c.received("/results")) >= 20, timeout=30)
        broker.stop()
        time.sleep(10.5)
        broker.start()
        assert agent.wait(timeout=90) == 0, agent.stdout.read() if agent.stdout else ""
    finally:
        agent.kill()
    log = agent.stdout.read() if agent.stdout else ""  # its shutdown line says what it left in the outbox
    assert collector.wait_for(lambda c: len(c.received("/results")) >= 300, timeout=30), (
        f"{len(collector.received('/results'))} of 300 results arrived; the agent's log ends:\n{log[-2000:]}")
    seqs = sorted({b["seq"] for _, b, _ in collector.messages if "seq" in b})
    assert no_holes(seqs), f"missing: {sorted(set(range(1, seqs[-1] + 1)) - set(seqs))[:20]}"
    frame_ids = [b["frame"]["id"] for b in sorted(collector.received("/results"), key=lambda b: b["seq"])]
    assert frame_ids == sorted(frame_ids) and len(set(frame_ids)) == 300  # order restored by seq, none lost
    collector.close()


def test_sigkilled_agent_delivers_what_it_committed_after_restart(
    lite0_bundle: Path, clip: Path, tmp_path: Path, broker_factory
) -> None:  # type: ignore[no-untyped-def]
    broker = broker_factory(persistence=True)
    collector = Collector(broker, client_id="kill-collector", persistent=True)
    video = samples.write_video(tmp_path / "v.mp4", seconds=20, fps=10, size_wh=(320, 240))
    config = write_config(tmp_path / "agent", lite0_bundle, video, broker, source_lines="fps = 10")
    broker.stop()  # no broker: everything stays in the outbox, then the agent dies
    agent = spawn_agent(config)
    import sqlite3

    def committed_rows() -> int:
        try:
            with sqlite3.connect(tmp_path / "agent" / "outbox.db") as db:
                return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])
        except sqlite3.Error:  # not created yet
            return 0

    deadline = time.monotonic() + 60  # start-up takes seconds on a loaded machine: wait for the rows, not a time
    time.sleep(6)
    while committed_rows() <= 10 and time.monotonic() < deadline and agent.poll() is None:
        time.sleep(0.2)
    agent.send_signal(signal.SIGKILL)
    agent.wait()

    with sqlite3.connect(tmp_path / "agent" / "outbox.db") as db:
        committed = sorted(r[0] for r in db.execute("SELECT seq FROM messages"))
    assert len(committed) > 10
    broker.start()
    time.sleep(0.5)
    assert collector.wait_subscribed(15)  # the collector is back before the agent is
    restarted = spawn_agent(config, "--max-frames", "5")
    try:
        assert restarted.wait(timeout=60) == 0
    finally:
        restarted.kill()
    assert collector.wait_for(went_offline, timeout=20)  # everything the restart sent has arrived
    assert set(committed) <= {b["seq"] for _, b, _ in collector.messages if "seq" in b}
    seqs = sorted({b["seq"] for _, b, _ in collector.messages if "seq" in b})
    assert seqs[-1] > committed[-1]  # the second run continued the counter, never reused it
    collector.close()


def test_outbox_overflow_is_reported_as_a_gap_with_the_exact_range(
    lite0_bundle: Path, clip: Path, tmp_path: Path, broker_factory
) -> None:  # type: ignore[no-untyped-def]
    broker = broker_factory(persistence=True)
    collector = Collector(broker, client_id="gap-collector", persistent=True)
    config = write_config(tmp_path / "agent", lite0_bundle, clip, broker, outbox_lines="max_rows = 10")
    broker.stop()
    agent = Agent(load_config(config))
    agent.run(flush_timeout_s=0.5)  # 40 frames into an outbox of 10 rows, no broker
    left = agent.outbox.depth()
    broker.start()
    time.sleep(0.5)
    assert collector.wait_subscribed(15)
    restarted = spawn_agent(config, "--max-frames", "1")
    assert restarted.wait(timeout=60) == 0
    assert collector.wait_for(went_offline, timeout=20)  # everything the restart sent has arrived
    assert any(b.get("kind") == "gap" for b in collector.received("/events"))
    gaps = [b for b in collector.received("/events") if b.get("kind") == "gap"]
    received = {b["seq"] for _, b, _ in collector.messages if "seq" in b}
    lost = {s for g in gaps for s in range(g["first_seq"], g["last_seq"] + 1)} - received
    top = max(received)
    assert set(range(1, top + 1)) == received | lost  # every seq either arrived or was announced lost
    assert sum(g["count"] for g in gaps) == len(lost)  # the ranges' counts are exact
    assert left - len(gaps) <= 10  # gap events are pinned on top of max_rows
    collector.close()


def test_tampered_bundle_is_refused_with_the_reason(lite0_bundle: Path, clip: Path, broker: Broker,
                                                    tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(lite0_bundle, tmp_path / "bundle"))
    model = next(copy.glob("model.*.onnx"))
    model.write_bytes(model.read_bytes()[:-10] + b"0123456789")
    config = write_config(tmp_path / "agent", copy, clip, broker)
    result = subprocess.run([sys.executable, "-m", "device_agent.cli", "run", "--config", str(config)],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "bundle check 'file-sha256' failed" in result.stderr and model.name in result.stderr


def test_unreachable_rtsp_camera_reports_states_without_hanging(lite0_bundle: Path, broker: Broker,
                                                                tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    collector = Collector(broker)
    config = write_config(tmp_path, lite0_bundle, f"rtsp://127.0.0.1:{port}/stream", broker)
    agent = Agent(load_config(config))
    import threading

    threading.Timer(4.0, agent.stop_event.set).start()
    started = time.monotonic()
    assert agent.run() == 0
    assert time.monotonic() - started < 20
    assert collector.wait_for(went_offline, timeout=10)  # everything the agent sent has arrived
    camera = [b for b in collector.received("/events") if b.get("kind") == "camera"]
    assert collector.wait_for(lambda c: any(b.get("to") == "reconnecting" for b in c.received("/events")), timeout=5)
    attempts = [b["attempt"] for b in collector.received("/events") if b.get("to") == "reconnecting"]
    assert attempts[:2] == [1, 2] and camera
    collector.close()


def test_wrong_password_is_a_clear_error(lite0_bundle: Path, clip: Path, broker_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broker = broker_factory(users={"cam": "right"})
    config = write_config(tmp_path, lite0_bundle, clip, broker, mqtt_lines='username = "cam"\npassword = "wrong"')
    result = subprocess.run([sys.executable, "-m", "device_agent.cli", "run", "--config", str(config)],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "PublisherAuthError" in result.stderr and "cam" in result.stderr
    assert os.path.exists(tmp_path / "outbox.db")  # results stayed on disk, nothing was lost
