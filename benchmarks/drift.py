"""What drift detection costs per frame on the agent: the input statistics, and the window update.

- ``input_stats``: luma of the frame (BGR uint8) plus :func:`~device_agent.drift.signals.input_signals`
  (one 256-bin histogram, one Laplacian). The agent takes it on the *resized* frame in the source's
  thread, so 224x224 (a classifier's input) and 640x640 (a detector's) are what it pays; 640x480 is
  the camera's full frame, for comparison with measuring before the resize.
- ``update``: :meth:`~device_agent.drift.monitor.DriftMonitor.update` with every signal (6 input, top-1
  confidence, class mix) over a 300-frame window, scores included (taken every 10th frame).
- ``check``: one scoring of every signal (PSI, chi-square), the part ``update`` pays every 10th frame.

Real frames: the sample video (``edgekit.content.samples``). Rounds of a batch each, timed with
``time.perf_counter_ns``; the minimum of the rounds (the cost itself) and the median (what the
shared machine adds). Writes ``benchmarks/results/drift.json`` and prints a table.
Run: ``python benchmarks/drift.py``.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from device_agent.drift.baseline import build_baseline
from device_agent.drift.monitor import DriftMonitor, DriftSettings
from device_agent.drift.signals import INPUT_SIGNALS, OutputSignals, input_signals, luma_of_bgr
from edgekit.content import samples

ROUNDS = 15
BATCH = 50


def _frames(size_wh: tuple[int, int]) -> list[np.ndarray]:
    return [cv2.resize(frame, size_wh, interpolation=cv2.INTER_LINEAR) for frame in samples.scene_frames(seconds=5)]


def _time(work: Callable[[int], Any], batch: int = BATCH) -> dict[str, float]:
    for i in range(batch):  # warm up
        work(i)
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for i in range(batch):
            work(i)
        rounds.append((time.perf_counter_ns() - start) / batch / 1e3)
    return {"min_us": round(min(rounds), 2), "median_us": round(statistics.median(rounds), 2)}


def main() -> dict[str, Any]:
    rows: dict[str, dict[str, float]] = {}
    stats: list[tuple[float, ...]] = []
    for size in ((224, 224), (640, 480), (640, 640)):
        frames = _frames(size)
        rows[f"input_stats {size[0]}x{size[1]}"] = _time(
            lambda i, frames=frames: input_signals(luma_of_bgr(frames[i % len(frames)])))
        if size == (224, 224):
            stats = [input_signals(luma_of_bgr(f)) for f in frames]
    labels = [(f"class{i % 7}",) for i in range(len(stats))]
    values = {name: [s[k] for s in stats] for k, name in enumerate(INPUT_SIGNALS)}
    values["top1_confidence"] = [0.3 + 0.6 * (i % 10) / 10 for i in range(len(stats))]
    monitor = DriftMonitor(build_baseline(values, labels, frames=len(stats)),
                           DriftSettings(window=300, min_frames=100))
    outputs = [OutputSignals(values["top1_confidence"][i], None, labels[i]) for i in range(len(stats))]
    for i in range(300):  # a full window, so updates subtract as well as add
        monitor.update(stats[i % len(stats)], outputs[i % len(stats)])
    rows["update (window 300, 8 signals)"] = _time(
        lambda i: monitor.update(stats[i % len(stats)], outputs[i % len(stats)]), batch=500)
    rows["check (every 10th frame)"] = _time(lambda _i: monitor.check())
    out = Path(__file__).parent / "results" / "drift.json"
    result = {"benchmark": "drift", "rounds": ROUNDS, "rows": rows}
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{'what':36} {'min us':>9} {'median us':>10}")
    for name, row in rows.items():
        print(f"{name:36} {row['min_us']:9.1f} {row['median_us']:10.1f}")
    return result


if __name__ == "__main__":
    main()
