"""``edgekit.optimize.pipeline``: a model in, a validated, measured bundle out.

The steps, each visible in the report: bring the model to ONNX (exporting a PyTorch
module if given one), prepare it (check, static shapes, simplify) as the float
reference, load real calibration data through the manifest's own preprocessing, build
the candidate precisions, validate each against the reference on held-out samples,
time them side by side on this machine, keep the winner, and write the bundle.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from converters import PASSES
from converters.base import PassReport
from converters.errors import ConversionError
from device_agent.bench.cost import model_cost
from device_agent.bundle.manifest import Manifest, PreprocessSpec, TensorStats
from device_agent.errors import AgentError, CostError
from device_agent.runtimes import create_runtime, runtime_for_file
from edgekit.errors import EdgeKitError, ModelInputError, OptimizeFailed, UsageError
from edgekit.optimize.bundle_writer import check_destination, scratch_dir, write_bundle
from edgekit.optimize.calibration import load_calibration
from edgekit.optimize.candidates.onnx import BUILDERS, Candidate, Workspace, build_fp32
from edgekit.optimize.candidates.tflite import (
    TFLITE_PRECISIONS,
    TfliteSource,
    build_quantized,
    build_tflite,
    build_tflite_mixed,
    int8_source,
    torch_program,
)
from edgekit.optimize.finetune import FineTune, finetune_onnx
from edgekit.optimize.measure import compare_latency, run_all
from edgekit.optimize.model_io import adapt_feeds, in_layout
from edgekit.optimize.model_source import bring_model
from edgekit.optimize.modelspec import resolve_preprocess, resolve_task, tensor_specs
from edgekit.progress import Steps
from edgekit.targets import TargetProfile, get_target

PrecisionChoice = Literal["auto", "int8", "fp16", "fp32"]


@dataclass(frozen=True)
class OptimizeResult:
    """What ``optimize`` produced: the bundle, the winner and the full report."""

    bundle: Path
    manifest: Manifest
    winner: str
    report: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object of the command-line contract."""
        latency = self.report["latency_ms"]
        return {
            "bundle": str(self.bundle),
            "precision": self.manifest.precision,
            "candidate": self.winner,
            "target": self.manifest.target.name,
            "latency_ms": {"reference": latency["reference"], "optimized": latency["optimized"]},
            "speedup": latency["reference"] / latency["optimized"],
            "validation": self.report["validation"],
            "candidates": self.report["candidates"],
            "reason": self.report["reason"],
            "seconds": self.report["seconds"],
        }


def optimize(
    model: str | Path | Any,
    *,
    target: str,
    output: str | Path,
    precision: PrecisionChoice = "auto",
    calib: str | Path | None = None,
    max_drop: float = 1.0,
    task: str | None = None,
    decoder: str | None = None,
    labels: Sequence[str] | str | Path | None = None,
    anchors: str | Path | None = None,
    preprocess: PreprocessSpec | str | Path | dict[str, Any] | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    example_input: Any = None,
    prune: float | None = None,
    finetune: FineTune | None = None,
    sparsity: float | None = None,
    name: str | None = None,
    version: str = "1",
    max_samples: int = 500,
    threads: int | None = None,
    progress: bool = False,
) -> OptimizeResult:
    """Optimize ``model`` (an ONNX path, or a ``torch.nn.Module`` with ``example_input``) for ``target``.

    Raises :class:`UsageError` (bad input) before any work where it can, and
    :class:`OptimizeFailed` when no candidate meets ``max_drop`` (percentage points).
    Nothing is left at ``output`` unless a complete, verified bundle was written.
    """
    started = time.perf_counter()
    if precision not in ("auto", "int8", "fp16", "fp32"):
        raise UsageError(f"--precision {precision!r} is not one of: auto, int8, fp16, fp32")
    if not 0.0 <= max_drop <= 100.0:
        raise UsageError(f"--max-drop {max_drop} is out of range; expected percentage points between 0 and 100")
    if finetune is not None and prune is None:
        raise UsageError("finetune is the fine-tuning hook of a pruned model; give prune=RATIO too")
    if sparsity is not None and not 0.0 < sparsity < 1.0:
        raise UsageError(f"--sparsity {sparsity} is out of range; expected the fraction of weights to zero, between 0 "
                         "and 1 (exclusive), e.g. 0.5")
    if prune is not None and not 0.0 < prune < 1.0:
        raise UsageError(f"--prune {prune} is out of range; expected the fraction of MACs to remove, between 0 and 1 "
                         "(exclusive), e.g. 0.3")
    profile = get_target(target)
    if precision != "auto" and precision not in profile.precisions and precision != "fp32":
        raise UsageError(
            f"--precision {precision} is not offered by target {profile.name!r}; "
            f"it offers {', '.join(profile.precisions)}"
        )
    out = Path(output)
    check_destination(out)
    work = scratch_dir(out)
    staging = work / "bundle"
    staging.mkdir()
    try:
        with Steps(enabled=progress) as steps:
            return _run(
                model, profile=profile, out=out, work=work, staging=staging, steps=steps, precision=precision,
                calib=calib, max_drop=max_drop, task=task, decoder=decoder, labels=labels, anchors=anchors,
                preprocess=preprocess, input_shapes=input_shapes, example_input=example_input, prune=prune,
                finetune=finetune, sparsity=sparsity, name=name, version=version,
                max_samples=max_samples, threads=profile.threads if threads is None else threads, started=started,
            )
    except ConversionError as exc:
        raise ModelInputError(str(exc)) from exc
    except AgentError as exc:
        raise EdgeKitError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(model: Any, *, profile: TargetProfile, out: Path, work: Path, staging: Path, steps: Steps,
         precision: str, calib: str | Path | None, max_drop: float, task: str | None, decoder: str | None,
         labels: Any, anchors: Any, preprocess: Any, input_shapes: Any, example_input: Any, prune: float | None,
         finetune: FineTune | None, sparsity: float | None, name: str | None, version: str,
         max_samples: int, threads: int, started: float) -> OptimizeResult:
    with steps.step("Loading the model"):
        source = bring_model(model, work, example_input=example_input)
    if source.format == "tflite":
        if prune is not None or sparsity is not None:
            raise UsageError(f"--prune and --sparsity work on ONNX and PyTorch models; {source.file_name} is a TFLite "
                             "model: give the model it was converted from")
        reference, prepared, runtime = _tflite_reference(source, profile, work, threads)
    else:
        with steps.step("Checking and simplifying the ONNX graph"):
            onnx_prepared = PASSES["onnx-prepare"](  # the opset limit is onnxruntime's: TFLite never runs this file
                source.path, work / "model.fp32.onnx", input_shapes=input_shapes or {},
                max_opset=profile.opset_max if profile.runtime == "onnxruntime" else None)
        reference = onnx_prepared.dst
        prepared = {"seconds": round(onnx_prepared.seconds, 3), **onnx_prepared.details}
        runtime = create_runtime("onnxruntime", reference, threads=threads)
    if len(runtime.inputs) != 1:
        raise UsageError(f"the model has {len(runtime.inputs)} inputs; "
                         "optimize takes models with one image or tensor input")
    task_spec = resolve_task(task, decoder, labels, runtime.outputs, anchors)
    input_shape = _reference_layout(runtime.inputs[0].shape) if source.format == "tflite" else runtime.inputs[0].shape
    spec = resolve_preprocess(preprocess, input_shape, task=task_spec.kind)
    if calib is None:
        raise UsageError("--calib is required: a folder of images, a video file or a .npy of inputs, "
                         "to calibrate and validate on")
    with steps.step(f"Reading calibration data from {calib}") as advance:
        data = load_calibration(calib, preprocess=spec, input_shape=input_shape, max_samples=max_samples,
                                progress=advance)
    calibration, validation = data.split()
    with steps.step(f"Running the reference on {len(validation)} held-out samples"):
        reference_outputs = run_all(reference, [validation], threads=threads)
    ws = Workspace(work, reference, [runtime.inputs[0].name], [calibration], [validation], reference_outputs,
                   task_spec, max_drop, steps, threads)
    asked: Sequence[str] = [precision]
    if precision == "auto":
        asked = profile.precisions
    wanted: list[str] = ["fp32", *[p for p in asked if p != "fp32"]]  # fp32: the reference every speedup is against
    if prune is None and sparsity is None:
        candidates = _candidates(ws, profile, wanted, source.format)
    elif precision == "auto" and sparsity is None:  # pruned or not, whatever is fastest within the budget
        candidates = [*_candidates(ws, profile, wanted, source.format),
                      *_derived_candidates(ws, profile, wanted, prune, finetune, sparsity)]
    else:  # what was asked for (sparsity is for size: it never wins on speed); the original fp32 is the speed reference
        candidates = [*_candidates(ws, profile, ["fp32"], source.format),
                      *_derived_candidates(ws, profile, wanted, prune, finetune, sparsity)]
    _require_passing(candidates, precision, max_drop)
    finalists = _finalists(candidates, max_drop, precision)
    # Every candidate is timed, in one interleaved run, so the report shows what each try
    # costs; only the finalists can win.
    with steps.step(f"Timing {len(candidates)} candidate(s) side by side") as advance:
        latencies = compare_latency({c.name: c.path for c in candidates}, [validation[:1]], threads=threads,
                                    progress=advance)
    for c in candidates:
        c.latency = latencies[c.name]
    reference_ms = latencies["fp32"].p50_ms
    winner, reason = _choose(finalists, candidates, max_drop, precision)
    winner_runtime = create_runtime(runtime_for_file(winner.path), winner.path, threads=threads)
    # the golden input in the model's layout (float: the agent quantizes it as it does frames) and the
    # model's raw outputs on it, which the device's self test must reproduce
    golden_input = in_layout(winner_runtime.inputs[0], calibration[:1])
    winner_outputs = winner_runtime.run(adapt_feeds(winner_runtime.inputs, [calibration[:1]]))
    model_format = winner.path.suffix.lstrip(".")
    bundle_spec = (spec if spec is None or profile.runtime == "onnxruntime"
                   else spec.model_copy(update={"layout": "NHWC"}))
    task_spec = winner.task or task_spec  # a detector cut at its heads decodes its own way
    report = _report(profile, source, prepared, spec, task_spec, data, calibration, validation, candidates, winner,
                     reason, reference_ms, max_drop, started)
    manifest_fields: dict[str, Any] = {
        "schema": "edgekit.bundle/1",
        "name": name or source.name,
        "version": version,
        "precision": winner.precision,
        "model": {"file": f"model.{winner.precision}.{model_format}", "format": model_format, "sha256": ""},
        "target": {"name": profile.name, "runtime": profile.runtime, "providers": profile.providers,
                   "threads": profile.threads},
        "inputs": [s.model_dump()
                   for s in tensor_specs(winner_runtime.inputs, bundle_spec.layout if bundle_spec else None)],
        "outputs": [s.model_dump() for s in tensor_specs(winner_runtime.outputs)],
        "preprocess": bundle_spec.model_dump() if bundle_spec else None,
        "task": task_spec.model_dump(),
        "source": {"file": source.file_name, "sha256": source.sha256, "format": source.format},
        "validation": winner.agreement.to_validation_info(max_drop=max_drop).model_dump(),
        # the cost travels with the bundle: a device without the onnx package cannot count it
        "performance": {"machine": report["machine"], "latency_ms": report["latency_ms"],
                        "cost": _cost(winner.path)},
        # statistics of what the device will see: the shipped model's own outputs
        "baseline": _baseline(calibration, run_all(winner.path, [calibration[:32]], threads=threads)),
    }
    manifest = write_bundle(out, staging=staging, model_file=winner.path, model_name=manifest_fields["model"]["file"],
                            manifest_fields=manifest_fields, report=report,
                            golden={"input": golden_input, **{f"output_{i}": o for i, o in enumerate(winner_outputs)}})
    return OptimizeResult(out, manifest, winner.name, report)


def _tflite_reference(source: Any, profile: TargetProfile, work: Path,
                      threads: int) -> tuple[Path, dict[str, Any], Any]:
    """A float TFLite model given by the user: the reference itself (nothing to prepare)."""
    if profile.runtime != "tflite":
        raise UsageError(f"{source.file_name} is a TFLite model and target {profile.name!r} runs {profile.runtime}; "
                         "there is no route from TFLite to ONNX: choose a TFLite target (rpi4, rpi5, android-arm64, "
                         "camera-npu-int8) or give the ONNX or PyTorch model")
    reference = work / "model.fp32.tflite"
    shutil.copyfile(source.path, reference)
    runtime = create_runtime("tflite", reference, threads=threads)
    quantized = [t.name for t in (*runtime.inputs, *runtime.outputs) if t.quantization is not None]
    if quantized:
        raise UsageError(f"{source.file_name} is already quantized ({', '.join(quantized)} are integer tensors); "
                         "give the float TFLite model, which is the reference the candidates are validated against")
    return reference, {"skipped": "a TFLite model is used as it is"}, runtime


def _reference_layout(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A TFLite image input ``[1, H, W, C]`` seen as the ``[1, C, H, W]`` the calibration data and
    every comparison use (each model gets its own layout when it is fed)."""
    if len(shape) == 4 and shape[3] in (1, 3, 4) and shape[1] not in (1, 3, 4):
        return (shape[0], shape[3], shape[1], shape[2])
    return tuple(shape)


def _tflite_candidates(ws: Workspace, profile: TargetProfile, precisions: list[str],
                       source_format: str) -> list[Candidate]:
    """fp32 (the speed reference) and the asked precisions in LiteRT; on an int8-I/O target (an NPU)
    fp32 cannot ship and every INT8 operator must be integer."""
    int8_only = profile.int8_io_required
    if source_format == "tflite":
        candidates = build_fp32(ws, note="the TFLite model as given")
    else:
        full = TfliteSource(torch_program(ws), ws.reference)
        candidates = build_tflite(ws, full, "fp32")
    fp32 = candidates[0].path
    if "fp16" in precisions:
        candidates.extend(build_quantized(ws, fp32, "fp16", int8_only=int8_only))
    if "int8" in precisions:
        if source_format == "tflite":
            candidates.extend(build_quantized(ws, fp32, "int8", int8_only=int8_only))
        else:  # from the torch program: PT2E static INT8 agrees better than quantizing the TFLite file
            source = int8_source(ws, full)
            int8 = build_tflite(ws, source, "int8", int8_only=int8_only)
            candidates.extend(int8)
            if not int8_only and not int8[0].passed(ws.max_drop):
                candidates.extend(build_tflite_mixed(ws, source, int8[0]))
        if not int8_only:
            candidates.extend(build_quantized(ws, fp32, "int8-dynamic"))
    if int8_only:
        for c in candidates:
            if c.precision == "fp32":
                c.blocker = f"target {profile.name!r} runs integer models only (int8 input and output)"
    return candidates


def _candidates(ws: Workspace, profile: TargetProfile, wanted: list[str], source_format: str) -> list[Candidate]:
    if profile.runtime == "tflite":
        return _tflite_candidates(ws, profile, [p for p in wanted if p in TFLITE_PRECISIONS], source_format)
    return [c for key in wanted for c in BUILDERS[key](ws)]


def _derived_candidates(ws: Workspace, profile: TargetProfile, wanted: list[str], prune: float | None,
                        finetune: FineTune | None, sparsity: float | None) -> list[Candidate]:
    """The same candidates again from a model derived from the reference: ``prune`` of its MACs
    pruned (``onnx-prune``) and fine-tuned with the user's data and loss when given, then
    ``sparsity`` of its weights zeroed (``onnx-sparsity``). Each is validated against the
    *original*, so the search weighs the change against everything else."""
    reports: list[PassReport] = []
    notes, suffix = [], ""
    if prune is not None:
        calibration = np.asarray(ws.calibration[0], dtype=np.float32)
        with ws.steps.step(f"Pruning {prune:.0%} of the MACs (damage of each channel group, least-squares recovery)",
                           total=1) as advance:
            reports.append(PASSES["onnx-prune"](ws.reference, ws.work_dir / "model.pruned.onnx", ratio=prune,
                                                calibration=calibration, progress=advance))
        # the pruning fits what its calibration samples show: say how many, so a reader can weigh it
        notes.append(f"pruned: {reports[-1].details['macs_removed']:.0%} of MACs removed, "
                     f"fitted to {reports[-1].details['samples']} calibration samples")
        suffix += "-pruned"
        if finetune is not None:
            with ws.steps.step(f"Fine-tuning the pruned model ({finetune.epochs} epochs, your data and loss)",
                               total=finetune.epochs) as advance:
                reports.append(finetune_onnx(reports[-1].dst, ws.work_dir / "model.finetuned.onnx", finetune,
                                             progress=advance))
    if sparsity is not None:
        source = reports[-1].dst if reports else ws.reference
        with ws.steps.step(f"Zeroing {sparsity:.0%} of the weights (NNCF magnitude sparsity)"):
            reports.append(PASSES["onnx-sparsity"](source, ws.work_dir / "model.sparse.onnx", ratio=sparsity))
        d = reports[-1].details
        notes.append(f"{d['weights_zero']:.0%} of weights zero: {d['deflated_before'] / 1e6:.1f} -> "
                     f"{d['deflated_after'] / 1e6:.1f} MB compressed (download size only, no speedup)")
        suffix += "-sparse"
    work_dir = ws.work_dir / suffix.strip("-")
    work_dir.mkdir(exist_ok=True)
    derived = dataclasses.replace(ws, reference=reports[-1].dst, work_dir=work_dir, pruning=reports[0], _check=None)
    candidates = _candidates(derived, profile, wanted, "onnx")
    for c in candidates:
        c.name, c.passes = f"{c.name}{suffix}", [*reports, *c.passes]
        c.note = "; ".join([*notes, *([c.note] if c.note and c.note != "derived" else [])])
    return candidates


def _cost(model: Path) -> dict[str, Any] | None:
    try:
        return model_cost(model).to_json()
    except CostError:  # an op without a MAC formula after an unknown shape: the bundle simply carries no count
        return None


def _finalists(candidates: list[Candidate], max_drop: float, precision: str) -> list[Candidate]:
    """The candidates that may win: every one within budget (fp32, the reference, always is),
    narrowed to the asked precision's family when one was asked for."""
    passing = [c for c in candidates if c.passed(max_drop)]
    if precision == "auto":
        return passing
    return [c for c in passing if c.name == "fp32" or c.precision.split("-")[0] == precision]


def _require_passing(tried: list[Candidate], precision: str, max_drop: float) -> None:
    """Fail before timing anything when no candidate (of the asked precision) can ship."""
    if precision == "auto":
        if not any(c.passed(max_drop) for c in tried):
            why = "; ".join(f"{c.name}: {c.blocker or f'drop {c.agreement.drop:.2f}'}" for c in tried)
            raise OptimizeFailed(f"no candidate can ship within the budget of {max_drop} points: {why}",
                                 candidates=[c.summary(max_drop, None) for c in tried])
        return
    family = [c for c in tried if c.precision.split("-")[0] == precision]
    if any(c.passed(max_drop) for c in family):
        return
    blocked = [f"{c.name}: {c.blocker}" for c in family if c.blocker]
    if blocked:
        raise OptimizeFailed(f"no {precision} candidate can ship: {'; '.join(blocked)}",
                             candidates=[c.summary(max_drop, None) for c in tried])
    best = max(family, key=lambda c: c.agreement.optimized)
    raise OptimizeFailed(
        f"no {precision} candidate met the accuracy budget of {max_drop} points: the best, {best.name}, has "
        f"{best.agreement.metric} {best.agreement.optimized:.2f} vs {best.agreement.reference:.2f} "
        f"(drop {best.agreement.drop:.2f}); tried {', '.join(c.name for c in family)}. "
        "Raise --max-drop, give more representative --calib data, or use --precision auto",
        candidates=[c.summary(max_drop, None) for c in tried],
    )


def _choose(finalists: list[Candidate], tried: list[Candidate], max_drop: float,
            precision: str) -> tuple[Candidate, str]:
    reference = next(c for c in tried if c.name == "fp32")
    assert reference.latency is not None
    if precision != "auto":
        family = [c for c in finalists if c.precision.split("-")[0] == precision]
        pick = min(family, key=lambda c: c.latency.p50_ms if c.latency else float("inf"))
        speed = reference.latency.p50_ms / pick.latency.p50_ms if pick.latency else float("nan")
        slower = " (slower than fp32 on this machine; --precision auto would keep fp32)" if speed < 1 else ""
        return pick, f"{pick.name} was asked for and met the budget; {speed:.2f}x vs fp32{slower}"
    passing = [c for c in finalists if c.passed(max_drop) and c.latency is not None]
    best = min(passing, key=lambda c: c.latency.p50_ms if c.latency else float("inf"))
    failed = [c.name for c in tried if not c.passed(max_drop)]
    missed = f"; missed the budget: {', '.join(failed)}" if failed else ""
    if best.name == "fp32":
        others = [f"{c.name} {reference.latency.p50_ms / c.latency.p50_ms:.2f}x"
                  for c in passing if c is not best and c.latency]
        why = f"no candidate within budget ran faster than fp32 ({', '.join(others) or 'none passed'})"
        return best, why + missed
    assert best.latency is not None
    speedup = reference.latency.p50_ms / best.latency.p50_ms
    return best, (f"fastest candidate within the {max_drop}-point budget: {speedup:.2f}x "
                  f"faster than fp32, {best.agreement.metric} drop {best.agreement.drop:.2f}{missed}")


def _baseline(calibration: np.ndarray, outputs: list[list[np.ndarray]]) -> dict[str, TensorStats]:
    def stats(x: np.ndarray) -> TensorStats:
        return TensorStats(mean=float(x.mean()), std=float(x.std()), min=float(x.min()), max=float(x.max()))

    base = {"input": stats(calibration)}
    for i in range(len(outputs[0])):
        base[f"output_{i}"] = stats(np.concatenate([o[i] for o in outputs]))
    return base


def _report(profile: TargetProfile, source: Any, prepared: Any, spec: PreprocessSpec | None, task: Any, data: Any,
            calibration: np.ndarray, validation: np.ndarray, candidates: list[Candidate], winner: Candidate,
            reason: str, reference_ms: float, max_drop: float, started: float) -> dict[str, Any]:
    import platform

    assert winner.latency is not None
    return {
        "source": {"file": source.file_name, "format": source.format, "sha256": source.sha256,
                   "export": source.details},
        "target": profile.model_dump(),
        "prepare": prepared,
        "preprocess": spec.model_dump() if spec else None,
        "task": task.model_dump(),
        "data": {"source": data.source, "kind": data.kind, "samples": len(data.inputs), "calibration": len(calibration),
                 "validation": len(validation), "skipped": list(data.skipped)},
        "candidates": [c.summary(max_drop, reference_ms) for c in candidates],
        "winner": winner.name,
        "reason": reason,
        "latency_ms": {"reference": reference_ms, "optimized": winner.latency.p50_ms},
        "validation": {**winner.agreement.to_validation_info(max_drop=max_drop).model_dump()},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
        "seconds": round(time.perf_counter() - started, 2),
    }
