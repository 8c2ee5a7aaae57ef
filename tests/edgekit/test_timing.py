"""Speedups a user can trust: the interval, the stopping rule, the tie-break, a busy machine.

The statistics are checked on synthetic latencies (no timing asserts); the busy machine is real:
CPU burners beside a real side-by-side timing of two tiny ONNX models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgekit.cli.main import main
from edgekit.optimize.candidates.onnx import Candidate
from edgekit.optimize.measure import compare_latency
from edgekit.optimize.selection import SIMPLICITY, choose, simplicity
from edgekit.optimize.timing import CONTENTION_LIMIT_PCT, MAX_BLOCKS, Speedup, Timing, settled, speedups
from edgekit.optimize.validation import Agreement
from tests.support.tinymodels import tiny_classifier


def _rounds(ms: float, rounds: int, *, noise: float, seed: int, load: np.ndarray | None = None) -> list[int]:
    """Latencies in ns of ``rounds`` rounds around ``ms``, scaled by each round's shared ``load``."""
    rng = np.random.default_rng(seed)
    shared = np.ones(rounds) if load is None else load
    return [int(x) for x in 1e6 * ms * shared * (1 + noise * rng.standard_normal(rounds))]


def test_the_interval_holds_the_true_ratio_and_is_deterministic() -> None:
    samples = {"fp32": _rounds(10.0, 200, noise=0.05, seed=1), "int8": _rounds(5.0, 200, noise=0.05, seed=2)}
    found = speedups(samples, "fp32")
    int8 = found["int8"]
    assert found["fp32"] == Speedup(1.0, 1.0, 1.0)
    assert int8.lo < 2.0 < int8.hi and int8.lo < int8.value < int8.hi and int8.faster
    assert int8.half_width() < 0.03
    assert speedups(samples, "fp32") == found  # seeded: the same samples give the same interval
    assert speedups(samples, "fp32", seed=7) != found


def test_the_bootstrap_keeps_the_rounds_paired() -> None:
    """Load that slows whole rounds (the machine's, shared by every model in it) cancels in the ratio."""
    load = np.random.default_rng(0).uniform(1.0, 3.0, 100)
    paired = {"fp32": _rounds(10.0, 100, noise=0.01, seed=1, load=load),
              "int8": _rounds(8.0, 100, noise=0.01, seed=2, load=load)}
    unpaired = {"fp32": paired["fp32"], "int8": paired["int8"][::-1]}  # the same latencies, rounds mismatched
    tight, loose = speedups(paired, "fp32")["int8"], speedups(unpaired, "fp32")["int8"]
    assert tight.lo < 1.25 < tight.hi
    assert tight.hi - tight.lo < 0.5 * (loose.hi - loose.lo)


def test_fewer_rounds_give_a_wider_interval() -> None:
    widths = []
    for rounds in (10, 40, 160, 640):
        found = speedups({"fp32": _rounds(10.0, rounds, noise=0.2, seed=1),
                          "int8": _rounds(7.0, rounds, noise=0.2, seed=2)}, "fp32")
        widths.append(found["int8"].hi - found["int8"].lo)
    assert widths == sorted(widths, reverse=True)


def test_past_the_block_limit_blocks_of_rounds_are_resampled() -> None:
    """A burst of load that lasts many rounds (autocorrelated) still cancels; the interval holds the true ratio."""
    bursts = np.repeat(np.random.default_rng(0).uniform(1.0, 3.0, 40), 50)  # 40 bursts of 50 rounds
    samples = {"fp32": _rounds(10.0, 2000, noise=0.03, seed=1, load=bursts),
               "int8": _rounds(8.0, 2000, noise=0.03, seed=2, load=bursts)}
    assert 2000 > MAX_BLOCKS
    int8 = speedups(samples, "fp32")["int8"]
    assert int8.lo < 1.25 < int8.hi and int8.half_width() < 0.02


def test_unequal_rounds_are_refused() -> None:
    with pytest.raises(ValueError, match="same number of rounds"):
        speedups({"fp32": [1, 2, 3], "int8": [1, 2]}, "fp32")


def test_the_stopping_rule() -> None:
    ref = Speedup(1.0, 1.0, 1.0)
    # known to +-2 %: settled even when it overlaps another (a tie the simplicity order decides)
    assert settled({"fp32": ref, "a": Speedup(1.50, 1.48, 1.52), "b": Speedup(1.51, 1.49, 1.53)})
    # wide, but overlapping nothing: ranked already
    assert settled({"fp32": ref, "a": Speedup(1.5, 1.3, 1.7), "b": Speedup(2.2, 1.9, 2.5)})
    # wide and overlapping another: keep timing
    assert not settled({"fp32": ref, "a": Speedup(1.5, 1.3, 1.7), "b": Speedup(1.6, 1.5, 1.62)})
    # wide and including fp32's 1.0: not yet known to be faster or slower
    assert not settled({"fp32": ref, "a": Speedup(1.05, 0.9, 1.2)})
    assert settled({"fp32": ref, "a": Speedup(1.05, 0.9, 1.2)}, tolerance=0.2)


def _timing(busy: float | None = 3.0, stopped: str = "resolved", **found: tuple[float, float, float]) -> Timing:
    return Timing(rounds=100, seconds=6.0, stopped=stopped, other_cpu_pct=busy, steal_pct=0.0,  # type: ignore[arg-type]
                  reference="fp32", speedups={"fp32": Speedup(1.0, 1.0, 1.0),
                                              **{k: Speedup(*v) for k, v in found.items()}})


def test_contention_decides_whether_the_ratios_are_results() -> None:
    quiet, busy = _timing(busy=3.0), _timing(busy=CONTENTION_LIMIT_PCT + 1)
    assert quiet.resolved and not quiet.contended and quiet.warnings() == []
    assert busy.contended and not busy.resolved
    assert "26% of the CPUs" in busy.warnings()[0] and "not resolved" in busy.warnings()[0]
    assert not _timing(stopped="time cap").resolved
    unknown = _timing(busy=None)
    assert unknown.contention_pct is None and not unknown.contended
    stolen = Timing(rounds=1, seconds=1.0, stopped="resolved", other_cpu_pct=20.0, steal_pct=10.0, reference="fp32")
    assert stolen.contention_pct == 30.0 and stolen.contended  # other guests' steal is contention too


def _candidate(folder: Path, name: str, precision: str, size: int, excluded: int = 0,
               optimized: float = 99.5) -> Candidate:
    path = folder / f"{name}.onnx"
    path.write_bytes(b"\0" * size)
    agreement = Agreement("top1_agreement", 100.0, optimized, 200, trials=200.0)
    return Candidate(name, precision, path, agreement, excluded_nodes=tuple(f"n{i}" for i in range(excluded)))


@pytest.fixture
def pool(tmp_path: Path) -> list[Candidate]:
    return [_candidate(tmp_path, "fp32", "fp32", 4000, optimized=100.0),
            _candidate(tmp_path, "int8", "int8", 1000),
            _candidate(tmp_path, "int8-mixed-8", "int8-mixed", 1200, excluded=8),
            _candidate(tmp_path, "int8-mixed-3", "int8-mixed", 1100, excluded=3),
            _candidate(tmp_path, "int8-dynamic", "int8-dynamic", 1000)]


def test_the_simplicity_order(pool: list[Candidate], tmp_path: Path) -> None:
    ordered = [c.name for c in sorted([*pool, _candidate(tmp_path, "int8-pruned", "int8", 700)], key=simplicity)]
    assert ordered == ["fp32", "int8", "int8-dynamic", "int8-mixed-3", "int8-mixed-8", "int8-pruned"]
    assert SIMPLICITY[0] == "fp32"


def test_candidates_that_cannot_be_told_apart_go_to_the_simpler(pool: list[Candidate]) -> None:
    timing = _timing(**{"int8": (1.40, 1.35, 1.46), "int8-mixed-8": (1.44, 1.38, 1.50),
                        "int8-mixed-3": (1.20, 1.15, 1.25), "int8-dynamic": (1.10, 1.05, 1.15)})
    winner, reason = choose(pool, pool, 1.0, "auto", timing)
    assert winner.name == "int8"  # int8-mixed-8 is faster by its median, but not measurably
    assert "1.40x (1.35-1.46) faster than fp32" in reason
    assert "cannot be told apart from int8-mixed-8 1.44x (1.38-1.50)" in reason and "simpler int8" in reason
    # separated: the fastest wins
    timing = _timing(**{"int8": (1.40, 1.35, 1.46), "int8-mixed-8": (1.60, 1.52, 1.68),
                        "int8-mixed-3": (1.20, 1.15, 1.25), "int8-dynamic": (1.10, 1.05, 1.15)})
    winner, reason = choose(pool, pool, 1.0, "auto", timing)
    assert winner.name == "int8-mixed-8" and "cannot be told apart" not in reason


def test_a_speedup_whose_interval_holds_one_is_not_faster_than_fp32(pool: list[Candidate]) -> None:
    timing = _timing(**{"int8": (0.98, 0.93, 1.03), "int8-mixed-8": (1.04, 0.97, 1.10),
                        "int8-mixed-3": (0.90, 0.85, 0.95), "int8-dynamic": (0.80, 0.75, 0.85)})
    winner, reason = choose(pool, pool, 1.0, "auto", timing)
    assert winner.name == "fp32"
    assert reason.startswith("no candidate within budget ran measurably faster than fp32")
    assert "int8-mixed-8 1.04x (0.97-1.10)" in reason
    int8_only = [c for c in pool if c.precision.startswith("int8")]
    winner, reason = choose([pool[0], *int8_only], pool, 1.0, "int8", timing)
    assert winner.name == "int8"  # asked for: the simplest of int8's indistinguishable fastest (mixed-8, int8)
    assert "not measurably faster than fp32" in reason


def test_only_a_measurably_faster_candidate_replaces_fp32(pool: list[Candidate]) -> None:
    """A wide interval that reaches the fastest's does not make a slower-by-median candidate the winner."""
    timing = _timing(stopped="time cap", **{"int8": (0.95, 0.80, 1.25), "int8-mixed-8": (1.25, 1.20, 1.30),
                                            "int8-mixed-3": (0.90, 0.85, 0.95), "int8-dynamic": (0.80, 0.75, 0.85)})
    winner, reason = choose(pool, pool, 1.0, "auto", timing)
    assert winner.name == "int8-mixed-8" and "1.25x (1.20-1.30) faster than fp32" in reason


def test_a_busy_machine_gives_no_ratio_as_a_result(pool: list[Candidate]) -> None:
    timing = _timing(busy=80.0, **{"int8": (1.40, 1.35, 1.46), "int8-mixed-8": (1.60, 1.52, 1.68),
                                   "int8-mixed-3": (1.20, 1.15, 1.25), "int8-dynamic": (1.10, 1.05, 1.15)})
    winner, reason = choose(pool, pool, 1.0, "auto", timing)
    assert winner.name == "int8-mixed-8"
    assert "speed not resolved: other programs used 80% of the CPUs" in reason
    assert "1.60" not in reason and "x (" not in reason


@pytest.fixture
def burners() -> Iterator[int]:
    """One busy loop per CPU, beside the test; stopped by their own handles."""
    count = os.cpu_count() or 1
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield count
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_a_real_comparison_beside_cpu_burners_reports_the_contention(tmp_path: Path, burners: int) -> None:
    models = {"fp32": tiny_classifier(tmp_path / "a.onnx", seed=0), "other": tiny_classifier(tmp_path / "b.onnx",
                                                                                             seed=1)}
    feeds = [np.random.default_rng(0).normal(size=(1, 3, 32, 32)).astype(np.float32)]
    measured = compare_latency(models, feeds, threads=1, budget_s=2.0, min_s=1.0)
    timing = measured.timing
    assert timing.rounds >= 10 and set(timing.speedups) == {"fp32", "other"}
    assert timing.contention_pct is not None and timing.contention_pct > CONTENTION_LIMIT_PCT
    assert timing.contended and not timing.resolved
    assert "of the CPUs while the candidates were timed" in timing.warnings()[0]


def test_optimize_json_under_burners_carries_the_timing_and_a_warning(
        tmp_path: Path, photo_dir: Path, burners: int, capsys: pytest.CaptureFixture[str]) -> None:
    model = tiny_classifier(tmp_path / "tiny.onnx")
    code = main(["optimize", str(model), "--target", "x86-cpu", "--precision", "int8", "--calib", str(photo_dir),
                 "--max-drop", "5", "--output", str(tmp_path / "b"), "--json"])
    captured = capsys.readouterr()
    assert code == 0
    result = json.loads(captured.out)
    timing = result["timing"]
    assert timing["contention_pct"] > CONTENTION_LIMIT_PCT and timing["resolved"] is False
    assert timing["rounds"] >= 10 and len(timing["speedup_ci95"]) == 2
    assert timing["speedup_ci95"][0] <= timing["speedup_ci95"][1]
    assert any("of the CPUs while the candidates were timed" in w for w in result["warnings"])
    assert "warning:" in captured.err and "of the CPUs" in captured.err
    assert "speed not resolved" in result["reason"]
    assert len(result["validation"]["ci95"]) == 2
    assert all(len(c["speedup_ci95"]) == 2 for c in result["candidates"])
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["performance"]["timing"]["contention_pct"] == timing["contention_pct"]
    assert manifest["performance"]["warnings"] == result["warnings"]


def test_a_fast_model_that_settles_at_the_round_cap_is_resolved(tmp_path: Path) -> None:
    """A tiny model runs the round cap before the contention window's half second: it is settled all the
    same (one model: its speedup over itself is exactly 1), so the run says resolved, not round cap."""
    models = {"fp32": tiny_classifier(tmp_path / "a.onnx")}
    feeds = [np.random.default_rng(0).normal(size=(1, 3, 32, 32)).astype(np.float32)]
    timing = compare_latency(models, feeds, threads=1, min_s=30.0, max_rounds=20).timing
    assert timing.rounds == 20 and timing.stopped == "resolved"
    assert (timing.speedups["fp32"].lo, timing.speedups["fp32"].hi) == (1.0, 1.0)
