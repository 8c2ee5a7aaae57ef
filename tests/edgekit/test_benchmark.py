"""edgekit benchmark / edgekit-agent bench: statistics computed right, real runtimes, clear errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from device_agent.bench.options import BenchOptions
from device_agent.bench.profile import parse_ort_profile
from device_agent.bench.runner import (
    benchmark_model,
    random_feeds,
    resolve_model,
)
from device_agent.bench.stats import LatencyStats, relative_spread, warm_up
from device_agent.errors import BenchInputError
from device_agent.runtimes import TensorInfo
from edgekit.bench.benchmark import benchmark
from edgekit.cli.main import main as edgekit_main
from edgekit.optimize.pipeline import optimize
from tests.support.tinymodels import tiny_classifier, tiny_tflite

# tiny_classifier(size=32): conv1 3->16, 3x3, stride 2 -> 16x16x16; conv2 16->32, 3x3 -> 32x16x16; fc 32->10
TINY_MACS = 16 * 16 * 16 * 3 * 9 + 32 * 16 * 16 * 16 * 9 + 10 * 32
TINY_PARAMS = 16 * 3 * 9 + 16 + 32 * 16 * 9 + 32 + 10 * 32 + 10
CONTRACT_LATENCY = ("p50", "p90", "p99", "mean", "load_ms", "first_ms")
CONTRACT_MODEL = ("latency_ms", "load_ms", "first_ms", "peak_rss_mb", "runs")
FAST = BenchOptions(runs=40, warmup=3, profile=True)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bench")
    tflite_path, _, _ = tiny_tflite(root / "tiny.tflite")
    return {"small": tiny_classifier(root / "small.onnx", size=32),
            "big": tiny_classifier(root / "big.onnx", size=96, seed=1),
            "tflite": tflite_path}


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory: pytest.TempPathFactory, photo_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    model = tiny_classifier(root / "tiny.onnx", size=32)
    return optimize(model, target="x86-cpu", output=root / "b", precision="int8", calib=photo_dir, max_drop=100).bundle


# -- statistics ---------------------------------------------------------------------------------

def test_percentiles_of_a_known_sequence() -> None:
    stats = LatencyStats.from_ms(np.arange(1, 101, dtype=float)[::-1])  # order must not matter for percentiles
    assert (stats.p50, stats.p90, stats.p95, stats.p99) == pytest.approx((50.5, 90.1, 95.05, 99.01))
    assert stats.p99_9 == pytest.approx(99.901)
    assert (stats.mean, stats.min, stats.max, stats.runs) == (50.5, 1.0, 100.0, 100)
    assert stats.std == pytest.approx(29.0115, abs=1e-4)  # sample standard deviation (ddof=1)
    assert stats.cv == pytest.approx(29.0115 / 50.5, abs=1e-5)
    # the sequence runs from 100 down to 1: the last tenth's median (5.5) vs the first's (95.5)
    assert stats.drift_pct == pytest.approx(100 * (5.5 - 95.5) / 95.5)


def test_percentiles_from_nanoseconds_and_a_single_run() -> None:
    stats = LatencyStats.from_ns([2_000_000])
    assert (stats.p50, stats.p99_9, stats.std, stats.cv) == (2.0, 2.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="no timed runs"):
        LatencyStats.from_ms([])


def test_relative_spread() -> None:
    assert relative_spread([9.0, 10.0, 11.0]) == pytest.approx(0.2)


def _sleeper(delays_s: list[float]):  # type: ignore[no-untyped-def]
    calls = {"n": 0}

    def run() -> None:
        delay = delays_s[min(calls["n"], len(delays_s) - 1)]
        calls["n"] += 1
        end = time.perf_counter() + delay
        while time.perf_counter() < end:  # spin: sleep() granularity is too coarse for a ms
            pass

    return run, calls


def test_warm_up_runs_until_the_latency_settles() -> None:
    # every block of 5 runs 20 % faster than the one before, down to a floor of 1 ms after 7 blocks
    run, calls = _sleeper([max(0.001, 0.004 * 0.8 ** (i // 5)) for i in range(400)])
    warm = warm_up(run, first_ms=4.0, block_s=0.02, tolerance=0.03, min_s=0.3)
    assert warm.stable and not warm.fixed
    assert warm.ms >= 300  # never shorter than min_s, even when three quick blocks agree early
    assert warm.runs == calls["n"] >= 7 * 5 + 2 * 5  # the falling blocks, then steady ones
    assert relative_spread(warm.block_medians_ms[-3:]) <= 0.03
    assert warm.block_medians_ms[0] > 3 * warm.block_medians_ms[-1]


def test_warm_up_gives_up_at_its_cap_and_says_so() -> None:
    run, calls = _sleeper([0.0005 * (1.15 ** (i // 5)) for i in range(400)])  # every block 15 % slower
    warm = warm_up(run, first_ms=0.5, block_s=0.0025, tolerance=0.03, max_s=0.6)
    assert not warm.stable
    assert warm.runs == calls["n"]


def test_fixed_warm_up_runs_exactly_n() -> None:
    run, calls = _sleeper([0.0])
    warm = warm_up(run, runs=7)
    assert (warm.runs, warm.fixed, calls["n"]) == (7, True, 7)


# -- one model ------------------------------------------------------------------------------------

def test_onnx_model_record_has_every_field_and_sane_numbers(models: dict[str, Path]) -> None:
    record = benchmark_model(models["small"], FAST).to_json()
    for key in CONTRACT_MODEL:
        assert key in record
    for key in CONTRACT_LATENCY:
        assert key in record["latency_ms"]
    lat = record["latency_ms"]
    assert record["runs"] == 40 and len(record["samples_ms"]) == 40
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["p50"] == pytest.approx(float(np.percentile(record["samples_ms"], 50)), abs=1e-4)  # 4 decimals kept
    assert record["warmup"] == {"runs": 3, "ms": record["warmup"]["ms"], "stable": True, "fixed": True,
                                "block_medians_ms": []}
    assert record["runtime"] == "onnxruntime" and record["input"] == "random"
    assert record["cost"]["macs"] == TINY_MACS and record["cost"]["params"] == TINY_PARAMS
    assert record["gops"] == pytest.approx(2 * TINY_MACS / (lat["p50"] / 1e3) / 1e9, rel=1e-2)
    assert record["peak_rss_mb"] > 10
    machine = record["machine"]  # Linux: what else was running
    assert isinstance(machine["load_avg_1m"], float)
    assert machine["other_cpu_pct"] is None  # 40 runs of a tiny model: far too short a window to measure
    ops = {row["op"] for row in record["top_ops"]["by_type"]}
    assert "Conv" in ops
    assert sum(row["percent"] for row in record["top_ops"]["by_type"]) == pytest.approx(100, abs=0.5)


def test_tflite_model_runs_in_litert_and_says_it_has_no_op_profiler(models: dict[str, Path]) -> None:
    record = benchmark_model(models["tflite"], BenchOptions(runs=20, warmup=2)).to_json()
    assert record["runtime"] == "tflite" and record["runs"] == 20
    assert record["top_ops"] is None and "no operator profiler" in record["top_ops_note"]
    assert record["cost"]["macs"] == 12


def test_bundle_is_timed_on_its_golden_photo_with_its_target_threads(int8_bundle: Path) -> None:
    record = benchmark_model(int8_bundle, BenchOptions(runs=20, warmup=2, profile=False)).to_json()
    assert record["input"] == "golden" and record["precision"] == "int8"
    assert record["threads"] == json.loads((int8_bundle / "manifest.json").read_text())["target"]["threads"]
    assert record["cost"]["macs"] == TINY_MACS  # the QDQ model counts the same MACs as the float one


def test_device_without_onnx_takes_the_cost_the_host_recorded(int8_bundle: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = json.loads((int8_bundle / "manifest.json").read_text())
    assert manifest["performance"]["cost"]["macs"] == TINY_MACS
    monkeypatch.setitem(sys.modules, "onnx", None)  # as on a Raspberry Pi with only the agent installed
    record = benchmark_model(int8_bundle, BenchOptions(runs=5, warmup=1, profile=False)).to_json()
    assert record["cost"]["macs"] == TINY_MACS
    assert "counted on the host" in record["cost_note"] and "needs the Python module 'onnx'" in record["cost_note"]


def test_random_feeds_match_dtype_and_refuse_dynamic_dims() -> None:
    feeds = random_feeds((TensorInfo("x", (-1, 3, 4, 4), "float32"), TensorInfo("q", (1, 8), "int8")))
    assert feeds[0].shape == (1, 3, 4, 4) and feeds[1].dtype == np.int8
    with pytest.raises(BenchInputError, match=r"'x' has the dynamic shape \[1, 3, -1, -1\]"):
        random_feeds((TensorInfo("x", (1, 3, -1, -1), "float32"),))


# -- bad input ---------------------------------------------------------------------------------

def test_bad_input_is_named(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(BenchInputError, match=r"'.*nope.onnx' does not exist"):
        resolve_model(tmp_path / "nope.onnx", BenchOptions())
    with pytest.raises(BenchInputError,
                       match=r"--runtime 'tflite' reads \.tflite files, but .*small\.onnx.*'onnxruntime'"):
        resolve_model(models["small"], BenchOptions(runtime="tflite"))
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(BenchInputError, match=r"expected a \.onnx or \.tflite file or a bundle directory"):
        resolve_model(tmp_path / "model.pt", BenchOptions())
    with pytest.raises(BenchInputError, match="not a usable bundle"):
        resolve_model(tmp_path, BenchOptions())
    with pytest.raises(BenchInputError, match="--runs or --duration, not both"):
        BenchOptions(runs=5, duration_s=1.0)
    with pytest.raises(BenchInputError, match="--runs must be at least 1, got 0"):
        BenchOptions(runs=0)


def test_bundle_with_the_wrong_runtime_is_refused(int8_bundle: Path) -> None:
    with pytest.raises(BenchInputError, match="runtime 'onnxruntime'; --runtime 'tflite' cannot run it"):
        resolve_model(int8_bundle, BenchOptions(runtime="tflite"))


def test_cli_bad_input_exits_2_with_a_message(models: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert edgekit_main(["benchmark", str(models["small"]), str(tmp_path / "typo.onnx"), "--runs", "5"]) == 2
    err = capsys.readouterr().err
    assert "BenchInputError" in err and "typo.onnx" in err and "does not exist" in err
    assert edgekit_main(["benchmark", str(models["small"]), "--runtime", "tflite"]) == 2
    assert "reads .tflite files" in capsys.readouterr().err
    assert edgekit_main(["benchmark"]) == 2
    assert "name at least one model" in capsys.readouterr().err
    assert edgekit_main(["benchmark", str(models["small"]), "--plot", str(tmp_path / "x.svg"), "--runs", "5"]) == 2
    assert "expected a .png" in capsys.readouterr().err


# -- several models: side by side -----------------------------------------------------------------

def test_side_by_side_json_csv_and_plot(models: dict[str, Path], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    csv_path, png = tmp_path / "r.csv", tmp_path / "r.png"
    code = edgekit_main(["benchmark", str(models["small"]), str(models["big"]), "--runs", "30", "--warmup", "3",
                         "--repeat", "2", "--json", "--csv", str(csv_path), "--plot", str(png)])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert [Path(m["model"]).name for m in result["models"]] == ["small.onnx", "big.onnx"]
    small, big = result["models"]
    for m in result["models"]:
        assert all(k in m for k in CONTRACT_MODEL) and all(k in m["latency_ms"] for k in CONTRACT_LATENCY)
        assert len(m["repeats"]["p50_ms"]) == 2 and "samples_ms" not in m
        assert m["latency_ms"]["p50"] in m["repeats"]["p50_ms"] or m["latency_ms"]["p50"] == pytest.approx(
            sorted(m["repeats"]["p50_ms"])[1])
    assert small["speedup"] == 1.0
    assert big["speedup"] == pytest.approx(small["latency_ms"]["p50"] / big["latency_ms"]["p50"], rel=1e-2)
    assert big["cost"]["macs"] > 8 * small["cost"]["macs"]  # 9x the pixels
    assert result["host"]["cpu"]["cores"] >= 1
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["name"] for r in rows] == ["small.onnx", "big.onnx"]
    assert float(rows[1]["p50_ms"]) == big["latency_ms"]["p50"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_human_table_names_every_measure(models: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert edgekit_main(["benchmark", str(models["small"]), "--runs", "20", "--warmup", "2"]) == 0
    out = capsys.readouterr().out
    for label in ("load ms", "first run ms", "p50 ms", "p99.9 ms", "CV %", "throughput", "peak RSS MB", "FLOPs",
                  "GOP/s", "% of peak", "time by operator", "Conv"):
        assert label in out


def test_repeats_take_turns_and_pick_the_median(models: dict[str, Path]) -> None:
    result = benchmark([models["small"]], options=BenchOptions(runs=15, warmup=1, profile=False), repeat=3)
    record = result.models[0].to_json()
    assert len(record["repeats"]["p50_ms"]) == 3
    assert record["latency_ms"]["p50"] == sorted(record["repeats"]["p50_ms"])[1]


# -- the agent's command ------------------------------------------------------------------------

def test_agent_bench_command_json(int8_bundle: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "device_agent.cli", "bench", str(int8_bundle), "--runs", "25",
                           "--warmup", "2", "--json"], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)["models"][0]
    assert record["runs"] == 25 and all(k in record for k in CONTRACT_MODEL)


def test_agent_bench_command_text_and_bad_input(int8_bundle: Path, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "device_agent.cli", "bench", str(int8_bundle), "--runs", "20",
                           "--warmup", "2", "--no-profile"], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "20 timed runs: p50" in proc.stdout and "peak RSS" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "device_agent.cli", "bench", str(tmp_path / "gone")],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


# -- pipeline mode -------------------------------------------------------------------------------

def test_pipeline_times_every_stage_on_a_real_video(int8_bundle: Path, video_file: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert edgekit_main(["benchmark", str(int8_bundle), "--pipeline", str(video_file), "--frames", "40", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["pipeline"][0]
    assert set(result["stages_ms"]) == {"capture", "preprocess", "infer", "postprocess", "publish"}
    assert all(s["runs"] == 40 for s in result["stages_ms"].values())
    assert result["e2e_ms"]["p50"] >= max(s["p50"] for s in result["stages_ms"].values())
    assert result["e2e_fps"] > 0
    assert sum(s["share_pct"] for s in result["stages_ms"].values()) == pytest.approx(100, abs=0.5)


def test_pipeline_refuses_a_missing_source(int8_bundle: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert edgekit_main(["benchmark", str(int8_bundle), "--pipeline", str(tmp_path / "none.mp4")]) == 2
    assert "none.mp4" in capsys.readouterr().err


def test_contention_is_the_machines_busy_time_less_our_own(tmp_path: Path) -> None:
    from device_agent.bench.contention import CpuSnapshot, contention, snapshot

    before = CpuSnapshot(busy_s=100.0, steal_s=5.0, own_s=10.0, wall_s=1000.0)
    after = CpuSnapshot(busy_s=106.0, steal_s=5.4, own_s=14.0, wall_s=1004.0)  # 4 s on 2 CPUs = 8 CPU-s
    assert contention(before, after, cpus=2) == {"other_cpu_pct": 25.0, "steal_pct": 5.0}  # (6 - 4) / 8, 0.4 / 8
    assert contention(None, after) == {"other_cpu_pct": None, "steal_pct": None}
    short = CpuSnapshot(busy_s=100.02, steal_s=5.0, own_s=10.0, wall_s=1000.004)  # one tick over 4 ms
    assert contention(before, short, cpus=2) == {"other_cpu_pct": None, "steal_pct": None}
    rounded = CpuSnapshot(busy_s=111.0, steal_s=5.0, own_s=10.0, wall_s=1005.0)  # 11 CPU-s in 10: tick rounding
    assert contention(before, rounded, cpus=2)["other_cpu_pct"] == 100.0
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 1000 0 0 0 7 0 0\ncpu0 50 0 25 500 0 0 0 3 0 0\n")
    snap = snapshot(stat)
    hz = os.sysconf("SC_CLK_TCK")
    assert snap is not None and (snap.busy_s, snap.steal_s) == (150 / hz, 7 / hz)
    assert snapshot(tmp_path / "absent") is None


# -- the operator profile parser ------------------------------------------------------------------

def test_ort_profile_parser_skips_warm_up_runs(tmp_path: Path) -> None:
    events = []
    for run, ts in enumerate((0, 1000, 2000)):
        events.append({"cat": "Session", "name": "model_run", "ts": ts, "dur": 900})
        scale = 10 if run == 0 else 1  # the first run is slow and must not count
        events.append({"cat": "Node", "name": "c1_kernel_time", "ts": ts + 1, "dur": 300 * scale,
                       "args": {"op_name": "Conv"}})
        events.append({"cat": "Node", "name": "c2_kernel_time", "ts": ts + 2, "dur": 100 * scale,
                       "args": {"op_name": "Conv"}})
        events.append({"cat": "Node", "name": "r_kernel_time", "ts": ts + 3, "dur": 100 * scale,
                       "args": {"op_name": "Relu"}})
        events.append({"cat": "Node", "name": "c1_fence_before", "ts": ts + 4, "dur": 5, "args": {"op_name": "Conv"}})
    trace = tmp_path / "p.json"
    trace.write_text(json.dumps(events))
    profile = parse_ort_profile(trace, skip_runs=1)
    assert profile.runs == 2
    assert profile.kernel_ms_per_run == pytest.approx(0.5)
    conv, relu = profile.by_type
    assert (conv.op, conv.nodes, conv.ms_per_run, conv.percent) == ("Conv", 2, pytest.approx(0.4), pytest.approx(80))
    assert (relu.op, relu.percent) == ("Relu", pytest.approx(20))
    assert profile.by_node[0].op == "c1 (Conv)"


def test_a_running_benchmark_process_is_killed_when_cancelled(models: dict[str, Path]) -> None:
    from device_agent.bench.worker import bench_in_subprocess
    from device_agent.errors import BenchFailed

    cancel = threading.Event()
    threading.Timer(1.0, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(BenchFailed, match="cancelled: the agent is stopping"):
        bench_in_subprocess(models["small"], BenchOptions(duration_s=60, profile=False), cancel=cancel)
    assert time.monotonic() - started < 10


def test_a_benchmark_process_past_its_timeout_is_killed(models: dict[str, Path]) -> None:
    from device_agent.bench.worker import bench_in_subprocess
    from device_agent.errors import BenchFailed

    with pytest.raises(BenchFailed, match="did not finish within 2 s"):
        bench_in_subprocess(models["small"], BenchOptions(duration_s=60, profile=False), timeout_s=2)


def test_target_profile_gives_the_peak_and_a_profile_without_one_is_refused(models: dict[str, Path]) -> None:
    from edgekit.errors import UsageError

    result = benchmark([models["small"]], options=BenchOptions(runs=10, warmup=1, profile=False, threads=2),
                       target="rpi5")
    record = result.models[0].to_json()
    assert "rpi5" in record["peak"]["source"] and record["peak"]["precision"] == "fp32"
    assert record["percent_of_peak"] == pytest.approx(100 * record["gops"] / record["peak"]["gops"], rel=0.02)
    with pytest.raises(UsageError, match="x86-cpu.*no peak_gops"):
        benchmark([models["small"]], options=BenchOptions(runs=5), target="x86-cpu")


def test_cli_plot_and_csv_paths_the_system_refuses_are_usage_errors(models: dict[str, Path], tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("x")
    fast = ["--runs", "5", "--warmup", "1", "--no-profile"]
    for flag, path, cause in (("--csv", in_the_way / "r.csv", "is a file, not a folder"),
                              ("--plot", tmp_path, "is a folder; expected a file name"),
                              ("--csv", Path("/proc/edgekit.csv"), "")):  # root passes the check; the write fails
        code = edgekit_main(["benchmark", str(models["small"]), *fast, flag, str(path), "--json"])
        captured = capsys.readouterr()
        assert code == 2 and f"UsageError: {flag} '{path}'" in captured.err and cause in captured.err
        assert "Traceback" not in captured.err
        doc = json.loads(captured.out)
        assert doc["v"] == 1 and doc["error"]["type"] == "UsageError" and doc["error"]["exit_code"] == 2
