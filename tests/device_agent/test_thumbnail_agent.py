"""Alert thumbnails end to end: a real agent on a real 640x480 video and a real Mosquitto sends a raised alert with
a JPEG that decodes, fits the byte cap and is as large as it says; the alerts after it within the interval say
they were rate-limited."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from device_agent.protocol import AlertEvent, Topics, parse
from device_agent.service.agent import Agent
from device_agent.service.config import load_config
from edgekit.content import samples
from edgekit.optimize.pipeline import optimize
from tests.support.agent_config import seen_rules, write_agent_config
from tests.support.mqtt_broker import Broker, Collector, broker  # noqa: F401  (fixture)
from tests.support.tinymodels import tiny_classifier

DEVICE = "cam-thumbs"
MAX_BYTES = 6000
"""Under what the sample scene takes at quality 80 and 320 px (~13 kB): the quality steps are exercised too."""


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return samples.write_video(tmp_path_factory.mktemp("thumb-clip") / "clip.mp4", seconds=2, fps=10,
                               size_wh=(640, 480))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, clip: Path) -> Path:
    root = tmp_path_factory.mktemp("thumb-bundle")
    model = tiny_classifier(root / "tiny.onnx")
    return optimize(model, target="x86-cpu", output=root / "b", precision="fp32", calib=clip, max_drop=100).bundle


def _config(folder: Path, bundle: Path, video: Path, b: Broker) -> Path:
    return write_agent_config(folder, device=DEVICE, bundle=bundle, video=video, broker=b, extra=f"""[thumbnails]
enabled = true
max_side = 320
max_bytes = {MAX_BYTES}
min_interval_s = 600

{seen_rules()}""")


def test_a_raised_alert_arrives_with_a_decodable_jpeg_within_the_cap(
        bundle: Path, clip: Path, broker: Broker, tmp_path: Path) -> None:  # noqa: F811
    collector = Collector(broker, client_id="thumbs-collector")
    agent = Agent(load_config(_config(tmp_path, bundle, clip, broker)))
    runner = threading.Thread(target=agent.run, kwargs={"flush_timeout_s": 10.0}, daemon=True)
    runner.start()
    runner.join(120)
    assert not runner.is_alive()
    assert collector.wait_for(lambda c: any(m.get("state") == "offline" for m in c.received("/status")), 15)
    collector.close()

    topic = Topics(DEVICE).events
    raised = []
    for where, body, _ in collector.messages:
        if where == topic and body["kind"] == "alert":
            event = parse(where, json.dumps(body).encode()).message  # the contract holds, thumbnail included
            assert isinstance(event, AlertEvent)
            if event.state == "raised":
                raised.append(event)
            else:
                assert event.thumbnail is None and event.thumbnail_skipped is None
    with_thumbnail = [e for e in raised if e.thumbnail is not None]
    assert len(with_thumbnail) == 1, raised  # one per min_interval_s per device
    assert len(raised) >= 2 and all(e.thumbnail_skipped == "rate_limited" for e in raised if e.thumbnail is None)

    thumb = with_thumbnail[0].thumbnail
    assert thumb is not None and thumb.media_type == "image/jpeg" and thumb.boxes == []  # a classifier: no boxes
    jpeg = base64.b64decode(thumb.data, validate=True)
    assert jpeg[:2] == b"\xff\xd8" and len(jpeg) <= MAX_BYTES
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (thumb.height, thumb.width, 3)
    assert max(thumb.width, thumb.height) <= 320 and abs(thumb.width / thumb.height - 640 / 480) < 0.05
    assert agent.thumbnails is not None and agent.thumbnails.sent == 1
