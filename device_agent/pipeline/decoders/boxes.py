"""Box geometry shared by the detection decoders and the host's validation: IoU and NMS.

Plain vectorised numpy, so the device needs neither torch nor OpenCV for it.
"""

from __future__ import annotations

import numpy as np


def cxcywh_to_xyxy(box_cxcywh: np.ndarray) -> np.ndarray:
    """Boxes ``[N, 4]`` as centre, width, height -> corners ``x1, y1, x2, y2``."""
    b = np.asarray(box_cxcywh, dtype=np.float32).reshape(-1, 4)
    half_wh = b[:, 2:4] / 2
    corners: np.ndarray = np.concatenate([b[:, 0:2] - half_wh, b[:, 0:2] + half_wh], axis=1)
    return corners


def _area(box_xyxy: np.ndarray) -> np.ndarray:
    area: np.ndarray = (box_xyxy[:, 2] - box_xyxy[:, 0]).clip(0) * (box_xyxy[:, 3] - box_xyxy[:, 1]).clip(0)
    return area


def iou_matrix(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` ``[N, 4]`` with every box in ``b`` ``[M, 4]``.

    Returns ``[N, M]``; boxes of zero area have IoU 0 with everything.
    """
    a = np.asarray(a_xyxy, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b_xyxy, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clip(0).prod(axis=2)
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(
    box_xyxy: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    class_ids: np.ndarray | None = None,
    *,
    max_kept: int | None = None,
) -> np.ndarray:
    """Greedy non-maximum suppression; the indices kept, highest score first.

    A box is dropped when its IoU with a higher-scoring kept box is above
    ``iou_threshold``. With ``class_ids`` only boxes of the same class suppress each
    other: each class is shifted to its own region of the plane, so one pass does all.
    ``max_kept`` stops early once that many boxes are kept.
    """
    boxes = np.asarray(box_xyxy, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if boxes.shape[0] != scores.shape[0]:
        raise ValueError(f"nms got {boxes.shape[0]} boxes but {scores.shape[0]} scores")
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    if class_ids is not None:
        span = float(boxes.max() - boxes.min()) + 1.0
        boxes = boxes + (np.asarray(class_ids, dtype=np.float64).reshape(-1, 1) * span)
    # sorted once into contiguous columns: each round then slices instead of gathering
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[order, c]) for c in range(4))
    areas = (x2 - x1).clip(0) * (y2 - y1).clip(0)
    alive = np.ones(order.size, dtype=bool)
    kept: list[int] = []
    for i in range(order.size):
        if not alive[i]:
            continue
        kept.append(int(order[i]))
        if max_kept is not None and len(kept) >= max_kept:
            break
        inter = (np.minimum(x2[i], x2[i + 1 :]) - np.maximum(x1[i], x1[i + 1 :])).clip(0) * (
            np.minimum(y2[i], y2[i + 1 :]) - np.maximum(y1[i], y1[i + 1 :])
        ).clip(0)
        union = areas[i] + areas[i + 1 :] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        alive[i + 1 :] &= iou <= iou_threshold
    return np.asarray(kept, dtype=np.int64)
