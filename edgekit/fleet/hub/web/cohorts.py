"""Drift per cohort (model version) for the API and the dashboard, scored as the alert engine scores it.

- **Now** (:func:`cohorts`, the fleet page and ``/api/cohorts``): :func:`~edgekit.fleet.hub.alerts.cohort_drift`
  over ``store.devices()``, the latest heartbeat of each device, which the fleet page reads anyway: no
  query over the metrics history, so the fleet page stays as fast as the devices table.
- **Over time** (:func:`detail`, ``/cohorts/<name>`` and ``/api/cohorts/<name>``): the newest
  :data:`SERIES_PER_DEVICE` metrics messages of each member (one bounded query per device on the
  ``(device, ts)`` index), cut to the :data:`WINDOW_S` before the newest, in :data:`BUCKETS` equal
  time buckets. In each bucket every device counts once, with its newest heartbeat there: a
  device's window is a rolling one, so summing two heartbeats of one device would count the same
  frames twice. The bucket's windows are scored by the same :func:`cohort_drift` (same thresholds,
  same ``min_devices``), so a point says what the cohort alert would have said then.

Honest limits: metrics carry no model version, so "members" are the devices whose *latest*
model is the cohort's; their heartbeats from before an update to it are still on another
baseline, and :func:`cohort_drift` leaves out windows whose bins differ from the first one's.
The cost is a cohort page's alone (its members' heartbeats); the fleet page never pays it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from edgekit.fleet.hub.alerts.cohort import CohortDrift, cohort_drift
from edgekit.fleet.hub.alerts.rules import AlertRules
from edgekit.fleet.hub.store import Device, Store, StoredMetrics
from edgekit.fleet.hub.web.models import (
    CohortDetailOut,
    CohortOut,
    CohortPoint,
    CohortSignalOut,
    CohortsOut,
    DriftState,
    SignalState,
)
from edgekit.fleet.hub.web.views import DRIFT_ORDER, SERIES_POINTS

SERIES_PER_DEVICE = SERIES_POINTS
"""Metrics messages read per member for the chart (an hour at the agent's default 10 s heartbeat)."""
WINDOW_S = 3600.0
"""The chart covers at most this long before the newest heartbeat read."""
BUCKETS = 30


def _judge(devices: Sequence[Device], rules: AlertRules) -> list[CohortDrift]:
    return cohort_drift(devices, warn=rules.drift_warn, alert=rules.drift_alert, p_value=rules.drift_p_value,
                        min_devices=rules.cohort_min_devices)


def worst(cohort: CohortDrift) -> DriftState:
    states = [s.state for s in cohort.signals.values()]
    return cast(DriftState, max(states, key=DRIFT_ORDER.__getitem__)) if states else "pending"


def cohort_out(cohort: CohortDrift) -> CohortOut:
    signals = {name: CohortSignalOut(psi=s.psi, state=cast(SignalState, s.state), frames=s.frames, counts=s.counts,
                                     baseline_counts=s.baseline_counts, devices=list(s.devices), edges=s.edges,
                                     labels=s.labels, p_value=s.p_value)
               for name, s in cohort.signals.items()}
    return CohortOut(name=cohort.name, model=cohort.model, version=cohort.version, devices=list(cohort.devices),
                     state=worst(cohort), signals=signals)


def cohorts(devices: Sequence[Device], rules: AlertRules) -> CohortsOut:
    """Every cohort now, from the devices' latest heartbeats (``store.devices()``)."""
    return CohortsOut(cohorts=[cohort_out(c) for c in _judge(devices, rules)], warn=rules.drift_warn,
                      alert=rules.drift_alert, min_devices=rules.cohort_min_devices)


def _name(device: Device) -> str | None:
    return None if device.model is None else f"{device.model.name}@{device.model.version}"


def series(store: Store, members: Sequence[Device], rules: AlertRules, *, buckets: int = BUCKETS) -> list[CohortPoint]:
    """The cohort's merged scores per time bucket, oldest first (see the module's docstring)."""
    history = {d.id: store.metrics(device=d.id, limit=SERIES_PER_DEVICE) for d in members}
    stamps = [m.ts for rows in history.values() for m in rows]
    if not stamps:
        return []
    end = max(stamps)
    start = max(min(stamps), end - WINDOW_S)
    width = max((end - start) / buckets, 1e-9)
    newest: dict[int, dict[str, StoredMetrics]] = {}
    for device, rows in history.items():
        for m in rows:  # newest first: the first one met in a bucket is the device's newest there
            if m.ts >= start:
                newest.setdefault(min(buckets - 1, int((m.ts - start) / width)), {}).setdefault(device, m)
    model = {d.id: d.model for d in members}
    points = []
    for index in sorted(newest):
        beats = newest[index]
        window = [Device(device, model[device], None, True, m.ts, None, m.payload) for device, m in beats.items()]
        judged = _judge(window, rules)
        signals = judged[0].signals if judged else {}
        points.append(CohortPoint(ts=max(m.ts for m in beats.values()), devices=len(beats),
                                  psi={name: s.psi for name, s in signals.items()},
                                  states={name: cast(SignalState, s.state) for name, s in signals.items()}))
    return points


def detail(store: Store, name: str, rules: AlertRules) -> CohortDetailOut | None:
    """One cohort now and over time; None when no device's latest model is ``name`` (``<model>@<version>``)."""
    devices = store.devices()
    members = [d for d in devices if _name(d) == name]
    if not members:
        return None
    model = members[0].model
    assert model is not None
    now = next((c for c in _judge(members, rules)), CohortDrift(model.name, model.version, ()))
    return CohortDetailOut(**cohort_out(now).model_dump(), members=[d.id for d in members],
                           series=series(store, members, rules))
