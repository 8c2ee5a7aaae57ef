"""Benchmark one model the way the agent runs it: load, first run, warm-up, timed runs, profile.

The phases, in order, in one process:

1. **load**: create the runtime session from the file (:func:`create_runtime`, the agent's
   code). For a bundle the file was just read for its sha256 check, so the page cache is warm,
   as it is for an agent that verifies before loading.
2. **first**: the first inference (lazy allocations, kernel selection, weight pre-packing).
3. **warm-up**: until the median latency of three consecutive blocks agrees within 3 %
   (or exactly ``--warmup N`` runs).
4. **timed**: ``runs`` runs, or as many as fit in ``duration_s`` (at least ``min_runs``);
   each run timed alone with ``perf_counter_ns``, Python's garbage collector paused.
5. **memory**: the process's peak resident set, read before the profiler's second session.
6. **profile**: a second session with the runtime's operator profiler, a few runs.

Inputs: a bundle's golden input (a real preprocessed photo, quantized for int8 inputs), or
seeded random data of the model's shape and type for a bare model file.
"""

from __future__ import annotations

import functools
import gc
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from device_agent import __version__
from device_agent.bench.contention import contention, snapshot
from device_agent.bench.hardware import Peak, detect_cpu, peak_from_profile
from device_agent.bench.stats import LatencyStats, Warmup, warm_up
from device_agent.errors import BenchInputError, BundleError, CostError
from device_agent.runtimes import Runtime, TensorInfo, create_runtime
from device_agent.service.health import peak_rss_mb, rss_mb, temperature_c

DEFAULT_DURATION_S = 10.0
PROFILE_RUNS = 20
_SUFFIX_RUNTIME = {".onnx": "onnxruntime", ".tflite": "tflite"}
_RUNTIME_SUFFIX = {v: k for k, v in _SUFFIX_RUNTIME.items()}


@dataclass(frozen=True)
class BenchOptions:
    """What to measure and how long. ``runs`` and ``duration_s`` exclude each other."""

    runs: int | None = None
    duration_s: float | None = None
    warmup: int | None = None  # None: until stable
    threads: int | None = None  # None: the bundle's target threads, or the runtime's default
    runtime: str | None = None  # None: from the bundle or the file's suffix
    providers: tuple[str, ...] = ()  # onnxruntime execution providers; (): the bundle's, else CPU
    min_runs: int = 10
    min_warmup_s: float = 1.0
    max_warmup_s: float = 20.0
    profile: bool = True
    top: int = 10
    keep_samples: bool = True
    target: str | None = None  # the device is this target: take its peak compute from the profile
    target_peak_gops: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.runs is not None and self.duration_s is not None:
            raise BenchInputError("give --runs or --duration, not both")
        if self.runs is not None and self.runs < 1:
            raise BenchInputError(f"--runs must be at least 1, got {self.runs}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise BenchInputError(f"--duration must be a positive number of seconds, got {self.duration_s}")
        if self.warmup is not None and self.warmup < 0:
            raise BenchInputError(f"--warmup must be 0 or more runs, got {self.warmup}")
        if self.threads is not None and self.threads < 0:
            raise BenchInputError(f"--threads must be 0 (runtime default) or more, got {self.threads}")

    def to_json(self) -> dict[str, Any]:
        return {"runs": self.runs, "duration_s": self.duration_s, "warmup": self.warmup, "threads": self.threads,
                "runtime": self.runtime, "providers": list(self.providers), "min_runs": self.min_runs,
                "min_warmup_s": self.min_warmup_s, "max_warmup_s": self.max_warmup_s,
                "profile": self.profile, "top": self.top, "keep_samples": self.keep_samples, "target": self.target,
                "target_peak_gops": dict(self.target_peak_gops)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BenchOptions:
        return cls(**data)


@dataclass(frozen=True)
class ModelUnderTest:
    """A model file resolved from a path: its runtime, threads, inputs and where they came from."""

    path: Path  # what the user named: a bundle directory or a model file
    model_file: Path
    runtime: str
    threads: int
    providers: tuple[str, ...]
    name: str
    precision: str | None  # from the bundle's manifest; None for a bare file
    feeds_from: str  # "golden" or "random"
    golden: Callable[[tuple[TensorInfo, ...]], list[np.ndarray]] | None = None
    recorded_cost: Mapping[str, Any] | None = None  # a bundle's manifest performance.cost


def resolve_model(path: Path | str, options: BenchOptions) -> ModelUnderTest:
    """A bundle directory or a ``.onnx``/``.tflite`` file; :class:`BenchInputError` says what is wrong."""
    p = Path(path)
    if p.is_dir():
        from device_agent.bundle.verify import load_bundle

        try:
            bundle = load_bundle(p, check_model_io=False)
        except BundleError as exc:
            raise BenchInputError(f"{str(p)!r} is not a usable bundle: {exc}") from exc
        m = bundle.manifest
        if options.runtime is not None and options.runtime != m.target.runtime:
            raise BenchInputError(f"bundle {str(p)!r} holds a {m.model.format} model for runtime "
                                  f"{m.target.runtime!r}; --runtime {options.runtime!r} cannot run it")
        threads = m.target.threads if options.threads is None else options.threads
        golden_file = bundle.root / "golden.npz"
        golden = _golden_feeds(golden_file, m) if golden_file.is_file() else None
        return ModelUnderTest(path=p, model_file=bundle.model_path, runtime=m.target.runtime, threads=threads,
                              providers=options.providers or tuple(m.target.providers), name=f"{m.name} {m.precision}",
                              precision=m.precision, feeds_from="golden" if golden else "random", golden=golden,
                              recorded_cost=m.performance.get("cost"))
    if not p.exists():
        raise BenchInputError(f"model {str(p)!r} does not exist; "
                              "expected a .onnx or .tflite file or a bundle directory")
    runtime = _SUFFIX_RUNTIME.get(p.suffix.lower())
    if runtime is None:
        raise BenchInputError(f"cannot benchmark {str(p)!r}: expected a .onnx or .tflite file or a bundle directory")
    if options.runtime is not None and options.runtime != runtime:
        wanted = _RUNTIME_SUFFIX.get(options.runtime, "?")
        raise BenchInputError(f"--runtime {options.runtime!r} reads {wanted} files, but {str(p)!r} is a "
                              f"{p.suffix.lower()} model for runtime {runtime!r}")
    return ModelUnderTest(path=p, model_file=p, runtime=runtime, threads=options.threads or 0,
                          providers=options.providers, name=p.name, precision=None, feeds_from="random")


def _golden_feeds(golden_file: Path, manifest: Any) -> Callable[[tuple[TensorInfo, ...]], list[np.ndarray]]:
    def feeds(_inputs: tuple[TensorInfo, ...]) -> list[np.ndarray]:
        from device_agent.pipeline.preprocess import quantize

        with np.load(golden_file) as golden:
            return [quantize(golden["input"].astype(np.float32), manifest.inputs[0])]

    return feeds


def random_feeds(inputs: tuple[TensorInfo, ...], *, seed: int = 0) -> list[np.ndarray]:
    """Seeded data of each input's shape and type (a dynamic batch becomes 1)."""
    rng = np.random.default_rng(seed)
    feeds = []
    for info in inputs:
        shape = list(info.shape)
        if shape and shape[0] == -1:
            shape[0] = 1
        if any(d < 0 for d in shape):
            raise BenchInputError(f"input {info.name!r} has the dynamic shape {list(info.shape)}; the benchmark needs "
                                  "static shapes (fix them with 'edgekit optimize --input-shape' or at export)")
        dtype = np.dtype(info.dtype)
        if dtype.kind == "f":
            feeds.append(rng.uniform(-1.0, 1.0, size=shape).astype(dtype))
        elif dtype.kind in "iu" and dtype.itemsize == 1:
            limits = np.iinfo(dtype)
            feeds.append(rng.integers(limits.min, limits.max, size=shape, endpoint=True, dtype=dtype))
        else:
            feeds.append(np.zeros(shape, dtype=dtype))
    return feeds


def machine_state() -> dict[str, Any]:
    """The CPU frequency governor and the load average at the start (Linux); what ran meanwhile is
    measured over the timed runs by :mod:`device_agent.bench.contention`."""
    state: dict[str, Any] = {"load_avg_1m": None, "governor": None}
    try:
        state["load_avg_1m"] = round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):  # not on every platform
        pass
    governor = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    try:
        state["governor"] = governor.read_text().strip()
    except OSError:  # no cpufreq in VMs and containers
        pass
    return state


def time_runs(run: Callable[[], Any], options: BenchOptions) -> tuple[list[int], float]:
    """The timed phase: each call timed alone (ns), garbage collector paused; also the wall time in s."""
    runs, duration_s = options.runs, options.duration_s
    if runs is None and duration_s is None:
        duration_s = DEFAULT_DURATION_S
    samples: list[int] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        deadline = start + int((duration_s or 0) * 1e9)
        while True:
            t0 = time.perf_counter_ns()
            run()
            t1 = time.perf_counter_ns()
            samples.append(t1 - t0)
            if runs is not None:
                if len(samples) >= runs:
                    break
            elif t1 >= deadline and len(samples) >= options.min_runs:
                break
        wall_s = (time.perf_counter_ns() - start) / 1e9
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples, wall_s


def _cost_json(mut: ModelUnderTest) -> tuple[dict[str, Any] | None, str | None]:
    """Counted from the model file; for a bundle on a device without ``onnx``, the count the host recorded."""
    from device_agent.bench.cost import model_cost

    try:
        return model_cost(mut.model_file).to_json(), None
    except CostError as exc:
        if mut.recorded_cost is not None:
            return dict(mut.recorded_cost), f"from the bundle's manifest (counted on the host): {exc}"
        return None, str(exc)


def _precision_of(mut: ModelUnderTest, cost: dict[str, Any] | None) -> str:
    if mut.precision:
        return "int8" if mut.precision.startswith("int8") else mut.precision
    return str(cost.get("precision", "fp32")) if cost else "fp32"


def _peak(options: BenchOptions, precision: str, threads: int) -> Peak | None:
    if options.target and options.target_peak_gops:
        return peak_from_profile(options.target_peak_gops, precision, target=options.target,
                                 threads=threads or None, cores=detect_cpu().cores)
    return detect_cpu().peak_gops(precision, threads or None)


def benchmark_model(path: Path | str, options: BenchOptions = BenchOptions(),
                    *, on_phase: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure one model; returns the JSON record ``edgekit benchmark --json`` prints per model."""
    mut = resolve_model(path, options)
    phase = on_phase or (lambda _name: None)
    rss_before = rss_mb()
    temp_before = temperature_c()
    machine = machine_state()
    phase("load")
    t0 = time.perf_counter_ns()
    runtime = create_runtime(mut.runtime, mut.model_file, threads=mut.threads, providers=mut.providers)
    load_ms = (time.perf_counter_ns() - t0) / 1e6
    feeds = mut.golden(runtime.inputs) if mut.golden else random_feeds(runtime.inputs)
    phase("first")
    t0 = time.perf_counter_ns()
    runtime.run(feeds)
    first_ms = (time.perf_counter_ns() - t0) / 1e6
    phase("warmup")
    run = functools.partial(runtime.run, feeds)  # the timed call is exactly the agent's call
    warm: Warmup = warm_up(run, runs=options.warmup, min_s=options.min_warmup_s, max_s=options.max_warmup_s,
                           first_ms=first_ms)
    phase("timed")
    cpu_before = snapshot()
    samples_ns, wall_s = time_runs(run, options)
    machine.update(contention(cpu_before, snapshot()))
    stats = LatencyStats.from_ns(samples_ns)
    peak_rss = peak_rss_mb()
    rss_after = rss_mb()
    temp_after = temperature_c()
    providers = runtime.providers
    del run, runtime  # free the timed session before the profiled one is made
    profile: dict[str, Any] | None = None
    profile_note: str | None = None
    if options.profile:
        phase("profile")
        profile, profile_note = _profile(mut, feeds, options.top)
    cost, cost_note = _cost_json(mut)
    precision = _precision_of(mut, cost)
    peak = _peak(options, precision, mut.threads)
    gops = (cost["flops"] / (stats.p50 / 1e3) / 1e9) if cost else None
    latency = {**stats.to_json(), "load_ms": round(load_ms, 3), "first_ms": round(first_ms, 3)}
    record: dict[str, Any] = {
        "model": str(mut.path),
        "name": mut.name,
        "model_file": str(mut.model_file),
        "runtime": mut.runtime,
        "providers": list(providers),
        "providers_asked": list(mut.providers),
        "threads": mut.threads,
        "precision": precision,
        "input": mut.feeds_from,
        "load_ms": round(load_ms, 3),
        "first_ms": round(first_ms, 3),
        "warmup": warm.to_json(),
        "runs": stats.runs,
        "timed_s": round(wall_s, 3),
        "latency_ms": latency,
        "throughput_ips": round(stats.runs / wall_s, 3) if wall_s > 0 else None,
        "peak_rss_mb": round(peak_rss, 1),
        "model_rss_mb": round(max(0.0, rss_after - rss_before), 1),
        "temperature_c": {"before": temp_before, "after": temp_after},
        "machine": machine,
        "cost": cost,
        "cost_note": cost_note,
        "gops": round(gops, 3) if gops is not None else None,
        "peak": (None if peak is None
                 else {"gops": round(peak.gops, 1), "precision": peak.precision, "source": peak.source}),
        "percent_of_peak": round(100.0 * gops / peak.gops, 2) if (gops is not None and peak) else None,
        "top_ops": profile,
        "top_ops_note": profile_note,
        "agent_version": __version__,
    }
    if options.keep_samples:
        record["samples_ms"] = [round(ns / 1e6, 5) for ns in samples_ns]
    return record


def _profile(mut: ModelUnderTest, feeds: list[np.ndarray], top: int) -> tuple[dict[str, Any] | None, str | None]:
    from device_agent.bench.profile import parse_ort_profile

    runtime: Runtime = create_runtime(mut.runtime, mut.model_file, threads=mut.threads, providers=mut.providers,
                                      profile=True)
    for _ in range(3):  # the profiled session's own warm-up is in its trace too; it is drowned by the runs below
        runtime.run(feeds)
    for _ in range(PROFILE_RUNS):
        runtime.run(feeds)
    trace = runtime.end_profiling()
    if trace is None:
        return None, (f"{mut.runtime} has no operator profiler in its Python API; "
                      "see cost.by_op_type for where the MACs are")
    try:
        return parse_ort_profile(trace, skip_runs=3).to_json(top), None
    finally:
        trace.unlink(missing_ok=True)
        try:
            trace.parent.rmdir()
        except OSError:  # someone else's file in the folder: leave it
            pass
