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
        }


def build_report(profile: TargetProfile, source: SourceModel, prepared: dict[str, Any], spec: PreprocessSpec | None,
                 task: TaskSpec, data: CalibrationSet, split: tuple[int, int], candidates: list[Candidate],
                 winner: Candidate, reason: str, max_drop: float, started: float) -> OptimizeReport:
    """The report of a run: ``split`` is how many samples were calibrated and validated on."""
    assert winner.latency is not None
    reference_ms = next(c for c in candidates if c.name == "fp32").latency
    assert reference_ms is not None
    return OptimizeReport(
        source=SourceReport(file=source.file_name, format=source.format, sha256=source.sha256, export=source.details),
        target=profile,
        prepare=prepared,
        preprocess=spec,
        task=task,
        data=DataReport(source=data.source, kind=data.kind, samples=len(data.inputs), calibration=split[0],
                        validation=split[1], skipped=list(data.skipped)),
        candidates=[CandidateReport.model_validate(c.summary(max_drop, reference_ms.p50_ms)) for c in candidates],
        winner=winner.name,
        reason=reason,
        latency_ms=LatencyReport(reference=reference_ms.p50_ms, optimized=winner.latency.p50_ms),
        validation=winner.agreement.to_validation_info(max_drop=max_drop),
        machine=MachineReport.here(),
        seconds=round(time.perf_counter() - started, 2),
    )
