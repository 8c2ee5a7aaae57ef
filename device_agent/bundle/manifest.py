"""The bundle manifest, schema ``edgekit.bundle/1``: the contract between host and device.

It lives in the agent because the device must read it without the host toolkit. Every
model is ``extra="forbid"``: a key we do not know is an error, not a silent default.
"""

from __future__ import annotations

import json
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from device_agent.errors import BundleError
from device_agent.nesting import nesting_depth
from device_agent.service.config_errors import brief, explain

SCHEMA: Final = "edgekit.bundle/1"

Runtime = Literal["onnxruntime", "tflite"]
Precision = Literal["fp32", "fp16", "int8", "int8-mixed", "int8-dynamic"]
Layout = Literal["NCHW", "NHWC", "NC", "raw"]
ResizeMode = Literal["letterbox", "stretch", "center-crop"]
ColorOrder = Literal["RGB", "BGR", "GRAY"]
TaskKind = Literal["classification", "detection", "segmentation", "raw"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileEntry(_Strict):
    sha256: str = Field(description="hex sha256 of the file's bytes")
    size_bytes: int = Field(ge=0, description="file size in bytes")


class QuantParams(_Strict):
    scale: float = Field(description="real = scale * (q - zero_point)")
    zero_point: int


class TensorSpec(_Strict):
    name: str
    shape: list[int] = Field(description="static shape; the bundle never carries a dynamic one")
    dtype: str = Field(description="numpy dtype name, e.g. float32, uint8, int8")
    layout: Layout = "raw"
    quantization: QuantParams | None = Field(
        default=None, description="scale and zero point of an integer input or output"
    )


class PreprocessSpec(_Strict):
    """How a camera frame (HxWx3 uint8, BGR as OpenCV gives it) becomes the model input.

    The host calibrates and validates through exactly this spec, and the device runs it,
    so both sides see the same tensors.
    """

    size_wh: tuple[int, int] = Field(description="model input width and height in pixels")
    resize: ResizeMode = Field(default="stretch", description="how the frame is fitted")
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    color: ColorOrder = Field(default="RGB", description="channel order the model expects")
    scale: float = Field(default=1.0 / 255.0, description="pixels are multiplied by this first")
    mean: tuple[float, ...] = Field(default=(0.0, 0.0, 0.0), description="subtracted after scale")
    std: tuple[float, ...] = Field(default=(1.0, 1.0, 1.0), description="divided after mean")
    pad_value: int = Field(default=114, ge=0, le=255, description="letterbox border colour")
    crop_fraction: float = Field(
        default=0.875, gt=0.0, le=1.0, description="center-crop: fraction of the short side kept"
    )


class TaskSpec(_Strict):
    kind: TaskKind = "raw"
    decoder: str = Field(default="raw", description="decoder key, e.g. softmax-topk, yolov8")
    labels: list[str] = Field(default_factory=list)
    score_threshold: float = Field(default=0.25, ge=0.0, le=1.0)
    iou_threshold: float = Field(default=0.45, ge=0.0, le=1.0)
    top_k: int = Field(default=5, ge=1)
    max_detections: int = Field(default=100, ge=1)
    anchors_yxhw: list[tuple[float, float, float, float]] | None = Field(
        default=None, description="SSD: anchors as (y_center, x_center, height, width), normalized to the input"
    )
    box_scales: tuple[float, float, float, float] = Field(
        default=(10.0, 10.0, 5.0, 5.0), description="SSD: y, x, h, w scales of the box encoding"
    )
    background_class: bool = Field(default=True, description="SSD: the first score column is background")
    strides: list[float] | None = Field(
        default=None,
        description="YOLO heads (yolov8-heads): input pixels per grid cell of each output level, finest first",
    )


class TargetInfo(_Strict):
    name: str
    runtime: Runtime
    providers: list[str] = Field(default_factory=list, description="execution provider / delegate hints")
    threads: int = Field(default=0, ge=0, description="0 lets the runtime choose")


class ModelInfo(_Strict):
    file: str = Field(description="model file name inside the bundle")
    sha256: str
    format: Literal["onnx", "tflite"]


class SourceInfo(_Strict):
    file: str
    sha256: str
    format: str


class ValidationInfo(_Strict):
    metric: str
    samples: int
    reference: float
    optimized: float
    max_drop: float
    passed: bool
    details: dict[str, float] = Field(default_factory=dict)
    ci95: list[float] | None = Field(
        default=None, min_length=2, max_length=2,
        description="[lo, hi]: 95 % interval of optimized (Wilson), in percent; None for a metric that is no share",
    )


class TensorStats(_Strict):
    mean: float
    std: float
    min: float
    max: float


class Manifest(_Strict):
    schema_: Literal["edgekit.bundle/1"] = Field(alias="schema", default=SCHEMA)
    name: str
    version: str
    created: str = Field(description="ISO 8601 UTC time the bundle was written")
    toolkit_version: str
    precision: Precision
    candidate: str | None = Field(default=None, description="the optimizer's candidate this bundle ships, e.g. "
                                  "int8-mixed-8 (mixed precision, 8 chains kept in float); absent in older bundles")
    model: ModelInfo
    target: TargetInfo
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    preprocess: PreprocessSpec | None = None
    task: TaskSpec
    source: SourceInfo
    validation: ValidationInfo | None = None
    performance: dict[str, Any] = Field(default_factory=dict, description="measured on the build machine")
    baseline: dict[str, TensorStats] = Field(
        default_factory=dict, description="input/output statistics on the calibration data, for drift"
    )
    files: dict[str, FileEntry] = Field(description="every file of the bundle but manifest.json")
    signature: str | None = Field(default=None, description="detached ed25519 signature, hex")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def label(self) -> str:
        """How a person tells this bundle apart: its name and the candidate it ships (``tiny int8-mixed-8``),
        or its precision for a bundle written before the candidate was recorded."""
        return f"{self.name} {self.candidate or self.precision}"

    @property
    def measured_fps(self) -> float | None:
        """Frames per second the model ran at on the build machine (1000 / the optimized p50 in ms), None when
        the bundle carries no timing: the rate a hub compares a device's fps with."""
        latency = self.performance.get("latency_ms")
        p50_ms = latency.get("optimized") if isinstance(latency, dict) else None
        if not isinstance(p50_ms, int | float) or isinstance(p50_ms, bool) or not p50_ms > 0:
            return None
        return round(1000.0 / p50_ms, 3)

    def to_json(self) -> str:
        unset = {"candidate"} if self.candidate is None else None  # readable by agents that predate the key
        return json.dumps(self.model_dump(mode="json", by_alias=True, exclude=unset), indent=2, sort_keys=True) + "\n"


MAX_DEPTH = 32
"""Deepest nesting of objects and lists a manifest may have; a real one reaches 5 (anchors,
performance). Bounding it keeps a crafted manifest from exhausting the stack in validation."""


def parse_manifest(text: str | bytes, *, where: str = "manifest.json") -> Manifest:
    """Parse and validate manifest text (bytes: UTF-8); raise :class:`BundleError` naming the bad key.

    Any input gives a :class:`BundleError` (``manifest-json``, ``schema`` or ``manifest-fields``):
    the manifest is the first thing a device reads of a bundle it was sent.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BundleError("manifest-json", f"{where} is not UTF-8 text: {exc}") from exc
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError("manifest-json", f"{where} is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # the C decoder's own guard against deep nesting
        raise BundleError("manifest-json", f"{where} is nested too deeply (more than {MAX_DEPTH} levels)") from exc
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise BundleError("manifest-json", f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise BundleError("manifest-json", f"{where} must hold a JSON object, got {type(raw).__name__}")
    if nesting_depth(raw, MAX_DEPTH) > MAX_DEPTH:
        raise BundleError("manifest-json", f"{where} is nested too deeply (more than {MAX_DEPTH} levels)")
    try:  # JSON may escape a lone UTF-16 surrogate ("\ud800"): not text, and printing it later would crash
        json.dumps(raw, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BundleError("manifest-json",
                          f"{where} holds an escaped lone surrogate, which is not text: {exc}") from exc
    schema = raw.get("schema")
    if schema != SCHEMA:
        raise BundleError("schema", f"{where} has schema {brief(schema)}; this agent reads {SCHEMA!r}")
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise BundleError("manifest-fields", f"{where}: {explain(exc)}") from exc

