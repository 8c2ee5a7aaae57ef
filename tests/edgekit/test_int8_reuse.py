"""Work an optimize run does once and shares across the INT8 and mixed-precision tries."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest

import converters.onnx_int8 as onnx_int8
from converters.bias_segments import SegmentRunner
from converters.onnx_bias_correction import _channel_mean, correct_bias, probe_session
from converters.onnx_int8 import quantize_int8_static
from converters.onnx_prepare import prepare_onnx
from device_agent.bundle.manifest import TaskSpec
from edgekit.optimize.candidates.onnx import Workspace, build_int8
from edgekit.optimize.measure import run_all
from edgekit.progress import Steps
from tests.support.tinymodels import tiny_classifier


def _reference(tmp_path: Path) -> tuple[Path, list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    reference = prepare_onnx(tiny_classifier(tmp_path / "tiny.onnx", size=32), tmp_path / "ref.onnx").dst
    calib = [rng.uniform(0, 1, (40, 3, 32, 32)).astype(np.float32)]
    held_out = [rng.uniform(0, 1, (24, 3, 32, 32)).astype(np.float32)]
    return reference, calib, held_out


def test_calibration_runs_once_and_bias_shifts_are_kept_across_the_tries(tmp_path: Path) -> None:
    reference, calib, held_out = _reference(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    ws = Workspace(work, reference, ["input"], calib, held_out, run_all(reference, held_out),
                   TaskSpec(kind="classification", decoder="softmax-topk"), -1.0, Steps())
    candidates = build_int8(ws)  # a negative budget: every try misses, so every mixed try runs
    assert [c.name for c in candidates] == ["int8", "int8-mixed-1"]
    assert [c.passes[0].details["calibration"] for c in candidates] == ["measured", "cached"]
    full, mixed = (c.passes[1].details for c in candidates)
    assert (full["measured"], full["reused"]) == (3, 0)
    assert mixed["measured"] + mixed["reused"] == 3 - len(candidates[1].excluded_nodes)
    assert (work / "int8-bias-shifts.json").is_file()


def _biases(path: Path) -> dict[str, bytes]:
    import onnx
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i).tobytes() for i in onnx.load(str(path)).graph.initializer}


def test_a_layer_upstream_of_every_change_reuses_its_shift_exactly(tmp_path: Path) -> None:
    reference, calib, _ = _reference(tmp_path)
    full = quantize_int8_static(reference, tmp_path / "q.onnx", calibration=calib, input_names=["input"]).dst
    mixed = quantize_int8_static(reference, tmp_path / "q-fc.onnx", calibration=calib, input_names=["input"],
                                 nodes_to_exclude=["fc"]).dst
    cache = tmp_path / "shifts.json"

    def correct(src: Path, name: str, shift_cache: Path | None) -> dict[str, object]:
        return correct_bias(src, tmp_path / name, reference=reference, calibration=calib, input_names=["input"],
                            shift_cache=shift_cache).details

    first = correct(full, "a.onnx", cache)
    again = correct(full, "b.onnx", cache)
    assert (first["measured"], again["measured"], again["reused"]) == (3, 0, 3)
    assert again["mean_abs_shift"] == first["mean_abs_shift"]
    assert _biases(tmp_path / "a.onnx") == _biases(tmp_path / "b.onnx")
    # fc in float: conv1 and conv2 have the same ancestors as in full INT8, so their shifts are reused
    reused = correct(mixed, "c.onnx", cache)
    assert (reused["measured"], reused["reused"]) == (0, 2)
    correct(mixed, "d.onnx", None)
    assert _biases(tmp_path / "c.onnx") == _biases(tmp_path / "d.onnx")


def test_segments_measure_what_probing_the_whole_model_measures(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    reference, calib, _ = _reference(tmp_path)
    quantized = onnx.load(str(quantize_int8_static(reference, tmp_path / "q.onnx", calibration=calib,
                                                   input_names=["input"]).dst))
    feeds = [{"input": calib[0][i : i + 1]} for i in range(6)]
    runner = SegmentRunner(onnx, ort, quantized, feeds)
    outputs = [node.output[0] for node in quantized.graph.node if node.op_type in ("Conv", "Gemm")]
    assert len(outputs) == 3
    for name in outputs:  # one at a time, as bias correction asks
        whole = _channel_mean(probe_session(onnx, ort, quantized, [name]), [name], feeds)[name]
        assert np.array_equal(runner.channel_means([name])[name], whole)


def test_remembered_weight_quantization_writes_the_same_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference, calib, _ = _reference(tmp_path)
    ranges = tmp_path / "ranges.json"

    def quantize(name: str, exclude: tuple[str, ...]) -> bytes:
        path = quantize_int8_static(reference, tmp_path / name, calibration=calib, input_names=["input"],
                                    nodes_to_exclude=exclude, calibration_cache=ranges).dst
        return path.read_bytes()

    remembered = [quantize("m0.onnx", ()), quantize("m1.onnx", ("fc",)), quantize("m2.onnx", ())]
    monkeypatch.setattr(onnx_int8, "memoized_weight_quantization", contextlib.nullcontext)
    computed = [quantize("c0.onnx", ()), quantize("c1.onnx", ("fc",))]
    assert remembered == [computed[0], computed[1], computed[0]]
