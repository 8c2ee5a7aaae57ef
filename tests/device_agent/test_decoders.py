"""Known-answer tests for the decoder registry, box helpers and the built-in decoders."""

from __future__ import annotations

import math

import numpy as np
import pytest

from device_agent.bundle.manifest import TaskSpec
from device_agent.errors import DecodeError
from device_agent.pipeline.decoders import DECODERS, Detection, decode, get_decoder, iou_matrix, nms, register_decoder
from device_agent.pipeline.preprocess import FrameTransform

# scores are powers of two so float32 holds them exactly
YOLO_TASK = TaskSpec(kind="detection", decoder="yolov8", labels=["cat", "dog"], score_threshold=0.25, iou_threshold=0.5)


def yolov8_head() -> np.ndarray:
    """[1, 4+2, 4]: a cat, a weaker overlapping cat, an overlapping dog, a box below threshold."""
    candidates = np.array(
        [
            # cx, cy, w, h, cat, dog
            [50, 50, 20, 20, 0.875, 0.125],
            [52, 50, 20, 20, 0.75, 0.0625],  # IoU 0.818 with the first cat: suppressed
            [52, 50, 20, 20, 0.0625, 0.625],  # same place but a dog: kept
            [200, 200, 10, 10, 0.125, 0.0625],  # below the score threshold
        ],
        dtype=np.float32,
    )
    return candidates.T[None]


EXPECTED_YOLO = (
    Detection(class_id=0, label="cat", score=0.875, box_xyxy=(40.0, 40.0, 60.0, 60.0)),
    Detection(class_id=1, label="dog", score=0.625, box_xyxy=(42.0, 40.0, 62.0, 60.0)),
)


def test_registry_lists_builtin_decoders() -> None:
    assert {"softmax-topk", "yolov8", "yolov5", "ssd", "raw"} <= set(DECODERS)


def test_unknown_decoder_names_known_keys() -> None:
    with pytest.raises(DecodeError,
                       match=r"unknown decoder 'retinanet'; known decoders: raw, softmax-topk, ssd, yolov5, yolov8"):
        get_decoder("retinanet")


def test_registering_a_key_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register_decoder("raw")(lambda outputs, task, transform=None: None)  # type: ignore[arg-type,return-value]


def test_iou_matrix_known_values() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], dtype=np.float32)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]], dtype=np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), [[1 / 3, 1.0, 0.0], [0.0, 0.0, 0.0]])


def test_nms_keeps_higher_score_of_same_class_overlap() -> None:
    boxes = np.array([[1, 0, 11, 10], [0, 0, 10, 10], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([0.8, 0.9, 0.3])
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]


def test_nms_keeps_overlapping_boxes_of_different_classes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10]], dtype=np.float32)
    assert nms(boxes, np.array([0.9, 0.8]), 0.5, class_ids=np.array([0, 1])).tolist() == [0, 1]
    assert nms(boxes, np.array([0.9, 0.8]), 0.5, class_ids=np.array([1, 1])).tolist() == [0]


def test_nms_threshold_is_exclusive_and_max_kept_stops_early() -> None:
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [100, 0, 110, 10]], dtype=np.float32)  # IoU 1/3
    assert nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5).tolist() == [0, 1, 2]
    assert nms(boxes, np.array([0.9, 0.8, 0.7]), 0.3).tolist() == [0, 2]
    assert nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5, max_kept=2).tolist() == [0, 1]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_softmax_topk_applies_softmax_to_logits() -> None:
    task = TaskSpec(kind="classification", decoder="softmax-topk", labels=["a", "b", "c"], top_k=2)
    result = decode([np.array([[1.0, 2.0, 3.0]], dtype=np.float32)], task)
    e = [math.exp(1), math.exp(2), math.exp(3)]
    assert result.kind == "classification"
    assert [(c.class_id, c.label) for c in result.classifications] == [(2, "c"), (1, "b")]
    assert result.classifications[0].score == pytest.approx(e[2] / sum(e), abs=1e-6)
    assert result.classifications[1].score == pytest.approx(e[1] / sum(e), abs=1e-6)
    full = decode([np.array([[1.0, 2.0, 3.0]])], task.model_copy(update={"top_k": 10}))
    assert len(full.classifications) == 3
    assert sum(c.score for c in full.classifications) == pytest.approx(1.0, abs=1e-9)


def test_softmax_topk_keeps_probabilities_and_falls_back_to_ids() -> None:
    task = TaskSpec(kind="classification", decoder="softmax-topk", top_k=1)
    result = decode([np.array([[0.25, 0.625, 0.125]], dtype=np.float32)[..., None, None]], task)
    assert result.classifications[0].to_json() == {"class_id": 1, "label": "1", "score": 0.625}


@pytest.mark.parametrize("shape", [(2, 3), (3,), (1, 3, 2)])
def test_softmax_topk_wrong_shape(shape: tuple[int, ...]) -> None:
    task = TaskSpec(kind="classification", decoder="softmax-topk")
    pattern = rf"'softmax-topk' got an output of shape \[{', '.join(map(str, shape))}\]; expected \[1, C\]"
    with pytest.raises(DecodeError, match=pattern):
        decode([np.zeros(shape, dtype=np.float32)], task)


def test_softmax_topk_label_count_must_match() -> None:
    task = TaskSpec(kind="classification", decoder="softmax-topk", labels=["a", "b"])
    with pytest.raises(DecodeError, match=r"shape \[1, 3\]; expected \[1, 2\] \(the task has 2 labels\)"):
        decode([np.zeros((1, 3), dtype=np.float32)], task)


def test_yolov8_threshold_class_aware_nms() -> None:
    result = decode([yolov8_head()], YOLO_TASK)
    assert result.kind == "detection"
    assert result.detections == EXPECTED_YOLO


def test_yolov8_transposed_output_decodes_the_same() -> None:
    transposed = yolov8_head().transpose(0, 2, 1)
    assert transposed.shape == (1, 4, 6)
    assert decode([transposed], YOLO_TASK).detections == EXPECTED_YOLO


def test_yolov8_without_labels_takes_the_smaller_axis_as_channels() -> None:
    head = np.zeros((1, 6, 8), dtype=np.float32)
    head[0, :, :4] = yolov8_head()[0]
    task = YOLO_TASK.model_copy(update={"labels": []})
    got = decode([head.transpose(0, 2, 1)], task).detections
    assert [(d.class_id, d.label, d.score, d.box_xyxy) for d in got] == [
        (0, "0", 0.875, (40.0, 40.0, 60.0, 60.0)),
        (1, "1", 0.625, (42.0, 40.0, 62.0, 60.0)),
    ]


def test_yolov8_max_detections() -> None:
    result = decode([yolov8_head()], YOLO_TASK.model_copy(update={"max_detections": 1}))
    assert result.detections == EXPECTED_YOLO[:1]


def test_yolov8_maps_boxes_to_frame_with_letterbox_transform() -> None:
    # a 1280x720 frame letterboxed into 640x640: scale 0.5, 640x360 image, 140 px bars top and bottom
    transform = FrameTransform(frame_wh=(1280, 720), scale_x=0.5, scale_y=0.5, pad_x=0, pad_y=140)
    head = np.array([[50, 190, 20, 20, 0.875, 0.0]], dtype=np.float32).T[None]
    (det,) = decode([head], YOLO_TASK, transform).detections
    assert det.box_xyxy == (80.0, 80.0, 120.0, 120.0)
    # a box reaching into the bottom bar (y 490..510 -> 700..740) is clipped at the frame's edge
    head = np.array([[50, 500, 20, 20, 0.875, 0.0]], dtype=np.float32).T[None]
    (det,) = decode([head], YOLO_TASK, transform).detections
    assert det.box_xyxy == (80.0, 700.0, 120.0, 720.0)


def test_yolov8_wrong_shape_names_decoder_and_shapes() -> None:
    with pytest.raises(DecodeError, match=r"'yolov8' got an output of shape \[1, 7, 10\]; expected \[1, 6, N\]"):
        decode([np.zeros((1, 7, 10), dtype=np.float32)], YOLO_TASK)
    with pytest.raises(DecodeError, match=r"'yolov8' got an output of shape \[6, 10\]"):
        decode([np.zeros((6, 10), dtype=np.float32)], YOLO_TASK)
    with pytest.raises(DecodeError, match=r"'yolov8' got no outputs"):
        decode([], YOLO_TASK)


def test_yolov5_score_is_objectness_times_class() -> None:
    head = np.array(
        [
            # cx, cy, w, h, obj, cat, dog
            [50, 50, 20, 20, 0.5, 1.0, 0.0],  # cat 0.5
            [52, 50, 20, 20, 0.5, 0.25, 0.75],  # dog 0.375
            [150, 50, 20, 20, 0.125, 1.0, 0.0],  # cat 0.125: below threshold
        ],
        dtype=np.float32,
    )[None]
    task = YOLO_TASK.model_copy(update={"decoder": "yolov5"})
    got = decode([head], task).detections
    assert [(d.label, d.score, d.box_xyxy) for d in got] == [
        ("cat", 0.5, (40.0, 40.0, 60.0, 60.0)),
        ("dog", 0.375, (42.0, 40.0, 62.0, 60.0)),
    ]
    with pytest.raises(DecodeError, match=r"'yolov5' got an output of shape \[1, 3, 6\]; expected \[1, N, 7\]"):
        decode([head[..., :6]], task)


def test_raw_returns_outputs_unchanged_and_json_summarises_them() -> None:
    outputs = [np.arange(6, dtype=np.float32).reshape(1, 6), np.ones((2, 2), dtype=np.int8)]
    result = decode(outputs, TaskSpec())
    assert result.kind == "raw" and len(result.raw) == 2
    assert all(a is b for a, b in zip(result.raw, outputs))
    assert result.to_json()["raw"] == [{"shape": [1, 6], "dtype": "float32"}, {"shape": [2, 2], "dtype": "int8"}]


def test_detection_result_to_json() -> None:
    assert decode([yolov8_head()], YOLO_TASK).to_json() == {
        "decoder": "yolov8",
        "kind": "detection",
        "classifications": [],
        "detections": [
            {"class_id": 0, "label": "cat", "score": 0.875, "box_xyxy": [40.0, 40.0, 60.0, 60.0]},
            {"class_id": 1, "label": "dog", "score": 0.625, "box_xyxy": [42.0, 40.0, 62.0, 60.0]},
        ],
        "raw": [],
    }


def test_ssd_decodes_encoded_boxes_back_against_their_anchors() -> None:
    from device_agent.bundle.manifest import TaskSpec
    from device_agent.pipeline.decoders.ssd import decode_boxes
    from device_agent.pipeline.preprocess import FrameTransform

    anchors = [(0.5, 0.5, 0.2, 0.2), (0.25, 0.25, 0.5, 0.5), (0.75, 0.75, 0.1, 0.3)]
    # box 0: the anchor itself; box 1: shifted by half an anchor down and twice as wide.
    encodings = np.array([[[0, 0, 0, 0], [5.0, 0.0, 0.0, 5 * np.log(2.0)], [0, 0, 0, 0]]], np.float32)
    logits = np.array([[[0, 4, -4], [0, -4, 4], [0, -9, -9]]], np.float32)  # background column first
    task = TaskSpec(kind="detection", decoder="ssd", labels=["cat", "dog"], anchors_yxhw=anchors, score_threshold=0.5)
    np.testing.assert_allclose(decode_boxes(encodings[0], np.array(anchors), task.box_scales)[:2],
                               [[0.4, 0.4, 0.6, 0.6], [-0.25, 0.25, 0.75, 0.75]], atol=1e-6)
    transform = FrameTransform((200, 100), scale_x=0.5, scale_y=1.0, input_wh=(100, 100))
    result = decode([encodings, logits], task, transform)
    dets = sorted(result.detections, key=lambda d: d.label)
    assert [(d.label, round(d.score, 3)) for d in dets] == [("cat", 0.982), ("dog", 0.982)]
    np.testing.assert_allclose(dets[0].box_xyxy, (80, 40, 120, 60), atol=1e-3)  # 0.4*100 px -> /0.5 in x
    with pytest.raises(DecodeError, match=r"decoder 'ssd' got an output of shape"):
        decode([encodings[:, :2], logits], task, transform)
    with pytest.raises(DecodeError, match=r"needs the anchors"):
        decode([encodings, logits], TaskSpec(kind="detection", decoder="ssd"), transform)
