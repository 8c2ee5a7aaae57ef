"""``edgekit monitor``: a live view of the devices on a broker.

Every message a device publishes carries ``(device, seq)``. The monitor drops duplicates
(an outbox resends what was in flight when a connection dropped), and reports gaps: a
``seq`` that jumps means messages were lost, unless the device itself announced the range
in a ``gap`` event (its outbox overflowed).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from edgekit.errors import EdgeKitError, UsageError

TOPIC_ROOT = "edgekit/v1"


@dataclass
class DeviceView:
    device: str
    online: bool | None = None
    model: str = "-"
    fps: float | None = None
    infer_p50_ms: float | None = None
    outbox_depth: int | None = None
    last_alert: str = "-"
    results: int = 0
    duplicates: int = 0
    missing: int = 0
    last_seen: float = 0.0
    seen: set[int] = field(default_factory=set, repr=False)
    max_seq: int = 0
    announced: set[int] = field(default_factory=set, repr=False)


class MonitorState:
    """Folds messages into per-device views; pure logic, no network (tested on its own)."""

    def __init__(self) -> None:
        self.devices: dict[str, DeviceView] = {}

    def handle(self, topic: str, payload: bytes) -> dict[str, Any] | None:
        """Apply one message; return the decoded record, or None for a duplicate or a foreign message."""
        parts = topic.split("/")
        if len(parts) < 4 or "/".join(parts[:2]) != TOPIC_ROOT:
            return None
        device, kind = parts[2], parts[3]
        try:
            body = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        view = self.devices.setdefault(device, DeviceView(device))
        view.last_seen = time.time()
        if kind == "status":
            view.online = body.get("state") == "online"
            model = body.get("model") or {}
            if model:
                view.model = f"{model.get('name', '?')} v{model.get('version', '?')} {model.get('precision', '')}".strip()
            return {"device": device, "kind": kind, **body}
        seq = body.get("seq")
        if isinstance(seq, int):
            if seq in view.seen:
                view.duplicates += 1
                return None
            view.seen.add(seq)
            view.max_seq = max(view.max_seq, seq)
        if kind == "results":
            view.results += 1
        elif kind == "metrics":
            view.fps = body.get("fps")
            view.infer_p50_ms = (body.get("latency_ms") or {}).get("infer", {}).get("p50")
            view.outbox_depth = body.get("outbox_depth")
        elif kind == "events" and body.get("kind") == "alert" and body.get("state") == "raised":
            view.last_alert = f"{body.get('rule')} ({body.get('label')} {body.get('score', 0):.2f})"
        elif kind == "events" and body.get("kind") == "gap":
            view.announced.update(range(int(body["first_seq"]), int(body["last_seq"]) + 1))
        view.missing = self.missing(view)
        return {"device": device, "kind": kind, **body}

    @staticmethod
    def missing(view: DeviceView) -> int:
        """Sequence numbers below the highest seen that never arrived and were not announced lost."""
        if not view.seen:
            return 0
        first = min(view.seen)
        announced = sum(1 for s in view.announced if first <= s <= view.max_seq and s not in view.seen)
        return max(0, (view.max_seq - first + 1) - len(view.seen) - announced)


def parse_broker(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--broker {text!r}: expected HOST:PORT, e.g. 127.0.0.1:1883")
    return host, int(port)


def watch(broker: str, *, device: str | None, on_record: Any, duration_s: float | None = None,
          state: MonitorState | None = None, stop: threading.Event | None = None) -> MonitorState:
    """Subscribe and feed every new record to ``on_record`` until ``duration_s`` or ``stop``."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError as exc:
        raise UsageError("edgekit monitor needs paho-mqtt: pip install 'edgekit[agent]'") from exc
    host, port = parse_broker(broker)
    state = state or MonitorState()
    stop = stop or threading.Event()
    topic = f"{TOPIC_ROOT}/{device or '+'}/#"
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    failed: list[str] = []

    def on_connect(c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            failed.append(str(reason))
            stop.set()
        else:
            c.subscribe(topic, qos=1)

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        record = state.handle(msg.topic, msg.payload)
        if record is not None:
            on_record(record)

    client.on_connect, client.on_message = on_connect, on_message
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise EdgeKitError(f"cannot reach the broker at {host}:{port}: {exc}") from exc
    client.loop_start()
    try:
        stop.wait(duration_s)
    finally:
        client.loop_stop()
        client.disconnect()
    if failed:
        raise EdgeKitError(f"the broker at {host}:{port} refused the connection: {failed[0]}")
    return state
