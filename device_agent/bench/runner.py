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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device_agent import __version__
from device_agent.bench.contention import contention, snapshot
from device_agent.bench.hardware import PRECISIONS, Peak, detect_cpu, mixed_peak, peak_from_profile
from device_agent.bench.options import BenchOptions
from device_agent.bench.record import (
    BenchRecord,
    CostRecord,
    Latency,
    MachineState,
    OpProfileRecord,
    PeakRecord,
    Temperatures,
    WarmupRecord,
)
from device_agent.bench.stats import LatencyStats, Warmup, warm_up
from device_agent.errors import BenchInputError, BundleError, CostError
from device_agent.runtimes import Runtime, TensorInfo, create_runtime
from device_agent.service.health import peak_rss_mb, rss_mb, temperature_c

DEFAULT_DURATION_S = 10.0
PROFILE_RUNS = 20
_SUFFIX_RUNTIME = {".onnx": "onnxruntime", ".tflite": "tflite"}
_RUNTIME_SUFFIX = {v: k for k, v in _SUFFIX_RUNTIME.items()}


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
                              providers=options.providers or tuple(m.target.providers), name=m.label,
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


def _cost(mut: ModelUnderTest) -> tuple[CostRecord | None, str | None, dict[str, int]]:
    """Counted from the model file; for a bundle on a device without ``onnx``, the count the host recorded.
    Also the MACs per precision computed (empty when the count came from the manifest)."""
    from device_agent.bench.cost import model_cost

    try:
        cost = model_cost(mut.model_file)
        return CostRecord.model_validate(cost.to_json()), None, cost.macs_by_precision()
    except CostError as exc:
        if mut.recorded_cost is not None:
            return (CostRecord.model_validate(dict(mut.recorded_cost)),
                    f"from the bundle's manifest (counted on the host): {exc}", {})
        return None, str(exc), {}


def _precision_of(mut: ModelUnderTest, cost: CostRecord | None) -> str:
    if mut.precision:
        return "int8" if mut.precision.startswith("int8") else mut.precision
    return cost.precision if cost else "fp32"


def _peak_of(options: BenchOptions, precision: str, threads: int) -> Peak | None:
    if options.target and options.target_peak_gops:
        return peak_from_profile(options.target_peak_gops, precision, target=options.target,
                                 threads=threads or None, cores=detect_cpu().cores)
    return detect_cpu().peak_gops(precision, threads or None)


def _peak(options: BenchOptions, precision: str, threads: int, macs_by_precision: Mapping[str, int]) -> Peak | None:
    """The peak the achieved GOP/s is set against: ``precision``'s, or for a model whose MACs run in
    several precisions (INT8 with float layers) the peak of that mix (:func:`mixed_peak`)."""
    mix = {p: n for p, n in macs_by_precision.items() if n > 0 and p in PRECISIONS}
    if len(mix) > 1:
        peak = mixed_peak({p: _peak_of(options, p, threads) for p in mix}, mix)
        if peak is not None:
            return peak
    return _peak_of(options, precision, threads)


@dataclass(frozen=True)
class _Timed:
    """Phases load to timed, and the memory and temperature read while the timed session was alive."""

    load_ms: float
    first_ms: float
    warm: Warmup
    samples_ns: list[int]
    wall_s: float
    providers: tuple[str, ...]
    contention: dict[str, Any]
    peak_rss_mb: float
    rss_after_mb: float
    temperature_after_c: float | None


def _time_model(mut: ModelUnderTest, options: BenchOptions,
                phase: Callable[[str], None]) -> tuple[_Timed, list[np.ndarray]]:
    """Load, first run, warm-up and timed runs in one session, freed on return (before the profile's)."""
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
    warm = warm_up(run, runs=options.warmup, min_s=options.min_warmup_s, max_s=options.max_warmup_s,
                   first_ms=first_ms)
    phase("timed")
    cpu_before = snapshot()
    samples_ns, wall_s = time_runs(run, options)
    busy = contention(cpu_before, snapshot())
    return _Timed(load_ms=load_ms, first_ms=first_ms, warm=warm, samples_ns=samples_ns, wall_s=wall_s,
                  providers=tuple(runtime.providers), contention=busy, peak_rss_mb=peak_rss_mb(),
                  rss_after_mb=rss_mb(), temperature_after_c=temperature_c()), feeds


def benchmark_model(path: Path | str, options: BenchOptions = BenchOptions(),
                    *, on_phase: Callable[[str], None] | None = None) -> BenchRecord:
    """Measure one model; returns the record ``edgekit benchmark --json`` prints per model."""
    mut = resolve_model(path, options)
    phase = on_phase or (lambda _name: None)
    rss_before, temperature_before, machine = rss_mb(), temperature_c(), machine_state()
    timed, feeds = _time_model(mut, options, phase)
    profile: OpProfileRecord | None = None
    profile_note: str | None = None
    if options.profile:
        phase("profile")
        profile, profile_note = _profile(mut, feeds, options.top)
    cost, cost_note, mix = _cost(mut)
    return _record(mut, options, timed, cost=cost, cost_note=cost_note, mix=mix, profile=profile,
                   profile_note=profile_note,
                   machine=MachineState.model_validate({**machine, **timed.contention}),
                   temperatures=Temperatures(before=temperature_before, after=timed.temperature_after_c),
                   model_rss_mb=max(0.0, timed.rss_after_mb - rss_before))


def _record(mut: ModelUnderTest, options: BenchOptions, timed: _Timed, *, cost: CostRecord | None,
            cost_note: str | None, mix: Mapping[str, int], profile: OpProfileRecord | None, profile_note: str | None,
            machine: MachineState, temperatures: Temperatures, model_rss_mb: float) -> BenchRecord:
    stats = LatencyStats.from_ns(timed.samples_ns)
    precision = _precision_of(mut, cost)
    peak = _peak(options, precision, mut.threads, mix)
    gops = (cost.flops / (stats.p50 / 1e3) / 1e9) if cost else None
    load_ms, first_ms = round(timed.load_ms, 3), round(timed.first_ms, 3)
    return BenchRecord(
        model=str(mut.path), name=mut.name, model_file=str(mut.model_file), runtime=mut.runtime,
        providers=timed.providers, providers_asked=mut.providers, threads=mut.threads, precision=precision,
        input=mut.feeds_from, load_ms=load_ms, first_ms=first_ms,
        warmup=WarmupRecord.model_validate(timed.warm.to_json()), runs=stats.runs, timed_s=round(timed.wall_s, 3),
        latency_ms=Latency.model_validate({**stats.to_json(), "load_ms": load_ms, "first_ms": first_ms}),
        throughput_ips=round(stats.runs / timed.wall_s, 3) if timed.wall_s > 0 else None,
        peak_rss_mb=round(timed.peak_rss_mb, 1), model_rss_mb=round(model_rss_mb, 1), temperature_c=temperatures,
        machine=machine, cost=cost, cost_note=cost_note, gops=round(gops, 3) if gops is not None else None,
        peak=None if peak is None else PeakRecord(gops=round(peak.gops, 1), precision=peak.precision,
                                                  source=peak.source),
        percent_of_peak=round(100.0 * gops / peak.gops, 2) if (gops is not None and peak) else None,
        top_ops=profile, top_ops_note=profile_note, agent_version=__version__,
        samples_ms=tuple(round(ns / 1e6, 5) for ns in timed.samples_ns) if options.keep_samples else None,
    )


def _profile(mut: ModelUnderTest, feeds: list[np.ndarray], top: int) -> tuple[OpProfileRecord | None, str | None]:
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
        return OpProfileRecord.model_validate(parse_ort_profile(trace, skip_runs=3).to_json(top)), None
    finally:
        trace.unlink(missing_ok=True)
        try:
            trace.parent.rmdir()
        except OSError:  # someone else's file in the folder: leave it
            pass
