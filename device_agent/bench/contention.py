"""Was anything else using the CPUs while the model was timed?

The load average lags by a minute and counts our own earlier work, so the benchmark measures
instead, over the timed phase only: the CPU time the whole machine spent busy (``/proc/stat``)
minus the time this process used (``os.times``), as a share of all CPUs' wall time; and the
time the hypervisor gave to other guests (``steal``), which on a cloud VM is a noisy neighbour
nothing inside the machine can see.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_STAT = Path("/proc/stat")


@dataclass(frozen=True)
class CpuSnapshot:
    busy_s: float  # all CPUs: user + nice + system + irq + softirq
    steal_s: float
    own_s: float  # this process, all its threads: user + system
    wall_s: float


def snapshot(stat: Path = _STAT) -> CpuSnapshot | None:
    """Counters now; ``None`` where ``/proc/stat`` is absent (macOS, Windows)."""
    try:
        fields = stat.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(x) for x in fields[1:]] + [0] * 8
    hz = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks[:8]
    times = os.times()
    return CpuSnapshot(busy_s=(user + nice + system + irq + softirq) / hz, steal_s=steal / hz,
                       own_s=times.user + times.system, wall_s=time.monotonic())


#: The counters tick at 100 Hz: a shorter window than this says nothing (one tick is 2 % of it).
MIN_WINDOW_S = 0.5


def contention(before: CpuSnapshot | None, after: CpuSnapshot | None, cpus: int | None = None) -> dict[str, Any]:
    """``other_cpu_pct`` and ``steal_pct``: shares of the machine's CPU time between the snapshots.

    ``None`` where they cannot be measured: no ``/proc/stat``, or a window under :data:`MIN_WINDOW_S`."""
    if before is None or after is None or after.wall_s - before.wall_s < MIN_WINDOW_S:
        return {"other_cpu_pct": None, "steal_pct": None}
    capacity = (after.wall_s - before.wall_s) * (cpus or os.cpu_count() or 1)
    other = (after.busy_s - before.busy_s) - (after.own_s - before.own_s)
    steal = after.steal_s - before.steal_s

    def share(seconds: float) -> float:  # tick rounding can push a share just outside 0..100
        return round(min(100.0, max(0.0, 100.0 * seconds / capacity)), 1)

    return {"other_cpu_pct": share(other), "steal_pct": share(steal)}
