"""Home Assistant MQTT discovery (``edgekit hub --homeassistant [PREFIX]``): every device an HA device.

For each device the hub hears from, retained discovery configs under
``<prefix>/<component>/edgekit_<device>/<object>/config`` (Home Assistant's MQTT discovery topic;
``prefix`` is ``homeassistant`` by default), all sharing one device block (identifiers, name,
model, sw_version), so HA groups them:

- sensors read the agent's own ``metrics`` topic through value templates (HA reads the devices
  directly; the hub only announces them): fps, inference latency p50 (ms), outbox depth, drift
  state (the worst signal's); available while the agent's retained ``status`` says ``online``;
- binary sensors (``problem``) for the hub's alert kinds (offline, fps, backlog, drift) and for
  each rule a device has raised, read from the retained per-device summaries the alert engine
  publishes (``<alerts topic>/<device>/<kind>``, :class:`~edgekit.fleet.hub.alerts.MqttSink`).
  They have no availability: the offline alert must stay readable while the device is down.

Configs are published when a device is first seen (or its model or agent changes), when a new
rule shows up, when the hub (re)connects, and again when Home Assistant announces itself
(``<prefix>/status`` says ``online``, its birth message), as its documentation asks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from device_agent.protocol import TOPIC_ROOT, AlertEvent, Received, Status
from edgekit import __version__
from edgekit.errors import UsageError
from edgekit.fleet.hub.alerts.engine import HUB_KINDS
from edgekit.fleet.hub.alerts.rules import DEFAULT_TOPIC
from edgekit.fleet.hub.observer import Observer, Publish, is_fresh
from edgekit.fleet.hub.store import IngestReport, Store

DEFAULT_PREFIX = "homeassistant"
DRIFT_TEMPLATE = ("{% if value_json.drift is defined and value_json.drift %}"
                  "{% set s = value_json.drift.values() | map(attribute='state') | list %}"
                  "{{ 'alert' if 'alert' in s else 'warn' if 'warn' in s else 'ok' }}{% else %}off{% endif %}")
SENSORS: dict[str, dict[str, Any]] = {
    "fps": {"name": "FPS", "value_template": "{{ value_json.fps }}", "unit_of_measurement": "fps",
            "state_class": "measurement", "icon": "mdi:speedometer"},
    "latency_p50": {"name": "Inference latency p50", "device_class": "duration", "unit_of_measurement": "ms",
                    "state_class": "measurement",
                    "value_template": "{{ value_json.latency_ms.infer.p50 if 'infer' in value_json.latency_ms "
                                      "else None }}"},
    "outbox_depth": {"name": "Outbox depth", "value_template": "{{ value_json.outbox_depth }}",
                     "state_class": "measurement", "icon": "mdi:tray-full"},
    "drift_state": {"name": "Drift state", "device_class": "enum", "options": ["ok", "warn", "alert", "off"],
                    "value_template": DRIFT_TEMPLATE, "icon": "mdi:chart-bell-curve"},
}
"""Sensors on the agent's metrics topic: object id -> the config's own keys."""


def node_id(device: str) -> str:
    """The discovery topic's node level for ``device``: ``edgekit_<id>`` in HA's ``[a-zA-Z0-9_-]``, with a
    short hash when characters had to be replaced (``cam.1`` and ``cam_1`` stay apart)."""
    clean = re.sub(r"[^a-zA-Z0-9_-]", "_", device)
    if clean != device:
        clean += "_" + hashlib.sha1(device.encode()).hexdigest()[:6]
    return f"edgekit_{clean}"


def _object(text: str) -> str:
    clean = re.sub(r"[^a-zA-Z0-9_-]", "_", text)
    return clean if clean == text else f"{clean}_{hashlib.sha1(text.encode()).hexdigest()[:6]}"


@dataclass
class _Known:
    model: str | None = None
    agent: str | None = None
    rules: set[str] = field(default_factory=set)


class HomeAssistant(Observer):
    """Publishes Home Assistant discovery configs for every device (see the module docstring)."""

    def __init__(self, prefix: str = DEFAULT_PREFIX, *, alerts_topic: str = DEFAULT_TOPIC,
                 topic_root: str = TOPIC_ROOT, store: Store | None = None) -> None:
        """``store``, when given, names the devices and rules known before this start (their configs are
        retained already; this only lets a birth message re-publish them before they speak again)."""
        if not prefix.strip("/") or any(c in prefix for c in "+#\0"):
            raise UsageError(f"--homeassistant {prefix!r}: expected a topic prefix without wildcards (+, #)")
        self.prefix, self.alerts_topic, self.topic_root = prefix.rstrip("/"), alerts_topic, topic_root
        self.subscriptions = (f"{self.prefix}/status",)
        self.devices: dict[str, _Known] = {}
        self._store = store
        self._publish: Publish | None = None
        self._lock = threading.Lock()

    def start(self, publish: Publish) -> None:
        self._publish = publish
        if self._store is not None:
            rules = self._store.alerts(kind="rule", limit=10_000)
            with self._lock:
                for device in self._store.devices():
                    known = self.devices.setdefault(device.id, _Known())
                    known.model = _model_text(device.model.name, device.model.version, device.model.precision) \
                        if device.model else None
                    known.agent = device.agent
                for alert in rules:
                    if alert.device in self.devices and "rule" in alert.detail:
                        self.devices[alert.device].rules.add(str(alert.detail["rule"]))
        self.publish_all()

    def observe(self, messages: Sequence[Received], report: IngestReport) -> None:
        changed: set[str] = set()
        with self._lock:
            for received in messages:
                if not is_fresh(received, report):
                    continue
                message, known = received.message, self.devices.get(received.device)
                if known is None:
                    known = self.devices[received.device] = _Known()
                    changed.add(received.device)
                if isinstance(message, Status):
                    model = _model_text(message.model.name, message.model.version, message.model.precision)
                    if (model, message.agent) != (known.model, known.agent):
                        known.model, known.agent = model, message.agent
                        changed.add(received.device)
                elif isinstance(message, AlertEvent) and message.rule not in known.rules:
                    known.rules.add(message.rule)
                    changed.add(received.device)
        for device in sorted(changed):
            self.publish_device(device)

    def on_message(self, topic: str, payload: bytes) -> None:
        if topic == f"{self.prefix}/status" and payload.strip() == b"online":
            self.publish_all()

    def on_connect(self) -> None:
        self.publish_all()  # retained already, unless the broker lost them (no persistence) while we were away

    # -- the configs ---------------------------------------------------------------------------

    def publish_all(self) -> None:
        with self._lock:
            devices = sorted(self.devices)
        for device in devices:
            self.publish_device(device)

    def publish_device(self, device: str) -> None:
        if self._publish is None:
            return
        for topic, config in self.configs(device).items():
            self._publish(topic, json.dumps(config, sort_keys=True).encode(), 1, True)

    def configs(self, device: str) -> dict[str, dict[str, Any]]:
        """Discovery topic -> config, for one device as known now."""
        with self._lock:
            known = self.devices.get(device) or _Known()
            rules = sorted(known.rules)
        node = node_id(device)
        block: dict[str, Any] = {"identifiers": [node], "name": device, "manufacturer": "EdgeKit"}
        if known.model:
            block["model"] = known.model
        if known.agent:
            block["sw_version"] = known.agent
        base = {"device": block, "origin": {"name": "edgekit hub", "sw_version": __version__},
                "has_entity_name": True, "qos": 1}
        availability = {"availability": [{"topic": f"{self.topic_root}/{device}/status",
                                          "value_template": "{{ value_json.state }}",
                                          "payload_available": "online", "payload_not_available": "offline"}]}
        out = {}
        for obj, own in SENSORS.items():
            out[self._topic("sensor", node, obj)] = {**base, **availability, **own, "unique_id": f"{node}_{obj}",
                                                     "state_topic": f"{self.topic_root}/{device}/metrics"}
        problems = [(f"alert_{kind}", f"{kind.capitalize()} alert", kind, "{{ 'ON' if value_json.open else 'OFF' }}")
                    for kind in HUB_KINDS]
        problems += [(f"rule_{_object(rule)}", f"Rule {rule}", "rule",
                      "{{ 'ON' if " + json.dumps(rule) + " in value_json.open else 'OFF' }}") for rule in rules]
        for obj, name, kind, template in problems:
            out[self._topic("binary_sensor", node, obj)] = {
                **base, "name": name, "unique_id": f"{node}_{obj}", "device_class": "problem",
                "state_topic": f"{self.alerts_topic}/{device}/{kind}", "value_template": template,
                "payload_on": "ON", "payload_off": "OFF"}
        return out

    def _topic(self, component: str, node: str, obj: str) -> str:
        return f"{self.prefix}/{component}/{node}/{obj}/config"


def _model_text(name: str, version: str, precision: str) -> str:
    return f"{name} {version} ({precision})"


def homeassistant_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--homeassistant [PREFIX]`` to ``edgekit hub``'s parser."""
    parser.add_argument("--homeassistant", nargs="?", const=DEFAULT_PREFIX, default=None, metavar="PREFIX",
                        help="announce every device to Home Assistant by MQTT discovery under PREFIX "
                             f"(default when given: {DEFAULT_PREFIX})")


def homeassistant_from_args(args: argparse.Namespace, *, store: Store | None = None) -> HomeAssistant | None:
    """The observer ``--homeassistant`` asks for (its binary sensors read ``--alerts-topic``), or None."""
    if args.homeassistant is None:
        return None
    return HomeAssistant(args.homeassistant, alerts_topic=getattr(args, "alerts_topic", DEFAULT_TOPIC), store=store)
