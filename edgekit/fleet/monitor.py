"""``edgekit monitor``: a live view of the devices on a broker.

Every message a device publishes carries ``(device, seq)``. The monitor drops duplicates
(an outbox resends what was in flight when a connection dropped), and reports gaps: a
``seq`` that jumps means messages were lost, unless the device itself announced the range
in a ``gap`` event (its outbox overflowed). Messages are read only through the contract's
models (:mod:`device_agent.protocol`); a malformed one is shown as an error, not dropped silently.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from device_agent.errors import ProtocolError
from device_agent.protocol import (
    TOPIC_ROOT,
    AlertEvent,
    Body,
    GapEvent,
    Metrics,
    Result,
    Status,
    parse,
    parse_topic,
    subscription,
)
from edgekit.errors import EdgeKitError
from edgekit.fleet.session import MqttSession, parse_broker

__all__ = ["TOPIC_ROOT", "DeviceView", "MonitorState", "parse_broker", "watch"]


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
    malformed: int = 0
    last_error: str = "-"


class MonitorState:
    """Folds messages into per-device views; pure logic, no network (tested on its own).

    Every message is parsed through the contract (:func:`device_agent.protocol.parse`); one that
    breaks it is counted on its device (``malformed``, with the last problem) and handed on as an
    ``error`` record, never folded into the view and never a crash.
    """

    def __init__(self) -> None:
        self.devices: dict[str, DeviceView] = {}

    def handle(self, topic: str, payload: bytes) -> dict[str, Any] | None:
        """Apply one message; the record to show, or None for a duplicate, a command or a foreign topic."""
        where = parse_topic(topic)
        if where is None or where.kind == "cmd":
            return None
        view = self.devices.setdefault(where.device_id, DeviceView(where.device_id))
        view.last_seen = time.time()
        try:
            received = parse(topic, payload)
        except ProtocolError as exc:
            view.malformed += 1
            view.last_error = exc.problem
            return {"v": 1, "device": where.device_id, "kind": "error", "topic": topic, "error": str(exc)}
        message, envelope = received.message, received.envelope
        record = {"device": where.device_id, "kind": where.kind, **received.payload()}
        if isinstance(message, Status):
            view.online = message.state == "online"
            view.model = f"{message.model.name} v{message.model.version} {message.model.precision}".strip()
            return record
        if envelope is not None:
            if envelope.seq in view.seen:
                view.duplicates += 1
                return None
            view.seen.add(envelope.seq)
            view.max_seq = max(view.max_seq, envelope.seq)
        self._fold(view, message)
        view.missing = self.missing(view)
        return record

    @staticmethod
    def _fold(view: DeviceView, message: Body) -> None:
        if isinstance(message, Result):
            view.results += 1
        elif isinstance(message, Metrics):
            view.fps = message.fps
            infer = message.latency_ms.get("infer")
            view.infer_p50_ms = infer.p50 if infer is not None else None
            view.outbox_depth = message.outbox_depth
        elif isinstance(message, AlertEvent) and message.state == "raised":
            view.last_alert = f"{message.rule} ({message.label} {message.score or 0:.2f})"
        elif isinstance(message, GapEvent):
            view.announced.update(range(message.first_seq, message.last_seq + 1))

    @staticmethod
    def missing(view: DeviceView) -> int:
        """Sequence numbers below the highest seen that never arrived and were not announced lost."""
        if not view.seen:
            return 0
        first = min(view.seen)
        announced = sum(1 for s in view.announced if first <= s <= view.max_seq and s not in view.seen)
        return max(0, (view.max_seq - first + 1) - len(view.seen) - announced)


def watch(broker: str, *, device: str | None, on_record: Any, duration_s: float | None = None,
          state: MonitorState | None = None, stop: threading.Event | None = None) -> MonitorState:
    """Subscribe and feed every new record to ``on_record`` until ``duration_s`` or ``stop``."""
    state = state or MonitorState()
    stop = stop or threading.Event()
    failed: list[str] = []

    def refused(reason: str) -> None:
        failed.append(reason)
        stop.set()

    def received(topic: str, payload: bytes) -> None:
        record = state.handle(topic, payload)
        if record is not None:
            on_record(record)

    session = MqttSession(broker, topic=subscription(device), purpose="edgekit monitor",
                          on_refused=refused, on_message=received)
    with session:
        stop.wait(duration_s)
    if failed:
        raise EdgeKitError(f"the broker at {session.address} refused the connection: {failed[0]}")
    return state
