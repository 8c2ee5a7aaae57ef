from __future__ import annotations

import numpy as np
import pytest

from device_agent.bundle.manifest import PreprocessSpec
from device_agent.errors import PreprocessError
from device_agent.pipeline.preprocess import preprocess, resize_frame


def _frame(w: int, h: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_letterbox_pads_and_maps_boxes_back() -> None:
    spec = PreprocessSpec(size_wh=(320, 320), resize="letterbox")
    image, t = resize_frame(_frame(640, 480), spec)
    assert image.shape == (320, 320, 3)
    assert (t.scale_x, t.pad_x, t.pad_y) == (0.5, 0, 40)
    assert (image[:40] == 114).all() and (image[-40:] == 114).all()
    back = t.to_frame(np.array([[0, 40, 320, 280]]))
    np.testing.assert_allclose(back, [[0, 0, 640, 480]])


def test_center_crop_keeps_the_middle() -> None:
    spec = PreprocessSpec(size_wh=(100, 100), resize="center-crop", crop_fraction=0.5)
    frame = np.zeros((400, 800, 3), np.uint8)
    frame[100:300, 300:500] = 255  # the middle 200x200 of the short side's half
    image, t = resize_frame(frame, spec)
    assert image.mean() == 255
    np.testing.assert_allclose(t.to_frame(np.array([[0, 0, 100, 100]])), [[300, 100, 500, 300]])


def test_tensor_layout_color_and_normalization() -> None:
    frame = np.zeros((10, 10, 3), np.uint8)
    frame[..., 2] = 255  # red in BGR
    nchw = PreprocessSpec(size_wh=(10, 10), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    x, _ = preprocess(frame, nchw)
    assert x.shape == (1, 3, 10, 10) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, 0, 0], [1.0, -1.0, -1.0])  # RGB order, (v/255-0.5)/0.5
    nhwc_bgr = PreprocessSpec(size_wh=(10, 10), layout="NHWC", color="BGR", scale=1.0)
    y, _ = preprocess(frame, nhwc_bgr)
    assert y.shape == (1, 10, 10, 3)
    np.testing.assert_allclose(y[0, 0, 0], [0, 0, 255])


def test_wrong_frame_is_a_clear_error() -> None:
    with pytest.raises(PreprocessError, match=r"HxWx3 uint8 BGR image, got shape \(10, 10\)"):
        preprocess(np.zeros((10, 10), np.uint8), PreprocessSpec(size_wh=(4, 4)))


def test_int8_io_quantization_round_trips() -> None:
    from device_agent.bundle.manifest import QuantParams, TensorSpec
    from device_agent.pipeline.preprocess import dequantize, quantize

    spec = TensorSpec(name="x", shape=[1, 4], dtype="int8", quantization=QuantParams(scale=0.5, zero_point=-3))
    q = quantize(np.array([[-100.0, 0.0, 1.0, 100.0]], np.float32), spec)
    assert q.dtype == np.int8 and q.tolist() == [[-128, -3, -1, 127]]  # clipped at both ends
    back = dequantize([q], [spec])[0]
    np.testing.assert_allclose(back, [[-62.5, 0.0, 1.0, 65.0]])
    plain = TensorSpec(name="y", shape=[1], dtype="float32")
    assert quantize(np.ones((1,), np.float64), plain).dtype == np.float32
