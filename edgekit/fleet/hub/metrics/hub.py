"""The hub's ``/metrics``: an :class:`~edgekit.fleet.hub.observer.Observer` with its own registry.

Two sources, one exposition (see :mod:`.live` and :mod:`.state` for why each):

- counted as fresh messages arrive (:class:`.live.LiveMetrics`): results, inference latency
  histogram, detections and classifications per class, events, the hub's rejected messages and
  ingest batch time;
- read from the store at scrape time (:class:`.state.StoreCollector`): fps, outbox, seq gaps,
  last seen, model info, drift per signal, online, and the stored and duplicate totals.

Names follow Prometheus's conventions: ``edgekit_`` prefix, base units (``_seconds``), ``_total``
on counters, ``_info`` for versions (value 1, the versions as labels), label ``device``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import InfoMetricFamily, Metric

from device_agent.protocol import Received, Result
from edgekit import __version__
from edgekit.fleet.hub.metrics.live import MAX_CLASSES, LiveMetrics
from edgekit.fleet.hub.metrics.state import StoreCollector
from edgekit.fleet.hub.observer import Observer, is_fresh
from edgekit.fleet.hub.store import IngestReport, Store


class HubMetrics(Observer):
    """Prometheus metrics of the fleet and the hub: give it the store, register it as an observer,
    serve :meth:`exposition` on ``GET /metrics``."""

    def __init__(self, store: Store, *, cache_s: float = 1.0, max_classes: int = MAX_CLASSES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``cache_s``: how long one read of the store (seq gaps included) serves scrapes; ``max_classes``:
        ``class`` label values per device."""
        self.registry = CollectorRegistry()
        self.live = LiveMetrics(self.registry, max_classes=max_classes)
        self.state = StoreCollector(store, cache_s=cache_s, clock=clock)
        self.registry.register(self.state)
        self.registry.register(_HubInfo())

    def observe(self, messages: Sequence[Received], report: IngestReport) -> None:
        for received in messages:
            if received.envelope is None or not is_fresh(received, report):
                continue  # a status is state, read from the store at scrape time; a duplicate was counted
            if isinstance(received.message, Result):
                self.live.result(received.device, received.message)
            elif received.kind == "events":
                self.live.event(received.device, str(getattr(received.message, "kind", "unknown")))

    def rejected(self, kind: str) -> None:
        """The ingest refused a message on a ``kind`` topic (results, events...) as not the contract."""
        self.live.rejected.labels(kind).inc()

    def batch_committed(self, seconds: float) -> None:
        """The ingest committed one batch to the store in ``seconds``."""
        self.live.batch.observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The body and content type of ``GET /metrics`` (the text exposition format, prometheus_client's latest)."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _HubInfo:
    """``edgekit_hub_info{version}``: which hub serves these metrics."""

    def collect(self) -> list[Metric]:
        return [InfoMetricFamily("edgekit_hub", "the edgekit hub's version", value={"version": __version__})]

    describe = collect
