"""The hub's alerts: raised and cleared once each, stored, and sent to MQTT and a webhook (issue 17).

- :mod:`.rules`: the thresholds and destinations (:class:`AlertRules`), and the ``edgekit hub`` flags.
- :mod:`.checks`: offline, fps and backlog as verdicts on numbers; :mod:`.cohort`: drift merged per cohort.
- :mod:`.book`: which alerts are open; :mod:`.sinks`: the MQTT topic and the webhook.
- :mod:`.engine`: :class:`AlertEngine`, the observer that ties them to the ingest.
"""

from __future__ import annotations

from edgekit.fleet.hub.alerts.book import AlertBook
from edgekit.fleet.hub.alerts.cohort import CohortDrift, CohortSignal, cohort_drift
from edgekit.fleet.hub.alerts.engine import COHORT_DEVICE, AlertEngine, default_sinks
from edgekit.fleet.hub.alerts.rules import DEFAULT_TOPIC, AlertRules, alert_args, alerts_from_args
from edgekit.fleet.hub.alerts.sinks import AlertSink, MqttSink, WebhookSink, alert_payload

__all__ = ["COHORT_DEVICE", "DEFAULT_TOPIC", "AlertBook", "AlertEngine", "AlertRules", "AlertSink", "CohortDrift",
           "CohortSignal", "MqttSink", "WebhookSink", "alert_args", "alert_payload", "alerts_from_args",
           "cohort_drift", "default_sinks"]
