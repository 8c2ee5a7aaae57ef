"""A device-like publisher for the hub's tests: contract messages (tests/support/protocol_samples.py) over a real
paho client, QoS 1, as fast as the broker takes them or at a set rate."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support import protocol_samples as samples
from tests.support.mqtt_broker import Broker


def result_payload(device: str, seq: int, *, boot: str = "boot-1") -> bytes:
    return json.dumps({**samples.message("results", seq, device=device), "boot": boot,
                       "ts": 1.7e9 + seq}).encode()


class Publisher:
    """One paho client publishing for any number of devices; :meth:`wait` until the broker acknowledged all."""

    def __init__(self, broker: Broker, client_id: str = "device-sim") -> None:
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(200)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.infos: list[Any] = []

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.infos.append(self.client.publish(topic, payload, qos=1, retain=retain))

    def results(self, devices: list[str], seqs: range, *, rate_per_s: float | None = None,
                stop: threading.Event | None = None) -> None:
        """``results`` of every device for every seq, interleaved; paced to ``rate_per_s`` messages if given."""
        start = time.monotonic()
        count = 0
        for seq in seqs:
            for device in devices:
                if stop is not None and stop.is_set():
                    return
                self.publish(f"edgekit/v1/{device}/results", result_payload(device, seq))
                count += 1
                if rate_per_s:
                    ahead = start + count / rate_per_s - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)

    def wait(self, timeout_s: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout_s
        for info in self.infos:
            info.wait_for_publish(max(0.01, deadline - time.monotonic()))
        return all(info.is_published() for info in self.infos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
