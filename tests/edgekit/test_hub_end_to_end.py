"""The hub end to end, as a user runs it: real agents on real videos publish through a real Mosquitto to
``edgekit hub`` (its own process, SQLite), and everything is seen through its HTTP side: the devices with
their model, every result once, a drift alert for the camera whose video went dark and none for the one
still showing the calibration scene, the dashboard naming both, ``/metrics`` with the drift scores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.device_agent.test_drift_agent import _darker, _run, bundle, clip  # noqa: F401  (fixtures)
from tests.support.mqtt_broker import Broker, broker, free_port, wait_until  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]


def _get(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=10) as response:
        body = response.read()
        return json.loads(body) if response.headers.get_content_type() == "application/json" else body.decode()


def test_agents_to_hub_to_dashboard_with_a_drift_alert_for_the_dark_camera_only(
        bundle: Path, clip: Path, broker: Broker, tmp_path: Path) -> None:  # noqa: F811
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "hub.log"
    with log.open("w") as out:
        hub = subprocess.Popen([sys.executable, "-m", "edgekit.cli.main", "hub", "--broker",
                                f"{broker.host}:{broker.port}", "--db", str(tmp_path / "hub.db"), "--http",
                                f"127.0.0.1:{port}", "--client-id", "e2e-hub", "--offline-after", "1h"],
                               stdout=out, stderr=out, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert wait_until(lambda: "subscribed at " in log.read_text(), 60), log.read_text()
        for name, video in (("same", clip), ("dark", _darker(clip, tmp_path / "dark.mp4"))):
            (tmp_path / name).mkdir()
            _run(tmp_path / name, bundle, video, broker, f"cam-{name}")

        def drift_alerts(device: str) -> list[dict[str, Any]]:
            return [a for a in _get(base, f"/api/alerts?device={device}&kind=drift")["alerts"]
                    if a["state"] == "raised"]

        assert wait_until(lambda: drift_alerts("cam-dark"), 30), (_get(base, "/api/alerts"), log.read_text())
        assert wait_until(lambda: {d["id"]: d["online"] for d in _get(base, "/api/devices")}
                          == {"cam-dark": False, "cam-same": False}, 30), _get(base, "/api/devices")
        assert drift_alerts("cam-same") == []
        assert any(a["detail"].get("signal") == "brightness" for a in drift_alerts("cam-dark"))

        devices = {d["id"]: d for d in _get(base, "/api/devices")}
        name = json.loads((bundle / "manifest.json").read_text())["name"]
        assert {d["model"]["name"] for d in devices.values()} == {name}
        stats = _get(base, "/api/stats")
        assert stats["missing"] == 0 and stats["results_stored"] >= 2 * 600, stats
        rows = _get(base, "/api/results?device=cam-same&limit=5")["results"]
        assert len(rows) == 5 and all(isinstance(r["seq"], int) for r in rows)

        page = _get(base, "/")
        assert "cam-same" in page and "cam-dark" in page
        families = {f.name: f for f in text_string_to_metric_families(_get(base, "/metrics"))}
        scores = {(s.labels["device"], s.labels["signal"]): s.value
                  for s in families["edgekit_device_drift_score"].samples}
        assert scores[("cam-dark", "brightness")] >= 0.25 > scores[("cam-same", "brightness")]
    finally:
        hub.send_signal(signal.SIGTERM)
        assert hub.wait(60) == 0, log.read_text()
