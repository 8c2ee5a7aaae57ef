"""The tail every YOLO-style decoder shares: best class, threshold, NMS, cap, map to frame."""

from __future__ import annotations

import numpy as np

from device_agent.bundle.manifest import TaskSpec
from device_agent.pipeline.decoders.boxes import nms
from device_agent.pipeline.decoders.types import DecodeResult, Detection
from device_agent.pipeline.preprocess import FrameTransform


def label_for(class_id: int, labels: list[str]) -> str:
    """The task's label for a class, or the id as text when the task has none for it."""
    return labels[class_id] if 0 <= class_id < len(labels) else str(class_id)


def select_detections(
    decoder: str,
    box_xyxy: np.ndarray,
    class_scores: np.ndarray,
    task: TaskSpec,
    transform: FrameTransform | None,
) -> DecodeResult:
    """Candidates ``[N, 4]`` (input pixels) with per-class scores ``[N, nc]`` -> detections.

    Each candidate takes its best class; candidates scoring at least
    ``task.score_threshold`` go through class-aware NMS, and the best
    ``task.max_detections`` are kept, highest score first.
    """
    class_ids = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(class_scores.shape[0]), class_ids]
    keep = scores >= task.score_threshold
    box_xyxy, scores, class_ids = box_xyxy[keep], scores[keep], class_ids[keep]
    kept = nms(box_xyxy, scores, task.iou_threshold, class_ids, max_kept=task.max_detections)
    box_xyxy, scores, class_ids = box_xyxy[kept], scores[kept], class_ids[kept]
    if transform is not None:
        box_xyxy = transform.to_frame(box_xyxy)
    detections = tuple(
        Detection(
            class_id=int(c),
            label=label_for(int(c), task.labels),
            score=float(s),
            box_xyxy=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
        )
        for b, s, c in zip(box_xyxy, scores, class_ids)
    )
    return DecodeResult(decoder=decoder, kind="detection", detections=detections)
