"""The hub's ingest: MQTT deliveries parsed, committed to the store in batches, then acknowledged.

**A message is acknowledged to the broker only after its batch is committed.** The hub's
session is persistent with manual acknowledgement (:class:`edgekit.fleet.session.Persistence`):
until the PUBACK, the broker keeps the message and delivers it again after a crash or a
reconnect; the store drops the copy by ``(device, seq)``. So a hub killed at any instant loses
nothing, and stores nothing twice.

paho's thread puts each :class:`~edgekit.fleet.session.Delivery` on a bounded queue (it never
touches the store); one ingest thread takes up to ``batch_max`` deliveries, or what arrived
within ``batch_wait_s`` of the first, and for that batch:

1. parses each with :func:`device_agent.protocol.parse`; a payload that breaks the contract is
   logged (throttled), counted as ``rejected`` and acknowledged: it can never succeed;
2. commits the parsed messages in one :meth:`Store.ingest`; on a :class:`StoreError` (PostgreSQL
   down, disk full) nothing is acknowledged and the same batch is retried with backoff;
3. hands the batch to every observer (an observer's exception is logged, never stops ingest);
4. acknowledges every delivery of the batch, in the order received.

The broker has at most ``receive_maximum`` unacknowledged messages in flight to the hub, which
bounds the queue (and is why the session sets it: Mosquitto's default of 20 would starve batching).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from device_agent.protocol import ProtocolError, Received, parse
from edgekit.errors import StoreError
from edgekit.fleet.hub.observer import Observer
from edgekit.fleet.hub.store import IngestReport, Store
from edgekit.fleet.hub.throttle import Throttle
from edgekit.fleet.session import Delivery

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0


@dataclass(frozen=True)
class IngestOptions:
    """How deliveries are batched. Bigger batches amortise the commit (one fsync on SQLite) over more messages."""

    batch_max: int = 500
    """At most this many deliveries per commit."""
    batch_wait_s: float = 0.05
    """After the first delivery of a batch, wait at most this long for more."""
    queue_max: int = 4000
    """Deliveries waiting for the ingest thread; paho's thread blocks (and the broker waits) beyond it."""


@dataclass(frozen=True)
class IngestStats:
    """Totals since the hub started (the store's own counters survive restarts; these are this process's)."""

    received: int
    stored: int
    duplicates: int
    rejected: int
    batches: int
    store_failures: int
    queued: int
    unhappy: str | None
    """Why the last commit failed, while the hub retries it; None when the store is fine."""


def first_copies(messages: list[Received]) -> list[Received]:
    """``messages`` without a second copy of a ``(device, seq)`` (a redelivery in the same batch), so an observer
    that counts what :func:`~edgekit.fleet.hub.observer.is_fresh` says counts each message once."""
    seen: set[tuple[str, int]] = set()
    kept = []
    for received in messages:
        envelope = received.envelope
        if envelope is not None:
            if (envelope.device, envelope.seq) in seen:
                continue
            seen.add((envelope.device, envelope.seq))
        kept.append(received)
    return kept


def guarded(throttle: Throttle, observer: Observer, what: str, call: Callable[[], object]) -> None:
    """Run ``call`` (one of ``observer``'s methods); an exception is logged with its traceback, never raised."""
    try:
        call()
    except Exception:  # noqa: BLE001  an observer's bug must not stop the hub: logged, traceback and all
        throttle.log(logging.ERROR, f"{what}:{type(observer).__name__}", "observer %s failed in %s",
                     type(observer).__name__, what, exc_info=True)


class Ingest:
    """Batches deliveries into the store, tells the observers, acknowledges; :meth:`start`, :meth:`put`,
    :meth:`stop`."""

    def __init__(self, store: Store, *, ack: Callable[[Delivery], bool], observers: Sequence[Observer] = (),
                 options: IngestOptions | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.options = options or IngestOptions()
        self._ack = ack
        self._observers = list(observers)
        self._clock = clock
        self._queue: queue.Queue[Delivery] = queue.Queue(self.options.queue_max)
        self._stop = threading.Event()
        self._taking = True
        self._thread = threading.Thread(target=self._run, name="hub-ingest", daemon=True)
        self._throttle = Throttle(log)
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(("received", "stored", "duplicates", "rejected", "batches", "store_failures"), 0)
        self._unhappy: str | None = None
        self.heartbeat = clock()
        """When the ingest thread last went round its loop (monotonic): the hub's watchdog reads it."""

    def start(self) -> Ingest:
        self._thread.start()
        return self

    def put(self, delivery: Delivery) -> None:
        """Queue one delivery (paho's thread); after :meth:`stop` began, drop it unacknowledged (the broker
        keeps it for the next run)."""
        while self._taking:
            try:
                self._queue.put(delivery, timeout=0.5)
                return
            except queue.Full:  # the ingest is behind (or the store down): paho's thread, and the broker, wait
                continue

    def stats(self) -> IngestStats:
        with self._lock:
            return IngestStats(**self._counts, queued=self._queue.qsize(), unhappy=self._unhappy)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Take no more deliveries, commit and acknowledge those in hand, stop the thread."""
        self._taking = False
        self._stop.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("ingest did not finish within %.0f s; what it holds is not acknowledged and the broker "
                        "will deliver it again", timeout_s)

    def _run(self) -> None:
        while True:
            self.heartbeat = self._clock()
            batch = self._take()
            if batch:
                self._process(batch)
            elif self._stop.is_set():
                return

    def _take(self) -> list[Delivery]:
        try:
            first = self._queue.get(timeout=0.2 if self._stop.is_set() else 1.0)
        except queue.Empty:
            return []
        batch = [first]
        deadline = self._clock() + self.options.batch_wait_s
        while len(batch) < self.options.batch_max:
            left = deadline - self._clock()
            try:
                batch.append(self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _process(self, batch: list[Delivery]) -> None:
        parsed: list[Received] = []
        rejected = 0
        for delivery in batch:
            try:
                parsed.append(parse(delivery.topic, delivery.payload))
            except ProtocolError as exc:
                rejected += 1
                parts = delivery.topic.split("/")  # edgekit/v1/<device>/<kind>
                device, kind = (parts[2] if len(parts) > 2 else "?"), (parts[3] if len(parts) > 3 else "?")
                for observer in self._observers:
                    guarded(self._throttle, observer, "rejected", partial(observer.rejected, kind))
                self._throttle.log(logging.WARNING, f"reject:{delivery.topic}",
                                   "rejected a message from device %s on %s: %s", device, delivery.topic, exc.problem)
        report = self._commit(parsed) if parsed else IngestReport({}, 0)
        if report is None:  # stopping while the store is down: nothing acknowledged, the broker keeps it all
            return
        if self._observers:
            told = first_copies(parsed)
            for observer in self._observers:
                guarded(self._throttle, observer, "observe", partial(observer.observe, told, report))
        for delivery in batch:
            self._ack(delivery)
        with self._lock:
            self._counts["received"] += len(batch)
            self._counts["rejected"] += rejected
            self._counts["stored"] += report.stored_total
            self._counts["duplicates"] += report.duplicates
            self._counts["batches"] += 1

    def _commit(self, parsed: list[Received]) -> IngestReport | None:
        delay = RETRY_MIN_S
        while True:
            try:
                started = time.perf_counter()
                report = self.store.ingest(parsed)
                for observer in self._observers:
                    guarded(self._throttle, observer, "batch_committed",
                            partial(observer.batch_committed, time.perf_counter() - started))
            except StoreError as exc:
                with self._lock:
                    self._counts["store_failures"] += 1
                    self._unhappy = str(exc)
                self._throttle.log(logging.WARNING, "store", "the store failed; %d messages kept unacknowledged "
                                   "(the broker holds them), retrying in %.1f s: %s", len(parsed), delay, exc)
                if self._stop.wait(delay):
                    return None
                self.heartbeat = self._clock()
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if self._unhappy is not None:
                log.info("the store works again (%s)", self.store.url)
                with self._lock:
                    self._unhappy = None
            return report
