"""What the agent's log tells a person reading the journal: start-up, summaries, shutdown, each event once."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from device_agent.service.logs import JsonFormatter, Totals, shutdown_line, summary_line
from edgekit.content import samples
from edgekit.optimize.pipeline import optimize
from tests.support.mqtt_broker import Broker
from tests.support.tinymodels import tiny_classifier


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory, photo_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("logs-bundle")
    model = tiny_classifier(root / "tiny.onnx")
    return optimize(model, target="x86-cpu", output=root / "b", precision="fp32", calib=photo_dir, max_drop=100).bundle


def _config(folder: Path, bundle: Path, video: Path, broker: Broker, log_table: str) -> Path:
    path = folder / "agent.toml"
    path.write_text(f"""device_id = "cam-logs"
bundle = "{bundle}"

[[sources]]
uri = "{video}"
fps = 10

[mqtt]
host = "{broker.host}"
port = {broker.port}

[outbox]
path = "{folder / 'outbox.db'}"

[log]
{log_table}
""")
    return path


def _run(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "device_agent.cli", "run", "--config", str(config), *extra],
                          check=False, capture_output=True, text=True, timeout=120)


def test_the_log_says_what_starts_how_it_runs_and_why_it_stopped(tiny_bundle: Path, broker: Broker,
                                                                  tmp_path: Path) -> None:
    video = samples.write_video(tmp_path / "clip.mp4", seconds=3, fps=10, size_wh=(160, 120))
    config = _config(tmp_path, tiny_bundle, video, broker, "summary_interval_s = 0.5")
    result = _run(config, "--log-format", "json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]  # every line is one JSON object
    assert all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    messages = [line["msg"] for line in lines]
    startup = [m for m in messages if "starting:" in m]
    assert len(startup) == 1
    assert "bundle tiny" in startup[0] and "(fp32)" in startup[0] and "CPUExecutionProvider" in startup[0]
    assert str(video) in startup[0] and f"{broker.host}:{broker.port}" in startup[0]
    summaries = [m for m in messages if m.startswith("summary:")]
    assert len(summaries) >= 2, messages  # 3 s of video, one every 0.5 s
    assert all("fps" in m and "p95" in m and "outbox" in m and "broker" in m for m in summaries)
    assert any("broker connected" in m for m in summaries)
    shutdown = [m for m in messages if m.startswith("edgekit-agent stopped")]
    assert len(shutdown) == 1 and "every source has ended" in shutdown[0] and "30 frames" in shutdown[0]
    # A source's state change is logged once (by the source), not again by the agent that publishes it.
    streaming = [m for m in messages if "STARTING -> STREAMING" in m]
    assert len(streaming) == 1, streaming


def test_log_format_in_the_config_is_used_and_validated(tiny_bundle: Path, broker: Broker, tmp_path: Path) -> None:
    video = samples.write_video(tmp_path / "clip.mp4", seconds=1, fps=10, size_wh=(160, 120))
    result = _run(_config(tmp_path, tiny_bundle, video, broker, 'format = "json"'))
    assert result.returncode == 0, result.stderr
    assert all(json.loads(line)["msg"] for line in result.stderr.splitlines())
    bad = _run(_config(tmp_path, tiny_bundle, video, broker, 'format = "xml"'))
    assert bad.returncode == 2 and "log.format" in bad.stderr and "Traceback" not in bad.stderr


def test_summary_and_shutdown_lines_read_well() -> None:
    line = summary_line(previous=Totals(at_s=100.0, frames=0, published=0),
                        now=Totals(at_s=160.0, frames=600, published=590),
                        latency_ms={"p50": 12.34, "p95": 20.0}, outbox_depth=3, link="connected")
    assert line == ("summary: 10.0 fps, infer p50 12.3 ms p95 20.0 ms, 590 published in 60 s (590 total), "
                    "outbox 3, broker connected")
    assert "infer p50 - ms" in summary_line(previous=Totals(at_s=0.0), now=Totals(at_s=1.0), latency_ms={},
                                            outbox_depth=0, link="connecting")
    down = shutdown_line(reason="SIGTERM", started_s=0.0, now=Totals(at_s=90061.0, frames=5, published=4),
                         outbox_left=2)
    assert down == ("edgekit-agent stopped (SIGTERM) after 1d 01:01:01: 5 frames, 4 results published; "
                    "2 message(s) stay in the outbox for the next start")


def test_json_formatter_survives_odd_arguments() -> None:
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "value %s", (b"\xff\x00",), None)
    assert json.loads(JsonFormatter().format(record))["msg"] == "value b'\\xff\\x00'"
