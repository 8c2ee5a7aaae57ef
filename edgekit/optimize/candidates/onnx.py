"""Building and validating the candidate models of one ``optimize`` run.

Each builder turns the prepared float reference into one precision through the passes in
``converters`` and validates it against the reference on the held-out samples. INT8 that
misses the accuracy budget falls back, step by step, to keeping the layers that INT8
damages most in float (ranked by :mod:`edgekit.optimize.sensitivity`), before giving up.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from converters import PASSES
from converters.base import PassReport
from device_agent.bundle.manifest import TaskSpec
from edgekit.optimize.measure import LatencySample, run_all
from edgekit.optimize.sensitivity import (
    ChainSensitivity,
    candidate_chains,
    describe,
    exclusion_steps,
    float_chains,
    rank_chains,
    refine,
)
from edgekit.optimize.validation import Agreement, compare_outputs, snr_db
from edgekit.progress import Steps


@dataclass
class Workspace:
    """Everything the builders share: the reference, the data, the budget."""

    work_dir: Path
    reference: Path
    input_names: list[str]
    calibration: list[np.ndarray]
    validation: list[np.ndarray]
    reference_outputs: list[list[np.ndarray]]
    task: TaskSpec
    max_drop: float
    steps: Steps
    threads: int = 0
    # set when ``reference`` is derived (pruned, sparse): validated against the original
    pruning: PassReport | None = None
    _check: tuple[list[np.ndarray], list[list[np.ndarray]]] | None = field(default=None, repr=False)

    def check_set(self) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
        """Calibration samples the bias correction is not fitted on (its first 16), and the
        reference's outputs on them: computed once, shared by every INT8 try."""
        if self._check is None:
            inputs = [arr[-16:] for arr in self.calibration]
            self._check = (inputs, run_all(self.reference, inputs, threads=self.threads))
        return self._check


@dataclass
class Candidate:
    """One model that was built and validated."""

    name: str
    precision: str
    path: Path
    agreement: Agreement
    passes: list[PassReport] = field(default_factory=list)
    excluded_nodes: tuple[str, ...] = ()
    latency: LatencySample | None = None
    note: str = ""
    blocker: str | None = None  # why it cannot ship whatever its accuracy (e.g. float operators on an int8 NPU)
    task: TaskSpec | None = None  # how the device decodes it, when not as the reference (a detector cut at its heads)

    def passed(self, max_drop: float) -> bool:
        return self.blocker is None and self.agreement.passed(max_drop)

    def summary(self, max_drop: float, reference_p50_ms: float | None) -> dict[str, Any]:
        p50 = self.latency.p50_ms if self.latency else None
        return {
            "name": self.name,
            "precision": self.precision,
            "latency_ms": (None if self.latency is None
                           else {"p50": p50, "p90": self.latency.p90_ms, "mean": self.latency.mean_ms}),
            "speedup": None if not (p50 and reference_p50_ms) else reference_p50_ms / p50,
            "metric": self.agreement.metric,
            "value": self.agreement.optimized,
            "drop": self.agreement.drop,
            "details": self.agreement.details,
            "passed": self.passed(max_drop),
            "size_bytes": self.path.stat().st_size,
            "excluded_nodes": list(self.excluded_nodes),
            "passes": [{"name": p.name, "seconds": round(p.seconds, 3), **p.details} for p in self.passes],
            "note": self.note,
            "blocker": self.blocker,
        }


def evaluate(ws: Workspace, path: Path, label: str,
             adapt: Callable[[list[np.ndarray]], list[np.ndarray]] | None = None) -> Agreement:
    """Validate ``path`` against the reference on the held-out samples; ``adapt`` turns its outputs into
    the reference's (a detector cut before its tail gets its tail back)."""
    with ws.steps.step(f"Validating {label} on {len(ws.validation[0])} held-out samples"):
        outputs = run_all(path, ws.validation, threads=ws.threads)
    return compare_outputs(ws.task, ws.reference_outputs, outputs if adapt is None else [adapt(o) for o in outputs])


def build_fp32(ws: Workspace, note: str = "the prepared original") -> list[Candidate]:
    """The reference itself: it agrees with itself, and every speedup is measured against it.
    A derived reference (pruned, sparse) is a model of its own, validated against the original like any other."""
    if ws.pruning is not None:
        return [Candidate("fp32", "fp32", ws.reference, evaluate(ws, ws.reference, "derived FP32"), note="derived")]
    agreement = compare_outputs(ws.task, ws.reference_outputs, ws.reference_outputs)
    return [Candidate("fp32", "fp32", ws.reference, agreement, note=note)]


def build_fp16(ws: Workspace) -> list[Candidate]:
    with ws.steps.step("Converting to FP16"):
        report = PASSES["onnx-fp16"](ws.reference, ws.work_dir / "model.fp16.onnx")
    return [Candidate("fp16", "fp16", report.dst, evaluate(ws, report.dst, "FP16"), [report])]


def _int8(ws: Workspace, dst: Path, exclude: tuple[str, ...] = ()) -> PassReport:
    return PASSES["onnx-int8-static"](
        ws.reference, dst, calibration=ws.calibration, input_names=ws.input_names, nodes_to_exclude=exclude,
        calibration_cache=ws.work_dir / "int8-ranges.json",
    )


def _int8_corrected(ws: Workspace, dst: Path, exclude: tuple[str, ...] = (),
                    progress: Callable[[int, int], None] | None = None) -> list[PassReport]:
    """Quantize, then correct the per-channel mean shift of every quantized layer.

    The correction is kept only if it raises the output SNR on calibration samples other
    than the ones it was fitted on; otherwise the plain quantized model is used. The plain
    model stays at ``reports[0].dst`` (the chain ranking starts from it). ``progress(done, total)``
    follows the layers corrected.

    Work done once per run and shared by every try: the calibration ranges (``int8-ranges.json``),
    each weight's quantization (``converters/onnx_int8_memo.py``), the per-layer bias shifts
    (``int8-bias-shifts.json``: a try takes, exactly, the shift of every layer whose ancestors it
    leaves as an earlier try quantized them, see ``correct_bias``), and the reference's outputs on
    the check samples (:meth:`Workspace.check_set`).
    """
    quantized = _int8(ws, dst.with_suffix(".raw.onnx"), exclude)
    corrected = PASSES["onnx-int8-bias-correction"](quantized.dst, dst, reference=ws.reference,
                                                    calibration=ws.calibration, input_names=ws.input_names,
                                                    shift_cache=ws.work_dir / "int8-bias-shifts.json",
                                                    progress=progress)
    check, reference = ws.check_set()
    before = snr_db(reference, run_all(quantized.dst, check, threads=ws.threads))
    after = snr_db(reference, run_all(dst, check, threads=ws.threads))
    corrected.details.update(snr_before_db=round(before, 2), snr_after_db=round(after, 2), kept=after > before)
    if after <= before:
        shutil.copyfile(quantized.dst, dst)
    return [quantized, corrected]


def build_int8(ws: Workspace) -> list[Candidate]:
    """Full INT8, then mixed precision with the chains that hurt the output most in float."""
    with ws.steps.step(f"Quantizing to INT8 ({len(ws.calibration[0])} calibration samples), correcting the bias "
                       "of each layer") as advance:
        reports = _int8_corrected(ws, ws.work_dir / "model.int8.onnx", progress=advance)
    path = reports[-1].dst
    full = Candidate("int8", "int8", path, evaluate(ws, path, "INT8"), reports)
    if full.passed(ws.max_drop):
        return [full]
    ranked = rank_float_chains(ws, reports[0].dst)
    full.note = f"missed the budget; chains that help most in float: {describe(ranked, 3)}"

    tries = 0

    def attempt(count: int) -> Candidate:
        nonlocal tries
        tries += 1
        exclude = tuple(node for chain in ranked[:count] for node in chain.nodes)
        with ws.steps.step(f"Mixed precision, try {tries}: quantizing with {count} chain(s), {len(exclude)} layers, "
                           "in float, correcting biases") as advance:
            reports = _int8_corrected(ws, ws.work_dir / f"model.int8-mixed{count}.onnx", exclude, progress=advance)
        return Candidate(
            f"int8-mixed-{count}", "int8-mixed", reports[-1].dst,
            evaluate(ws, reports[-1].dst, f"INT8 with {len(exclude)} layers in float"), reports, excluded_nodes=exclude,
            note=f"{count} layer chain(s) ({len(exclude)} layers) kept in float, chosen by output SNR gain",
        )

    return [full, *search_mixed(ws, len(ranked), attempt)]


def rank_float_chains(ws: Workspace, full_int8: Path | None = None) -> list[ChainSensitivity]:
    """The reference's layer chains, best first by how much keeping each in float raises the
    output SNR of ONNX Runtime INT8 (``full_int8``, quantized here when not given). Cheap: the
    calibration ranges are cached, so every trial is one re-quantization."""
    import onnx

    if full_int8 is None:
        with ws.steps.step("Quantizing the ONNX reference to INT8 to measure each layer chain's error"):
            full_int8 = _int8(ws, ws.work_dir / "model.int8-ranking.onnx").dst
    chains = candidate_chains(float_chains(onnx.load(str(ws.reference), load_external_data=False)))
    with ws.steps.step(f"Measuring the INT8 error of {len(chains)} layer chains", total=len(chains)) as advance:
        return rank_chains(
            ws.reference, full_int8, chains, ws.calibration,
            quantize=lambda exclude, dst: _int8(ws, dst, exclude).dst, work_dir=ws.work_dir, progress=advance,
        )


def search_mixed(ws: Workspace, chain_count: int, attempt: Callable[[int], Candidate]) -> list[Candidate]:
    """Try ``attempt(k)`` (the best ``k`` chains in float) for k = 1, 2, 4, ... until one meets
    the budget, then bisect for the fewest (fewer float layers run faster). Every try is returned."""
    tried: list[Candidate] = []

    def passes(count: int) -> bool:
        tried.append(attempt(count))
        return tried[-1].passed(ws.max_drop)

    missed = 0
    for count in exclusion_steps(chain_count):
        if passes(count):
            while (middle := refine(missed, count)) is not None:
                if passes(middle):
                    count = middle
                else:
                    missed = middle
            break
        missed = count
    return tried


BUILDERS: dict[str, Callable[[Workspace], list[Candidate]]] = {
    "fp32": build_fp32,
    "fp16": build_fp16,
    "int8": build_int8,
}
