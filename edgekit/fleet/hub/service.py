"""The hub as a long-running service: the store, the MQTT ingest, the observers, housekeeping and HTTP.

:class:`Hub` owns the store it is given and composes, in start order:

- the **ingest** (:mod:`.ingest`) fed by one persistent MQTT session (:class:`MqttSession` with
  :class:`Persistence`): every device's ``status``, ``results``, ``events`` and ``metrics`` plus
  each observer's own ``subscriptions``, which go to that observer's ``on_message``;
- the **observers** (:class:`Observer`: metrics, alerts, Home Assistant), started with the
  session's ``publish``;
- a **housekeeping** thread, about once a second: each observer's ``tick``, retention in small
  steps (each its own short transaction, so ingest commits in between), a summary line every
  ``report_every_s`` and systemd's watchdog, fed only while the ingest thread goes round its loop;
- the **HTTP** app (optional) from ``app_factory(store)``, served by uvicorn in its own thread.

:meth:`Hub.stop` reverses it: the ingest takes no more deliveries, commits and acknowledges what
it holds, the session sends DISCONNECT, the observers close, then the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from device_agent.protocol import TOPIC_ROOT, Topics
from device_agent.service.systemd import Notifier
from edgekit.errors import StoreError
from edgekit.fleet.hub.http_server import HttpServer
from edgekit.fleet.hub.ingest import Ingest, IngestOptions, IngestStats, guarded
from edgekit.fleet.hub.observer import Observer
from edgekit.fleet.hub.store import Retention, Store
from edgekit.fleet.hub.throttle import Throttle
from edgekit.fleet.session import Delivery, MqttSession, Persistence

AppFactory = Callable[[Store], Any]
"""``factory(store)`` -> the ASGI app the hub serves, reading ``store``."""

log = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "edgekit-hub"
DEVICE_KINDS = ("status", "results", "events", "metrics")


def device_subscriptions(root: str = TOPIC_ROOT) -> tuple[str, ...]:
    """``edgekit/v1/+/status`` and its siblings: every device's messages, nothing else (no cmd, no reply)."""
    topics = Topics("+", root)
    return tuple(getattr(topics, kind) for kind in DEVICE_KINDS)


@dataclass(frozen=True)
class HubOptions:
    """The hub's knobs besides the broker and the store; the ``edgekit hub`` flags set them."""

    client_id: str = DEFAULT_CLIENT_ID
    """The session's client id: the broker keeps the session (and its queued messages) under it."""
    persistence: Persistence = field(default_factory=Persistence)
    ingest: IngestOptions = field(default_factory=IngestOptions)
    retention: Retention = field(default_factory=Retention)
    retention_every_s: float = 60.0
    """How often retention looks for expired rows once it has caught up."""
    retention_step_rows: int = 2000
    """Rows deleted per table per step; each step is one short transaction."""
    http: tuple[str, int] | None = None
    """Serve ``app_factory(store)`` on ``(host, port)``; None serves nothing."""
    report_every_s: float = 60.0
    """A summary line (rates, duplicates, rejected, queue) this often."""


class Hub:
    """Every device's messages into ``store``, told to ``observers``, served over HTTP; :meth:`start`/:meth:`stop`."""

    def __init__(self, *, broker: str, store: Store, options: HubOptions | None = None,
                 observers: Sequence[Observer] = (), app_factory: AppFactory | None = None,
                 notifier: Notifier | None = None) -> None:
        """``broker`` is ``HOST:PORT[,HOST:PORT...]`` (tried in order on every (re)connect); ``store`` is owned
        by the hub from now on (closed by :meth:`stop`); ``app_factory(store)`` makes the HTTP app served when
        ``options.http`` is set (usually :func:`edgekit.fleet.hub.web.create_app`)."""
        self.options = options or HubOptions()
        self.store = store
        self.observers = list(observers)
        self._notifier = notifier or Notifier()
        self._stop = threading.Event()
        self._throttle = Throttle(log, interval_s=60.0)
        self._device_topics = device_subscriptions()
        extra = tuple(t for o in self.observers for t in o.subscriptions if t not in self._device_topics)
        self.session = MqttSession(
            broker, topic=self._device_topics + tuple(dict.fromkeys(extra)), purpose="edgekit hub",
            client_id=self.options.client_id, persistence=self.options.persistence,
            on_delivery=self._deliver, on_connected=self._connected, on_disconnected=self._disconnected,
            on_unreachable=self._unreachable, on_refused=self._refused, on_subscribed=self._subscribed)
        self.ingest = Ingest(store, ack=self.session.ack, observers=self.observers, options=self.options.ingest)
        self.http: HttpServer | None = None
        if self.options.http is not None and app_factory is not None:
            self.http = HttpServer(app_factory(store), *self.options.http)
        self._housekeeping = threading.Thread(target=self._housekeep, name="hub-housekeeping", daemon=True)
        self._started = False

    def start(self) -> Hub:
        """Start every part; returns at once (the broker is connected in the background, retried until it answers)."""
        self.ingest.start()
        def publish(topic: str, payload: bytes, qos: int, retain: bool) -> None:
            self.session.publish(topic, payload, qos=qos, retain=retain)

        for observer in self.observers:
            observer.start(publish)
        self.session.start(background=True)
        if self.http is not None:
            self.http.start()
        self._housekeeping.start()
        self._started = True
        self._notifier.ready(f"brokers {self.brokers}, store {self.store.url}")
        return self

    @property
    def brokers(self) -> str:
        return ",".join(f"{h}:{p}" for h, p in self.session.brokers)

    def stats(self) -> IngestStats:
        return self.ingest.stats()

    def stop(self) -> None:
        """Stop taking messages, commit and acknowledge what is in hand, disconnect, close observers and store."""
        self._notifier.stopping()
        self._stop.set()
        if self._started:
            self.ingest.stop()
            self.session.close()
            self._housekeeping.join(10)
        if self.http is not None:
            self.http.stop()
        for observer in self.observers:
            self._guard(observer, "close", observer.close)
        self.store.close()
        stats = self.ingest.stats()
        log.info("hub stopped: %d messages received, %d stored, %d duplicates, %d rejected", stats.received,
                 stats.stored, stats.duplicates, stats.rejected)

    # paho's thread -------------------------------------------------------------------------------------------

    def _deliver(self, delivery: Delivery) -> None:
        from paho.mqtt.client import topic_matches_sub

        if any(topic_matches_sub(t, delivery.topic) for t in self._device_topics):
            self.ingest.put(delivery)  # acknowledged by the ingest, once committed
            return
        for observer in self.observers:
            if any(topic_matches_sub(t, delivery.topic) for t in observer.subscriptions):
                self._guard(observer, "on_message", partial(observer.on_message, delivery.topic, delivery.payload))
        self.session.ack(delivery)

    def _connected(self, address: str, session_present: bool) -> None:
        log.info("connected to the broker at %s (%s)", address,
                 "session resumed: messages queued while the hub was away follow" if session_present
                 else "new session")
        for observer in self.observers:
            self._guard(observer, "on_connect", observer.on_connect)

    def _disconnected(self, reason: str) -> None:
        if not self._stop.is_set():
            log.warning("lost the broker at %s: %s; reconnecting", self.session.address, reason)

    def _unreachable(self, address: str, reason: str) -> None:
        self._throttle.log(logging.WARNING, f"unreachable:{address}", "the broker at %s is unreachable (%s); "
                           "retrying (brokers: %s)", address, reason, self.brokers)

    def _refused(self, reason: str) -> None:
        self._throttle.log(logging.WARNING, "refused", "the broker at %s refused the connection: %s",
                           self.session.address, reason)

    def _subscribed(self, refusals: list[str]) -> None:
        if refusals:
            log.error("the broker at %s refused a subscription: %s (check its ACL for the hub's user)",
                      self.session.address, ", ".join(refusals))
        else:
            log.info("subscribed at %s: every device's messages are delivered from now on", self.session.address)

    # housekeeping thread -------------------------------------------------------------------------------------

    def _guard(self, observer: Observer, what: str, call: Callable[[], object]) -> None:
        guarded(self._throttle, observer, what, call)

    def _housekeep(self) -> None:
        last_report = time.monotonic()
        last = self.ingest.stats()
        next_retention = time.monotonic() + 5.0  # let the first deliveries in first
        while not self._stop.wait(1.0):
            now = time.monotonic()
            for observer in self.observers:
                self._guard(observer, "tick", partial(observer.tick, time.time()))
            if now >= next_retention:
                more = self._retention_step()
                next_retention = now + (0.0 if more else self.options.retention_every_s)
            if now - self.ingest.heartbeat < 10.0:  # fed only while the ingest thread is alive and looping
                self._notifier.watchdog()
            if now - last_report >= self.options.report_every_s:
                current = self.ingest.stats()
                log.info(summary_line(last, current, now - last_report, self.session.connected,
                                      self.session.address))
                last, last_report = current, now

    def _retention_step(self) -> bool:
        retention = self.options.retention
        if retention == Retention():
            return False
        try:
            report = self.store.enforce_retention(retention, batch_rows=self.options.retention_step_rows)
        except StoreError as exc:
            self._throttle.log(logging.WARNING, "retention", "retention failed, retried later: %s", exc)
            return False
        if any(report.deleted.values()) or report.partitions_dropped:
            log.debug("retention: deleted %s, dropped %d partitions", report.deleted, report.partitions_dropped)
        return report.more


def summary_line(before: IngestStats, now: IngestStats, seconds: float, connected: bool, broker: str) -> str:
    """The periodic INFO line: rates over the last interval, totals of the things that need a look."""
    per_s = lambda a, b: (b - a) / seconds if seconds > 0 else 0.0  # noqa: E731
    line = (f"stored {per_s(before.stored, now.stored):.1f}/s, received {per_s(before.received, now.received):.1f}/s, "
            f"duplicates {now.duplicates - before.duplicates}, rejected {now.rejected - before.rejected} "
            f"(totals {now.stored} stored, {now.duplicates} duplicates, {now.rejected} rejected), "
            f"queue {now.queued}, broker {broker} {'connected' if connected else 'DISCONNECTED'}")
    return line + (f"; STORE FAILING: {now.unhappy}" if now.unhappy else "")
