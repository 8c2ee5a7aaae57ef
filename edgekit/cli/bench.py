"""``edgekit benchmark``: the parser and the handler (kept apart from the other commands)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from device_agent.bench.flags import COMMON, add_bench_flags, options_from_args
from device_agent.bench.record import BenchRecord
from edgekit.errors import UsageError
from edgekit.paths import check_writable, writing
from edgekit.progress import Steps

EPILOG = """examples:
  edgekit benchmark model.onnx
  edgekit benchmark bundles/fp32 bundles/int8 --duration 10 --repeat 3 --plot bench.png
  edgekit benchmark model.onnx model.int8.onnx --runs 2000 --warmup 50 --threads 2 --json
  edgekit benchmark bundles/int8 --pipeline samples/street.mp4 --frames 300
  edgekit benchmark --device cam-01 --broker localhost:1883 bundles/int8

Each model runs in a fresh process through the agent's own runtime code: load, first
inference, warm-up until three consecutive blocks agree within 3% (or --warmup N runs),
then timed runs, one at a time, with perf_counter_ns. Reported: load, first,
p50/p90/p95/p99/p99.9, mean, std, CV, drift, throughput, peak RSS, FLOPs and params,
achieved GOP/s and % of peak (this CPU's detected peak, or --target's profile; a model
computing in several precisions is set against the peak of its mix), and the time per
operator from onnxruntime's profiler (summed over its threads). --repeat N takes turns
between models (A B A B) and reports the spread of p50 across the repeats.
"""


def add_parser(sub: Any) -> None:
    bench = sub.add_parser(
        "benchmark",
        help="measure latency, memory and compute use of models or bundles, side by side",
        description="Measure models on this machine the way the agent runs them, or ask a running agent "
        "to measure on its device (--device).",
        epilog=EPILOG,
    )
    bench.add_argument("models", nargs="*", metavar="MODEL_OR_BUNDLE",
                       help=".onnx or .tflite files or bundle directories")
    add_bench_flags(bench, (*COMMON, "runtime", "top"), help_overrides={
        "runs": "timed runs per model", "duration_s": "seconds of timed runs per model (default 10)",
        "providers": "onnxruntime execution provider, in order of preference (repeatable), e.g. "
        "TensorrtExecutionProvider, CUDAExecutionProvider; default: the bundle's, else CPU. "
        "The report lists the providers actually used",
        "top": "operators to show per model (default 8)"})
    bench.set_defaults(top=8)
    bench.add_argument("--repeat", type=int, default=1, help="measure every model N times, taking turns (default 1)")
    bench.add_argument("--target", help="this machine is TARGET: take the peak compute for %% of peak from its profile")
    bench.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    bench.add_argument("--samples", action="store_true", help="with --json: include every timed run's latency")
    bench.add_argument("--csv", metavar="FILE", help="also write one CSV row per model")
    bench.add_argument("--plot", metavar="FILE", help="also write a PNG: p50/p90/p99, distributions, latency over runs")
    bench.add_argument("--pipeline", metavar="SOURCE", help="time the agent's stages on a video file, folder or camera "
                       "(bundles only): capture, preprocess, infer, postprocess, publish")
    bench.add_argument("--frames", type=int, default=300, help="with --pipeline: frames to time (default 300)")
    bench.add_argument("--device", help="ask the agent with this device id to benchmark on the device (needs --broker)")
    bench.add_argument("--broker", help="HOST:PORT of the MQTT broker the agent is connected to")
    bench.add_argument("--timeout", type=float, help="--device: seconds to wait for the answer "
                       "(default: the timed duration + 300)")


def _pipeline(args: argparse.Namespace, out: Console, err: Console) -> int:
    from device_agent.bench.pipeline import benchmark_pipeline
    from edgekit.bench.report import print_pipeline

    results = []
    with Steps(enabled=True, console=err) as steps:
        for model in args.models:
            with steps.step(f"Timing the agent's stages on {model}", total=args.frames) as advance:
                results.append(benchmark_pipeline(model, args.pipeline, frames=args.frames, threads=args.threads,
                                                  on_frame=advance))
    if args.json:
        print(json.dumps({"v": 1, "pipeline": results}))
    else:
        for result in results:
            print_pipeline(out, result)
    return 0


def _remote(args: argparse.Namespace, err: Console) -> tuple[dict[str, Any], list[BenchRecord]]:
    from device_agent.bench.text import host_info
    from edgekit.fleet.remote import remote_benchmark

    if not args.broker:
        raise UsageError("--device needs --broker HOST:PORT (the broker the agent is connected to)")
    if len(args.models) > 1:
        raise UsageError("--device benchmarks the device's active bundle: name at most one BUNDLE to check it against")
    bundle = Path(args.models[0]) if args.models else None
    samples = bool(args.plot or args.samples)
    with Steps(enabled=True, console=err) as steps, steps.sequence() as begin:
        begin(f"Asking {args.device} via {args.broker}")
        record = remote_benchmark(args.broker, args.device, options=options_from_args(args, keep_samples=samples),
                                  bundle=bundle, samples=samples,
                                  timeout_s=args.timeout or (args.duration_s or 10.0) + 300.0,
                                  on_state=lambda state: begin(f"{args.device}: {state}"))
    if record.speedup is None:
        record = record.model_copy(update={"speedup": 1.0})
    return {"v": 1, "host": host_info(), "device": args.device, "repeat": 1}, [record]


def _local(args: argparse.Namespace, err: Console) -> tuple[dict[str, Any], list[BenchRecord]]:
    from edgekit.bench.benchmark import benchmark

    if not args.models:
        raise UsageError("name at least one model: a .onnx or .tflite file or a bundle directory (or --device)")
    options = options_from_args(args, keep_samples=bool(args.plot or args.samples))
    with Steps(enabled=True, console=err) as steps, steps.sequence() as begin:
        result = benchmark(args.models, options=options, repeat=args.repeat, target=args.target,
                           progress=lambda name, phase: begin(f"{name}: {phase}"))
    return result.header(), list(result.models)


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from edgekit.bench.report import print_benchmark, write_csv

    if args.pipeline:
        if args.device:
            raise UsageError("--pipeline runs here; it cannot be combined with --device")
        return _pipeline(args, out, err)
    check_writable("--plot", args.plot)  # before the models are timed, not after
    check_writable("--csv", args.csv)
    header, records = _remote(args, err) if args.device else _local(args, err)
    if args.plot:
        from edgekit.bench.plot import plot_benchmark

        with writing("--plot", args.plot):
            plot_benchmark(records, args.plot, host=header["host"], repeat=int(header.get("repeat", 1)))
    if args.csv:
        with writing("--csv", args.csv):
            write_csv(args.csv, records)
    if args.json:
        print(json.dumps({**header, "models": [r.to_json(samples=args.samples) for r in records]}))
        return 0
    print_benchmark(out, records, host=header["host"], top=args.top)
    for what, path in (("plot", args.plot), ("csv", args.csv)):
        if path:
            out.print(f"wrote {what} {path}", highlight=False)
    return 0
