"""Latency statistics and a warm-up that lasts until the latency is stable.

Percentiles use linear interpolation between closest ranks (numpy's default, the same
definition as ``statistics.quantiles(method="inclusive")``), so the p50 of 1..100 is 50.5.
Tail percentiles need many runs to mean anything: p99.9 of fewer than 1000 runs is close
to the maximum, and the report says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

PERCENTILES: tuple[tuple[str, float], ...] = (
    ("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0), ("p99_9", 99.9),
)


@dataclass(frozen=True)
class LatencyStats:
    """Summary of timed runs, in milliseconds."""

    runs: int
    p50: float
    p90: float
    p95: float
    p99: float
    p99_9: float
    mean: float
    std: float
    min: float
    max: float
    cv: float  # coefficient of variation: std / mean (0.02 = 2 %)
    drift_pct: float  # median of the last tenth vs the first tenth of the runs, in percent (throttling shows here)

    @classmethod
    def from_ms(cls, samples_ms: Sequence[float] | np.ndarray) -> LatencyStats:
        ms = np.asarray(samples_ms, dtype=np.float64)
        if ms.size == 0:
            raise ValueError("no timed runs to summarize")
        q = np.percentile(ms, [p for _, p in PERCENTILES])
        mean = float(ms.mean())
        std = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
        tenth = max(1, ms.size // 10)
        first, last = float(np.median(ms[:tenth])), float(np.median(ms[-tenth:]))
        return cls(runs=int(ms.size), p50=float(q[0]), p90=float(q[1]), p95=float(q[2]), p99=float(q[3]),
                   p99_9=float(q[4]), mean=mean, std=std, min=float(ms.min()), max=float(ms.max()),
                   cv=std / mean if mean > 0 else 0.0, drift_pct=100.0 * (last - first) / first if first > 0 else 0.0)

    @classmethod
    def from_ns(cls, samples_ns: Sequence[int]) -> LatencyStats:
        return cls.from_ms(np.asarray(samples_ns, dtype=np.float64) / 1e6)

    def to_json(self, digits: int = 4) -> dict[str, float | int]:
        return {k: (round(v, digits) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Warmup:
    """What the warm-up did: ``stable`` is False when it hit its cap before the latency settled."""

    runs: int
    ms: float
    stable: bool
    fixed: bool  # the user gave --warmup N: exactly N runs, no stability test
    block_medians_ms: tuple[float, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"runs": self.runs, "ms": round(self.ms, 1), "stable": self.stable, "fixed": self.fixed,
                "block_medians_ms": [round(m, 4) for m in self.block_medians_ms]}


def relative_spread(values: Sequence[float]) -> float:
    """(max - min) / median: 0.03 means the values lie within 3 % of their median."""
    arr = np.asarray(values, dtype=np.float64)
    median = float(np.median(arr))
    return float(arr.max() - arr.min()) / median if median > 0 else 0.0


def warm_up(
    run: Callable[[], object],  # its result is not used
    *,
    runs: int | None = None,
    tolerance: float = 0.03,
    blocks: int = 3,
    block_s: float = 0.1,
    min_s: float = 1.0,
    max_s: float = 20.0,
    max_runs: int = 2000,
    first_ms: float = 1.0,
) -> Warmup:
    """Run for at least ``min_s`` and until the medians of the last ``blocks`` blocks agree within ``tolerance``.

    A block lasts about ``block_s`` (5 to 200 runs), sized from the previous block's median
    (from ``first_ms`` for the first block); caches, allocator arenas, thread pools, the CPU
    clock and (on a device) the thermal state settle meanwhile. ``min_s`` keeps a few quick
    blocks that happen to agree from ending it too soon. With ``runs`` given it runs exactly
    that many and does not test stability.
    """
    start = time.perf_counter_ns()
    if runs is not None:
        for _ in range(runs):
            run()
        return Warmup(runs=runs, ms=(time.perf_counter_ns() - start) / 1e6, stable=True, fixed=True)
    medians: list[float] = []
    done = 0
    earliest = start + int(min_s * 1e9)
    deadline = start + int(max_s * 1e9)
    typical_ms = first_ms
    while True:
        per_block = int(min(200, max(5, block_s * 1000.0 / max(typical_ms, 1e-3))))
        times = []
        for _ in range(per_block):
            t0 = time.perf_counter_ns()
            run()
            times.append(time.perf_counter_ns() - t0)
        done += per_block
        typical_ms = float(np.median(times)) / 1e6
        medians.append(typical_ms)
        now = time.perf_counter_ns()
        stable = len(medians) >= blocks and relative_spread(medians[-blocks:]) <= tolerance
        if (stable and now >= earliest) or done >= max_runs or now >= deadline:
            return Warmup(runs=done, ms=(now - start) / 1e6, stable=stable, fixed=False,
                          block_medians_ms=tuple(medians))
