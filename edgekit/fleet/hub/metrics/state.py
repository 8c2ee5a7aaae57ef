"""Gauges that mirror the store: read at scrape time, so they are right after a hub restart.

The fleet's state (each device's latest status and metrics message, its seq accounting, the
hub's stored totals) already lives in the store; keeping a second copy in process gauges would
show zeros after a restart until every device spoke again. :class:`StoreCollector` reads it
when Prometheus scrapes, and keeps what it read for ``cache_s`` (1 s by default) so a burst of
scrapes (Prometheus plus a person's curl) reads the store once. The hub's stored totals are
counters read from the store too: they never go down and survive a restart, like ``/api/stats``.

The seq gaps come from :meth:`Store.seq_accounts`, which reads the seq runs the store keeps at
ingest (about 1 ms for 100 devices, however many seqs are stored), so they are read with the
rest, under the same cache.

A store that fails (:class:`~edgekit.errors.StoreError`) does not fail the scrape: the
process metrics are still served and ``edgekit_hub_store_up`` says 0.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from edgekit.errors import StoreError
from edgekit.fleet.hub.store import COUNTERS, Device, SeqAccount, Store

log = logging.getLogger(__name__)

DRIFT_STATES = {"ok": 0, "warn": 1, "alert": 2}
"""``edgekit_device_drift_state`` values: a signal's state as a number Prometheus can alert on."""

STORED_KINDS = {"results_stored": "results", "events_stored": "events", "metrics_stored": "metrics"}


class StoreCollector:
    """A prometheus_client collector over :meth:`Store.devices`, :meth:`Store.seq_accounts` and the stored totals."""

    def __init__(self, store: Store, *, cache_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.cache_s = cache_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._read_at: float | None = None

    def describe(self) -> list[Metric]:
        """The families this collector exports, without samples (lets the registry check for clashes)."""
        return _families([], [], dict.fromkeys(COUNTERS, 0), store_up=False)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self.cache_s:
                self._cached = self._read()
                self._read_at = now
            yield from self._cached

    def _read(self) -> list[Metric]:
        try:
            return _families(self.store.devices(), self.store.seq_accounts(), self.store.counters(), store_up=True)
        except StoreError as exc:
            log.warning("/metrics: cannot read the store: %s", exc)
            return _families([], [], {}, store_up=False)


def _families(devices: list[Device], accounts: list[SeqAccount], counters: dict[str, int], *,
              store_up: bool) -> list[Metric]:
    online = GaugeMetricFamily("edgekit_device_online", "1 while the device's retained status says online, else 0",
                               labels=["device"])
    last_seen = GaugeMetricFamily("edgekit_device_last_seen_timestamp_seconds",
                                  "when the hub last received anything from the device (Unix time)", labels=["device"])
    model = GaugeMetricFamily("edgekit_device_model_info", "the model and agent a device runs (value always 1)",
                              labels=["device", "model", "version", "precision", "agent"])
    device_gauges = _DeviceGauges()
    for device in devices:
        online.add_metric([device.id], 1.0 if device.online else 0.0)
        if device.last_seen is not None:
            last_seen.add_metric([device.id], device.last_seen)
        if device.model is not None:
            model.add_metric([device.id, device.model.name, device.model.version, device.model.precision,
                              device.agent or ""], 1.0)
        if device.metrics is not None:
            device_gauges.add(device.id, device.metrics)
    missing = GaugeMetricFamily("edgekit_device_seq_missing", "seqs neither received nor announced lost (yet)",
                                labels=["device"])
    lost = GaugeMetricFamily("edgekit_device_seq_lost", "seqs the device announced lost with a gap event (its outbox "
                             "dropped them)", labels=["device"])
    for account in accounts:
        missing.add_metric([account.device], account.missing_count)
        lost.add_metric([account.device], account.lost_count)
    stored = CounterMetricFamily("edgekit_hub_messages_stored", "messages stored since the store was created",
                                 labels=["kind"])
    for counter, kind in STORED_KINDS.items():
        if counter in counters:
            stored.add_metric([kind], counters[counter])
    duplicates = CounterMetricFamily("edgekit_hub_duplicates_dropped", "redelivered (device, seq) not stored again")
    if "duplicates_dropped" in counters:
        duplicates.add_metric([], counters["duplicates_dropped"])
    up = GaugeMetricFamily("edgekit_hub_store_up", "1 when the last scrape could read the store, else 0",
                           value=1.0 if store_up else 0.0)
    return [online, last_seen, model, *device_gauges.families(), missing, lost, stored, duplicates, up]


class _DeviceGauges:
    """What each device's latest ``metrics`` message says (the payload as stored, unknown fields ignored)."""

    def __init__(self) -> None:
        self.fps = GaugeMetricFamily("edgekit_device_fps", "frames inferred per second since the agent started "
                                     "(latest metrics message)", labels=["device"])
        self.frames = CounterMetricFamily("edgekit_device_frames", "frames inferred since the agent started "
                                          "(resets when it restarts)", labels=["device"])
        self.dropped = CounterMetricFamily("edgekit_device_frames_dropped", "frames replaced by a newer one before "
                                           "inference took them, since the agent started", labels=["device"])
        self.outbox = GaugeMetricFamily("edgekit_device_outbox_pending", "messages the agent committed and the broker "
                                        "has not acknowledged", labels=["device"])
        self.outbox_age = GaugeMetricFamily("edgekit_device_outbox_oldest_age_seconds", "age of the oldest "
                                            "unacknowledged message in the agent's outbox", labels=["device"])
        self.drift = GaugeMetricFamily("edgekit_device_drift_score", "latest drift score (PSI) per signal against the "
                                       "bundle's baseline", labels=["device", "signal"])
        self.drift_state = GaugeMetricFamily("edgekit_device_drift_state", "drift state per signal: 0 ok, 1 warn, "
                                             "2 alert", labels=["device", "signal"])

    def add(self, device: str, metrics: dict[str, Any]) -> None:
        for family, key in ((self.fps, "fps"), (self.frames, "frames"), (self.dropped, "dropped_frames"),
                            (self.outbox, "outbox_depth"), (self.outbox_age, "outbox_oldest_age_s")):
            value = metrics.get(key)
            if isinstance(value, int | float):
                family.add_metric([device], float(value))
        drift = metrics.get("drift")
        for signal, histogram in (drift.items() if isinstance(drift, dict) else ()):
            if not isinstance(histogram, dict):
                continue
            if isinstance(histogram.get("score"), int | float):
                self.drift.add_metric([device, signal], float(histogram["score"]))
            if histogram.get("state") in DRIFT_STATES:
                self.drift_state.add_metric([device, signal], DRIFT_STATES[histogram["state"]])

    def families(self) -> list[Metric]:
        return [self.fps, self.frames, self.dropped, self.outbox, self.outbox_age, self.drift, self.drift_state]
