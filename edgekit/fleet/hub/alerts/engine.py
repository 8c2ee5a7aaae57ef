"""The hub's alert engine: an :class:`~edgekit.fleet.hub.observer.Observer` that raises and clears alerts.

Kinds (``Alert.kind``) and their keys (``detail["key"]``):

- ``rule``: a device's rule raised or cleared (its ``alert`` event; key: the rule). The store's
  ingest already keeps these; the engine forwards them to the sinks and does not store them again.
- ``drift``: a device's drift event reached ``alert`` (key: the signal), cleared when it falls
  back to ``warn`` or ``ok``; and a cohort's merged windows crossing ``drift_alert``
  (:mod:`.cohort`), kept under the device :data:`COHORT_DEVICE` with key ``<model>@<version>:<signal>``
  and the cohort in ``detail["cohort"]``: a cohort is no device, and ``*`` is no device id.
- ``offline``: offline by its status, or silent, for more than ``offline_after_s``; cleared when heard.
- ``backlog``, ``fps``: from the heartbeats (:mod:`.checks`).

Each ``(device, kind, key)`` is raised once and cleared once (:class:`~.book.AlertBook`, rebuilt
from the store at start). ``observe`` runs in the ingest thread and ``tick`` in the housekeeping
thread; one lock keeps their state apart. Sinks never block (the webhook queues).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from device_agent.drift.monitor import HYSTERESIS
from device_agent.protocol import AlertEvent, DriftEvent, Metrics, Received, Status
from edgekit.fleet.hub.alerts.book import AlertBook
from edgekit.fleet.hub.alerts.checks import Beat, DeviceState, backlog_verdict, fps_verdict, offline_verdict
from edgekit.fleet.hub.alerts.cohort import CohortDrift, cohort_drift
from edgekit.fleet.hub.alerts.rules import AlertRules
from edgekit.fleet.hub.alerts.sinks import AlertSink, MqttSink, WebhookSink
from edgekit.fleet.hub.observer import Observer, Publish, is_fresh
from edgekit.fleet.hub.store import Alert, IngestReport, Store

log = logging.getLogger("edgekit.hub")

COHORT_DEVICE = "*"
"""The ``device`` of a cohort's drift alert."""
HUB_KINDS = ("offline", "fps", "backlog", "drift")
"""The kinds the engine judges per device (a retained summary of each is published when a device is first seen)."""
COHORT_EVERY_S = 5.0
"""Cohorts are scored at most this often, and only after a heartbeat changed something."""
SEED_LIMIT = 100_000


def default_sinks(rules: AlertRules) -> list[AlertSink]:
    """The MQTT topic, and the webhook when ``rules.webhook`` names one."""
    sinks: list[AlertSink] = [MqttSink(rules.topic)]
    if rules.webhook:
        sinks.append(WebhookSink(rules.webhook, timeout_s=rules.webhook_timeout_s, retries=rules.webhook_retries,
                                 queue_size=rules.webhook_queue))
    return sinks


class AlertEngine(Observer):
    """Raises and clears the hub's alerts, records them in ``store`` and tells ``sinks`` (default: from ``rules``)."""

    def __init__(self, store: Store, rules: AlertRules | None = None, sinks: Sequence[AlertSink] | None = None,
                 *, clock: Callable[[], float] = time.time) -> None:
        self.store, self.rules, self.clock = store, rules or AlertRules(), clock
        self.sinks = list(sinks) if sinks is not None else default_sinks(self.rules)
        self.book = AlertBook()
        self.devices: dict[str, DeviceState] = {}
        self.cohorts: list[CohortDrift] = []
        """Every cohort's drift as last scored (at most :data:`COHORT_EVERY_S` old), for the dashboard."""
        self._lock = threading.RLock()
        self._dirty, self._cohorts_at = True, -math.inf

    # -- Observer ---------------------------------------------------------------------------

    def start(self, publish: Publish) -> None:
        for sink in self.sinks:
            sink.start(publish)
        seeded, devices = self.store.alerts(limit=SEED_LIMIT), self.store.devices()
        with self._lock:
            self.book.seed(seeded)
            for device in devices:
                state = self._state(device.id)
                state.online, state.last_seen = device.online, device.last_seen
                state.down_since = None if device.online else device.last_seen
                fps = (device.status or {}).get("measured_fps")
                state.measured_fps = float(fps) if isinstance(fps, int | float) else None

    def observe(self, messages: Sequence[Received], report: IngestReport) -> None:
        now = self.clock()
        with self._lock:
            for received in messages:
                if is_fresh(received, report):
                    self._one(received, now)

    def tick(self, now: float) -> None:
        with self._lock:
            for device, state in list(self.devices.items()):
                verdict = offline_verdict(state, now, self.rules)
                if verdict is not None:
                    self._judge(device, "offline", "", verdict, now)
            due = self._dirty and now - self._cohorts_at >= COHORT_EVERY_S
        if due:
            self._score_cohorts(now)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()

    # -- what a message says -------------------------------------------------------------------

    def _state(self, device: str) -> DeviceState:
        state = self.devices.get(device)
        if state is None:
            state = self.devices[device] = DeviceState()
            for sink in self.sinks:
                if isinstance(sink, MqttSink):
                    for kind in HUB_KINDS:
                        sink.summary(device, kind, self.book.open_keys(device, kind), self.clock())
        return state

    def _one(self, received: Received, now: float) -> None:
        device, message = received.device, received.message
        state = self._state(device)
        if isinstance(message, Status):
            self._status(device, state, message, now)
            return
        state.last_seen = now
        if state.online is not False:
            self._clear(device, "offline", "", now, {"reason": "heard"})
        seq = received.envelope.seq if received.envelope is not None else None
        if isinstance(message, AlertEvent):
            detail = message.model_dump(mode="json", include={"rule", "label", "score", "frames", "source",
                                                               "frame_id"})
            ts = received.envelope.ts if received.envelope is not None else now  # as the store keeps it
            if message.state == "raised":
                self._raise(device, "rule", message.rule, ts, detail, seq, record=False)
            else:
                self._clear(device, "rule", message.rule, ts, detail, seq, record=False)
        elif isinstance(message, DriftEvent):
            detail = {"signal": message.signal, "score": message.score, "threshold": message.threshold,
                      "window": message.window, "state": message.state}
            self._judge(device, "drift", message.signal, (message.state == "alert", detail), now, seq)
        elif isinstance(message, Metrics):
            self._heartbeat(device, state, message, now)

    def _status(self, device: str, state: DeviceState, status: Status, now: float) -> None:
        self._dirty = True
        if status.state == "online":
            state.measured_fps = status.measured_fps
            if state.online is not True or status.ts >= now - self.rules.offline_after_s:
                state.last_seen = max(state.last_seen or 0.0, now)  # it connected: heard (a stale retained one is not)
            state.online, state.down_since = True, None
            self._clear(device, "offline", "", now, {"reason": "online"})
        elif state.online is not False:
            state.online, state.down_since = False, now

    def _heartbeat(self, device: str, state: DeviceState, metrics: Metrics, now: float) -> None:
        self._dirty = True
        beat, previous = Beat.of(metrics), state.beat
        state.growth = state.growth + 1 if previous is not None and beat.depth > previous.depth else 0
        fps = fps_verdict(previous, beat, state.measured_fps, self.rules, self.book.is_open(device, "fps"))
        backlog = backlog_verdict(previous, beat, state.growth, self.rules, self.book.is_open(device, "backlog"))
        state.beat = beat
        for kind, verdict in (("fps", fps), ("backlog", backlog)):
            if verdict is not None:
                self._judge(device, kind, "", verdict, now)

    def _score_cohorts(self, now: float) -> None:
        r = self.rules
        cohorts = cohort_drift(self.store.devices(), warn=r.drift_warn, alert=r.drift_alert,
                               p_value=r.drift_p_value, min_devices=r.cohort_min_devices)
        with self._lock:
            self.cohorts, self._dirty, self._cohorts_at = cohorts, False, now
            judged = set()
            for cohort in cohorts:
                for name, s in cohort.signals.items():
                    key = f"{cohort.name}:{name}"
                    judged.add(key)
                    detail = {"cohort": cohort.name, "signal": name, "psi": s.psi, "threshold": r.drift_alert,
                              "devices": list(s.devices), "frames": s.frames}
                    if not self.book.is_open(COHORT_DEVICE, "drift", key):
                        self._judge(COHORT_DEVICE, "drift", key, (s.state == "alert", detail), now)
                    elif s.state != "alert" and (s.psi < r.drift_alert * (1 - HYSTERESIS) or s.state == "ok"):
                        self._clear(COHORT_DEVICE, "drift", key, now, detail)
            for key in self.book.open_keys(COHORT_DEVICE, "drift"):
                if key not in judged:  # too few devices left to judge it: no evidence of a shift any more
                    self._clear(COHORT_DEVICE, "drift", key, now, {"reason": "too few devices"})

    # -- raising and clearing ---------------------------------------------------------------

    def _judge(self, device: str, kind: str, key: str, verdict: tuple[bool, dict[str, Any]], now: float,
               seq: int | None = None) -> None:
        should_open, detail = verdict
        if should_open:
            self._raise(device, kind, key, now, detail, seq)
        else:
            self._clear(device, kind, key, now, detail, seq)

    def _raise(self, device: str, kind: str, key: str, now: float, detail: dict[str, Any], seq: int | None = None,
               *, record: bool = True) -> None:
        alert = self.book.raise_(device, kind, key, now, detail, seq)
        if alert is not None:
            self._emit(alert, record)

    def _clear(self, device: str, kind: str, key: str, now: float, detail: dict[str, Any] | None = None,
               seq: int | None = None, *, record: bool = True) -> None:
        alert = self.book.clear(device, kind, key, now, detail, seq)
        if alert is not None:
            self._emit(alert, record)

    def _emit(self, alert: Alert, record: bool) -> None:
        log.info("alert %s: %s %s %s", alert.state, alert.device, alert.kind, alert.detail.get("key") or "")
        if record:
            self.store.record_alert(alert)
        open_keys = self.book.open_keys(alert.device, alert.kind)
        for sink in self.sinks:
            try:
                sink.send(alert, open_keys)
            except Exception:  # a sink's bug must not stop the others or the ingest; logged with its cause
                log.exception("alert sink %s failed", type(sink).__name__)
