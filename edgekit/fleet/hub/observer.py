"""What the hub tells its parts besides the store: metrics, alerts, Home Assistant.

The ingest commits a batch to the store, then hands it to every :class:`Observer` (and only then
acknowledges it to the broker). An observer sees each ``(device, seq)`` once: ``report.fresh``
names the messages this batch stored, so a redelivered duplicate is never counted twice
(statuses carry no seq and are always passed on). Every method has a no-op default, so an
observer overrides only what it needs.

Observers run in the hub's threads (``observe`` in the ingest thread, ``tick`` in the
housekeeping thread): they must be quick and must not raise for anything a device sent; the hub
logs an exception from an observer and goes on, it never stops ingesting for one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from device_agent.protocol import Received
from edgekit.fleet.hub.store import IngestReport

Publish = Callable[[str, bytes, int, bool], None]
"""``publish(topic, payload, qos, retain)`` on the hub's own MQTT connection (thread-safe)."""


class Observer:
    """A part of the hub told about each committed batch; override what you need."""

    subscriptions: tuple[str, ...] = ()
    """Extra topic filters (not the devices' own) whose messages go to :meth:`on_message`,
    e.g. ``homeassistant/status``."""

    def start(self, publish: Publish) -> None:
        """Called once the hub's MQTT connection exists; keep ``publish`` to send on it."""

    def observe(self, messages: Sequence[Received], report: IngestReport) -> None:
        """A batch was committed: ``messages`` as parsed, ``report.fresh`` the ``(device, seq)`` newly stored."""

    def rejected(self, kind: str) -> None:
        """A message on a device's ``kind`` topic (results, events...) broke the contract; it was acknowledged."""

    def batch_committed(self, seconds: float) -> None:
        """The ingest committed one batch to the store in ``seconds``."""

    def on_message(self, topic: str, payload: bytes) -> None:
        """A message on one of :attr:`subscriptions` (in paho's thread: do not block)."""

    def on_connect(self) -> None:
        """The hub's MQTT connection was (re)established (in paho's thread: do not block)."""

    def tick(self, now: float) -> None:
        """About once a second from the hub's housekeeping thread (offline checks, flushing)."""

    def close(self) -> None:
        """The hub is stopping."""


def is_fresh(received: Received, report: IngestReport) -> bool:
    """Whether this batch stored ``received`` (a status, which has no seq, always counts)."""
    envelope = received.envelope
    return envelope is None or (envelope.device, envelope.seq) in report.fresh
