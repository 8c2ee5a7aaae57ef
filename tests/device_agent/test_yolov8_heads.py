"""A YOLOv8 detector cut at its raw heads: finding the cut, proving it, and decoding the heads on the CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from converters.errors import ConversionError
from converters.onnx_extract import extract_outputs
from device_agent.errors import DecodeError
from device_agent.pipeline.decoders import decode
from device_agent.pipeline.decoders.yolov8_heads import predictions, split_levels
from device_agent.pipeline.preprocess import FrameTransform
from edgekit.content.zoo.photos import sample_batch
from edgekit.optimize.heads import split_yolov8
from edgekit.optimize.measure import run_all


@pytest.fixture(scope="module")
def detector(zoo, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The zoo's YOLOv8n, its cut at the heads, three real photos, and both models' outputs on them."""
    model = zoo("yolov8n")
    photos = sample_batch(model.preprocess, count=3, seed=7)
    split = split_yolov8(model.onnx_path, model.task, tmp_path_factory.mktemp("heads") / "heads.onnx", photos)
    full = run_all(model.onnx_path, [photos])
    heads = run_all(split.path, [photos])
    return model, split, full, heads


def test_the_cut_is_found_in_the_graph_and_proved(detector) -> None:  # type: ignore[no-untyped-def]
    model, split, _, heads = detector
    assert len(split.heads) == 6  # a box and a class head per stride
    assert split.task.decoder == "yolov8-heads" and split.task.strides == [8.0, 16.0, 32.0]
    assert split.task.labels == model.task.labels
    assert split.max_relative_error < 1e-4
    shapes = sorted(h.shape for h in heads[0])
    assert shapes == [(1, 64, 10, 10), (1, 64, 20, 20), (1, 64, 40, 40),
                      (1, 80, 10, 10), (1, 80, 20, 20), (1, 80, 40, 40)]
    kept = onnx.load(str(split.path))
    assert not {"Softmax", "Sub"} & {n.op_type for n in kept.graph.node}  # the decode tail is gone


def test_decoding_the_heads_gives_the_original_output_and_detections(detector) -> None:  # type: ignore[no-untyped-def]
    model, split, full, heads = detector
    transform = FrameTransform(frame_wh=(640, 480), scale_x=0.5, scale_y=0.5, pad_y=40.0, input_wh=(320, 320))
    total = 0
    for f, h in zip(full, heads, strict=True):
        assert np.allclose(predictions(h, split.task), f[0], atol=2e-3)
        want = decode(f, model.task, transform).detections
        got = decode(h, split.task, transform).detections  # the fast path: only candidates above threshold
        assert [d.class_id for d in got] == [d.class_id for d in want]
        assert np.allclose([d.box_xyxy for d in got], [d.box_xyxy for d in want], atol=1e-2)
        assert np.allclose([d.score for d in got], [d.score for d in want], atol=1e-5)
        total += len(want)
    assert total > 0  # the photos give detections, so the comparison above compared something


def test_layouts_and_orders_decode_the_same(detector) -> None:  # type: ignore[no-untyped-def]
    """NHWC (TFLite), shuffled output order, and Ultralytics' one box+class tensor per level."""
    _, split, _, heads = detector
    h = heads[0]
    reference = predictions(h, split.task)
    nhwc = [np.moveaxis(x, 1, -1) for x in h]
    assert np.array_equal(predictions(nhwc[::-1], split.task), reference)
    by_grid: dict[int, list[np.ndarray]] = {}
    for x in h:
        by_grid.setdefault(x.shape[2], []).append(x)
    joined = [np.concatenate(sorted(pair, key=lambda t: t.shape[1] != 64), axis=1) for pair in by_grid.values()]
    assert np.array_equal(predictions(joined, split.task), reference)
    # without strides in the task they come from the input size (transform) or the P3 convention
    no_strides = split.task.model_copy(update={"strides": None})
    assert np.array_equal(predictions(h, no_strides), reference)


def test_heads_that_do_not_fit_are_named(detector) -> None:  # type: ignore[no-untyped-def]
    _, split, _, heads = detector
    with pytest.raises(DecodeError, match=r"'yolov8-heads'.*\[1, 64, 40, 40\].*not YOLOv8 heads"):
        decode([*heads[0][:1], np.zeros((1, 7, 20, 20), np.float32)], split.task)
    with pytest.raises(DecodeError, match=r"task.strides has 2 values for 3 output levels"):
        decode(heads[0], split.task.model_copy(update={"strides": [8.0, 16.0]}))
    with pytest.raises(DecodeError, match=r"yolov8-heads.*\[1, 84, 2100\]"):
        decode([np.zeros((1, 84, 2100), np.float32)], split.task)
    levels = split_levels(heads[0], split.task)
    assert [lv.grid_hw for lv in levels] == [(40, 40), (20, 20), (10, 10)] and levels[0].reg_max == 16


def test_a_classifier_has_no_yolov8_tail_to_cut(zoo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = zoo("mobilenetv2")
    with pytest.raises(ConversionError,
                       match=r"a YOLOv8 export has one output \[1, 4\+nc, N\]; this one is \[1, 1000\]"):
        split_yolov8(model.onnx_path, model.task, tmp_path / "x.onnx", np.zeros((1, 3, 224, 224), np.float32))


def test_extract_names_a_tensor_the_graph_does_not_compute(zoo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConversionError, match=r"computes no tensor named \['nope'\]"):
        extract_outputs(zoo("yolov8n").onnx_path, tmp_path / "x.onnx", outputs=["nope"])
