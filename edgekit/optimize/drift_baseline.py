"""The drift baseline a bundle ships (``drift.json``): the device's drift signals on the calibration data.

Measured with the device's own functions (:mod:`device_agent.drift`) on the loaded calibration
*and* validation samples (both are the data the model was optimized for), through the shipped
model: a device compares its frames with what *that* model said on this data. The reference
(float) model would be off by whatever quantization moved, e.g. INT8's flatter confidences,
which the device would then report as drift on its first frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device_agent.bundle.manifest import PreprocessSpec, TaskSpec
from device_agent.drift.baseline import DriftBaseline, build_baseline
from device_agent.drift.signals import INPUT_SIGNALS, input_signals, luma_of_tensor, output_signals
from device_agent.errors import DecodeError
from device_agent.pipeline.decoders import decode
from edgekit.optimize.measure import run_all

MAX_SAMPLES = 500
"""Enough for decile edges that hold still (50 samples per bin) without running the model for long."""


def drift_baseline(inputs: np.ndarray, *, spec: PreprocessSpec | None, task: TaskSpec, model: Path,
                   threads: int = 0) -> DriftBaseline | None:
    """The baseline of up to :data:`MAX_SAMPLES` inputs (evenly picked), or None when no signal applies.

    Input statistics need ``spec`` (inputs given as ready tensors have no pixels to measure);
    the output ones need a decoder that scores (not ``raw``).
    """
    picked = inputs[np.unique(np.linspace(0, len(inputs) - 1, min(len(inputs), MAX_SAMPLES)).round().astype(int))]
    values: dict[str, list[float]] = {name: [] for name in (*INPUT_SIGNALS, "top1_confidence", "detections")}
    if spec is not None:
        for sample in picked:
            for name, value in zip(INPUT_SIGNALS, input_signals(luma_of_tensor(sample, spec)), strict=True):
                values[name].append(value)
    classes: list[tuple[str, ...]] | None = None
    if task.decoder != "raw":
        classes = []
        for outputs in run_all(model, [picked], threads=threads):
            try:
                out = output_signals(decode(outputs, task))
            except DecodeError:
                return _or_none(values, None, len(picked))  # outputs the decoder cannot read: inputs only
            if out.top1_confidence is not None:
                values["top1_confidence"].append(out.top1_confidence)
            if out.detections is not None:
                values["detections"].append(float(out.detections))
            classes.append(out.classes)
    return _or_none(values, classes, len(picked))


def _or_none(values: dict[str, list[float]], classes: list[tuple[str, ...]] | None,
             frames: int) -> DriftBaseline | None:
    baseline = build_baseline(values, classes, frames=frames)
    return baseline if baseline.signals or baseline.classes else None
