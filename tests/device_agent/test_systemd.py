"""sd_notify: a real AF_UNIX datagram socket stands in for systemd, and a real agent talks to it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from device_agent.service.agent import Agent
from device_agent.service.config import load_config
from device_agent.service.systemd import Notifier
from edgekit.optimize.pipeline import optimize
from tests.device_agent.test_agent import write_config
from tests.support.mqtt_broker import Broker
from tests.support.tinymodels import tiny_classifier


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory, photo_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    model = tiny_classifier(root / "tiny.onnx", size=32)
    return optimize(model, target="x86-cpu", output=root / "b", precision="fp32", calib=photo_dir).bundle


def _manager(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.5)
    return sock


def _drain(sock: socket.socket) -> list[str]:
    got = []
    while True:
        try:
            got.append(sock.recv(4096).decode())
        except TimeoutError:
            return got


def test_outside_systemd_nothing_is_sent() -> None:
    notifier = Notifier(environ={})
    assert not notifier.enabled and notifier.watchdog_s is None
    assert notifier.notify("READY=1") is False


def test_watchdog_is_fed_at_half_the_interval(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    manager = _manager(path)
    now = [100.0]
    notifier = Notifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}, clock=lambda: now[0])
    assert notifier.watchdog_s == 2.0
    for t in (100.0, 100.5, 100.9, 101.0, 101.5, 102.1):  # pings at 100.0, 101.0 and 102.1 only
        now[0] = t
        notifier.watchdog()
    notifier.ready("up")
    notifier.stopping()
    assert _drain(manager) == ["WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1", "READY=1\nSTATUS=up", "STOPPING=1"]


def test_abstract_socket_and_a_watchdog_meant_for_another_process() -> None:
    name = f"@edgekit-test-{os.getpid()}"
    manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    manager.bind("\0" + name[1:])
    manager.settimeout(0.5)
    notifier = Notifier(environ={"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert notifier.watchdog_s is None  # WATCHDOG_PID names another process
    assert notifier.notify("STATUS=x") and manager.recv(64) == b"STATUS=x"


def test_a_manager_that_went_away_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier(environ={"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert notifier.notify("READY=1") is False
    assert "sd_notify to" in caplog.text


def test_the_agent_reports_ready_feeds_the_watchdog_and_says_stopping(
        bundle_dir: Path, video_file: Path, broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "notify")
    manager = _manager(path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # 0.1 s: fed every 50 ms of the main loop
    agent = Agent(load_config(write_config(tmp_path / "agent", bundle_dir, video_file, broker)))
    assert agent.run(max_frames=40) == 0
    messages = _drain(manager)
    assert messages[0].startswith("READY=1\nSTATUS=running ")
    assert messages[-1] == "STOPPING=1"
    assert messages.count("WATCHDOG=1") >= 2 and set(messages[1:-1]) == {"WATCHDOG=1"}
