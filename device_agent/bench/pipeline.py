"""Where a frame's time goes: the agent's stages timed one by one on a real video or camera.

Stages, each the agent's own code:

- ``capture``: the source backend's ``read()`` (decode a video frame, or wait for a camera);
- ``preprocess``: resize/letterbox, normalize, layout, int8 quantization of the input;
- ``infer``: ``Runtime.run``;
- ``postprocess``: dequantize the outputs and decode them (top-k, boxes and NMS);
- ``publish``: build the result message and commit it to a durable outbox (SQLite, full
  sync), which is what the agent does before MQTT sees a result; the MQTT send itself runs
  on another thread and is not on the frame's path.

The stages run one after the other in one thread, so ``e2e_fps`` is the rate of a single
frame at a time. The agent overlaps capture and preprocessing with inference in the
source's thread, so its real rate sits between this and ``1000 / infer p50``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device_agent.bench.stats import LatencyStats
from device_agent.errors import BenchInputError, BundleError, SourceError

STAGES = ("capture", "preprocess", "infer", "postprocess", "publish")
WARMUP_FRAMES = 5


def benchmark_pipeline(
    bundle_path: Path | str,
    source: str,
    *,
    frames: int = 300,
    threads: int | None = None,
    on_frame: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run ``frames`` frames of ``source`` (looped if it ends) through every stage; per-stage stats."""
    from device_agent.bundle.verify import load_bundle
    from device_agent.pipeline.decoders import decode
    from device_agent.pipeline.preprocess import dequantize, preprocess, quantize
    from device_agent.runtimes import create_runtime
    from device_agent.sources import open_source
    from device_agent.transport.outbox import Outbox

    if frames < 1:
        raise BenchInputError(f"--frames must be at least 1, got {frames}")
    try:
        bundle = load_bundle(bundle_path)
    except BundleError as exc:
        raise BenchInputError(f"pipeline mode needs a bundle; {str(bundle_path)!r}: {exc}") from exc
    m = bundle.manifest
    if m.preprocess is None:
        raise BenchInputError(f"bundle {str(bundle_path)!r} declares no image preprocessing; "
                              "pipeline mode runs camera frames")
    runtime = create_runtime(m.target.runtime, bundle.model_path,
                             threads=m.target.threads if threads is None else threads, providers=m.target.providers)
    try:
        backend = open_source(source)
        backend.open()
    except SourceError as exc:
        raise BenchInputError(f"cannot open the source {source!r}: {exc}") from exc
    times: dict[str, list[int]] = {stage: [] for stage in STAGES}
    e2e: list[int] = []
    reopened = 0
    with tempfile.TemporaryDirectory(prefix="edgekit-pipeline-") as tmp:
        outbox = Outbox(Path(tmp) / "outbox.db", device_id="bench")
        try:
            start_ns = None
            for index in range(frames + WARMUP_FRAMES):
                if index == WARMUP_FRAMES:
                    start_ns = time.perf_counter_ns()
                t0 = time.perf_counter_ns()
                image = backend.read()
                if image is None:  # a file ended: reopen (the agent's loop = true); a camera that stops is an error
                    backend.close()
                    backend.open()
                    reopened += 1
                    image = backend.read()
                    if image is None:
                        raise BenchInputError(f"source {source!r} gives no frames")
                t1 = time.perf_counter_ns()
                tensor, transform = preprocess(image, m.preprocess)
                tensor = quantize(tensor, m.inputs[0])
                t2 = time.perf_counter_ns()
                outputs = runtime.run([tensor])
                t3 = time.perf_counter_ns()
                result = decode(dequantize(outputs, m.outputs), m.task, transform)
                t4 = time.perf_counter_ns()
                h, w = image.shape[:2]
                outbox.add("edgekit/v1/bench/results", {
                    "frame": {"id": index, "source": source, "ts": time.time(), "size_wh": [w, h]},
                    "model": {"name": m.name, "version": m.version, "precision": m.precision},
                    "result": result.to_json(),
                })
                t5 = time.perf_counter_ns()
                if index >= WARMUP_FRAMES:
                    for stage, (a, b) in zip(STAGES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5))):
                        times[stage].append(b - a)
                    e2e.append(t5 - t0)
                    if on_frame is not None:
                        on_frame(index - WARMUP_FRAMES + 1, frames)
            wall_s = (time.perf_counter_ns() - (start_ns or time.perf_counter_ns())) / 1e9
        finally:
            backend.close()
            outbox.close()
    assert image is not None  # frames >= 1, so the loop read at least one frame (a None read raises)
    stages = {stage: LatencyStats.from_ns(ns).to_json() for stage, ns in times.items()}
    total_p50 = sum(s["p50"] for s in stages.values()) or 1.0
    for s in stages.values():
        s["share_pct"] = round(100.0 * float(s["p50"]) / total_p50, 1)
    return {
        "bundle": str(bundle.root),
        "name": f"{m.name} {m.precision}",
        "source": source,
        "frames": frames,
        "frame_size_wh": [int(image.shape[1]), int(image.shape[0])],
        "reopened": reopened,
        "stages_ms": stages,
        "e2e_ms": LatencyStats.from_ns(e2e).to_json(),
        "e2e_fps": round(frames / wall_s, 2) if wall_s > 0 else None,
        "infer_only_fps": round(1000.0 / float(stages["infer"]["p50"]), 2),
        "runtime": m.target.runtime,
    }
