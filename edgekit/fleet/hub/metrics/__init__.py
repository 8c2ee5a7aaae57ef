"""``/metrics``: the fleet and the hub in the Prometheus exposition format (see :mod:`.hub`).

- :mod:`.hub`: :class:`HubMetrics`, the observer that owns the registry and the exposition.
- :mod:`.live`: counters and histograms of fresh messages (process lifetime).
- :mod:`.state`: gauges read from the store at scrape time (right after a restart).

The Grafana dashboard over these metrics is ``deploy/grafana/edgekit-fleet.json``.
"""

from __future__ import annotations

from edgekit.fleet.hub.metrics.hub import HubMetrics
from edgekit.fleet.hub.metrics.live import MAX_CLASSES, OTHER_CLASS

__all__ = ["MAX_CLASSES", "OTHER_CLASS", "HubMetrics"]
