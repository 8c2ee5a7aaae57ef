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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from converters import PASSES
from converters.base import PassReport
from converters.errors import ConversionError
from device_agent.bench.cost import model_cost
from device_agent.bundle.manifest import PreprocessSpec, TaskSpec, TensorStats
from device_agent.drift.baseline import DRIFT_FILE
from device_agent.errors import AgentError, CostError
from device_agent.runtimes import create_runtime, runtime_for_file
from edgekit.errors import EdgeKitError, ModelInputError, UsageError
from edgekit.optimize.bundle_writer import scratch_dir, write_bundle
from edgekit.optimize.calibration import CalibrationSet, load_calibration
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
from edgekit.optimize.drift_baseline import drift_baseline
from edgekit.optimize.finetune import FineTune, finetune_onnx
from edgekit.optimize.measure import compare_latency, run_all
from edgekit.optimize.model_io import adapt_feeds, in_layout
from edgekit.optimize.model_source import SourceModel, bring_model
from edgekit.optimize.modelspec import resolve_preprocess, resolve_task, tensor_specs
from edgekit.optimize.options import OptimizeOptions, PrecisionChoice
from edgekit.optimize.report import OptimizeReport, OptimizeResult, build_report
from edgekit.optimize.selection import choose, finalists, require_passing
from edgekit.progress import Steps
from edgekit.targets import TargetProfile

__all__ = ["OptimizeOptions", "OptimizeResult", "PrecisionChoice", "optimize"]


@dataclass(frozen=True)
class _Run:
    """What every step of one run shares."""

    options: OptimizeOptions
    profile: TargetProfile
    work: Path
    steps: Steps
    threads: int
    started: float


@dataclass(frozen=True)
class _Reference:
    """The float reference every candidate is validated and timed against."""

    source: SourceModel
    path: Path
    prepared: dict[str, Any]
    runtime: Any  # its runtime: the inputs and outputs the model has


@dataclass(frozen=True)
class _Data:
    """The task, the preprocessing, and the samples to calibrate and validate on."""

    task: TaskSpec
    spec: PreprocessSpec | None
    loaded: CalibrationSet
    calibration: np.ndarray
    validation: np.ndarray


def optimize(model: str | Path | Any, options: OptimizeOptions | None = None, **keywords: Any) -> OptimizeResult:
    """Optimize ``model`` (an ONNX or float TFLite path, or a ``torch.nn.Module`` with ``example_input``).

    ``options`` is an :class:`OptimizeOptions`, or give its fields as keywords (``target=``,
    ``output=``, ``calib=``, ...; the advanced ones, e.g. ``threads=``, too). Every option is
    checked before the model is loaded: :class:`~edgekit.optimize.options.OptionsError` (a
    :class:`UsageError`) names each bad one. Raises :class:`OptimizeFailed` when no candidate
    meets ``max_drop`` (percentage points). Nothing is left at ``output`` unless a complete,
    verified bundle was written.
    """
    started = time.perf_counter()
    if options is None:
        options = OptimizeOptions.from_keywords(**keywords)
    elif keywords:
        raise TypeError(f"optimize() takes options or keywords, not both; got options and {', '.join(keywords)}")
    profile = options.check()
    work = scratch_dir(options.output)
    (work / "bundle").mkdir()
    threads = profile.threads if options.advanced.threads is None else options.advanced.threads
    try:
        with Steps(enabled=options.progress) as steps:
            return _run(model, _Run(options, profile, work, steps, threads, started))
    except ConversionError as exc:
        raise ModelInputError(str(exc)) from exc
    except AgentError as exc:
        raise EdgeKitError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(model: Any, run: _Run) -> OptimizeResult:
    options, profile, steps, threads = run.options, run.profile, run.steps, run.threads
    ref = _load_reference(model, run)
    data = _read_data(ref, run)
    with steps.step(f"Running the reference on {len(data.validation)} held-out samples"):
        reference_outputs = run_all(ref.path, [data.validation], threads=threads)
    ws = Workspace(run.work, ref.path, [ref.runtime.inputs[0].name], [data.calibration], [data.validation],
                   reference_outputs, data.task, options.max_drop, steps, threads)
    candidates = _search(ws, run, ref.source.format)
    require_passing(candidates, options.precision, options.max_drop)
    chosen = finalists(candidates, options.max_drop, options.precision)
    # Every candidate is timed, in one interleaved run, so the report shows what each try
    # costs; only the finalists can win.
    with steps.step(f"Timing {len(candidates)} candidate(s) side by side") as advance:
        measured = compare_latency({c.name: c.path for c in candidates}, [data.validation[:1]], threads=threads,
                                   reference="fp32", progress=advance)
    for c in candidates:
        c.latency = measured.latency[c.name]
    winner, reason = choose(chosen, candidates, options.max_drop, options.precision, measured.timing)
    task_spec = winner.task or data.task  # a detector cut at its heads decodes its own way
    report = build_report(profile, ref.source, ref.prepared, data.spec, task_spec, data.loaded,
                          (len(data.calibration), len(data.validation)), candidates, (winner, reason),
                          measured.timing, options.max_drop, run.started)
    return _write(run, ref, data, winner, report)


def _load_reference(model: Any, run: _Run) -> _Reference:
    """The user's model brought in and prepared as the float reference (a TFLite model as it is)."""
    profile, work, steps, threads = run.profile, run.work, run.steps, run.threads
    prune, sparsity, input_shapes = run.options.prune, run.options.sparsity, run.options.advanced.input_shapes
    with steps.step("Loading the model"):
        source = bring_model(model, work, example_input=run.options.example_input)
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
    return _Reference(source, reference, prepared, runtime)


def _read_data(ref: _Reference, run: _Run) -> _Data:
    """The task and preprocessing (given or guessed from the model), and the calibration data read through them."""
    options = run.options
    task_spec = resolve_task(options.task, options.advanced.decoder, options.labels, ref.runtime.outputs,
                             options.advanced.anchors)
    shape = ref.runtime.inputs[0].shape
    input_shape = _reference_layout(shape) if ref.source.format == "tflite" else shape
    spec = resolve_preprocess(options.preprocess, input_shape, task=task_spec.kind)
    calib = options.calib
    assert calib is not None  # OptimizeOptions.check requires it
    with run.steps.step(f"Reading calibration data from {calib}") as advance:
        data = load_calibration(calib, preprocess=spec, input_shape=input_shape,
                                max_samples=options.advanced.max_samples, progress=advance)
    calibration, validation = data.split()
    return _Data(task_spec, spec, data, calibration, validation)


def _search(ws: Workspace, run: _Run, source_format: str) -> list[Candidate]:
    """Every candidate to try: the asked precisions (all the target's under ``auto``), with fp32 the
    reference every speedup is against, and those of the pruned or sparse model when asked for."""
    precision, profile = run.options.precision, run.profile
    prune, finetune, sparsity = run.options.prune, run.options.advanced.finetune, run.options.sparsity
    asked: Sequence[str] = profile.precisions if precision == "auto" else [precision]
    wanted: list[str] = ["fp32", *[p for p in asked if p != "fp32"]]
    if prune is None and sparsity is None:
        return _candidates(ws, profile, wanted, source_format)
    if precision == "auto" and sparsity is None:  # pruned or not, whatever is fastest within the budget
        return [*_candidates(ws, profile, wanted, source_format),
                *_derived_candidates(ws, profile, wanted, prune, finetune, sparsity)]
    # what was asked for (sparsity is for size: it never wins on speed); the original fp32 is the speed reference
    return [*_candidates(ws, profile, ["fp32"], source_format),
            *_derived_candidates(ws, profile, wanted, prune, finetune, sparsity)]


def _write(run: _Run, ref: _Reference, data: _Data, winner: Candidate, report: OptimizeReport) -> OptimizeResult:
    """The winner's bundle, written all or nothing, and the result that describes it."""
    profile, source, threads = run.profile, ref.source, run.threads
    winner_runtime = create_runtime(runtime_for_file(winner.path), winner.path, threads=threads)
    # the golden input in the model's layout (float: the agent quantizes it as it does frames) and the
    # model's raw outputs on it, which the device's self test must reproduce
    golden_input = in_layout(winner_runtime.inputs[0], data.calibration[:1])
    winner_outputs = winner_runtime.run(adapt_feeds(winner_runtime.inputs, [data.calibration[:1]]))
    model_format = winner.path.suffix.lstrip(".")
    bundle_spec = (data.spec if data.spec is None or profile.runtime == "onnxruntime"
                   else data.spec.model_copy(update={"layout": "NHWC"}))
    manifest_fields: dict[str, Any] = {
        "schema": "edgekit.bundle/1",
        "name": run.options.name or source.name,
        "version": run.options.advanced.version,
        "precision": winner.precision,
        # only where it says more than the precision: agents that predate the key refuse it (strict manifest),
        # so every bundle but a mixed-precision one stays readable by them
        "candidate": winner.name if winner.name != winner.precision else None,
        "model": {"file": f"model.{winner.precision}.{model_format}", "format": model_format, "sha256": ""},
        "target": {"name": profile.name, "runtime": profile.runtime, "providers": profile.providers,
                   "threads": profile.threads},
        "inputs": [s.model_dump()
                   for s in tensor_specs(winner_runtime.inputs, bundle_spec.layout if bundle_spec else None)],
        "outputs": [s.model_dump() for s in tensor_specs(winner_runtime.outputs)],
        "preprocess": bundle_spec.model_dump() if bundle_spec else None,
        "task": report.task.model_dump(),
        "source": {"file": source.file_name, "sha256": source.sha256, "format": source.format},
        "validation": report.validation.model_dump(),
        # the cost travels with the bundle: a device without the onnx package cannot count it
        "performance": {"machine": report.machine.model_dump(), "latency_ms": report.latency_ms.model_dump(),
                        "cost": _cost(winner.path), "timing": report.timing.model_dump(),
                        "warnings": list(report.warnings)},
        # statistics of what the device will see: the shipped model's own outputs
        "baseline": _baseline(data.calibration, run_all(winner.path, [data.calibration[:32]], threads=threads)),
    }
    out = run.options.output
    drift = drift_baseline(data.loaded.inputs, spec=data.spec, task=report.task, model=winner.path, threads=threads)
    manifest = write_bundle(out, staging=run.work / "bundle", model_file=winner.path,
                            model_name=manifest_fields["model"]["file"], manifest_fields=manifest_fields,
                            report=report.to_json(),
                            golden={"input": golden_input, **{f"output_{i}": o for i, o in enumerate(winner_outputs)}},
                            extra_files={DRIFT_FILE: drift.to_json()} if drift else None)
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


def _baseline(calibration: np.ndarray, outputs: list[list[np.ndarray]]) -> dict[str, TensorStats]:
    def stats(x: np.ndarray) -> TensorStats:
        return TensorStats(mean=float(x.mean()), std=float(x.std()), min=float(x.min()), max=float(x.max()))

    base = {"input": stats(calibration)}
    for i in range(len(outputs[0])):
        base[f"output_{i}"] = stats(np.concatenate([o[i] for o in outputs]))
    return base
