"""Quick, fair latency comparison of candidate models on this machine.

Used by ``optimize`` to rank candidates; ``edgekit benchmark`` is the rigorous tool. The
candidates run interleaved (one run of each in turn, many rounds) so that noise from a
shared machine lands on all of them alike, and each is loaded through the agent's own
runtime so what is timed is what the device runs. The timing goes on until the speedups'
intervals can rank the candidates or a time cap, and measures what else used the CPUs
meanwhile (:mod:`edgekit.optimize.timing`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device_agent.bench.contention import MIN_WINDOW_S, contention, snapshot
from device_agent.bench.stats import LatencyStats
from device_agent.runtimes import Runtime, create_runtime, runtime_for_file
from edgekit.optimize.model_io import adapt_feeds, float_outputs
from edgekit.optimize.timing import TOLERANCE, Speedup, Stopped, Timing, settled, speedups


@dataclass(frozen=True)
class LatencySample:
    """Latency of one model in ms over ``runs`` timed runs (after warm-up)."""

    p50_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    runs: int
    load_ms: float

    @classmethod
    def from_ns(cls, samples_ns: list[int], load_ms: float) -> LatencySample:
        stats = LatencyStats.from_ns(samples_ns)  # the benchmark's statistics, not a second copy of them
        return cls(p50_ms=stats.p50, p90_ms=stats.p90, mean_ms=stats.mean, min_ms=stats.min, runs=stats.runs,
                   load_ms=load_ms)


@dataclass(frozen=True)
class Comparison:
    """What :func:`compare_latency` measured: each model's latency, and how far its ratios can be trusted."""

    latency: dict[str, LatencySample]
    timing: Timing


def compare_latency(
    models: Mapping[str, Path],
    feeds: list[np.ndarray],
    *,
    threads: int = 0,
    warmup: int = 5,
    budget_s: float = 6.0,
    min_s: float = MIN_WINDOW_S,
    min_rounds: int = 10,
    max_rounds: int = 5000,
    reference: str | None = None,
    tolerance: float = TOLERANCE,
    progress: Callable[[int, int], None] | None = None,
) -> Comparison:
    """Time every model on ``feeds``, interleaved in rounds, until the speedups are settled or ``budget_s``.

    The stopping rule (:func:`~edgekit.optimize.timing.settled`): at least ``min_rounds`` rounds and
    ``min_s`` seconds (the contention counters need half a second), then until every speedup over
    ``reference`` (default: the first model) is known to +-``tolerance`` or overlaps no other; the
    time cap ``budget_s`` or ``max_rounds`` end it sooner. Checked after every 25 % more rounds.

    Each model runs in the runtime its file calls for (``.onnx``: onnxruntime, ``.tflite``:
    LiteRT), on ``feeds`` moved into its own layout and type (:func:`adapt_feeds`)."""
    reference = reference or next(iter(models))
    sessions, model_feeds, load_ms = _load(models, feeds, threads)
    for name, session in sessions.items():
        for _ in range(warmup):
            session.run(model_feeds[name])
    samples: dict[str, list[int]] = {name: [] for name in sessions}
    before, started = snapshot(), time.perf_counter()
    rounds, next_check = 0, min_rounds
    stopped: Stopped = "round cap"
    found: dict[str, Speedup] = {}
    while rounds < max_rounds:
        for name, session in sessions.items():
            start = time.perf_counter_ns()
            session.run(model_feeds[name])
            samples[name].append(time.perf_counter_ns() - start)
        rounds += 1
        elapsed = time.perf_counter() - started
        if progress is not None:  # of the rounds the time cap would allow at this pace
            progress(rounds, min(max_rounds, max(rounds, int(rounds * budget_s / max(elapsed, 1e-6)))))
        if rounds >= next_check and elapsed >= min_s:
            found, next_check = speedups(samples, reference), max(rounds + 1, int(rounds * 1.25))
            if settled(found, tolerance):
                stopped = "resolved"
                break
        if elapsed >= budget_s and rounds >= min_rounds:
            stopped = "time cap"
            break
    busy = contention(before, snapshot())
    if stopped != "resolved":  # else found is of every round already
        found = speedups(samples, reference)
        if stopped == "round cap" and settled(found, tolerance):
            stopped = "resolved"  # a fast model reaches the round cap before min_s: what counts is that it settled
    timing = Timing(rounds=rounds, seconds=round(time.perf_counter() - started, 2), stopped=stopped,
                    other_cpu_pct=busy["other_cpu_pct"], steal_pct=busy["steal_pct"], reference=reference,
                    speedups=found)
    return Comparison({name: LatencySample.from_ns(ns, load_ms[name]) for name, ns in samples.items()}, timing)


def _load(models: Mapping[str, Path], feeds: list[np.ndarray],
          threads: int) -> tuple[dict[str, Runtime], dict[str, list[np.ndarray]], dict[str, float]]:
    """Each model in its runtime, ``feeds`` in its layout and type, and how long it took to load (ms)."""
    sessions: dict[str, Runtime] = {}
    model_feeds: dict[str, list[np.ndarray]] = {}
    load_ms: dict[str, float] = {}
    for name, path in models.items():
        start = time.perf_counter_ns()
        sessions[name] = create_runtime(runtime_for_file(path), path, threads=threads)
        load_ms[name] = (time.perf_counter_ns() - start) / 1e6
        model_feeds[name] = adapt_feeds(sessions[name].inputs, feeds)
    return sessions, model_feeds, load_ms


def run_all(path: Path, inputs: list[np.ndarray], *, threads: int = 0) -> list[list[np.ndarray]]:
    """Float outputs of ``path`` for every sample; ``inputs`` holds one ``[N, ...]`` array per model
    input in the reference's layout (moved into the model's layout and type per sample)."""
    session = create_runtime(runtime_for_file(path), path, threads=threads)
    count = len(inputs[0])
    return [float_outputs(session.outputs, session.run(adapt_feeds(session.inputs, [arr[i : i + 1] for arr in inputs])))
            for i in range(count)]
