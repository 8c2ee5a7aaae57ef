"""``edgekit hub``: usage errors name the flag and the value and exit 2; durations; SIGTERM stops it cleanly;
the shipped systemd unit passes ``systemd-analyze verify``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from edgekit.cli import main as edgekit_cli
from edgekit.errors import UsageError
from edgekit.fleet.hub.durations import parse_duration, parse_listen
from tests.support.mqtt_broker import Broker, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy/systemd/edgekit-hub.service"


@pytest.mark.parametrize(("argv", "message"), [
    (["--broker", "localhost"], "--broker 'localhost': expected HOST:PORT"),
    (["--broker", "a:1883,b"], "--broker 'a:1883,b': --broker 'b': expected HOST:PORT"),
    (["--broker", "a:1883,"], "--broker 'a:1883,': expected HOST:PORT[,HOST:PORT...]"),
    (["--broker", "a:1883", "--keep-results", "30"], "--keep-results '30': expected a positive duration"),
    (["--broker", "a:1883", "--keep-events", "3 weeks"], "--keep-events '3 weeks': expected a positive duration"),
    (["--broker", "a:1883", "--session-expiry", "0s"], "--session-expiry '0s': expected a positive duration"),
    (["--broker", "a:1883", "--http", "8080"], "--http '8080': expected HOST:PORT"),
    (["--broker", "a:1883", "--db", "mysql://x/y"], "store URL 'mysql://x/y' has an unknown scheme"),
    (["--broker", "a:1883", "--receive-maximum", "0"], "--receive-maximum 0: expected a number from 1 to 65535"),
])
def test_usage_errors_exit_2_naming_the_flag_and_value(argv: list[str], message: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert edgekit_cli.main(["hub", *argv]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"UsageError: {message}" in err
    assert not (tmp_path / "edgekit-hub.db").exists()  # refused before anything was opened


def test_durations_and_listen_addresses() -> None:
    assert parse_duration("--keep-results", "30d") == timedelta(days=30)
    assert parse_duration("--x", "12h") == timedelta(hours=12)
    assert parse_duration("--x", "90m") == timedelta(minutes=90)
    assert parse_duration("--x", "3600s") == timedelta(hours=1)
    assert parse_duration("--x", "1.5H") == timedelta(minutes=90)
    with pytest.raises(UsageError, match=r"--keep-metrics '-1d'"):
        parse_duration("--keep-metrics", "-1d")
    assert parse_listen("--http", "0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert parse_listen("--http", "[::1]:80") == ("::1", 80)
    assert parse_listen("--http", "off") is None


def test_the_help_says_the_defaults_and_what_the_broker_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # no hyphenated name broken across lines
    hub = next(p for p in edgekit_cli.build_parser()._subparsers._group_actions[0].choices.values()  # type: ignore[union-attr]
               if p.prog.endswith(" hub"))
    text = " ".join(hub.format_help().split())
    assert "default: 127.0.0.1:8080" in text and "sqlite:///edgekit-hub.db" in text
    assert "max_queued_messages" in text and "persistence true" in text


def test_the_command_serves_logs_and_stops_cleanly_on_sigterm(broker: Broker, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "hub.log"
    with log.open("w") as out:
        argv = ["hub", "--broker", f"{broker.host}:{broker.port}", "--http", f"127.0.0.1:{port}",
                "--keep-results", "30d"]
        proc = subprocess.Popen([sys.executable, "-m", "edgekit.cli.main", *argv],
                                stdout=out, stderr=out, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert wait_until(lambda: "connected to the broker" in log.read_text(), 60), log.read_text()
        text = log.read_text()
        assert f"broker {broker.host}:{broker.port} (client id edgekit-hub" in text
        assert f"store sqlite:///edgekit-hub.db, http http://127.0.0.1:{port}/" in text
        body: list[bytes] = []
        assert wait_until(lambda: body.append(_get(f"http://127.0.0.1:{port}/api/stats")) or body[-1] != b"", 30)
        assert b'"results_stored":0' in body[-1].replace(b" ", b"")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "hub stopped:" in log.read_text() and (tmp_path / "edgekit-hub.db").is_file()


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return bytes(response.read())
    except OSError:  # not listening yet
        return b""


def test_an_unreachable_broker_is_a_warning_and_the_hub_keeps_trying(tmp_path: Path) -> None:
    log = tmp_path / "hub.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "edgekit.cli.main", "hub", "--broker",
                                 f"127.0.0.1:{free_port()}", "--http", "off"], stdout=out, stderr=out, cwd=tmp_path,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert wait_until(lambda: "is unreachable (ConnectionRefusedError" in log.read_text(), 60), log.read_text()
        assert proc.poll() is None and "WARNING" in log.read_text()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_hub_unit(tmp_path: Path) -> None:
    root = tmp_path / "root"
    units = root / "usr/lib/systemd/system"
    units.mkdir(parents=True)
    for target in Path("/usr/lib/systemd/system").glob("*.target"):  # the base units an OS image has
        shutil.copy(target, units / target.name)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system" / UNIT.name)
    program = root / "opt/edgekit-hub/bin/edgekit"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={root}", UNIT.name], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert "edgekit-hub" not in proc.stderr  # no warning about our unit either
    text = UNIT.read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "ExecStart=/opt/edgekit-hub/bin/edgekit hub " in text
