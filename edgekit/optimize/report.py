"""What an ``optimize`` run found, as data: :class:`OptimizeReport` and :class:`OptimizeResult`.

The report is written to the bundle as ``report.json`` and is the ``--json`` output's source;
:meth:`OptimizeReport.to_json` gives the object those hold (the field names are that JSON's
keys, in its order). The open parts (each pass's details, the export and prepare records,
the metric's details) stay dictionaries: their keys belong to the pass or metric that wrote them.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from device_agent.bundle.manifest import Manifest, PreprocessSpec, TaskSpec, ValidationInfo
from edgekit.optimize.timing import CONTENTION_LIMIT_PCT, Timing
from edgekit.targets import TargetProfile

if TYPE_CHECKING:
    from edgekit.optimize.calibration import CalibrationSet
    from edgekit.optimize.candidates.onnx import Candidate
    from edgekit.optimize.model_source import SourceModel


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceReport(_Record):
    file: str = Field(description="the model's file name, or 'Name (PyTorch)' for a module")
    format: str = Field(description="onnx, tflite or pytorch")
    sha256: str = Field(description="of the model file (the exported ONNX for a module)")
    export: dict[str, Any] = Field(description="the PyTorch export's record; empty for a file")


class DataReport(_Record):
    source: str = Field(description="the calibration data's path as given")
    kind: str = Field(description="images, video or npy")
    samples: int = Field(description="samples read")
    calibration: int = Field(description="samples calibrated on")
    validation: int = Field(description="held-out samples validated on")
    skipped: list[str] = Field(description="'name: reason' for each file that could not be used")


class CandidateLatency(_Record):
    p50: float = Field(description="median latency in ms on this machine")
    p90: float = Field(description="90th percentile in ms")
    mean: float = Field(description="mean in ms")


class CandidateReport(_Record):
    name: str = Field(description="e.g. int8, int8-mixed-3, fp16-pruned")
    precision: str = Field(description="the bundle precision it would ship as")
    latency_ms: CandidateLatency | None = Field(description="None when it was not timed")
    speedup: float | None = Field(description="fp32's p50 over this one's; None when not timed")
    speedup_ci95: list[float] | None = Field(
        default=None, min_length=2, max_length=2,
        description="[lo, hi]: 95 % interval of the speedup (paired bootstrap over rounds); None when not timed")
    metric: str = Field(description="the agreement metric, e.g. top1_agreement")
    value: float = Field(description="its agreement with the original, in percent")
    drop: float = Field(description="how far below the reference's, in percentage points")
    details: dict[str, Any] = Field(description="the metric's details")
    passed: bool = Field(description="within the budget and nothing blocks it")
    size_bytes: int = Field(description="the model file's size")
    excluded_nodes: list[str] = Field(description="nodes kept in float (mixed precision)")
    passes: list[dict[str, Any]] = Field(description="each pass that built it: name, seconds and its details")
    note: str = Field(description="how it was made, for a person")
    blocker: str | None = Field(description="why it cannot ship whatever its accuracy")


class LatencyReport(_Record):
    reference: float = Field(description="fp32's p50 in ms on this machine")
    optimized: float = Field(description="the winner's p50 in ms")


class TimingReport(_Record):
    """How the candidates were timed, and whether their ratios can be trusted."""

    rounds: int = Field(description="interleaved rounds: one run of every candidate each")
    seconds: float = Field(description="wall time of the timed rounds")
    stopped: str = Field(description="resolved (every speedup settled), time cap or round cap")
    contention_pct: float | None = Field(description="other programs' (and guests') share of the CPUs while timing; "
                                         "None where it cannot be measured")
    other_cpu_pct: float | None = Field(description="of which other programs on this machine")
    steal_pct: float | None = Field(description="of which the hypervisor gave to other guests")
    contention_limit_pct: float = Field(description="over this the speedups are not resolved")
    resolved: bool = Field(description="the stopping rule was met on a machine quiet enough to trust the ratios")
    speedup_ci95: list[float] = Field(min_length=2, max_length=2,
                                      description="[lo, hi]: the winner's speedup over fp32, 95 % interval")

    @classmethod
    def of(cls, timing: Timing, winner: str) -> TimingReport:
        ci = timing.speedups[winner]
        return cls(rounds=timing.rounds, seconds=timing.seconds, stopped=timing.stopped,
                   contention_pct=timing.contention_pct, other_cpu_pct=timing.other_cpu_pct,
                   steal_pct=timing.steal_pct, contention_limit_pct=CONTENTION_LIMIT_PCT, resolved=timing.resolved,
                   speedup_ci95=[round(ci.lo, 4), round(ci.hi, 4)])


class MachineReport(_Record):
    platform: str = Field(description="platform.platform() of the build machine")
    processor: str = Field(description="its processor, or machine type when unknown")

    @classmethod
    def here(cls) -> MachineReport:
        return cls(platform=platform.platform(), processor=platform.processor() or platform.machine())


class OptimizeReport(_Record):
    """Everything one run found: the inputs it saw, every candidate and why the winner won."""

    source: SourceReport
    target: TargetProfile
    prepare: dict[str, Any] = Field(description="what preparing the reference did (or why it was skipped)")
    preprocess: PreprocessSpec | None
    task: TaskSpec
    data: DataReport
    candidates: list[CandidateReport]
    winner: str = Field(description="the shipped candidate's name")
    reason: str = Field(description="why it won, for a person")
    latency_ms: LatencyReport
    validation: ValidationInfo = Field(description="the winner's check against the original")
    machine: MachineReport
    seconds: float = Field(description="wall time of the whole run")
    timing: TimingReport
    warnings: list[str] = Field(description="what a person must know before trusting these numbers")

    def to_json(self) -> dict[str, Any]:
        """The report.json object (values a pass recorded keep their type: serialize with a default)."""
        return self.model_dump()


@dataclass(frozen=True)
class OptimizeResult:
    """What ``optimize`` produced: the bundle, the winner and the full report."""

    bundle: Path
    manifest: Manifest
    winner: str
    report: OptimizeReport

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object of the command-line contract."""
        latency = self.report.latency_ms
        report = self.report.to_json()
        return {
            "v": 1,
            "bundle": str(self.bundle),
            "precision": self.manifest.precision,
            "candidate": self.winner,
            "target": self.manifest.target.name,
            "latency_ms": {"reference": latency.reference, "optimized": latency.optimized},
            "speedup": latency.reference / latency.optimized,
            "validation": report["validation"],
            "candidates": report["candidates"],
            "reason": self.report.reason,
            "seconds": self.report.seconds,
            "timing": report["timing"],
            "warnings": report["warnings"],
        }


def build_report(profile: TargetProfile, source: SourceModel, prepared: dict[str, Any], spec: PreprocessSpec | None,
                 task: TaskSpec, data: CalibrationSet, split: tuple[int, int], candidates: list[Candidate],
                 choice: tuple[Candidate, str], timing: Timing, max_drop: float, started: float) -> OptimizeReport:
    """The report of a run: ``split`` is how many samples were calibrated and validated on, ``choice``
    the winner and why, ``timing`` how the candidates were timed."""
    winner, reason = choice
    assert winner.latency is not None
    reference_ms = next(c for c in candidates if c.name == "fp32").latency
    assert reference_ms is not None
    warnings = [*timing.warnings()]
    if (resolution := winner.agreement.resolution_warning(max_drop)) is not None:
        warnings.append(resolution)
    return OptimizeReport(
        source=SourceReport(file=source.file_name, format=source.format, sha256=source.sha256, export=source.details),
        target=profile,
        prepare=prepared,
        preprocess=spec,
        task=task,
        data=DataReport(source=data.source, kind=data.kind, samples=len(data.inputs), calibration=split[0],
                        validation=split[1], skipped=list(data.skipped)),
        candidates=[CandidateReport.model_validate({**c.summary(max_drop, reference_ms.p50_ms),
                                                    "speedup_ci95": _interval(timing, c.name)}) for c in candidates],
        winner=winner.name,
        reason=reason,
        latency_ms=LatencyReport(reference=reference_ms.p50_ms, optimized=winner.latency.p50_ms),
        validation=winner.agreement.to_validation_info(max_drop=max_drop),
        machine=MachineReport.here(),
        seconds=round(time.perf_counter() - started, 2),
        timing=TimingReport.of(timing, winner.name),
        warnings=warnings,
    )


def _interval(timing: Timing, name: str) -> list[float] | None:
    found = timing.speedups.get(name)
    return None if found is None else [round(found.lo, 4), round(found.hi, 4)]
