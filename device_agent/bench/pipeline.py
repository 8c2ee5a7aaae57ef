"""Where a frame's time goes: the agent's stages timed one by one on a real video or camera.

Stages, each the agent's own code:

- ``capture``: the source backend's ``read()`` (decode a video frame, or wait for a camera);
- ``preprocess``: resize/letterbox, normalize, layout, int8 quantization of the input;
- ``infer``: ``Runtime.run``;
- ``postprocess``: dequantize the outputs and decode them (top-k, boxes and NMS);
- ``publish``: what the agent does with a result on the frame's thread: build the result
  message (the protocol model) and queue it to the group committer
  (:class:`~device_agent.transport.committer.Committer`, the agent's own, on its own thread).
  The committer's work (dump to JSON, one SQLite transaction with full sync per batch) is off
  the frame's path and reported apart as ``commit_thread``: messages, batches, and its busy
  time per frame and per batch. The MQTT send runs on yet another thread and is not timed.

The stages run one after the other in one thread, so ``e2e_fps`` is the rate of a single
frame at a time. The agent overlaps capture and preprocessing with inference in the
source's thread, so its real rate sits between this and ``1000 / infer p50``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from device_agent.bench.stats import LatencyStats
from device_agent.errors import BenchInputError, BundleError, SourceError

if TYPE_CHECKING:
    from device_agent.bundle.manifest import Manifest
    from device_agent.bundle.verify import Bundle
    from device_agent.protocol.results import ModelRef
    from device_agent.runtimes import Runtime
    from device_agent.sources.registry import SourceBackend
    from device_agent.transport.committer import Committer

STAGES = ("capture", "preprocess", "infer", "postprocess", "publish")
WARMUP_FRAMES = 5


@dataclass
class _CommitTotals:
    """The committer thread's counters at one moment (:class:`~device_agent.transport.committer.Committer`)."""

    messages: int = 0
    batches: int = 0
    busy_ns: int = 0

    @classmethod
    def of(cls, committer: Committer) -> _CommitTotals:
        return cls(committer.committed, committer.batches, committer.busy_ns)


@dataclass
class _Frames:
    """What the timed frames gave: per-stage and end-to-end times (ns), and the last frame's size."""

    times: dict[str, list[int]] = field(default_factory=lambda: {stage: [] for stage in STAGES})
    e2e: list[int] = field(default_factory=list)
    reopened: int = 0
    wall_s: float = 0.0
    size_wh: tuple[int, int] = (0, 0)
    commit: _CommitTotals = field(default_factory=_CommitTotals)


def benchmark_pipeline(
    bundle_path: Path | str,
    source: str,
    *,
    frames: int = 300,
    threads: int | None = None,
    on_frame: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run ``frames`` frames of ``source`` (looped if it ends) through every stage; per-stage stats."""
    from device_agent.runtimes import create_runtime
    from device_agent.sources import open_source

    if frames < 1:
        raise BenchInputError(f"--frames must be at least 1, got {frames}")
    bundle = _load(bundle_path)
    m = bundle.manifest
    runtime = create_runtime(m.target.runtime, bundle.model_path,
                             threads=m.target.threads if threads is None else threads, providers=m.target.providers)
    try:
        backend = open_source(source)
        backend.open()
    except SourceError as exc:
        raise BenchInputError(f"cannot open the source {source!r}: {exc}") from exc
    try:
        timed = _time_frames(m, runtime, backend, source, frames, on_frame)
    finally:
        backend.close()
    return _summary(bundle, source, frames, timed)


def _load(bundle_path: Path | str) -> Bundle:
    from device_agent.bundle.verify import load_bundle

    try:
        bundle = load_bundle(bundle_path)
    except BundleError as exc:
        raise BenchInputError(f"pipeline mode needs a bundle; {str(bundle_path)!r}: {exc}") from exc
    if bundle.manifest.preprocess is None:
        raise BenchInputError(f"bundle {str(bundle_path)!r} declares no image preprocessing; "
                              "pipeline mode runs camera frames")
    return bundle


def _read(backend: SourceBackend, source: str, timed: _Frames) -> np.ndarray:
    image = backend.read()
    if image is None:  # a file ended: reopen (the agent's loop = true); a camera that stops is an error
        backend.close()
        backend.open()
        timed.reopened += 1
        image = backend.read()
        if image is None:
            raise BenchInputError(f"source {source!r} gives no frames")
    return image


def _publish(committer: Committer, model: ModelRef, source: str, index: int, image: np.ndarray, result: Any,
             latency_ns: tuple[int, ...]) -> None:
    """What the agent does with a result on the frame's thread: build the message, queue it to the committer."""
    from device_agent.protocol.results import Decoded, FrameRef, Result

    h, w = image.shape[:2]
    committer.put("edgekit/v1/bench/results", Result(
        frame=FrameRef(id=index, source=source, ts=time.time(), size_wh=[int(w), int(h)]), model=model,
        result=Decoded.model_validate(result.to_json()),
        latency_ms={stage: round(ns / 1e6, 3) for stage, ns in zip(STAGES, latency_ns)}))


def _time_frames(m: Manifest, runtime: Runtime, backend: SourceBackend, source: str, frames: int,
                 on_frame: Callable[[int, int], None] | None) -> _Frames:
    from device_agent.pipeline.decoders import decode
    from device_agent.pipeline.preprocess import dequantize, preprocess, quantize
    from device_agent.protocol.results import ModelRef
    from device_agent.transport.committer import Committer
    from device_agent.transport.outbox import Outbox

    assert m.preprocess is not None  # _load checked it
    timed, model = _Frames(), ModelRef(name=m.name, version=m.version, precision=m.precision)
    with tempfile.TemporaryDirectory(prefix="edgekit-pipeline-") as tmp:
        outbox = Outbox(Path(tmp) / "outbox.db", device_id="bench")
        committer = Committer(outbox, on_commit=lambda: None).start()
        try:
            start_ns, before = time.perf_counter_ns(), _CommitTotals()
            for index in range(frames + WARMUP_FRAMES):
                if index == WARMUP_FRAMES:
                    start_ns, before = time.perf_counter_ns(), _CommitTotals.of(committer)
                t0 = time.perf_counter_ns()
                image = _read(backend, source, timed)
                t1 = time.perf_counter_ns()
                tensor, transform = preprocess(image, m.preprocess)
                tensor = quantize(tensor, m.inputs[0])
                t2 = time.perf_counter_ns()
                outputs = runtime.run([tensor])
                t3 = time.perf_counter_ns()
                result = decode(dequantize(outputs, m.outputs), m.task, transform)
                t4 = time.perf_counter_ns()
                _publish(committer, model, source, index, image, result, (t1 - t0, t2 - t1, t3 - t2, t4 - t3))
                t5 = time.perf_counter_ns()
                timed.size_wh = (int(image.shape[1]), int(image.shape[0]))
                if index >= WARMUP_FRAMES:
                    for stage, (a, b) in zip(STAGES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5))):
                        timed.times[stage].append(b - a)
                    timed.e2e.append(t5 - t0)
                    if on_frame is not None:
                        on_frame(index - WARMUP_FRAMES + 1, frames)
            timed.wall_s = (time.perf_counter_ns() - start_ns) / 1e9
        finally:
            committer.close()  # commits what is still queued: its time counts too
            outbox.close()
        after = _CommitTotals.of(committer)
    timed.commit = _CommitTotals(after.messages - before.messages, after.batches - before.batches,
                                 after.busy_ns - before.busy_ns)
    return timed


def _commit_json(commit: _CommitTotals) -> dict[str, Any]:
    return {"messages": commit.messages, "batches": commit.batches,
            "frames_per_batch": round(commit.messages / commit.batches, 2) if commit.batches else None,
            "ms_per_frame": round(commit.busy_ns / commit.messages / 1e6, 4) if commit.messages else None,
            "ms_per_batch": round(commit.busy_ns / commit.batches / 1e6, 4) if commit.batches else None}


def _summary(bundle: Bundle, source: str, frames: int, timed: _Frames) -> dict[str, Any]:
    m = bundle.manifest
    stages = {stage: LatencyStats.from_ns(ns).to_json() for stage, ns in timed.times.items()}
    total_p50 = sum(s["p50"] for s in stages.values()) or 1.0
    for s in stages.values():
        s["share_pct"] = round(100.0 * float(s["p50"]) / total_p50, 1)
    return {
        "bundle": str(bundle.root),
        "name": m.label,
        "source": source,
        "frames": frames,
        "frame_size_wh": list(timed.size_wh),
        "reopened": timed.reopened,
        "stages_ms": stages,
        "e2e_ms": LatencyStats.from_ns(timed.e2e).to_json(),
        "e2e_fps": round(frames / timed.wall_s, 2) if timed.wall_s > 0 else None,
        "infer_only_fps": round(1000.0 / float(stages["infer"]["p50"]), 2),
        "commit_thread": _commit_json(timed.commit),
        "runtime": m.target.runtime,
    }
