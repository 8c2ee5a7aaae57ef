"""Counters and histograms of what the hub received while it runs (process lifetime).

Counted from each fresh message once (the observer's ``report.fresh``), so a redelivered batch
changes nothing. They start from zero when the hub restarts; Prometheus's ``rate()`` and
``increase()`` handle counter resets.

Cardinality: a ``class`` label takes at most :data:`MAX_CLASSES` distinct values per device
and metric, the first ones seen; later classes are counted under ``class="other"``. A COCO
detector has 80 classes, but a device sees a few dozen at most in practice, and a model with
thousands (ImageNet) must not make thousands of series per camera.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Histogram

from device_agent.protocol import Result

MAX_CLASSES = 50
OTHER_CLASS = "other"
LATENCY_BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
"""Edge inference runs from ~1 ms (a tiny classifier on a GPU) to seconds (a detector on a Pi's CPU)."""
BATCH_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class LiveMetrics:
    """The process-lifetime counters and histograms, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry, *, max_classes: int = MAX_CLASSES) -> None:
        self.max_classes = max_classes
        self._classes: dict[tuple[str, str], set[str]] = {}
        self._lock = threading.Lock()
        self.latency = Histogram("edgekit_device_inference_latency_seconds", "inference (infer stage) latency of "
                                 "each result received", ["device"], buckets=LATENCY_BUCKETS_S, registry=registry)
        self.results = Counter("edgekit_device_results_total", "results received (one per published frame)",
                               ["device"], registry=registry)
        self.detections = Counter("edgekit_device_detections_total", "objects detected, per class "
                                  f"(at most {max_classes} classes per device, the rest as 'other')",
                                  ["device", "class"], registry=registry)
        self.classifications = Counter("edgekit_device_classifications_total", "top-1 class of each classification "
                                       f"result (at most {max_classes} classes per device, the rest as 'other')",
                                       ["device", "class"], registry=registry)
        self.events = Counter("edgekit_device_events_total", "events received, per kind", ["device", "kind"],
                              registry=registry)
        self.rejected = Counter("edgekit_hub_messages_rejected_total", "messages refused by the protocol's parser "
                                "(not stored)", ["kind"], registry=registry)
        self.batch = Histogram("edgekit_hub_ingest_batch_seconds", "time to commit one batch to the store",
                               buckets=BATCH_BUCKETS_S, registry=registry)

    def result(self, device: str, result: Result) -> None:
        self.results.labels(device).inc()
        infer_ms = result.latency_ms.get("infer")
        if infer_ms is not None:
            self.latency.labels(device).observe(infer_ms / 1000.0)
        decoded = result.result
        for box in decoded.detections:
            self.detections.labels(device, self._class(device, "detections", box.label)).inc()
        if decoded.classifications:
            top = max(decoded.classifications, key=lambda c: c.score)
            self.classifications.labels(device, self._class(device, "classifications", top.label)).inc()

    def event(self, device: str, kind: str) -> None:
        self.events.labels(device, kind).inc()

    def _class(self, device: str, metric: str, label: str) -> str:
        """``label``, or ``other`` once the device has ``max_classes`` other labels on this metric."""
        with self._lock:
            seen = self._classes.setdefault((device, metric), set())
            if label in seen:
                return label
            if len(seen) < self.max_classes and label != OTHER_CLASS:
                seen.add(label)
                return label
            return OTHER_CLASS
