"""Drift end to end: optimize writes drift.json from a real video; a real agent on a real Mosquitto
raises no drift alert on that video, and raises one on a much darker copy of it within the window."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from device_agent.bundle.verify import read_bundle
from device_agent.protocol import Topics, parse
from device_agent.service.agent import Agent
from device_agent.service.config import load_config
from edgekit.content import samples
from edgekit.optimize.pipeline import optimize
from tests.support.agent_config import write_agent_config
from tests.support.mqtt_broker import Broker, Collector, broker  # noqa: F401  (fixture)
from tests.support.tinymodels import tiny_classifier

WINDOW = 200
"""The clip's frames: a window of the looping clip then holds every shot once, as the baseline does. A verdict
on fewer frames judges part of the scene against all of it: half the clip scores PSI 0.4-1.5 (alert) on every
signal against its own baseline, the whole clip 0.0. min_frames must span the scene's own variety."""
FRAMES = 3 * WINDOW


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return samples.write_video(tmp_path_factory.mktemp("drift-clip") / "clip.mp4", seconds=20, fps=10,
                               size_wh=(320, 240))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, clip: Path) -> Path:
    root = tmp_path_factory.mktemp("drift-bundle")
    model = tiny_classifier(root / "tiny.onnx")
    return optimize(model, target="x86-cpu", output=root / "b", precision="fp32", calib=clip, max_drop=100).bundle


def _darker(src: Path, dst: Path, gain: float = 0.25) -> Path:
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS)
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        writer.write(np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8))
    cap.release()
    writer.release()
    return dst


def _run(folder: Path, bundle: Path, video: Path, b: Broker, device: str) -> tuple[list[dict], list[dict]]:
    config = write_agent_config(folder, device=device, bundle=bundle, video=video, broker=b, source="loop = true\n",
                                extra=f"[publish]\nmetrics_interval_s = 0.5\n\n[drift]\nwindow = {WINDOW}\n"
                                f"min_frames = {WINDOW}\n")
    collector = Collector(b, client_id=f"drift-{device}")
    agent = Agent(load_config(config))
    runner = threading.Thread(target=agent.run, kwargs={"max_frames": FRAMES, "flush_timeout_s": 10.0}, daemon=True)
    runner.start()
    runner.join(180)
    assert not runner.is_alive()
    topics = Topics(device)
    assert collector.wait_for(lambda c: any(m.get("state") == "offline" for m in c.received("/status")), 15)
    for topic, body, _ in collector.messages:  # everything it said keeps the contract
        if topic in (topics.events, topics.metrics):
            parse(topic, json.dumps(body).encode())
    collector.close()
    events = [e for e in collector.received("/events") if e["kind"] == "drift"]
    return events, collector.received("/metrics")


def test_the_bundle_carries_a_drift_baseline_of_the_calibration_video(bundle: Path) -> None:
    drift = read_bundle(bundle).drift
    assert drift is not None and drift.frames >= 100
    assert {"brightness", "contrast", "blur", "top1_confidence"} <= set(drift.signals) and drift.classes is not None


def test_no_drift_alert_on_the_calibration_video_and_an_alert_on_a_darker_one(
        bundle: Path, clip: Path, broker: Broker, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "same").mkdir()
    events, metrics = _run(tmp_path / "same", bundle, clip, broker, "cam-same")
    assert [e for e in events if e["state"] == "alert"] == [], events
    last = metrics[-1]["drift"]
    assert last["brightness"]["state"] != "alert" and sum(last["brightness"]["counts"]) == WINDOW
    assert last["brightness"]["score"] < 0.1, {k: v["score"] for k, v in last.items()}

    (tmp_path / "dark").mkdir()
    dark = _darker(clip, tmp_path / "dark.mp4")
    events, _ = _run(tmp_path / "dark", bundle, dark, broker, "cam-dark")
    alerts = {e["signal"]: e for e in events if e["state"] == "alert"}
    assert "brightness" in alerts, events
    first = alerts["brightness"]
    assert first["previous"] == "ok" and first["score"] >= 0.25 and first["window"] <= WINDOW
    assert sum(1 for e in events if e["signal"] == "brightness" and e["state"] == "alert") == 1  # announced once
