"""How sure is a measured speedup? Confidence intervals, the rule that stops the timing, contention.

Pure functions over the latencies :func:`edgekit.optimize.measure.compare_latency` collects, so
the statistics are tested on synthetic samples and the timing loop stays a loop.

- **The interval.** A speedup is fp32's median latency over the candidate's. Its 95 % interval
  comes from a bootstrap over *rounds*: the candidates run interleaved, one run of each per
  round, so a round is one paired observation (a burst of load slows every model in it alike).
  Resampling whole rounds keeps that pairing, and the medians need no normality; past
  :data:`MAX_BLOCKS` rounds, blocks of consecutive rounds are resampled. The generator is
  seeded: the same samples give the same interval.
- **The stopping rule.** Timing goes on until every candidate is *settled*: its interval is
  narrower than +-:data:`TOLERANCE` of its speedup, or it overlaps no other candidate's interval
  (fp32's is exactly 1.0). Then every pair is either ranked (disjoint intervals) or known to be
  within a few percent of each other, which is a tie the simplicity order decides
  (:mod:`edgekit.optimize.selection`). A time cap ends it when the machine is too noisy for that.
- **Contention.** Other programs' share of the CPUs over the timed rounds (the benchmark's
  ``/proc/stat`` check, :mod:`device_agent.bench.contention`), hypervisor steal included. Over
  :data:`CONTENTION_LIMIT_PCT` the ratios are not presented as results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

TOLERANCE = 0.02
"""A speedup known to +-2 % (95 %) is settled: two candidates closer than about 4 % are called a tie.
The quiet-machine spread of interleaved medians over a few seconds is 1-2 %, so a tighter target
would mostly hit the time cap; a looser one would call 1.05x vs 1.10x a tie."""

CONTENTION_LIMIT_PCT = 25.0
"""Other CPU use above which optimize does not present a speedup as a result. Interleaving spreads
load that comes and goes over every candidate alike, and the interval widens with it; but load that
holds a quarter of the machine (a whole core of four, half of two) preempts the inference threads
every round, and a multi-threaded INT8 model loses more to that than a single-stream FP32 one, so
the ratio itself moves, which no interval over the same busy rounds can show. The benchmark already
flags more than 10 % as noise in its numbers; 25 % is where a ranking stops meaning anything."""

RESAMPLES = 1000
"""Bootstrap resamples: the percentile interval's own Monte-Carlo error is a small fraction of its width."""

MAX_BLOCKS = 200
"""Past this many rounds the bootstrap resamples blocks of consecutive rounds (each model's median in
each block) instead of single rounds. Load comes in bursts longer than one round, so neighbouring
rounds are not independent, and a block bootstrap keeps that; it also keeps each check's cost flat
(a bootstrap over 5000 single rounds of 8 models took 2.3 s on a busy 2-core machine, 200 blocks 0.1 s)."""

Stopped = Literal["resolved", "time cap", "round cap"]


@dataclass(frozen=True)
class Speedup:
    """fp32's median over a candidate's, and its 95 % interval (``lo``, ``hi``)."""

    value: float
    lo: float
    hi: float

    @property
    def faster(self) -> bool:
        """Measurably faster than fp32: the whole interval lies above 1.0."""
        return self.lo > 1.0

    @property
    def slower(self) -> bool:
        """Measurably slower than fp32: the whole interval lies below 1.0."""
        return self.hi < 1.0

    def overlaps(self, other: Speedup) -> bool:
        """The two cannot be told apart: their intervals share a point."""
        return self.lo <= other.hi and other.lo <= self.hi

    def half_width(self) -> float:
        """Half the interval's width, relative to the speedup (0.02: known to +-2 %)."""
        return (self.hi - self.lo) / (2.0 * self.value) if self.value > 0 else float("inf")

    def text(self) -> str:
        """``1.42x (1.38-1.47)``."""
        return f"{self.value:.2f}x ({self.lo:.2f}-{self.hi:.2f})"


def speedups(samples_ns: Mapping[str, Sequence[int]], reference: str, *, resamples: int = RESAMPLES,
             seed: int = 0) -> dict[str, Speedup]:
    """Every model's speedup over ``reference`` with its paired-bootstrap 95 % interval.

    ``samples_ns[name][r]`` is the model's latency in round ``r``; all have the same rounds.
    The same resampled rounds serve every model, so their intervals are drawn alike."""
    ref = np.asarray(samples_ns[reference], dtype=np.float64)
    rounds = ref.size
    if rounds == 0 or any(len(s) != rounds for s in samples_ns.values()):
        raise ValueError(f"every model needs the same number of rounds (>0); got "
                         f"{ {name: len(s) for name, s in samples_ns.items()} }")
    units = min(rounds, MAX_BLOCKS)
    picks = np.random.default_rng(seed).integers(0, units, size=(resamples, units))
    ref_medians = np.median(_blocks(ref, units)[picks], axis=1)
    ref_median = float(np.median(ref))
    found = {}
    for name, values in samples_ns.items():
        own = np.asarray(values, dtype=np.float64)
        if name == reference:
            found[name] = Speedup(1.0, 1.0, 1.0)
            continue
        ratios = ref_medians / np.median(_blocks(own, units)[picks], axis=1)
        lo, hi = np.percentile(ratios, [2.5, 97.5])
        value = ref_median / float(np.median(own))
        # a percentile interval of a median can miss its own estimate on few, tied values: it never may here
        found[name] = Speedup(value, min(float(lo), value), max(float(hi), value))
    return found


def _blocks(latencies: np.ndarray, count: int) -> np.ndarray:
    """The median of each of ``count`` runs of consecutive rounds (the rounds themselves when as many)."""
    if count == latencies.size:
        return latencies
    return np.array([np.median(block) for block in np.array_split(latencies, count)])


def settled(found: Mapping[str, Speedup], tolerance: float = TOLERANCE) -> bool:
    """The stopping rule: every speedup is known to +-``tolerance`` or overlaps no other one."""
    for name, s in found.items():
        if s.half_width() <= tolerance:
            continue
        if any(s.overlaps(other) for other_name, other in found.items() if other_name != name):
            return False
    return True


@dataclass(frozen=True)
class Timing:
    """How the side-by-side timing went: what a reader needs to trust (or not) its ratios."""

    rounds: int
    seconds: float
    stopped: Stopped
    other_cpu_pct: float | None  # None: not measurable (no /proc/stat, or under half a second)
    steal_pct: float | None
    reference: str
    speedups: dict[str, Speedup] = field(default_factory=dict)

    @property
    def contention_pct(self) -> float | None:
        """Other programs' and other guests' share of the CPUs while timing."""
        if self.other_cpu_pct is None:
            return None
        return round(min(100.0, self.other_cpu_pct + (self.steal_pct or 0.0)), 1)

    @property
    def contended(self) -> bool:
        """Too busy a machine for its ratios to be results (over :data:`CONTENTION_LIMIT_PCT`)."""
        return (self.contention_pct or 0.0) > CONTENTION_LIMIT_PCT

    @property
    def resolved(self) -> bool:
        """The stopping rule was met on a quiet enough machine."""
        return self.stopped == "resolved" and not self.contended

    def warnings(self) -> list[str]:
        """What a person must be told about this timing (empty when nothing)."""
        if not self.contended:
            return []
        return [f"other programs used {self.contention_pct:.0f}% of the CPUs while the candidates were timed "
                f"(over the {CONTENTION_LIMIT_PCT:.0f}% limit): the speedups are not resolved and may be noise; "
                "re-run on a quiet machine, or measure the bundle with 'edgekit benchmark'"]
