"""Drift detection's parts against hand-computed values: PSI, chi-square, the signals, the baseline's
bins, the rolling window, hysteresis, the [drift] config table and the bundle's drift.json check."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from device_agent.bundle.manifest import PreprocessSpec
from device_agent.drift.baseline import (
    OTHER,
    DriftBaseline,
    NumericBaseline,
    build_baseline,
    class_baseline,
    numeric_baseline,
    parse_baseline,
)
from device_agent.drift.monitor import CLASS_MIX, DriftMonitor, DriftSettings
from device_agent.drift.signals import OutputSignals, input_signals, luma_of_bgr, luma_of_tensor, output_signals
from device_agent.drift.stats import chi_square, chi_square_p, psi
from device_agent.errors import BundleError, ConfigError
from device_agent.pipeline.decoders.types import Classification, DecodeResult, Detection
from device_agent.pipeline.preprocess import to_tensor
from device_agent.service.config import load_config

# -- the scores ----------------------------------------------------------------------------


def test_psi_of_identical_histograms_is_zero_and_of_a_moved_one_is_the_formula() -> None:
    assert psi(np.array([10, 20, 30]), np.array([10, 20, 30])) == pytest.approx(0.0)
    # p = (20.5, 0.5) / 21, q = (10.5, 10.5) / 21: (10/21) ln(20.5/10.5) + (10/21) ln(10.5/0.5) = (10/21) ln 41
    assert psi(np.array([10, 10]), np.array([20, 0])) == pytest.approx(10 / 21 * math.log(41))
    with pytest.raises(ValueError, match="differ in bins"):
        psi(np.array([1, 2]), np.array([1, 2, 3]))


def test_chi_square_statistic_by_hand_and_its_p_value() -> None:
    # q = (50.5, 50.5) / 101 = 0.5 each; E = (20, 20): X2 = 100/20 + 100/20 = 10 on 1 dof
    assert chi_square(np.array([50, 50]), np.array([30, 10])) == (pytest.approx(10.0), 1)
    # the chi-square table's 5 % and 1 % points
    assert chi_square_p(9.488, 4) == pytest.approx(0.05, abs=0.005)
    assert chi_square_p(21.666, 9) == pytest.approx(0.01, abs=0.002)
    assert chi_square_p(0.0, 3) == 1.0
    assert chi_square_p(1e6, 3) < 1e-12


def test_the_p_value_is_close_to_scipys() -> None:
    stats = pytest.importorskip("scipy.stats")
    for dof in (3, 5, 9, 30):
        for p in (0.2, 0.05, 0.01, 0.001):
            x = float(stats.chi2.isf(p, dof))
            assert chi_square_p(x, dof) == pytest.approx(p, abs=0.005, rel=0.25), (dof, p)


# -- the signals ---------------------------------------------------------------------------


def test_input_signals_of_images_whose_answers_are_known() -> None:
    flat = np.full((40, 60), 100.0, dtype=np.float32)
    assert input_signals(flat) == pytest.approx((100.0, 0.0, 0.0, 0.0, 0.0, 0.0))
    halves = np.zeros((40, 60), dtype=np.float32)
    halves[:, 30:] = 255.0
    brightness, contrast, spread, _, under, over = input_signals(halves)
    assert (brightness, contrast, spread, under, over) == pytest.approx((127.5, 127.5, 255.0, 0.5, 0.5))
    checker = (np.indices((40, 60)).sum(axis=0) % 2 * 255).astype(np.float32)
    assert input_signals(checker)[3] == pytest.approx((4 * 255) ** 2)  # every pixel's 4 neighbours are the other


def test_luma_from_a_normalized_tensor_is_the_frames_luma() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    for layout, color in (("NCHW", "RGB"), ("NHWC", "BGR")):
        spec = PreprocessSpec(size_wh=(32, 24), layout=layout, color=color, mean=(0.485, 0.456, 0.406),
                              std=(0.229, 0.224, 0.225))
        assert np.allclose(luma_of_tensor(to_tensor(image, spec), spec), luma_of_bgr(image), atol=1e-3)


def test_output_signals_of_a_classifier_and_a_detector() -> None:
    top = output_signals(DecodeResult("softmax-topk", "classification",
                                      classifications=(Classification(3, "cat", 0.7), Classification(1, "", 0.2))))
    assert top == OutputSignals(0.7, None, ("cat",))
    boxes = output_signals(DecodeResult("yolov8", "detection", detections=(
        Detection(0, "person", 0.9, (0, 0, 1, 1)), Detection(2, "", 0.4, (0, 0, 1, 1)))))
    assert boxes == OutputSignals(0.9, 2, ("person", "2"))
    assert output_signals(DecodeResult("yolov8", "detection")) == OutputSignals(0.0, 0, ())


# -- the baseline ----------------------------------------------------------------------------


def test_decile_bins_hold_a_tenth_each_and_equal_deciles_merge() -> None:
    spread = numeric_baseline(list(range(1, 101)))
    assert len(spread.edges) == 9 and spread.counts == [10] * 10
    assert spread.bin_of(0) == 0 and spread.bin_of(10) == 0 and spread.bin_of(10.5) == 1 and spread.bin_of(1e9) == 9
    mostly_zero = numeric_baseline([0.0] * 80 + [0.5] * 20)
    assert mostly_zero.edges == [0.0, 0.5] and mostly_zero.counts == [80, 20, 0]


def test_rare_and_unseen_classes_pool_into_other() -> None:
    mix = class_baseline([("a",)] * 990 + [("b",)] * 9 + [("c",)])
    assert mix is not None and mix.labels == ["a", OTHER] and mix.counts == [990, 10]
    assert class_baseline([(), ()]) is None


def test_the_baseline_round_trips_and_a_bad_one_names_the_key() -> None:
    base = build_baseline({"brightness": [1.0, 2.0, 3.0]}, [("a",), ("b",)], frames=3)
    assert parse_baseline(base.to_json()) == base
    with pytest.raises(BundleError, match=r"drift-baseline.*signals.x.*edges make 2 bins"):
        parse_baseline('{"schema": "edgekit.drift/1", "frames": 1, "signals": {"x": {"edges": [1], "counts": [1]}}}')
    with pytest.raises(BundleError, match="drift-baseline"):
        parse_baseline(b"not json")


# -- the monitor -------------------------------------------------------------------------------

def _one_signal(window: int = 100, min_frames: int = 10) -> DriftMonitor:
    base = DriftBaseline(frames=100, signals={"top1_confidence": NumericBaseline(edges=[0.5], counts=[50, 50])})
    return DriftMonitor(base, DriftSettings(window=window, min_frames=min_frames))


def _frame(confidence: float) -> OutputSignals:
    return OutputSignals(confidence, None, ())


def test_the_window_counts_only_the_last_frames() -> None:
    monitor = _one_signal(window=20)
    for _ in range(30):
        monitor.update(None, _frame(0.9))
    for _ in range(5):
        monitor.update(None, _frame(0.1))
    assert monitor.view()["top1_confidence"].counts == [5, 15]
    assert monitor.view()["top1_confidence"].reference == [50, 50]  # the baseline, for a hub to score merged windows


def test_the_heartbeat_carries_the_baseline_counts_a_hub_scores_with() -> None:
    from device_agent.protocol import DriftHistogram, body_of
    from device_agent.service.drift_watch import DriftWatch
    monitor = _one_signal(window=20)
    for _ in range(20):
        monitor.update(None, _frame(0.9))
    monitor.check()
    histogram = DriftWatch(monitor).histograms()["top1_confidence"]
    assert body_of(histogram)["baseline_counts"] == [50, 50]
    merged_score = psi(np.array(histogram.baseline_counts), np.array(histogram.counts))
    assert merged_score == pytest.approx(histogram.score, abs=1e-4)
    older = {k: v for k, v in body_of(histogram).items() if k != "baseline_counts"}  # an agent before the field
    assert DriftHistogram.model_validate(older).baseline_counts is None


def test_no_verdict_before_min_frames_then_one_announcement_per_change() -> None:
    monitor = _one_signal(window=100, min_frames=40)
    changes = [c for _ in range(39) for c in monitor.update(None, _frame(0.9))]
    assert changes == [] and monitor.view()["top1_confidence"].score is None
    changes = [c for _ in range(200) for c in monitor.update(None, _frame(0.9))]
    assert [(c.previous, c.state) for c in changes] == [("ok", "alert")]  # announced once, not at every check
    assert changes[0].threshold == 0.25 and changes[0].window == 40 and changes[0].score > 0.25
    back = [c for i in range(200) for c in monitor.update(None, _frame(0.9 if i % 2 else 0.1))]
    states = [c.state for c in back]
    assert states[-1] == "ok" and all(a != b for a, b in itertools.pairwise(states)), states
    assert all(c.previous == p for c, p in zip(back, ["alert", *states], strict=False))


def test_hysteresis_a_state_falls_only_below_its_threshold_less_twenty_percent() -> None:
    monitor = _one_signal()
    step = monitor._next  # the rule itself, scores chosen around the thresholds (0.1 and 0.25)
    assert step("ok", 0.12) == "warn" and step("ok", 0.3) == "alert" and step("warn", 0.26) == "alert"
    assert step("alert", 0.22) == "alert" and step("alert", 0.19) == "warn" and step("alert", 0.05) == "ok"
    assert step("warn", 0.09) == "warn" and step("warn", 0.079) == "ok"


def test_a_class_mix_shift_needs_significance_as_well_as_psi() -> None:
    base = build_baseline({}, [("a",)] * 50 + [("b",)] * 50, frames=100)
    few = DriftMonitor(base, DriftSettings(window=10, min_frames=10))
    assert [c for label in "aaaaaaabbb" for c in few.update(None, OutputSignals(None, None, (label,)))] == []
    assert few.view()[CLASS_MIX].score > 0.2  # warn-sized, but 7 of 10 frames is no evidence against half (p ~ 0.6)
    many = DriftMonitor(base, DriftSettings(window=100, min_frames=50))
    changes = [c for _ in range(50) for c in many.update(None, OutputSignals(None, None, ("a", "z")))]
    assert [(c.signal, c.state) for c in changes] == [(CLASS_MIX, "alert")]
    assert changes[0].p_value is not None and changes[0].p_value < 0.01
    assert many.view()[CLASS_MIX].labels == ["a", "b", OTHER] and many.view()[CLASS_MIX].counts == [50, 0, 50]


# -- the [drift] table ---------------------------------------------------------------------------

CONFIG = """device_id = "cam-01"
bundle = "b"

[[sources]]
uri = "clip.mp4"
"""


def test_the_drift_table_defaults_and_values(tmp_path: Path) -> None:
    file = tmp_path / "agent.toml"
    file.write_text(CONFIG)
    drift = load_config(file).drift
    assert (drift.enabled, drift.window, drift.min_frames, drift.warn, drift.alert) == (True, 600, 300, 0.1, 0.25)
    file.write_text(CONFIG + "\n[drift]\nwindow = 50\nmin_frames = 20\nwarn = 0.2\nalert = 0.5\nenabled = false\n")
    drift = load_config(file).drift
    assert (drift.enabled, drift.window, drift.min_frames, drift.warn, drift.alert) == (False, 50, 20, 0.2, 0.5)


@pytest.mark.parametrize(("table", "message"), [
    ("window = 50\nmin_frames = 60", r"key 'drift': Value error, min_frames \(60\) must not exceed window \(50\)"),
    ("warn = 0.3\nalert = 0.2", r"key 'drift': Value error, alert \(0.2\) must be above warn \(0.3\)"),
    ("window = 5", r"key 'drift.window': Input should be greater than or equal to 10"),
    ("warn = -1", r"key 'drift.warn': Input should be greater than 0"),
    ("windows = 100", r"key 'drift.windows': Extra inputs are not permitted"),
    ("p_value = 1.5", r"key 'drift.p_value': Input should be less than 1"),
])
def test_drift_mistakes_point_at_the_key(tmp_path: Path, table: str, message: str) -> None:
    file = tmp_path / "agent.toml"
    file.write_text(CONFIG + f"\n[drift]\n{table}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(file)
