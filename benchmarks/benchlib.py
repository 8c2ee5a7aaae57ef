"""What the benchmarks share: a zoo model prepared for timing, and its data loaded to fit it.

The scripts run as ``python benchmarks/NAME.py``, so this module is imported by its bare name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from converters import PASSES
from edgekit.content.zoo import ZooModel, build_model
from edgekit.optimize.calibration import CalibrationSet, load_calibration
from edgekit.optimize.validation import Agreement


def models_dir() -> Path:
    """Where the benchmarks keep built zoo models: ``$EDGEKIT_CACHE/bench-models``."""
    return Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit")) / "bench-models"


@dataclass(frozen=True)
class BenchModel:
    """A zoo model, its prepared FP32 ONNX file, the input shape and the input's name."""

    zoo: ZooModel
    fp32: Path
    shape: tuple[int, int, int, int]
    input_name: str

    def load(self, folder: Path) -> CalibrationSet:
        """The images in ``folder`` as this model's inputs."""
        return load_calibration(folder, preprocess=self.zoo.preprocess, input_shape=self.shape)


def prepare(name: str, work: Path) -> BenchModel:
    """Build (or reuse) zoo model ``name`` and prepare it into ``work`` once per run."""
    zoo = build_model(name, models_dir())
    fp32 = work / f"{name}.fp32.onnx"
    if not fp32.is_file():
        PASSES["onnx-prepare"](zoo.onnx_path, fp32)
    shape = (1, 3, zoo.preprocess.size_wh[1], zoo.preprocess.size_wh[0])
    input_name = onnx.load(str(fp32), load_external_data=False).graph.input[0].name
    return BenchModel(zoo, fp32, shape, input_name)


def cosine(agreement: Agreement) -> float:
    """The mean cosine of outputs an agreement recorded, rounded for a results file (NaN if none)."""
    return round(float(agreement.details.get("mean_cosine", np.nan)), 4)
