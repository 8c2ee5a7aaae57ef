"""Valid sample messages of the MQTT contract, built through its models, for tests that need whole messages.

A test that cares about a few fields gives only those; :func:`message` fills in the rest
with values that pass :func:`device_agent.protocol.parse`, so the test reads as before and
the message is one a real device could send.
"""

from __future__ import annotations

import json
from typing import Any

from device_agent.protocol import (
    AlertEvent,
    ClassScore,
    Decoded,
    FrameRef,
    GapEvent,
    LinkStats,
    Metrics,
    ModelRef,
    Result,
    SourceStats,
    StageLatency,
    Status,
    body_of,
)

MODEL = ModelRef(name="tiny", version="1", precision="fp32")
STAGE = StageLatency(p50=1.0, p90=2.0, p95=2.5, p99=3.0)


def _link() -> LinkStats:
    return LinkStats(connected=True, state="up", since=1.7e9, cause=None, last_error=None, last_error_ts=None,
                     reconnects=0, connect_failures=0, disconnects=0, refused={}, commands_busy=0, commands_dropped=0)


def _bodies() -> dict[str, dict[str, Any]]:
    result = Result(frame=FrameRef(id=1, source="cam", ts=1.7e9, size_wh=[320, 240]), model=MODEL,
                    result=Decoded(decoder="softmax-topk", kind="classification", detections=[], raw=[],
                                   classifications=[ClassScore(class_id=0, label="cat", score=0.9)]),
                    latency_ms={"infer": 1.0})
    metrics = Metrics(fps=10.0, frames=10, dropped_frames=0, results=10, suppressed=0, latency_ms={"infer": STAGE},
                      outbox_depth=0, cpu_percent=5.0, rss_mb=100.0, temperature_c=None, mqtt=_link(),
                      sources={"cam": SourceStats(state="streaming", frames_read=10, frames_dropped=0, reconnects=0,
                                                  last_frame_age_s=0.1)})
    return {
        "results": body_of(result), "metrics": body_of(metrics),
        "gap": body_of(GapEvent(first_seq=1, last_seq=1, count=1, ranges=[[1, 1]], reason="overflow")),
        "alert": body_of(AlertEvent(rule="r", label="cat", state="raised", score=0.9, frames=3, source="cam",
                                    frame_id=1)),
    }


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def message(topic_kind: str, seq: int, *, device: str = "cam-01", **fields: Any) -> dict[str, Any]:
    """A whole message of ``topic_kind`` (an event's kind from ``fields["kind"]``) with ``fields`` merged in."""
    sample = _bodies()[fields.get("kind", topic_kind)]
    if "kind" in fields and fields["kind"] == "gap" and "ranges" not in fields:
        fields = {**fields, "ranges": [[fields.get("first_seq", 1), fields.get("last_seq", 1)]]}
    envelope = {"v": 1, "device": device, "seq": seq, "boot": "boot-1", "ts": 1.7e9}
    return {**_merge(sample, fields), **envelope}


def status(*, device: str = "cam-01", **fields: Any) -> bytes:
    """A retained status payload with ``fields`` merged in."""
    body = body_of(Status(device=device, state="online", ts=1.7e9, agent="0.1.0", model=MODEL))
    return json.dumps(_merge(body, fields)).encode()
