"""When the hub raises an alert, and where it sends it: one frozen record, validated once, and its CLI flags.

``edgekit hub`` adds the flags with :func:`alert_args` and builds the record with
:func:`alerts_from_args`; everything else takes an :class:`AlertRules`.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass

from edgekit.errors import UsageError
from edgekit.fleet.hub.durations import parse_duration

DEFAULT_TOPIC = "edgekit/v1/_hub/alerts"
"""Where the hub publishes its alerts: under the contract's root, at a level no device id takes (``_hub``)."""



@dataclass(frozen=True)
class AlertRules:
    """Thresholds and destinations of the hub's alerts; every field checked when made (:class:`UsageError`)."""

    offline_after_s: float = 60.0
    """A device offline (its status says so) or silent (nothing received) this long is raised ``offline``."""
    fps_below: float = 0.5
    """``fps`` is raised when the device infers fewer frames per second than this fraction of what it could:
    the bundle's measured fps, or what its sources deliver when they deliver less (0 turns it off)."""
    fps_clear_margin: float = 0.2
    """An ``fps`` alert clears once the rate is back above the threshold by this fraction (no flapping)."""
    backlog_growth: int = 6
    """``backlog`` is raised when the outbox grew at this many heartbeats in a row (a minute at 10 s)..."""
    backlog_limit: int = 1000
    """...or holds more than this many messages; it clears once draining and under 80 % of the limit."""
    drift_warn: float = 0.1
    """PSI of a cohort's merged windows that is ``warn`` (shown, not alerted)."""
    drift_alert: float = 0.25
    """PSI of a cohort's merged windows that raises a cohort ``drift`` alert (the device's default too)."""
    drift_p_value: float = 0.01
    """The class mix must also differ at this significance (chi-square), as on the device."""
    cohort_min_devices: int = 2
    """Devices (with a scored window) a cohort needs before it is judged: one device's own alert covers one."""
    topic: str = DEFAULT_TOPIC
    """MQTT topic of every alert raised or cleared (QoS 1); the open alerts per device and kind are retained
    under ``<topic>/<device>/<kind>``."""
    webhook: str | None = None
    """URL each alert is POSTed to as JSON (in the background: never slows ingest)."""
    webhook_timeout_s: float = 5.0
    webhook_retries: int = 3
    webhook_queue: int = 1000

    def __post_init__(self) -> None:
        positive = ("offline_after_s", "webhook_timeout_s", "backlog_growth", "backlog_limit", "webhook_queue",
                    "cohort_min_devices")
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise UsageError(f"{_flag(name)} {value!r}: expected a number above 0")
        fractions = (("fps_below", 0.0, 1.0), ("fps_clear_margin", 0.0, 1.0), ("drift_p_value", 0.0, 1.0))
        for name, low, high in fractions:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and low <= value < high):
                raise UsageError(f"{_flag(name)} {value!r}: expected a fraction from {low:g} up to (not including) "
                                 f"{high:g}")
        if not 0 < self.drift_warn < self.drift_alert:
            raise UsageError(f"drift thresholds warn {self.drift_warn!r}, alert {self.drift_alert!r}: expected "
                             "0 < warn < alert (PSI, e.g. 0.1 and 0.25)")
        if self.webhook_retries < 0:
            raise UsageError(f"webhook_retries {self.webhook_retries!r}: expected 0 or more")
        if not self.topic or any(c in self.topic for c in "+#\0"):
            raise UsageError(f"--alerts-topic {self.topic!r}: expected a topic name without wildcards (+, #)")
        if self.webhook is not None and not re.match(r"https?://[^/\s]+", self.webhook):
            raise UsageError(f"--webhook {self.webhook!r}: expected an http:// or https:// URL")


_FLAGS = {"offline_after_s": "--offline-after", "fps_below": "--fps-below", "backlog_limit": "--backlog-limit",
          "backlog_growth": "--backlog-growth", "topic": "--alerts-topic", "webhook": "--webhook"}


def _flag(name: str) -> str:
    return _FLAGS.get(name, name)



def alert_args(parser: argparse.ArgumentParser) -> None:
    """Add the alert flags to ``edgekit hub``'s parser (their values are checked by :func:`alerts_from_args`)."""
    group = parser.add_argument_group("alerts")
    defaults = AlertRules()
    group.add_argument("--offline-after", default=f"{defaults.offline_after_s:g}s", metavar="DURATION",
                       help="raise 'offline' for a device offline or silent this long (default: %(default)s)")
    group.add_argument("--fps-below", type=float, default=defaults.fps_below, metavar="FRACTION",
                       help="raise 'fps' below this fraction of the bundle's measured fps, or of what the sources "
                            "deliver when less; 0 turns it off (default: %(default)s)")
    group.add_argument("--backlog-limit", type=int, default=defaults.backlog_limit, metavar="N",
                       help="raise 'backlog' when a device's outbox holds more (default: %(default)s), or grew at "
                            f"{defaults.backlog_growth} heartbeats in a row")
    group.add_argument("--alerts-topic", default=defaults.topic, metavar="TOPIC",
                       help="MQTT topic the alerts are published on (default: %(default)s)")
    group.add_argument("--webhook", default=None, metavar="URL", help="POST each alert as JSON to this URL")


def alerts_from_args(args: argparse.Namespace) -> AlertRules:
    """The :class:`AlertRules` of the flags :func:`alert_args` added (:class:`UsageError` naming a bad one)."""
    offline_after = parse_duration("--offline-after", args.offline_after, bare_seconds=True)
    return AlertRules(offline_after_s=offline_after.total_seconds(),
                      fps_below=args.fps_below, backlog_limit=args.backlog_limit, topic=args.alerts_topic,
                      webhook=args.webhook)


__all__ = ["DEFAULT_TOPIC", "AlertRules", "alert_args", "alerts_from_args"]
