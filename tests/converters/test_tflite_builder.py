"""The MobileNet-like TFLite model of tests/support/tflite_builder: runs in LiteRT, its cost counted by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device_agent.bench.cost import model_cost
from tests.support.tflite_builder import conv_stack_tflite

# conv_stack_tflite at its defaults (size 224, channels 32, blocks 6, classes 100), by hand.
# SAME padding: a stride-2 layer's output side is ceil(side / 2). Block i has stride 2 when i is odd;
# its 1x1 conv doubles the channels on block 0 and on stride-2 blocks, up to 256.
# CONV_2D: output elements x (kh x kw x Cin); DEPTHWISE_CONV_2D: output elements x (kh x kw);
# FULLY_CONNECTED: outputs x K. MEAN is not counted.
DEFAULT_LAYERS = [
    # (op, output tensor, output shape, MACs)
    ("CONV_2D", "stem", (1, 112, 112, 32), 112 * 112 * 32 * (3 * 3 * 3)),  # 10_838_016
    ("DEPTHWISE_CONV_2D", "block0_dw", (1, 112, 112, 32), 112 * 112 * 32 * (3 * 3)),  # 3_612_672
    ("CONV_2D", "block0_pw", (1, 112, 112, 64), 112 * 112 * 64 * 32),  # 25_690_112
    ("DEPTHWISE_CONV_2D", "block1_dw", (1, 56, 56, 64), 56 * 56 * 64 * (3 * 3)),  # 1_806_336
    ("CONV_2D", "block1_pw", (1, 56, 56, 128), 56 * 56 * 128 * 64),  # 25_690_112
    ("DEPTHWISE_CONV_2D", "block2_dw", (1, 56, 56, 128), 56 * 56 * 128 * (3 * 3)),  # 3_612_672
    ("CONV_2D", "block2_pw", (1, 56, 56, 128), 56 * 56 * 128 * 128),  # 51_380_224
    ("DEPTHWISE_CONV_2D", "block3_dw", (1, 28, 28, 128), 28 * 28 * 128 * (3 * 3)),  # 903_168
    ("CONV_2D", "block3_pw", (1, 28, 28, 256), 28 * 28 * 256 * 128),  # 25_690_112
    ("DEPTHWISE_CONV_2D", "block4_dw", (1, 28, 28, 256), 28 * 28 * 256 * (3 * 3)),  # 1_806_336
    ("CONV_2D", "block4_pw", (1, 28, 28, 256), 28 * 28 * 256 * 256),  # 51_380_224
    ("DEPTHWISE_CONV_2D", "block5_dw", (1, 14, 14, 256), 14 * 14 * 256 * (3 * 3)),  # 451_584
    ("CONV_2D", "block5_pw", (1, 14, 14, 256), 14 * 14 * 256 * 256),  # 12_845_056
    ("FULLY_CONNECTED", "logits", (1, 100), 100 * 256),  # 25_600
]
DEFAULT_MACS = 215_732_224
# Weights + biases: stem, then (depthwise, pointwise) per block, then the classifier;
# the int32 MEAN axes are not a parameter.
DEFAULT_PARAMS = (
    (32 * 3 * 3 * 3 + 32)
    + (3 * 3 * 32 + 32) + (64 * 32 + 64)
    + (3 * 3 * 64 + 64) + (128 * 64 + 128)
    + (3 * 3 * 128 + 128) + (128 * 128 + 128)
    + (3 * 3 * 128 + 128) + (256 * 128 + 256)
    + (3 * 3 * 256 + 256) + (256 * 256 + 256)
    + (3 * 3 * 256 + 256) + (256 * 256 + 256)
    + (100 * 256 + 100)
)  # 226_788


def _run(path: Path, *, threads: int = 2) -> tuple[np.ndarray, dict[str, tuple[int, ...]]]:
    """One inference in LiteRT (XNNPACK by default) on a seeded random frame: the output, and every tensor's shape."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    (detail,) = interpreter.get_input_details()
    frame = np.random.default_rng(1).uniform(-1, 1, detail["shape"]).astype(np.float32)
    interpreter.set_tensor(detail["index"], frame)
    interpreter.invoke()
    output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    shapes = {d["name"]: tuple(int(x) for x in d["shape"]) for d in interpreter.get_tensor_details()}
    return output, shapes


def test_conv_stack_runs_in_litert_and_counts_by_hand(tmp_path: Path) -> None:
    path = conv_stack_tflite(tmp_path / "stack.tflite")
    output, shapes = _run(path)
    assert output.shape == (1, 100) and output.dtype == np.float32
    assert np.isfinite(output).all()
    assert output.std() > 1e-3  # the activations did not die out (or blow up) on the way
    assert shapes["input"] == (1, 224, 224, 3) and shapes["pooled"] == (1, 256)
    # the shapes written into the file are the ones LiteRT computes, so counting from the file is right
    assert {name: shapes[name] for _, name, _, _ in DEFAULT_LAYERS} == {n: s for _, n, s, _ in DEFAULT_LAYERS}

    cost = model_cost(path)
    assert sum(macs for *_, macs in DEFAULT_LAYERS) == DEFAULT_MACS
    assert [(op.op, op.macs) for op in cost.ops] == [(op, macs) for op, _, _, macs in DEFAULT_LAYERS]
    assert cost.macs == DEFAULT_MACS
    assert cost.flops == 2 * DEFAULT_MACS
    assert cost.params == DEFAULT_PARAMS == 226_788
    assert cost.by_op_type() == {"CONV_2D": 203_513_856, "DEPTHWISE_CONV_2D": 12_192_768, "FULLY_CONNECTED": 25_600}
    assert cost.precision == "fp32"


def test_conv_stack_odd_size_and_small_config(tmp_path: Path) -> None:
    """An odd input side rounds up at every stride 2 (SAME padding), as LiteRT does."""
    path = conv_stack_tflite(tmp_path / "small.tflite", size=45, channels=8, blocks=3, classes=10)
    output, shapes = _run(path, threads=1)
    assert output.shape == (1, 10) and np.isfinite(output).all()
    # 45 -> stem s2 -> 23 -> block0 s1 (8 -> 16) -> 23 -> block1 s2 (16 -> 32) -> 12 -> block2 s1 (32) -> 12
    assert shapes["stem"] == (1, 23, 23, 8)
    assert shapes["block0_pw"] == (1, 23, 23, 16)
    assert shapes["block1_dw"] == (1, 12, 12, 16) and shapes["block1_pw"] == (1, 12, 12, 32)
    assert shapes["block2_pw"] == (1, 12, 12, 32)
    macs = (
        23 * 23 * 8 * 27  # stem
        + 23 * 23 * 8 * 9 + 23 * 23 * 16 * 8  # block0
        + 12 * 12 * 16 * 9 + 12 * 12 * 32 * 16  # block1
        + 12 * 12 * 32 * 9 + 12 * 12 * 32 * 32  # block2
        + 10 * 32  # classifier
    )
    params = (8 * 27 + 8) + (9 * 8 + 8) + (16 * 8 + 16) + (9 * 16 + 16) + (32 * 16 + 32) + (9 * 32 + 32) \
        + (32 * 32 + 32) + (10 * 32 + 10)
    cost = model_cost(path)
    assert (cost.macs, cost.params) == (macs, params)


@pytest.mark.parametrize("seed", [0, 1])
def test_conv_stack_is_seeded(tmp_path: Path, seed: int) -> None:
    small = {"size": 32, "channels": 8, "blocks": 2, "classes": 4}
    first = conv_stack_tflite(tmp_path / "a.tflite", seed=seed, **small).read_bytes()
    again = conv_stack_tflite(tmp_path / "b.tflite", seed=seed, **small).read_bytes()
    other = conv_stack_tflite(tmp_path / "c.tflite", seed=seed + 10, **small).read_bytes()
    assert first == again and first != other and len(first) == len(other)
