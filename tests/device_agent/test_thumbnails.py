"""Alert thumbnails: the byte cap is never exceeded, boxes land where they were, the rate limit says so, the
config names its keys, and the event keeps the contract (old messages still parse, the worst case fits a payload)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from device_agent.errors import ConfigError
from device_agent.pipeline.decoders.types import DecodeResult, Detection
from device_agent.pipeline.rules import Rule
from device_agent.pipeline.thumbnail import MIN_SIDE, encode_jpeg, scale_boxes
from device_agent.protocol import AlertEvent, Thumbnail, Topics, body_of, parse
from device_agent.protocol.commands import MAX_PAYLOAD_BYTES
from device_agent.protocol.events import MAX_THUMBNAIL_BOXES, MAX_THUMBNAIL_BYTES
from device_agent.protocol.schema import schema_files
from device_agent.service.config import RuleConfig, ThumbnailsConfig, load_config
from device_agent.service.thumbnails import Thumbnails
from tests.device_agent.test_agent_config import MINIMAL
from tests.support.protocol_samples import message

RAISED = AlertEvent(rule="door", label="person", state="raised", score=0.9, frames=1, source="cam", frame_id=7)


def _noise(h: int = 480, w: int = 640, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _decoded(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_a_noisy_frame_steps_down_quality_then_size_and_never_exceeds_the_cap() -> None:
    jpeg = encode_jpeg(_noise(), max_side=320, max_bytes=6000, quality=90)
    assert jpeg is not None and len(jpeg.data) <= 6000
    assert jpeg.attempts >= 3 and jpeg.quality == 30  # quality went to the floor before the image shrank
    assert max(jpeg.width, jpeg.height) < 320 and abs(jpeg.width / jpeg.height - 640 / 480) < 0.05
    assert _decoded(jpeg.data).shape == (jpeg.height, jpeg.width, 3)


@pytest.mark.parametrize("cap", [1500, 4000, 12_000, 24_000, MAX_THUMBNAIL_BYTES])
def test_the_cap_holds_for_every_size(cap: int) -> None:
    for seed in range(3):
        jpeg = encode_jpeg(_noise(seed=seed), max_side=640, max_bytes=cap, quality=100)
        assert jpeg is None or len(jpeg.data) <= cap
        if jpeg is not None:
            assert _decoded(jpeg.data).shape[:2] == (jpeg.height, jpeg.width)


def test_a_quiet_frame_fits_at_once_and_is_never_enlarged() -> None:
    frame = np.full((120, 160, 3), 90, np.uint8)
    jpeg = encode_jpeg(frame, max_side=320, max_bytes=24_000, quality=80)
    assert jpeg is not None and (jpeg.width, jpeg.height, jpeg.quality, jpeg.attempts) == (160, 120, 80, 1)


def test_no_jpeg_when_even_the_smallest_does_not_fit() -> None:
    assert encode_jpeg(_noise(), max_side=320, max_bytes=200, quality=80) is None  # the JPEG header alone is more
    assert MIN_SIDE == 32


def test_boxes_are_scaled_from_frame_to_thumbnail_pixels_and_clipped() -> None:
    boxes = scale_boxes([Detection(0, "person", 0.91234, (64.0, 48.0, 320.0, 240.0)),
                         Detection(1, "car", 0.5, (-20.0, 400.0, 700.0, 500.0))],
                        frame_wh=(640, 480), thumb_wh=(320, 240))
    assert [(b.label, b.score, b.box_xyxy) for b in boxes] == [
        ("person", 0.9123, (32.0, 24.0, 160.0, 120.0)), ("car", 0.5, (0.0, 200.0, 320.0, 240.0))]


def test_a_raised_alert_carries_the_frame_and_its_matching_boxes() -> None:
    rule = Rule(RuleConfig(name="door", label="person", zone=[(0, 0), (320, 0), (320, 480), (0, 480)]))
    inside, outside = Detection(0, "person", 0.8, (100.0, 100.0, 200.0, 300.0)), \
        Detection(0, "person", 0.9, (400.0, 100.0, 500.0, 300.0))
    event = rule.update(DecodeResult("yolov8", "detection", detections=(inside, outside)), source="cam", frame_id=3)
    assert event is not None and rule.matched == (inside,)
    frame = np.zeros((480, 640, 3), np.uint8)
    cv2.rectangle(frame, (100, 100), (200, 300), (255, 255, 255), -1)
    thumbs = Thumbnails(ThumbnailsConfig(enabled=True, max_side=320))
    sent = thumbs.attach(event, frame, rule.matched)
    thumb = sent.thumbnail
    assert thumb is not None and sent.thumbnail_skipped is None
    assert (thumb.media_type, thumb.width, thumb.height) == ("image/jpeg", 320, 240)
    assert [(b.label, b.score, b.box) for b in thumb.boxes] == [("person", 0.8, [50.0, 50.0, 100.0, 150.0])]
    image = _decoded(base64.b64decode(thumb.data, validate=True))
    assert image.shape == (240, 320, 3) and image[100, 75].mean() > 200 and image[100, 200].mean() < 50
    body = body_of(sent)
    assert set(body["thumbnail"]) == {"media_type", "width", "height", "data", "boxes"}
    assert body["thumbnail"]["boxes"] == [{"label": "person", "score": 0.8, "box": [50.0, 50.0, 100.0, 150.0]}]
    assert "thumbnail_skipped" not in body


def test_boxes_are_capped_at_the_best_scoring_ones() -> None:
    many = [Detection(0, "person", i / 100, (float(i), 0.0, float(i) + 10, 10.0)) for i in range(50)]
    thumb = Thumbnails(ThumbnailsConfig(enabled=True)).make(np.zeros((480, 640, 3), np.uint8), many)
    assert thumb is not None and len(thumb.boxes) == MAX_THUMBNAIL_BOXES
    assert thumb.boxes[0].score == 0.49 and min(b.score for b in thumb.boxes) == 0.3


def test_the_rate_limit_is_per_device_and_said_on_the_event() -> None:
    now = [100.0]
    thumbs = Thumbnails(ThumbnailsConfig(enabled=True, min_interval_s=10), clock=lambda: now[0])
    frame = np.zeros((48, 64, 3), np.uint8)
    other = RAISED.model_copy(update={"rule": "yard"})
    assert thumbs.attach(RAISED, frame, ()).thumbnail is not None
    now[0] = 105.0
    skipped = thumbs.attach(other, frame, ())  # another rule: the limit is the device's, not the rule's
    assert skipped.thumbnail is None and skipped.thumbnail_skipped == "rate_limited"
    assert body_of(skipped)["thumbnail_skipped"] == "rate_limited"
    cleared = AlertEvent(rule="door", label="person", state="cleared", source="cam", frame_id=9)
    assert thumbs.attach(cleared, frame, ()) == cleared  # a cleared alert has neither
    now[0] = 110.0
    assert thumbs.attach(RAISED, frame, ()).thumbnail is not None
    assert (thumbs.sent, dict(thumbs.skipped)) == (2, {"rate_limited": 1})


def test_a_frame_that_fits_no_jpeg_or_cannot_be_encoded_says_why() -> None:
    # under the config's 1000-byte floor (a JPEG's header alone is ~600 bytes): built around the validation
    tight = Thumbnails(ThumbnailsConfig.model_construct(enabled=True, max_side=64, max_bytes=800, quality=100,
                                                        min_interval_s=0))
    assert tight.attach(RAISED, _noise(24, 32), ()).thumbnail_skipped == "too_large"  # 864 bytes at quality 30
    assert tight.attach(RAISED, np.zeros((24, 32, 3), np.float32), ()).thumbnail_skipped == "encode_failed"
    assert tight.attach(RAISED, np.zeros((24, 32, 3), np.uint8), ()).thumbnail is not None  # neither counts
    assert (tight.sent, dict(tight.skipped)) == (1, {"too_large": 1, "encode_failed": 1})


@pytest.mark.parametrize(("table", "message"), [
    ("max_bytes = 60000", r"key 'thumbnails.max_bytes': Input should be less than or equal to 45000 \(got 60000\)"),
    ("max_bytes = 10", r"key 'thumbnails.max_bytes': Input should be greater than or equal to 1000"),
    ("quality = 0", r"key 'thumbnails.quality': Input should be greater than or equal to 1"),
    ("quality = 101", r"key 'thumbnails.quality': Input should be less than or equal to 100"),
    ("max_side = 8", r"key 'thumbnails.max_side': Input should be greater than or equal to 64"),
    ("min_interval_s = -1", r"key 'thumbnails.min_interval_s': Input should be greater than or equal to 0"),
    ("enabled = 'yes please'", r"key 'thumbnails.enabled': Input should be a valid boolean"),
    ("max_kb = 20", r"key 'thumbnails.max_kb': Extra inputs are not permitted"),
])
def test_config_mistakes_name_the_key(tmp_path: Path, table: str, message: str) -> None:
    file = tmp_path / "agent.toml"
    enabled = "" if table.startswith("enabled") else "enabled = true\n"
    file.write_text(MINIMAL + f"\n[thumbnails]\n{enabled}{table}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(file)


def test_thumbnails_are_off_unless_asked_for(tmp_path: Path) -> None:
    file = tmp_path / "agent.toml"
    file.write_text(MINIMAL)
    assert load_config(file).thumbnails == ThumbnailsConfig(enabled=False, max_side=320, max_bytes=24_000,
                                                             quality=80, min_interval_s=10.0)
    file.write_text(MINIMAL + "\n[thumbnails]\nenabled = true\nmax_bytes = 8000\n")
    assert load_config(file).thumbnails.max_bytes == 8000


def test_old_alerts_parse_and_new_ones_round_trip() -> None:
    topic = Topics("cam-01").events
    old = parse(topic, json.dumps(message("events", 3, kind="alert")).encode()).message
    assert isinstance(old, AlertEvent) and old.thumbnail is None and old.thumbnail_skipped is None
    thumb = Thumbnails(ThumbnailsConfig(enabled=True)).make(_noise(), [Detection(0, "cat", 0.9, (0, 0, 64, 48))])
    assert thumb is not None
    body = body_of(RAISED.model_copy(update={"thumbnail": thumb}))
    got = parse(topic, json.dumps({**body, "v": 1, "device": "cam-01", "seq": 4, "boot": "b", "ts": 1.0}).encode())
    assert isinstance(got.message, AlertEvent) and got.message.thumbnail == thumb
    assert isinstance(got.message.thumbnail, Thumbnail)


def test_the_largest_thumbnail_event_fits_the_payload_limit() -> None:
    boxes = [{"label": "a-rather-long-class-label-" + str(i), "score": 0.123456789,
              "box": [1234.5, 1234.5, 1234.5, 1234.5]} for i in range(MAX_THUMBNAIL_BOXES)]
    thumb = Thumbnail.model_validate({"width": 1920, "height": 1080, "boxes": boxes,
                                      "data": base64.b64encode(b"\xff" * MAX_THUMBNAIL_BYTES).decode()})
    event = RAISED.model_copy(update={"thumbnail": thumb, "rule": "r" * 64, "label": "l" * 64, "source": "s" * 64})
    envelope = {"v": 1, "device": "d" * 64, "seq": 2**53, "boot": "b" * 36, "ts": 1.7e9}
    assert len(json.dumps({**body_of(event), **envelope}).encode()) < MAX_PAYLOAD_BYTES


def test_the_schema_describes_the_thumbnail_the_dashboard_renders() -> None:
    defs = schema_files()["events.json"]["$defs"]
    assert set(defs["Thumbnail"]["properties"]) == {"media_type", "width", "height", "data", "boxes"}
    assert set(defs["ThumbnailBox"]["properties"]) == {"label", "score", "box"}
    assert defs["Thumbnail"]["properties"]["media_type"]["const"] == "image/jpeg"
