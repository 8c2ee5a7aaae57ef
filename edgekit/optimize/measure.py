"""Quick, fair latency comparison of candidate models on this machine.

Used by ``optimize`` to rank candidates; ``edgekit benchmark`` is the rigorous tool. The
candidates run interleaved (one run of each in turn, many rounds) so that noise from a
shared machine lands on all of them alike, and each is loaded through the agent's own
runtime so what is timed is what the device runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device_agent.bench.stats import LatencyStats
from device_agent.runtimes import Runtime, create_runtime, runtime_for_file
from edgekit.optimize.model_io import adapt_feeds, float_outputs


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


def compare_latency(
    models: Mapping[str, Path],
    feeds: list[np.ndarray],
    *,
    threads: int = 0,
    warmup: int = 5,
    budget_s: float = 6.0,
    min_rounds: int = 10,
    max_rounds: int = 200,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, LatencySample]:
    """Time every model on ``feeds``, interleaved, within about ``budget_s`` seconds in all.

    Each model runs in the runtime its file calls for (``.onnx``: onnxruntime, ``.tflite``:
    LiteRT), on ``feeds`` moved into its own layout and type (:func:`adapt_feeds`)."""
    sessions: dict[str, Runtime] = {}
    model_feeds: dict[str, list[np.ndarray]] = {}
    load_ms: dict[str, float] = {}
    for name, path in models.items():
        start = time.perf_counter_ns()
        sessions[name] = create_runtime(runtime_for_file(path), path, threads=threads)
        load_ms[name] = (time.perf_counter_ns() - start) / 1e6
        model_feeds[name] = adapt_feeds(sessions[name].inputs, feeds)
    for name, session in sessions.items():
        for _ in range(warmup):
            session.run(model_feeds[name])
    samples: dict[str, list[int]] = {name: [] for name in sessions}
    deadline = time.perf_counter() + budget_s
    rounds = 0
    while rounds < max_rounds and (rounds < min_rounds or time.perf_counter() < deadline):
        for name, session in sessions.items():
            start = time.perf_counter_ns()
            session.run(model_feeds[name])
            samples[name].append(time.perf_counter_ns() - start)
        rounds += 1
        if progress is not None:
            progress(rounds, max_rounds)
    return {name: LatencySample.from_ns(ns, load_ms[name]) for name, ns in samples.items()}


def run_all(path: Path, inputs: list[np.ndarray], *, threads: int = 0) -> list[list[np.ndarray]]:
    """Float outputs of ``path`` for every sample; ``inputs`` holds one ``[N, ...]`` array per model
    input in the reference's layout (moved into the model's layout and type per sample)."""
    session = create_runtime(runtime_for_file(path), path, threads=threads)
    count = len(inputs[0])
    return [float_outputs(session.outputs, session.run(adapt_feeds(session.inputs, [arr[i : i + 1] for arr in inputs])))
            for i in range(count)]
