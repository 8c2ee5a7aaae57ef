"""Does the optimized model still do the reference model's job? Task-aware agreement.

Both models run on the same held-out samples; we score how often the optimized model
says what the reference says, by the task's own measure: the top-1 class for a
classifier, matched boxes for a detector, and the closeness of the raw tensors for
anything else. The reference is the ground truth here, so it scores 100 by definition
and the accuracy budget is a drop in percentage points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from device_agent.bundle.manifest import TaskSpec, ValidationInfo
from device_agent.errors import DecodeError
from device_agent.pipeline.decoders import Detection, get_decoder, iou_matrix
from edgekit.errors import EdgeKitError

MATCH_IOU = 0.5  # a detection matches a reference box of the same class at this IoU or more
SNR_CAP_DB = 200.0  # identical outputs have infinite SNR; report this instead
_TOP_N = 5

Outputs = Sequence[np.ndarray]


@dataclass(frozen=True)
class Agreement:
    """How closely an optimized model agrees with its reference, in percent.

    ``details`` by metric (percent unless stated):
    ``top1_agreement``: ``top5_overlap``, ``mean_cosine`` (a fraction, of the logits).
    ``detection_f1``: ``precision``, ``recall``, ``mean_iou`` (a fraction),
    ``reference_boxes`` and ``optimized_boxes`` (counts).
    ``cosine_similarity``: ``min_cosine`` (a fraction), ``snr_db`` (decibels, capped at
    +-200); when a detector fell back to it, ``no_reference_boxes`` = 1 and the box counts.
    """

    metric: str
    reference: float
    optimized: float
    samples: int
    details: dict[str, float] = field(default_factory=dict)
    trials: float | None = None  # what ``optimized`` is a share of: samples (top-1), the mean box count (F1)

    @property
    def ci95(self) -> tuple[float, float] | None:
        """The 95 % Wilson interval of ``optimized``, in percent; None for a metric that is no share (cosine)."""
        if self.trials is None:
            return None
        lo, hi = wilson(self.optimized / 100.0 * self.trials, self.trials)
        return 100.0 * lo, 100.0 * hi

    @property
    def point_value(self) -> float | None:
        """What one sample (one box for F1) is worth, in percentage points; None for a metric that is no share."""
        return None if not self.trials else 100.0 / self.trials

    @property
    def drop(self) -> float:
        """How far the optimized model falls below the reference, in percentage points."""
        return self.reference - self.optimized

    def passed(self, max_drop: float) -> bool:
        """True when the drop is within the budget of ``max_drop`` percentage points."""
        return self.drop <= max_drop

    def to_validation_info(self, *, max_drop: float) -> ValidationInfo:
        """The manifest's record of this check."""
        return ValidationInfo(
            metric=self.metric,
            samples=self.samples,
            reference=self.reference,
            optimized=self.optimized,
            max_drop=max_drop,
            passed=self.passed(max_drop),
            details=dict(self.details),
            ci95=None if self.ci95 is None else [round(self.ci95[0], 2), round(self.ci95[1], 2)],
        )

    def resolution_warning(self, max_drop: float) -> str | None:
        """Why the held-out set cannot resolve the budget (one sample worth more than half of it), or None."""
        point = self.point_value
        if point is None or max_drop <= 0 or point <= max_drop / 2:
            return None
        unit, units = ("box", "boxes") if self.metric == "detection_f1" else ("sample", "samples")
        ci = self.ci95
        assert ci is not None
        return (f"the held-out set cannot resolve the {max_drop:g}-point budget: one {unit} is worth {point:.2f} "
                f"points, more than half of it, so pass or miss turns on one or two {units} (the 95% interval of "
                f"{self.metric} is {ci[0]:.1f}-{ci[1]:.1f}%, {self.samples} samples); give more --calib data: "
                f"{math.ceil(200.0 / max_drop)} held-out {units} or more would resolve it")


Z95 = 1.959963984540054  # the standard normal's 97.5th percentile


def wilson(successes: float, trials: float, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a share ``successes / trials`` (95 % by default), as fractions.

    Unlike the normal approximation it stays within 0..1 and is not zero-width at 0 % or 100 %,
    which is where agreement usually lies (Wilson 1927; Brown, Cai and DasGupta 2001)."""
    if trials <= 0:
        raise ValueError(f"trials must be positive, got {trials}")
    share = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (share + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def compare_outputs(task: TaskSpec, reference: Sequence[Outputs], optimized: Sequence[Outputs]) -> Agreement:
    """Score the optimized model's outputs against the reference's, sample by sample.

    ``reference[i]`` and ``optimized[i]`` are the output arrays of both models on sample
    ``i`` (batch of one, dequantized). Raises :class:`EdgeKitError` when the two do not
    line up: different sample counts, output counts or output shapes.
    """
    _check_aligned(reference, optimized)
    if task.kind == "classification":
        return _classification(reference, optimized)
    if task.kind == "detection":
        return _detection(task, reference, optimized)
    return _cosine(reference, optimized)


def _check_aligned(reference: Sequence[Outputs], optimized: Sequence[Outputs]) -> None:
    if len(reference) == 0:
        raise EdgeKitError("validation needs at least one sample; the reference has none")
    if len(reference) != len(optimized):
        raise EdgeKitError(
            f"validation got {len(reference)} reference samples but {len(optimized)} optimized samples; "
            "both models must run on the same samples"
        )
    for i, (ref, opt) in enumerate(zip(reference, optimized)):
        if len(ref) != len(opt):
            raise EdgeKitError(f"sample {i}: the reference has {len(ref)} outputs, the optimized model {len(opt)}")
        for j, (r, o) in enumerate(zip(ref, opt)):
            if np.shape(r) != np.shape(o):
                raise EdgeKitError(
                    f"sample {i}, output {j}: the reference's shape is {list(np.shape(r))}, "
                    f"the optimized model's {list(np.shape(o))}"
                )


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays, flattened; 1 if both are all zero, 0 if one is."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a, b) / (na * nb))


def snr_db(reference: Sequence[Outputs], optimized: Sequence[Outputs]) -> float:
    """``10 log10(sum ref^2 / sum (ref - opt)^2)`` over every output of every sample, capped."""
    signal = sum(float(np.sum(np.square(np.asarray(r, np.float64)))) for s in reference for r in s)
    noise = sum(
        float(np.sum(np.square(np.asarray(r, np.float64) - np.asarray(o, np.float64))))
        for rs, os in zip(reference, optimized)
        for r, o in zip(rs, os)
    )
    if noise == 0.0:
        return SNR_CAP_DB
    if signal == 0.0:
        return -SNR_CAP_DB
    return float(np.clip(10.0 * math.log10(signal / noise), -SNR_CAP_DB, SNR_CAP_DB))


def _flat(sample: Outputs) -> np.ndarray:
    return np.concatenate([np.asarray(o, dtype=np.float64).ravel() for o in sample]) if len(sample) else np.zeros(0)


def _classification(reference: Sequence[Outputs], optimized: Sequence[Outputs]) -> Agreement:
    top1, overlap, cosines = [], [], []
    for ref, opt in zip(reference, optimized):
        r = np.asarray(ref[0], dtype=np.float64).ravel()
        o = np.asarray(opt[0], dtype=np.float64).ravel()
        k = min(_TOP_N, r.size)
        top1.append(float(np.argmax(r) == np.argmax(o)))
        # stable sort: ties resolve the same way in both models
        ref_top = set(np.argsort(-r, kind="stable")[:k].tolist())
        opt_top = set(np.argsort(-o, kind="stable")[:k].tolist())
        overlap.append(len(ref_top & opt_top) / k)
        cosines.append(cosine(r, o))
    return Agreement(
        metric="top1_agreement",
        reference=100.0,
        optimized=100.0 * float(np.mean(top1)),
        samples=len(reference),
        details={"top5_overlap": 100.0 * float(np.mean(overlap)), "mean_cosine": float(np.mean(cosines))},
        trials=float(len(reference)),
    )


def match_detections(reference: Sequence[Detection], optimized: Sequence[Detection]) -> list[float]:
    """Greedy matching, best optimized score first: the IoU of each match made.

    An optimized box matches the unmatched reference box of the same class it overlaps
    most, if that IoU is at least :data:`MATCH_IOU`; each reference box matches once.
    """
    if not reference or not optimized:
        return []
    iou = iou_matrix(np.array([d.box_xyxy for d in optimized]), np.array([d.box_xyxy for d in reference]))
    same_class = np.array([d.class_id for d in optimized])[:, None] == np.array([d.class_id for d in reference])[None]
    iou = np.where(same_class, iou, -1.0)
    matched = np.zeros(len(reference), dtype=bool)
    ious: list[float] = []
    for i in np.argsort([-d.score for d in optimized], kind="stable"):
        candidates = np.where(matched, -1.0, iou[i])
        j = int(np.argmax(candidates))
        if candidates[j] >= MATCH_IOU:
            matched[j] = True
            ious.append(float(candidates[j]))
    return ious


def _detection(task: TaskSpec, reference: Sequence[Outputs], optimized: Sequence[Outputs]) -> Agreement:
    decoder = get_decoder(task.decoder)
    n_ref = n_opt = 0
    ious: list[float] = []
    for i, (ref, opt) in enumerate(zip(reference, optimized)):
        try:
            ref_dets = decoder(list(ref), task).detections
            opt_dets = decoder(list(opt), task).detections
        except DecodeError as exc:
            raise EdgeKitError(f"sample {i}: cannot decode with {task.decoder!r}: {exc}") from exc
        n_ref, n_opt = n_ref + len(ref_dets), n_opt + len(opt_dets)
        ious.extend(match_detections(ref_dets, opt_dets))
    counts = {"reference_boxes": float(n_ref), "optimized_boxes": float(n_opt)}
    if n_ref == 0:
        # nothing to match against: F1 would be undefined, so compare the tensors instead
        fallback = _cosine(reference, optimized)
        return Agreement(
            metric=fallback.metric,
            reference=fallback.reference,
            optimized=fallback.optimized,
            samples=fallback.samples,
            details={**fallback.details, "no_reference_boxes": 1.0, **counts},
        )
    matches = len(ious)
    precision = 100.0 * matches / n_opt if n_opt else 0.0
    recall = 100.0 * matches / n_ref
    f1 = 100.0 * 2 * matches / (n_opt + n_ref)
    return Agreement(
        metric="detection_f1",
        reference=100.0,
        optimized=f1,
        samples=len(reference),
        details={
            "precision": precision,
            "recall": recall,
            "mean_iou": float(np.mean(ious)) if ious else 0.0,
            **counts,
        },
        trials=(n_opt + n_ref) / 2.0,  # F1 = matches / the mean of the two box counts
    )


def _cosine(reference: Sequence[Outputs], optimized: Sequence[Outputs]) -> Agreement:
    cosines = [cosine(_flat(r), _flat(o)) for r, o in zip(reference, optimized)]
    return Agreement(
        metric="cosine_similarity",
        reference=100.0,
        optimized=100.0 * float(np.mean(cosines)),
        samples=len(reference),
        details={"min_cosine": float(np.min(cosines)), "snr_db": snr_db(reference, optimized)},
    )
