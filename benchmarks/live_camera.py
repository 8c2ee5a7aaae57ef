"""How a live camera source survives stalls, drops and returns: detection, recovery, leaks.

A real HTTP MJPEG camera (tests/support/live_camera.py: JPEG frames of a real photograph, served as
``multipart/x-mixed-replace``) is read by the agent's own ``url`` source (OpenCV's FFmpeg
backend) under a ``SourceRunner``, and made to fail N times: stall (socket open, no bytes),
drop (connections refused), garbage, return. Two runs side by side:

- ``fast``: short limits (stall 0.25 s, read timeout 0.5 s, backoff 0.02..0.1 s), many cycles:
  does anything (descriptors, threads, memory) grow per reconnect?
- ``defaults``: the agent's default limits (stall 3 s, read timeout 5 s, backoff 0.5..5 s),
  a few cycles: is a stall seen in under 5 s, and are frames back in under 10 s?
- ``outage``: the defaults again, the camera gone for 16 s each time, long enough for the
  reconnect backoff to reach its cap: the cap, not luck, bounds the recovery.

Detection is from the last frame the camera sent to STALLED (RECONNECTING for a drop while
streaming); recovery from the camera's return to the first new frame captured. Descriptors,
threads and RSS are this process's, taken after the warm-up cycles and at the end, each once
every abandoned connection had its read timeout to end.

    python benchmarks/live_camera.py [--cycles 100] [--default-cycles 5]

Writes benchmarks/results/live_camera.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the camera lives with the tests

from device_agent.sources import SourceRunner
from tests.support.live_camera import LiveCamera, StateLog, runner_cycles

RESULTS = Path(__file__).parent / "results"
RUNS: dict[str, dict[str, Any]] = {
    "fast": {"limits": {"stall_after_s": 0.25, "read_timeout_s": 0.5, "backoff_initial_s": 0.02, "backoff_max_s": 0.1},
             "stream_s": 0.1},
    # Streams past the stall limit between faults, so each reconnect starts the backoff again at
    # attempt 1, as it does for a camera that fails now and then rather than flapping.
    "defaults": {"limits": {}, "stream_s": 3.2},
    "outage": {"limits": {}, "stream_s": 3.2, "drop_s": 16.0},
}


def run(name: str, cycles: int, warmup: int) -> dict[str, Any]:
    spec = RUNS[name]
    log = StateLog()
    with LiveCamera(fps=25) as camera:
        runner = SourceRunner(camera.url, name="cam", on_state=log, **spec["limits"]).start()
        limits = {"stall_after_s": runner.stall_after_s, "read_timeout_s": runner.read_timeout_s,
                  "backoff_initial_s": runner.backoff_initial_s, "backoff_max_s": runner.backoff_max_s}
        started = time.monotonic()
        try:
            figures = runner_cycles(runner, camera, log, cycles=cycles, warmup=min(warmup, cycles - 1),
                                    stream_s=spec["stream_s"], drop_s=spec.get("drop_s", 0.1))
        finally:
            runner.stop(timeout=2.0)
    return {"run": name, "limits": limits, "seconds": round(time.monotonic() - started, 1), **figures.summary()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=100, help="cycles with the short limits")
    parser.add_argument("--default-cycles", type=int, default=5, help="cycles with the default limits (~7 s each)")
    parser.add_argument("--outage-cycles", type=int, default=3, help="cycles with 16 s outages (~25 s each)")
    parser.add_argument("--warmup", type=int, default=5, help="cycles before the 'before' figures")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the runner logs every state change at WARNING
    results = [run("fast", args.cycles, args.warmup)]
    if args.default_cycles > 0:
        results.append(run("defaults", args.default_cycles, min(args.warmup, 1)))
    if args.outage_cycles > 0:
        results.append(run("outage", args.outage_cycles, 1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "live_camera.json").write_text(json.dumps(results, indent=2) + "\n")

    def span(stats: dict[str, Any]) -> str:
        return "-" if not stats["n"] else f"{stats['p50']:.3f} / {stats['max']:.3f}"

    table = Table("run", "cycles", "stall, read timeout", "stall seen p50 / max s", "drop seen p50 / max s",
                  "frames back p50 / max s", "fds", "threads", "RSS MB", "ended",
                  title="live HTTP MJPEG camera: stall / drop / garbage / return under a SourceRunner")
    for r in results:
        b, a = r["before"], r["after"]
        limits = r["limits"]
        table.add_row(r["run"], str(r["cycles"]), f"{limits['stall_after_s']:g} s, {limits['read_timeout_s']:g} s",
                      span(r["detect_s"]), span(r["drop_detect_s"]), span(r["recover_s"]),
                      f"{b.get('fds')} -> {a['fds']}", f"{b.get('threads')} -> {a['threads']}",
                      f"{b.get('rss_mb')} -> {a['rss_mb']}", str(r["ended"]))
    Console(width=160).print(table)
    asked = {"fast": args.cycles, "defaults": args.default_cycles, "outage": args.outage_cycles}
    return 0 if all(r["cycles"] == asked[r["run"]] and not r["ended"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
