"""How far to trust ``edgekit benchmark``: its overhead, its repeatability, and LiteRT's own tool.

1. Overhead: the p50 the harness reports vs a bare ``session.run`` timing loop on the same
   model, input and session options, interleaved in rounds in one process (and the harness
   in its own process, as ``edgekit benchmark`` runs it). Target: within 2 %.
2. Repeatability: three back-to-back runs of the same model; the spread of their p50.
3. LiteRT's ``benchmark_litert_model`` (shipped in the ai-edge-litert wheel) vs ours on the
   same .tflite model, interleaved. onnxruntime's ``onnxruntime_perf_test`` is not in any
   package on PyPI (the wheels ship no binaries), so it is not compared.

Writes benchmarks/results/bench_harness.json and prints a table. Run:
    python benchmarks/bench_harness.py [--quick]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support.tflite_builder writes the TFLite model

from device_agent.bench.options import BenchOptions
from device_agent.bench.runner import (
    benchmark_model,
    random_feeds,
    time_runs,
)
from device_agent.bench.worker import bench_in_subprocess
from device_agent.runtimes import create_runtime
from edgekit.bench.benchmark import benchmark
from edgekit.content.zoo import build_model
from tests.support.tflite_builder import conv_stack_tflite

RESULTS = Path(__file__).parent / "results" / "bench_harness.json"
MODELS_DIR = Path.home() / ".cache" / "edgekit" / "bench-models"


def _ort_session(path: Path, threads: int) -> ort.InferenceSession:
    """A bare session with the options the agent's runtime uses."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _bare_loop(session: ort.InferenceSession, feed: dict[str, np.ndarray], runs: int) -> list[int]:
    """The simplest honest timing: a tight loop around session.run."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        session.run(None, feed)
        times.append(time.perf_counter_ns() - t0)
    return times


def wrapper_overhead(path: Path, *, blocks: int, block_runs: int, threads: int) -> dict[str, Any]:
    """The harness's timed call (``Runtime.run`` in its timing loop) vs a bare ``session.run`` loop on
    the very same session, in alternating blocks: what the harness itself adds, free of session-to-
    session and machine noise."""
    runtime = create_runtime("onnxruntime", path, threads=threads)
    session = runtime.session
    feeds = random_feeds(runtime.inputs)
    feed = {i.name: x for i, x in zip(runtime.inputs, feeds)}
    timed = BenchOptions(runs=block_runs)
    harness_run = functools.partial(runtime.run, feeds)
    for _ in range(30):
        session.run(None, feed)
    bare_ns: list[int] = []
    harness_ns: list[int] = []
    for _ in range(blocks):
        bare_ns += _bare_loop(session, feed, block_runs)
        harness_ns += time_runs(harness_run, timed)[0]
    bare, harness = float(np.median(bare_ns)) / 1e6, float(np.median(harness_ns)) / 1e6
    return {"model": path.name, "threads": threads, "runs_each": blocks * block_runs, "bare_p50_ms": bare,
            "harness_p50_ms": harness, "overhead_pct": round(100 * (harness - bare) / bare, 2)}


def session_overhead(path: Path, *, rounds: int, runs: int, warmup: int, threads: int) -> dict[str, Any]:
    """The whole harness (its own session, warm-up, in-process and in its own process) vs a bare loop on a
    bare session, taking turns; includes session-to-session variation, so the per-round ratio is reported."""
    options = BenchOptions(runs=runs, warmup=warmup, threads=threads, profile=False, keep_samples=False)
    bare, harness, isolated = [], [], []
    runtime = create_runtime("onnxruntime", path)  # only for its input descriptions
    feed = {i.name: x for i, x in zip(runtime.inputs, random_feeds(runtime.inputs))}
    for _ in range(rounds):
        session = _ort_session(path, threads)
        _bare_loop(session, feed, warmup)
        bare.append(float(np.median(_bare_loop(session, feed, runs))) / 1e6)
        del session
        harness.append(benchmark_model(path, options).latency_ms.p50)
        isolated.append(bench_in_subprocess(path, options).latency_ms.p50)
    ratio = [h / b for h, b in zip(harness, bare)]
    ratio_sub = [i / b for i, b in zip(isolated, bare)]
    return {"model": path.name, "threads": threads, "rounds": rounds, "runs": runs,
            "bare_p50_ms": bare, "harness_p50_ms": harness, "subprocess_p50_ms": isolated,
            "median_ratio": round(statistics.median(ratio), 4),
            "median_ratio_subprocess": round(statistics.median(ratio_sub), 4),
            "best_ratio": round(min(harness) / min(bare), 4),
            "best_ratio_subprocess": round(min(isolated) / min(bare), 4)}


def repeatability(path: Path, *, duration_s: float, threads: int) -> dict[str, Any]:
    result = benchmark([path], options=BenchOptions(duration_s=duration_s, threads=threads, profile=False,
                                                    keep_samples=False), repeat=3)
    record = result.models[0]
    repeats = record.repeats
    assert repeats is not None  # benchmark() sets it on every record
    return {"model": path.name, "duration_s": duration_s, "p50_ms": list(repeats.p50_ms),
            "spread_pct": repeats.spread_pct, "cv_pct": round(100 * record.latency_ms.cv, 1)}


def litert_tool(path: Path, *, rounds: int, runs: int, warmup: int, threads: int) -> dict[str, Any] | None:
    """LiteRT's own Python benchmark (CompiledModel API) vs ours (Interpreter API), same model."""
    ours, theirs = [], []
    options = BenchOptions(runs=runs, warmup=warmup, threads=threads, profile=False, keep_samples=False)
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "r.json"
            proc = subprocess.run([sys.executable, "-m", "ai_edge_litert.tools.benchmark_litert_model",
                                   f"--model={path}", f"--num_runs={runs}", f"--warmup_runs={warmup}",
                                   f"--num_threads={threads}", f"--result_json={out}"],
                                  check=False, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0 or not out.is_file():
                return {"model": path.name, "error": (proc.stderr or proc.stdout)[-800:]}
            data = json.loads(out.read_text())
            theirs.append(float(_find(data, "median_ms")))
        ours.append(bench_in_subprocess(path, options).latency_ms.p50)
    o, t = statistics.median(ours), statistics.median(theirs)
    return {"model": path.name, "threads": threads, "ours_p50_ms": ours, "litert_tool_median_ms": theirs,
            "ratio": round(o / t, 3)}


def _find(data: Any, key: str) -> Any:
    if isinstance(data, dict):
        if key in data:
            return data[key]
        for value in data.values():
            found = _find(value, key)
            if found is not None:
                return found
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and runs (a smoke run)")
    parser.add_argument("--tflite", type=Path, help="a .tflite model for the LiteRT comparison (default: a "
                        "MobileNet-v1-like float model, 216 M MACs, written by tests/support/tflite_builder.py)")
    args = parser.parse_args()
    rounds, runs = (2, 100) if args.quick else (5, 400)
    models = [build_model(name, MODELS_DIR).onnx_path for name in ("mobilenetv2", "efficientnet-lite0")]
    console = Console(stderr=True)
    results: dict[str, Any] = {"wrapper_overhead": [], "session_overhead": [], "repeatability": [], "litert_tool": None}
    for path in models:
        for threads in (1, 2):
            console.print(f"overhead: {path.name}, {threads} thread(s)")
            results["wrapper_overhead"].append(
                wrapper_overhead(path, blocks=2 * rounds * 4, block_runs=25, threads=threads))
            results["session_overhead"].append(
                session_overhead(path, rounds=rounds, runs=runs, warmup=30, threads=threads))
        console.print(f"repeatability: {path.name}")
        results["repeatability"].append(repeatability(path, duration_s=3.0 if args.quick else 8.0, threads=2))
    tflite_model = args.tflite or conv_stack_tflite(MODELS_DIR / "conv-stack-224.tflite")
    console.print(f"LiteRT benchmark_litert_model vs ours: {tflite_model.name}")
    results["litert_tool"] = litert_tool(tflite_model, rounds=rounds, runs=runs, warmup=30, threads=2)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")

    out = Console(width=max(120, Console().width))
    table = Table(title="harness overhead: the harness's timed call vs bare session.run, "
                        "same session, alternating blocks")
    for col in ("model", "threads", "runs each", "bare p50 ms", "harness p50 ms", "overhead"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in results["wrapper_overhead"]:
        table.add_row(r["model"], str(r["threads"]), str(r["runs_each"]), f"{r['bare_p50_ms']:.3f}",
                      f"{r['harness_p50_ms']:.3f}", f"{r['overhead_pct']:+.2f}%")
    out.print(table)
    table = Table(title="whole harness (own session, warm-up; in process and in its own process) vs a bare loop, "
                        "taking turns: median and best-round ratio of p50")
    for col in ("model", "threads", "bare p50 ms (rounds)", "median ratio", "best ratio", "own process: median",
                "best"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in results["session_overhead"]:
        table.add_row(r["model"], str(r["threads"]), ", ".join(f"{x:.2f}" for x in r["bare_p50_ms"]),
                      f"{r['median_ratio']:.3f}", f"{r['best_ratio']:.3f}", f"{r['median_ratio_subprocess']:.3f}",
                      f"{r['best_ratio_subprocess']:.3f}")
    out.print(table)
    table = Table(title="repeatability: three back-to-back runs")
    for col in ("model", "p50 ms (3 runs)", "spread", "CV of runs"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in results["repeatability"]:
        table.add_row(r["model"], ", ".join(f"{p:.3f}" for p in r["p50_ms"]), f"{r['spread_pct']:.2f}%",
                      f"{r['cv_pct']}%")
    out.print(table)
    lt = results["litert_tool"]
    if lt and "error" not in lt:
        tool_ms, ours_ms = statistics.median(lt["litert_tool_median_ms"]), statistics.median(lt["ours_p50_ms"])
        out.print(f"LiteRT benchmark_litert_model median {tool_ms:.3f} ms vs ours "
                  f"p50 {ours_ms:.3f} ms on {lt['model']}: ratio {lt['ratio']:.3f}")
    elif lt:
        out.print(f"LiteRT tool failed: {lt['error']}")
    out.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
