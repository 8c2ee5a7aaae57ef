"""Known-answer tests for host-side agreement between a reference and an optimized model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from device_agent.bundle.manifest import TaskSpec
from edgekit.errors import EdgeKitError
from edgekit.optimize.validation import Agreement, compare_outputs, cosine, snr_db, wilson

CLS_TASK = TaskSpec(kind="classification", decoder="softmax-topk")
DET_TASK = TaskSpec(kind="detection", decoder="yolov8", labels=["cat", "dog"], score_threshold=0.25)
RAW_TASK = TaskSpec(kind="raw", decoder="raw")


def logits(top: int, num_classes: int = 4) -> list[np.ndarray]:
    row = np.zeros((1, num_classes), dtype=np.float32)
    row[0, top] = 5.0
    return [row]


def head(*boxes: tuple[float, float, float, float, int, float]) -> list[np.ndarray]:
    """A yolov8 head [1, 6, 8] from (cx, cy, w, h, class_id, score) tuples, padded with empties."""
    candidates = np.zeros((8, 6), dtype=np.float32)
    for i, (cx, cy, w, h, class_id, score) in enumerate(boxes):
        candidates[i, :4] = (cx, cy, w, h)
        candidates[i, 4 + class_id] = score
    return [candidates.T[None]]


def test_identical_classification_agrees_fully() -> None:
    samples = [logits(i % 4) for i in range(8)]
    agreement = compare_outputs(CLS_TASK, samples, samples)
    assert agreement.metric == "top1_agreement"
    assert (agreement.reference, agreement.optimized, agreement.drop, agreement.samples) == (100.0, 100.0, 0.0, 8)
    assert agreement.details["top5_overlap"] == 100.0
    assert agreement.details["mean_cosine"] == pytest.approx(1.0)
    assert agreement.passed(0.0)


def test_one_flipped_argmax_of_four_is_75_percent() -> None:
    reference = [logits(0), logits(1), logits(2), logits(3)]
    optimized = [logits(0), logits(1), logits(2), logits(0)]
    agreement = compare_outputs(CLS_TASK, reference, optimized)
    assert agreement.optimized == 75.0
    assert agreement.drop == 25.0
    assert agreement.passed(25.0) and not agreement.passed(24.9)
    # the flipped sample's one-hot logits are orthogonal: cosine 0, the others 1
    assert agreement.details["mean_cosine"] == pytest.approx(0.75)


def test_top5_overlap_counts_shared_classes() -> None:
    reference = [[np.array([[6, 5, 4, 3, 2, 1]], dtype=np.float32)]]
    optimized = [[np.array([[6, 1, 4, 3, 2, 5]], dtype=np.float32)]]  # class 1 leaves the top 5, 5 enters
    agreement = compare_outputs(CLS_TASK, reference, optimized)
    assert agreement.optimized == 100.0
    assert agreement.details["top5_overlap"] == pytest.approx(80.0)


def test_detection_one_missed_box() -> None:
    reference = [head((50, 50, 20, 20, 0, 0.875), (200, 200, 20, 20, 1, 0.75))]
    optimized = [head((54, 50, 20, 20, 0, 0.75))]  # the cat, shifted 4 px: IoU 320/480; the dog missed
    agreement = compare_outputs(DET_TASK, reference, optimized)
    assert agreement.metric == "detection_f1"
    assert agreement.optimized == pytest.approx(200 / 3)
    assert round(agreement.optimized, 2) == 66.67
    assert agreement.details["precision"] == 100.0
    assert agreement.details["recall"] == 50.0
    assert agreement.details["mean_iou"] == pytest.approx(2 / 3)
    assert agreement.details["reference_boxes"] == 2.0
    assert agreement.details["optimized_boxes"] == 1.0


def test_detection_needs_same_class_and_enough_overlap() -> None:
    reference = [head((50, 50, 20, 20, 0, 0.875)), head((50, 50, 20, 20, 0, 0.875))]
    optimized = [head((50, 50, 20, 20, 1, 0.875)), head((62, 50, 20, 20, 0, 0.875))]  # wrong class; IoU 8/32
    agreement = compare_outputs(DET_TASK, reference, optimized)
    assert (agreement.optimized, agreement.details["precision"], agreement.details["recall"]) == (0.0, 0.0, 0.0)
    assert agreement.samples == 2


def test_detection_each_reference_box_matches_once() -> None:
    reference = [head((50, 50, 20, 20, 0, 0.875))]
    # two optimized cats on the one reference cat (IoU 0.6 with it and with each other);
    # NMS at 0.7 keeps both, and the weaker one finds the reference cat already taken
    optimized = [head((50, 50, 20, 20, 0, 0.875), (50, 55, 20, 20, 0, 0.75))]
    agreement = compare_outputs(DET_TASK.model_copy(update={"iou_threshold": 0.7}), reference, optimized)
    assert agreement.details["precision"] == 50.0
    assert agreement.details["recall"] == 100.0
    assert agreement.details["mean_iou"] == 1.0
    assert agreement.optimized == pytest.approx(200 / 3)


def test_detection_without_reference_boxes_falls_back_to_cosine() -> None:
    reference = [head()]
    agreement = compare_outputs(DET_TASK, reference, reference)
    assert agreement.metric == "cosine_similarity"
    assert agreement.optimized == 100.0
    assert agreement.details["no_reference_boxes"] == 1.0
    assert agreement.details["reference_boxes"] == 0.0


def test_raw_snr_of_known_noise() -> None:
    ref = np.full((1, 100), 2.0)
    noise = np.where(np.arange(100) % 2 == 0, 0.2, -0.2).reshape(1, 100)
    agreement = compare_outputs(RAW_TASK, [[ref]], [[ref + noise]])
    # signal 100 * 4 = 400, noise 100 * 0.04 = 4: 10 log10(100) = 20 dB
    assert agreement.details["snr_db"] == pytest.approx(20.0)
    # ref . opt = 400 (the noise cancels), |opt|^2 = 50 * 2.2^2 + 50 * 1.8^2 = 404
    assert agreement.optimized == pytest.approx(100 * 400 / (20 * math.sqrt(404)))
    assert agreement.details["min_cosine"] == pytest.approx(400 / (20 * math.sqrt(404)))


def test_raw_identical_outputs_cap_snr_and_min_cosine_tracks_the_worst() -> None:
    a = [np.array([1.0, 0.0]), np.array([[3.0]])]
    assert snr_db([a], [a]) == 200.0
    reference = [a, [np.array([1.0, 0.0]), np.array([[0.0]])]]
    optimized = [a, [np.array([0.0, 1.0]), np.array([[0.0]])]]  # second sample orthogonal
    agreement = compare_outputs(TaskSpec(kind="segmentation", decoder="raw"), reference, optimized)
    assert agreement.optimized == pytest.approx(50.0)
    assert agreement.details["min_cosine"] == 0.0
    assert agreement.details["snr_db"] == pytest.approx(10 * math.log10(11 / 2))


def test_cosine_of_zero_vectors() -> None:
    assert cosine(np.zeros(3), np.zeros(3)) == 1.0
    assert cosine(np.zeros(3), np.ones(3)) == 0.0


def test_mismatched_sample_counts_are_refused() -> None:
    with pytest.raises(EdgeKitError, match="2 reference samples but 1 optimized samples"):
        compare_outputs(CLS_TASK, [logits(0), logits(1)], [logits(0)])
    with pytest.raises(EdgeKitError, match="at least one sample"):
        compare_outputs(CLS_TASK, [], [])


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(EdgeKitError, match=r"sample 1, output 0: the reference's shape is \[1, 4\], .* \[1, 5\]"):
        compare_outputs(CLS_TASK, [logits(0), logits(1)], [logits(0), logits(1, num_classes=5)])
    with pytest.raises(EdgeKitError, match="sample 0: the reference has 1 outputs, the optimized model 2"):
        compare_outputs(RAW_TASK, [logits(0)], [logits(0) + logits(1)])


def test_decode_errors_are_wrapped_with_the_sample() -> None:
    bad = [[np.zeros((1, 7, 10), dtype=np.float32)]]
    with pytest.raises(EdgeKitError, match=r"sample 0: cannot decode with 'yolov8'"):
        compare_outputs(DET_TASK, bad, bad)


def test_agreement_to_validation_info() -> None:
    agreement = Agreement(metric="top1_agreement", reference=100.0, optimized=98.5, samples=200)
    info = agreement.to_validation_info(max_drop=1.0)
    assert agreement.drop == pytest.approx(1.5)
    assert (info.metric, info.samples, info.optimized, info.max_drop, info.passed) == (
        "top1_agreement", 200, 98.5, 1.0, False,
    )


@pytest.mark.parametrize(("successes", "trials", "lo", "hi"), [
    (8, 10, 0.4902, 0.9433),  # Newcombe (1998), Table I; the same as scipy's binomtest(...).proportion_ci("wilson")
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (50, 100, 0.4038, 0.5962),
    (118, 120, 0.9413, 0.9954),
])
def test_wilson_interval_known_values(successes: int, trials: int, lo: float, hi: float) -> None:
    got = wilson(successes, trials)
    assert got == pytest.approx((lo, hi), abs=1e-4)
    with pytest.raises(ValueError, match="trials must be positive"):
        wilson(0, 0)


def test_agreement_carries_its_interval_into_the_manifest() -> None:
    samples = [logits(i % 4) for i in range(40)]
    flipped = [logits((i + 1) % 4) if i < 2 else s for i, s in enumerate(samples)]
    agreement = compare_outputs(CLS_TASK, samples, flipped)
    assert agreement.optimized == 95.0 and agreement.trials == 40
    lo, hi = agreement.ci95 or (0.0, 0.0)
    assert (lo, hi) == pytest.approx((83.5, 98.62), abs=0.01)
    info = agreement.to_validation_info(max_drop=5.0)
    assert info.ci95 == [pytest.approx(83.5, abs=0.01), pytest.approx(98.62, abs=0.01)]
    raw = compare_outputs(RAW_TASK, [[np.ones(4)]], [[np.ones(4)]])
    assert raw.ci95 is None and raw.to_validation_info(max_drop=1.0).ci95 is None  # a mean cosine is no share


def test_a_held_out_set_too_small_for_the_budget_is_named() -> None:
    forty = Agreement(metric="top1_agreement", reference=100.0, optimized=97.5, samples=40, trials=40.0)
    warning = forty.resolution_warning(2.0)  # the demo's video: one frame is 2.5 points of a 2-point budget
    assert warning is not None
    assert "cannot resolve the 2-point budget: one sample is worth 2.50 points" in warning
    assert "40 samples" in warning and "100 held-out samples or more would resolve it" in warning
    assert forty.resolution_warning(5.0) is None  # 2.5 points is half of 5: resolved
    enough = Agreement(metric="top1_agreement", reference=100.0, optimized=99.5, samples=200, trials=200.0)
    assert enough.resolution_warning(1.0) is None and enough.resolution_warning(0.0) is None
    boxes = Agreement(metric="detection_f1", reference=100.0, optimized=90.0, samples=8, trials=10.0)
    assert "one box is worth 10.00 points" in (boxes.resolution_warning(3.0) or "")
    cosine_only = Agreement(metric="cosine_similarity", reference=100.0, optimized=99.0, samples=3)
    assert cosine_only.resolution_warning(0.1) is None
