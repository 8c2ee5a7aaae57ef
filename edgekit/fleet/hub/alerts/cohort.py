"""Drift of a cohort: the devices running one model version, their latest windows summed and scored.

Each device scores its own window against the bundle's baseline; the cohort's score says whether
the fleet as a whole has moved away from the data the model was optimized on. A camera knocked
out of place drifts alone (its own alert, not the cohort's); cameras that shift opposite ways
cancel; a shift common to the fleet (a season, a firmware's exposure change) shows as the
cohort's. PSI is a symmetric Kullback-Leibler divergence, convex in the window's proportions, so
the merged score is at most the devices' average (up to the smoothing of small windows): the
cohort never alerts on less than its devices say. The hub has no bundle: each heartbeat's ``drift``
entry carries the window's ``counts`` and the baseline's (``baseline_counts``), so the hub sums
the windows of every online device of the cohort per signal and scores the sum with the device's
own :func:`device_agent.drift.psi` (and, for the class mix, its chi-square test), on the same
thresholds. Only windows the device has scored (``score`` not null: enough frames) count, and
only devices whose bins match (same baseline: the same model version has the same one).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from device_agent.drift import chi_square, chi_square_p, psi
from edgekit.fleet.hub.store import Device

CLASS_MIX = "class_mix"


@dataclass(frozen=True)
class CohortSignal:
    """One signal of a cohort: the windows of ``devices`` summed, and their PSI against the baseline."""

    signal: str
    psi: float
    state: str
    """``ok``, ``warn`` or ``alert`` by the thresholds (no hysteresis here: the alert engine adds it)."""
    counts: list[int]
    baseline_counts: list[int]
    devices: tuple[str, ...]
    edges: list[float] | None = None
    labels: list[str] | None = None
    p_value: float | None = None
    """Chi-square p-value of the summed class mix against the baseline (``class_mix`` only)."""

    @property
    def frames(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class CohortDrift:
    """Every signal of one cohort (model name and version)."""

    model: str
    version: str
    devices: tuple[str, ...]
    """Online devices of the cohort with a drift window in their latest heartbeat."""
    signals: dict[str, CohortSignal] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.model}@{self.version}"


@dataclass
class _Sum:
    bins: tuple[Any, ...]
    counts: np.ndarray
    reference: list[int]
    entry: dict[str, Any]
    devices: list[str] = field(default_factory=list)


def cohort_drift(devices: Iterable[Device], *, warn: float = 0.1, alert: float = 0.25, p_value: float = 0.01,
                 min_devices: int = 1) -> list[CohortDrift]:
    """Each cohort's drift from the devices' latest heartbeats (``store.devices()``), by cohort name.

    A signal is listed once ``min_devices`` devices have a scored window of it.
    """
    cohorts: dict[tuple[str, str], tuple[list[str], dict[str, _Sum]]] = {}
    for device in devices:
        drift = (device.metrics or {}).get("drift")
        if device.model is None or not device.online or not isinstance(drift, dict):
            continue
        members, sums = cohorts.setdefault((device.model.name, device.model.version), ([], {}))
        members.append(device.id)
        for signal, entry in drift.items():
            _add(sums, signal, entry, device.id)
    out = []
    for (model, version), (members, sums) in sorted(cohorts.items()):
        signals = {name: _score(name, s, warn, alert, p_value) for name, s in sorted(sums.items())
                   if len(s.devices) >= min_devices}
        out.append(CohortDrift(model, version, tuple(sorted(members)), signals))
    return out


def _add(sums: dict[str, _Sum], signal: str, entry: Any, device: str) -> None:
    if not isinstance(entry, dict) or entry.get("score") is None:
        return  # not scored yet on the device: too few frames to say anything
    counts, reference = entry.get("counts"), entry.get("baseline_counts")
    if not isinstance(counts, list) or not isinstance(reference, list) or len(counts) != len(reference) \
            or not counts:
        return  # an agent before baseline_counts, or a malformed entry
    bins = (tuple(entry.get("edges") or ()), tuple(entry.get("labels") or ()), tuple(reference))
    current = sums.get(signal)
    if current is None:
        sums[signal] = _Sum(bins, np.asarray(counts, dtype=np.int64), list(reference), entry, [device])
    elif current.bins == bins:
        current.counts += np.asarray(counts, dtype=np.int64)
        current.devices.append(device)


def _score(signal: str, s: _Sum, warn: float, alert: float, p_value: float) -> CohortSignal:
    reference = np.asarray(s.reference, dtype=np.int64)
    score = psi(reference, s.counts)
    effective, p = score, None
    if signal == CLASS_MIX:
        p = chi_square_p(*chi_square(reference, s.counts))
        if p >= p_value:
            effective = 0.0  # not significant: as the device judges its own class mix
    state = "alert" if effective >= alert else "warn" if effective >= warn else "ok"
    return CohortSignal(signal, round(score, 4), state, [int(c) for c in s.counts], s.reference,
                        tuple(sorted(s.devices)), s.entry.get("edges"), s.entry.get("labels"),
                        None if p is None else float(f"{p:.3g}"))
