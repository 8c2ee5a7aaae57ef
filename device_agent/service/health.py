"""CPU, memory and temperature of the device, read from /proc and /sys (no extra dependency)."""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path


class CpuMeter:
    """Process CPU use in percent of one core since the previous call."""

    def __init__(self) -> None:
        self._last = (os.times(), time.monotonic())

    def percent(self) -> float:
        times, wall = os.times(), time.monotonic()
        (old_times, old_wall) = self._last
        self._last = (times, wall)
        used = (times.user + times.system) - (old_times.user + old_times.system)
        return 100.0 * used / max(wall - old_wall, 1e-9)


def peak_rss_mb() -> float:
    """This process's peak resident set (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def rss_mb() -> float:
    """Resident memory now (from /proc), or the peak where /proc is absent."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return peak_rss_mb()


def temperature_c() -> float | None:
    """The SoC temperature where the board exposes one (Raspberry Pi, Jetson: thermal_zone0)."""
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*/temp")):
        try:
            return int(zone.read_text().strip()) / 1000.0
        except (OSError, ValueError):
            continue
    return None
