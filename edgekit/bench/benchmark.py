"""``edgekit benchmark``: several models measured side by side, each in a process of its own.

Every model is checked before anything runs (a typo in the third path fails at once, not
after two minutes of timing). With ``repeat`` > 1 the models take turns (A B A B ...), so
the noise of a shared machine lands on all of them alike; each model's report is the
repeat with the median p50, and the spread of the repeats' p50 says how far to trust it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device_agent.bench.options import BenchOptions
from device_agent.bench.record import BenchRecord, Repeats
from device_agent.bench.runner import resolve_model
from device_agent.bench.stats import relative_spread
from device_agent.bench.text import host_info
from device_agent.bench.worker import bench_in_subprocess
from edgekit import __version__
from edgekit.errors import UsageError

Progress = Callable[[str, str], None]  # (model name, phase)


@dataclass(frozen=True)
class BenchmarkResult:
    """Records per model (in the order given) and the machine they were measured on."""

    models: tuple[BenchRecord, ...]
    host: dict[str, Any]
    options: BenchOptions
    repeat: int
    seconds: float

    def header(self) -> dict[str, Any]:
        """Everything ``--json`` prints but the models."""
        return {"v": 1, "host": self.host, "options": self.options.to_json(), "repeat": self.repeat,
                "seconds": round(self.seconds, 1)}

    def to_json(self, *, samples: bool = False) -> dict[str, Any]:
        return {**self.header(), "models": [m.to_json(samples=samples) for m in self.models]}


def _with_target(options: BenchOptions, target: str | None) -> BenchOptions:
    if target is None:
        return options
    from edgekit.targets import get_target

    profile = get_target(target)
    if not profile.peak_gops:
        raise UsageError(f"target {profile.name!r} has no peak_gops in its profile; leave --target out to use "
                         "this CPU's detected peak")
    return BenchOptions.model_validate({**options.model_dump(), "target": profile.name,
                                        "target_peak_gops": {str(k): v for k, v in profile.peak_gops.items()}})


def _pick_median(runs: list[BenchRecord]) -> BenchRecord:
    p50s = [r.latency_ms.p50 for r in runs]
    chosen = runs[int(np.argsort(p50s)[len(p50s) // 2])]
    repeats = Repeats(p50_ms=tuple(p50s), spread_pct=round(100.0 * relative_spread(p50s), 2))
    return chosen.model_copy(update={"repeats": repeats})


def benchmark(
    models: Sequence[Path | str],
    *,
    options: BenchOptions | None = None,
    repeat: int = 1,
    target: str | None = None,
    progress: Progress | None = None,
    timeout_s: float | None = None,
) -> BenchmarkResult:
    """Benchmark every model; records keep the order of ``models``, ``speedup`` is against the first."""
    if not models:
        raise UsageError("name at least one model: a .onnx or .tflite file or a bundle directory")
    if repeat < 1:
        raise UsageError(f"--repeat must be at least 1, got {repeat}")
    options = _with_target(options or BenchOptions(), target)
    resolved = [resolve_model(m, options) for m in models]  # every path checked before anything is timed
    started = time.monotonic()
    runs: list[list[BenchRecord]] = [[] for _ in resolved]
    for _ in range(repeat):
        for i, mut in enumerate(resolved):
            notify = (lambda phase, name=mut.name: progress(name, phase)) if progress else None
            runs[i].append(bench_in_subprocess(mut.path, options, timeout_s=timeout_s, on_phase=notify))
    medians = [_pick_median(r) for r in runs]
    base = medians[0].latency_ms.p50
    records = tuple(m.model_copy(update={"speedup": round(base / m.latency_ms.p50, 3)}) for m in medians)
    return BenchmarkResult(models=records, host={**host_info(), "edgekit": __version__}, options=options,
                           repeat=repeat, seconds=time.monotonic() - started)
