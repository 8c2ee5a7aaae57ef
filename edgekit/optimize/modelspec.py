"""What a model takes and gives: input/output specs, default preprocessing and task.

Preprocessing is declared once (a preset name or a file of :class:`PreprocessSpec` fields),
recorded in the manifest, and used for calibration, validation and on the device alike.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from device_agent.bundle.manifest import PreprocessSpec, QuantParams, TaskSpec, TensorSpec
from device_agent.runtimes import TensorInfo
from device_agent.service.config_errors import explain
from edgekit.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# name -> PreprocessSpec fields other than size and layout (taken from the model)
PREPROCESS_PRESETS: dict[str, dict[str, Any]] = {
    "imagenet": {"resize": "center-crop", "color": "RGB", "scale": 1 / 255, "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
    "yolo": {"resize": "letterbox", "color": "RGB", "scale": 1 / 255, "mean": (0, 0, 0), "std": (1, 1, 1)},
    "tf": {"resize": "center-crop", "color": "RGB", "scale": 1.0, "mean": (127.0,) * 3, "std": (128.0,) * 3},
    "unit": {"resize": "stretch", "color": "RGB", "scale": 1 / 255, "mean": (0, 0, 0), "std": (1, 1, 1)},
}
TASK_DECODERS = {"classification": "softmax-topk", "detection": "yolov8", "raw": "raw"}


def image_geometry(shape: Sequence[int]) -> tuple[str, tuple[int, int]] | None:
    """(layout, size_wh) if ``shape`` looks like one image batch, else None."""
    if len(shape) != 4:
        return None
    if shape[1] in (1, 3):
        return "NCHW", (int(shape[3]), int(shape[2]))
    if shape[3] in (1, 3):
        return "NHWC", (int(shape[2]), int(shape[1]))
    return None


def resolve_preprocess(
    given: PreprocessSpec | str | Path | dict[str, Any] | None, input_shape: Sequence[int], *, task: str
) -> PreprocessSpec | None:
    """The spec to use: given, a preset, a file, or a default that suits the task."""
    if isinstance(given, PreprocessSpec):
        return given
    geometry = image_geometry(input_shape)
    if geometry is None:
        if given is not None:
            raise UsageError(f"a preprocessing spec was given, but the model input {list(input_shape)} is not an image")
        return None
    layout, size_wh = geometry
    base: dict[str, Any] = {"size_wh": size_wh, "layout": layout}
    if given is None:
        fields = PREPROCESS_PRESETS["yolo" if task == "detection" else "unit"]
    elif isinstance(given, dict):
        fields = given
    elif str(given) in PREPROCESS_PRESETS:
        fields = PREPROCESS_PRESETS[str(given)]
    else:
        fields = _read_fields(Path(given))
    try:
        return PreprocessSpec.model_validate({**base, **fields})
    except ValidationError as exc:
        raise UsageError(f"invalid preprocessing spec {str(given)!r}: {explain(exc)}") from exc


def preprocess_problem(given: str | Path) -> str | None:
    """Why ``given`` names no preprocessing (checked before any work), or None."""
    if str(given) in PREPROCESS_PRESETS or Path(given).is_file():
        return None
    return f"{str(given)!r} is neither a preset ({', '.join(PREPROCESS_PRESETS)}) nor an existing file"


def _read_fields(path: Path) -> dict[str, Any]:
    if (problem := preprocess_problem(path)) is not None:
        raise UsageError(f"--preprocess {problem}")
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot parse preprocessing file {str(path)!r}: {exc}") from exc
    raw = raw.get("preprocess", raw)
    if not isinstance(raw, dict):
        raise UsageError(f"preprocessing file {str(path)!r} must hold a table of fields")
    return raw


def infer_task(outputs: Sequence[TensorInfo]) -> str:
    """Guess the task from output shapes: [1, C] is classification, [1, 4+nc, N] detection."""
    if len(outputs) == 1:
        shape = outputs[0].shape
        if len(shape) == 2 and shape[0] == 1 and shape[1] >= 2:
            return "classification"
        if len(shape) == 3 and shape[0] == 1 and 5 <= min(shape[1], shape[2]) < max(shape[1], shape[2]):
            return "detection"
    return "raw"


def anchors_problem(path: str | Path) -> str | None:
    """Why ``path`` holds no SSD anchors (checked before any work), or None."""
    try:
        _load_anchors(Path(path))
    except ValueError as exc:
        return str(exc)
    return None


def read_anchors(path: str | Path) -> list[tuple[float, float, float, float]]:
    """SSD anchors from a ``.npy`` of shape ``[N, 4]`` (y_center, x_center, height, width), normalized."""
    try:
        anchors = _load_anchors(Path(path))
    except ValueError as exc:
        raise UsageError(f"--anchors {exc}") from exc
    return [tuple(float(v) for v in row) for row in anchors]  # type: ignore[misc]


def _load_anchors(file: Path) -> Any:
    import numpy as np

    if not file.is_file():
        raise ValueError(f"{str(file)!r} does not exist; expected a .npy of shape [N, 4]")
    try:
        anchors = np.load(file, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{str(file)!r} is not a readable .npy file: {exc}") from exc
    if anchors.ndim != 2 or anchors.shape[1] != 4:
        raise ValueError(f"{str(file)!r} has shape {list(anchors.shape)}; expected [N, 4] (y, x, h, w)")
    return anchors


def resolve_task(
    task: str | None, decoder: str | None, labels: Sequence[str] | str | Path | None, outputs: Sequence[TensorInfo],
    anchors: str | Path | None = None,
) -> TaskSpec:
    kind = task or infer_task(outputs)
    if kind not in TASK_DECODERS:
        raise UsageError(f"--task {kind!r} is not one of: {', '.join(TASK_DECODERS)}")
    names: list[str]
    if labels is None:
        names = []
    elif isinstance(labels, (str, Path)):
        path = Path(labels)
        if not path.is_file():
            raise UsageError(f"--labels {str(path)!r} does not exist; expected a text file with one label per line")
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        names = list(labels)
    anchor_list = read_anchors(anchors) if anchors is not None else None
    return TaskSpec(kind=kind, decoder=decoder or TASK_DECODERS[kind], labels=names,  # type: ignore[arg-type]
                    anchors_yxhw=anchor_list)


def tensor_specs(infos: Sequence[TensorInfo], layout: str | None = None) -> list[TensorSpec]:
    return [
        TensorSpec(name=i.name, shape=list(i.shape), dtype=i.dtype, layout=layout or "raw",  # type: ignore[arg-type]
                   quantization=None if i.quantization is None else QuantParams(scale=i.quantization[0],
                                                                                 zero_point=i.quantization[1]))
        for i in infos
    ]
