"""Where alerts go besides the store: an MQTT topic, and a webhook that never slows the hub.

Both get the same JSON (:func:`alert_payload`, ``"v": 1``). The MQTT sink also keeps a retained
summary per device and kind, ``<topic>/<device>/<kind>`` with the open keys, so a consumer that
connects later (Home Assistant's binary sensors) sees what is open now, not only what changes.

The webhook POSTs from its own thread through a bounded queue: a slow or dead endpoint costs
the hub a full queue (alerts dropped and counted), never a blocked ingest. Each POST has a
timeout and is retried with exponential backoff; failures are logged and counted.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Protocol

from edgekit.fleet.hub.observer import Publish
from edgekit.fleet.hub.store import Alert

log = logging.getLogger("edgekit.hub")


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The JSON every sink sends for one alert raised or cleared."""
    return {"v": 1, "device": alert.device, "kind": alert.kind, "key": alert.detail.get("key", ""),
            "state": alert.state, "ts": alert.ts, "seq": alert.seq, "detail": alert.detail}


class AlertSink(Protocol):
    """Something told of each alert raised or cleared; ``send`` must not block."""

    def start(self, publish: Publish) -> None: ...

    def send(self, alert: Alert, open_keys: list[str]) -> None:
        """``open_keys``: the keys of this device and kind still open after the change."""

    def close(self) -> None: ...


class MqttSink:
    """Alerts on ``topic`` (QoS 1), and the open keys per device and kind retained under ``topic/<device>/<kind>``."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self._publish: Publish | None = None

    def start(self, publish: Publish) -> None:
        self._publish = publish

    def state_topic(self, device: str, kind: str) -> str:
        return f"{self.topic}/{device}/{kind}"

    def send(self, alert: Alert, open_keys: list[str]) -> None:
        if self._publish is None:
            return
        self._publish(self.topic, json.dumps(alert_payload(alert)).encode(), 1, False)
        self.summary(alert.device, alert.kind, open_keys, alert.ts)

    def summary(self, device: str, kind: str, open_keys: list[str], ts: float) -> None:
        """Retain what is open for one device and kind (also with nothing open, so a sensor reads OFF)."""
        if self._publish is not None:
            body = {"v": 1, "device": device, "kind": kind, "open": open_keys, "ts": ts}
            self._publish(self.state_topic(device, kind), json.dumps(body).encode(), 1, True)

    def close(self) -> None:
        self._publish = None


class WebhookSink:
    """POSTs each alert's JSON to ``url`` from a background thread (bounded queue, timeout, retries)."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, retries: int = 3, queue_size: int = 1000,
                 backoff_s: float = 0.5) -> None:
        self.url, self.timeout_s, self.retries, self.backoff_s = url, timeout_s, retries, backoff_s
        self.sent = self.failed = self.dropped = 0
        """Counters: delivered, given up after every retry, refused because the queue was full."""
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hub-webhook", daemon=True)
        self._thread.start()

    def start(self, publish: Publish) -> None:
        pass

    def send(self, alert: Alert, open_keys: list[str]) -> None:
        try:
            self._queue.put_nowait(json.dumps(alert_payload(alert)).encode())
        except queue.Full:
            self.dropped += 1
            log.warning("webhook %s: queue full, alert %s/%s dropped (%d so far)", self.url, alert.device,
                        alert.kind, self.dropped)

    def _run(self) -> None:
        while True:
            body = self._queue.get()
            try:
                if body is None:
                    return
                self._deliver(body)
            finally:
                self._queue.task_done()

    def _deliver(self, body: bytes) -> None:
        for attempt in range(self.retries + 1):
            if self._stop.is_set() or (attempt and self._stop.wait(self.backoff_s * 2 ** (attempt - 1))):
                break  # closing: do not hold the hub's exit for a dead endpoint
            try:
                request = urllib.request.Request(self.url, data=body, method="POST",
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    response.read()
                self.sent += 1
                return
            except (urllib.error.URLError, OSError, ValueError) as exc:  # HTTPError is a URLError
                log.warning("webhook %s: attempt %d of %d failed: %s", self.url, attempt + 1, self.retries + 1, exc)
        self.failed += 1
        log.error("webhook %s: alert not delivered after %d attempts (%d failed so far)", self.url,
                  self.retries + 1, self.failed)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued was delivered or given up (tests); True if the queue emptied."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued within ``timeout_s``, then stop."""
        try:
            self._queue.put(None, timeout=timeout_s)
        except queue.Full:
            pass
        self._thread.join(timeout_s)
        self._stop.set()  # still retrying a dead endpoint: give up now
        self._thread.join(1.0)
