"""Results (``<root>/<device>/results``): one inference on one frame.

Built once per published frame, so it is on the hot path: ``benchmarks/protocol.py`` measures
building through these models against the dict literal it replaced (numbers in the module
docstring of :mod:`device_agent.protocol`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from device_agent.protocol.base import Body, Record


class ModelRef(Record):
    """Which model produced it (also in ``status``)."""

    name: str = Field(description="bundle name")
    version: str = Field(description="bundle version")
    precision: str = Field(description="precision the bundle runs at (fp32, fp16, int8)")


class FrameRef(Record):
    """Which frame it is about."""

    id: int = Field(description="frame id within its source, counting from 0 (or 1) at the source's start")
    source: str = Field(description="name of the source")
    ts: float = Field(description="wall-clock capture time, Unix seconds")
    size_wh: list[int] = Field(description="frame size [width, height] in pixels")


class ClassScore(Record):
    """One class of a classifier's top-k."""

    class_id: int = Field(description="class index in the model's output")
    label: str = Field(description="class label from the bundle")
    score: float = Field(description="probability in [0, 1]")


class DetectedBox(Record):
    """One detected object after thresholding and NMS."""

    class_id: int = Field(description="class index in the model's output")
    label: str = Field(description="class label from the bundle")
    score: float = Field(description="confidence in [0, 1]")
    box_xyxy: list[float] = Field(description="box [x0, y0, x1, y1] in frame pixels")


class RawTensor(Record):
    """A raw output, summarised (the values are not sent)."""

    shape: list[int] = Field(description="tensor shape")
    dtype: str = Field(description="numpy dtype name")


class Decoded(Record):
    """What the model's outputs mean, from the bundle's decoder."""

    decoder: str = Field(description="decoder key (softmax-topk, yolov8, ...)")
    kind: Literal["classification", "detection", "raw"] = Field(description="what the records are")
    classifications: list[ClassScore] = Field(description="top-k classes (classification)")
    detections: list[DetectedBox] = Field(description="detected objects (detection)")
    raw: list[RawTensor] = Field(description="raw outputs, shape and dtype only (raw)")


class Result(Body):
    """One inference result."""

    topic_kind = "results"

    frame: FrameRef = Field(description="the frame it is about")
    model: ModelRef = Field(description="the model that produced it")
    result: Decoded = Field(description="the decoded output")
    latency_ms: dict[str, float] = Field(description="per-stage latency in ms: capture_age (frame age when inference "
                                         "began), preprocess, infer, postprocess")
