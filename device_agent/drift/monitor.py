"""Rolling windows over the last ``window`` frames, scored against the baseline, with hysteresis.

Per frame the cost is one bin lookup and two counter updates per signal (a ring buffer holds
each frame's bin, so the frame leaving the window is subtracted in O(1)); the scores are taken
every :data:`CHECK_EVERY` frames, and none before ``min_frames`` frames are in the window.

States are ``ok``, ``warn`` and ``alert``. A state rises as soon as its threshold is crossed and
falls only once the score is below that threshold by :data:`HYSTERESIS` (20 %), so a score
that hovers at a threshold is announced once, not at every check. Each change is returned once
by :meth:`DriftMonitor.update` for the agent to publish.

The class mix is scored by PSI over the class histogram (the magnitude, on the same scale and
thresholds as the other signals) and must also be significant by a chi-square test at
``p_value`` (a few frames of a rare class do not make a shift); the event carries both.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from device_agent.drift.baseline import OTHER, DriftBaseline
from device_agent.drift.signals import INPUT_SIGNALS, OutputSignals
from device_agent.drift.stats import chi_square, chi_square_p, psi

State = Literal["ok", "warn", "alert"]
_RANK: dict[State, int] = {"ok": 0, "warn": 1, "alert": 2}
CHECK_EVERY = 10
HYSTERESIS = 0.2
CLASS_MIX = "class_mix"


@dataclass(frozen=True)
class DriftSettings:
    window: int = 300
    min_frames: int = 100
    warn: float = 0.1
    alert: float = 0.25
    p_value: float = 0.01


@dataclass(frozen=True)
class DriftChange:
    """One signal's state changed: what the ``drift`` event says."""

    signal: str
    state: State
    previous: State
    score: float
    threshold: float
    window: int
    p_value: float | None = None


@dataclass(frozen=True)
class SignalView:
    """One signal's window now, for the metrics heartbeat."""

    counts: list[int]
    edges: list[float] | None
    labels: list[str] | None
    score: float | None
    state: State
    reference: list[int]
    """The baseline's counts per bin, what ``score`` compares ``counts`` with."""


class _Window:
    """Counts per bin over the last ``size`` frames; a frame may add no bin, one, or several (labels)."""

    def __init__(self, bins: int, size: int) -> None:
        self.counts = np.zeros(bins, dtype=np.int64)
        self._frames: deque[tuple[int, ...]] = deque()
        self._size = size

    def add(self, bins: tuple[int, ...]) -> None:
        if len(self._frames) == self._size:
            for b in self._frames.popleft():
                self.counts[b] -= 1
        self._frames.append(bins)
        for b in bins:
            self.counts[b] += 1

    @property
    def frames(self) -> int:
        return len(self._frames)


@dataclass
class _Signal:
    reference: np.ndarray
    window: _Window
    edges: list[float] | None = None
    labels: list[str] | None = None
    score: float | None = None
    state: State = "ok"


class DriftMonitor:
    """Drift of every signal the baseline has, over the last ``settings.window`` frames."""

    def __init__(self, baseline: DriftBaseline, settings: DriftSettings | None = None) -> None:
        self.settings = settings or DriftSettings()
        size = self.settings.window
        self.signals: dict[str, _Signal] = {
            name: _Signal(np.asarray(b.counts), _Window(len(b.counts), size), edges=b.edges)
            for name, b in baseline.signals.items()
        }
        self._edges = {name: np.asarray(b.edges) for name, b in baseline.signals.items()}
        self._class_index: dict[str, int] = {}
        if baseline.classes is not None:
            labels = baseline.classes.labels
            self._class_index = {label: i for i, label in enumerate(labels)}
            self.signals[CLASS_MIX] = _Signal(np.asarray(baseline.classes.counts), _Window(len(labels), size),
                                              labels=labels)
        self.wants_input = any(name in self.signals for name in INPUT_SIGNALS)
        self.frames = 0

    def update(self, inputs: Sequence[float] | None, outputs: OutputSignals) -> list[DriftChange]:
        """Add one frame (its :data:`INPUT_SIGNALS` values, or None, and its result's signals); the changes."""
        if inputs is not None:
            for name, value in zip(INPUT_SIGNALS, inputs, strict=True):
                self._add(name, value)
        self._add("top1_confidence", outputs.top1_confidence)
        self._add("detections", outputs.detections)
        mix = self.signals.get(CLASS_MIX)
        if mix is not None:
            other = self._class_index[OTHER]
            mix.window.add(tuple(self._class_index.get(label, other) for label in outputs.classes))
        self.frames += 1
        return self.check() if self.frames % CHECK_EVERY == 0 else []

    def _add(self, name: str, value: float | None) -> None:
        signal = self.signals.get(name)
        if signal is not None and value is not None:
            signal.window.add((int(np.searchsorted(self._edges[name], value, side="left")),))

    def check(self) -> list[DriftChange]:
        """Score every signal whose window holds ``min_frames`` frames; the state changes."""
        changes = []
        for name, signal in self.signals.items():
            window = signal.window
            if window.frames < self.settings.min_frames or window.counts.sum() == 0:
                continue
            signal.score = psi(signal.reference, window.counts)
            p_value = None
            effective = signal.score
            if name == CLASS_MIX:
                p_value = chi_square_p(*chi_square(signal.reference, window.counts))
                if p_value >= self.settings.p_value:
                    effective = 0.0  # not significant: no evidence of a shift, however large the PSI looks
            state = self._next(signal.state, effective)
            if state != signal.state:
                threshold = self._threshold(state if _RANK[state] > _RANK[signal.state] else signal.state)
                changes.append(DriftChange(name, state, signal.state, round(signal.score, 4), threshold,
                                           window.frames, None if p_value is None else float(f"{p_value:.3g}")))
                signal.state = state
        return changes

    def _threshold(self, state: State) -> float:
        return self.settings.alert if state == "alert" else self.settings.warn

    def _level(self, score: float, scale: float = 1.0) -> State:
        s = self.settings
        return "alert" if score >= s.alert * scale else "warn" if score >= s.warn * scale else "ok"

    def _next(self, current: State, score: float) -> State:
        """Up as soon as a threshold is crossed; down only below it by the hysteresis margin."""
        up = self._level(score)
        if _RANK[up] >= _RANK[current]:
            return up
        down = self._level(score, 1.0 - HYSTERESIS)
        return down if _RANK[down] < _RANK[current] else current

    def view(self) -> dict[str, SignalView]:
        """Every signal's window counts, bins, latest score and state."""
        return {name: SignalView([int(c) for c in s.window.counts], s.edges, s.labels,
                                 None if s.score is None else round(s.score, 4), s.state,
                                 [int(c) for c in s.reference])
                for name, s in self.signals.items()}
