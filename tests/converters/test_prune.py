"""onnx-prune: channel groups kept consistent, MACs really removed, and least squares recovering the output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

# imported after the importorskip calls, so a missing extra skips the module instead of failing it
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from converters import PASSES, ConversionError  # noqa: E402
from converters.prune_groups import find_groups  # noqa: E402
from device_agent.bench.cost import model_cost  # noqa: E402


def _branchy(path: Path) -> Path:
    """An expand-depthwise-project block, a residual Add, a Concat and a pooled Gemm head."""
    rng = np.random.default_rng(0)

    def w(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)

    inits = [w("wa", 32, 3, 3, 3), w("ba", 32), w("wdw", 32, 1, 3, 3), w("bdw", 32), w("wb", 8, 32, 1, 1), w("bb", 8),
             w("wc", 8, 3, 1, 1), w("wd", 8, 3, 1, 1), w("we", 48, 16, 1, 1), w("be", 48), w("wf", 10, 48), w("bf", 10)]
    nodes = [
        helper.make_node("Conv", ["input", "wa", "ba"], ["a"], pads=[1, 1, 1, 1], name="expand"),
        helper.make_node("Relu", ["a"], ["a6"], name="relu_a"),
        helper.make_node("Conv", ["a6", "wdw", "bdw"], ["dw"], pads=[1, 1, 1, 1], group=32, name="depthwise"),
        helper.make_node("Relu", ["dw"], ["dwr"], name="relu_dw"),
        helper.make_node("Conv", ["dwr", "wb", "bb"], ["b"], name="project"),
        helper.make_node("Conv", ["input", "wc"], ["c"], name="shortcut"),
        helper.make_node("Add", ["b", "c"], ["sum"], name="residual"),
        helper.make_node("Conv", ["input", "wd"], ["d"], name="side"),
        helper.make_node("Concat", ["sum", "d"], ["cat"], axis=1, name="concat"),
        helper.make_node("Conv", ["cat", "we", "be"], ["e"], name="head"),
        helper.make_node("Relu", ["e"], ["er"], name="relu_e"),
        helper.make_node("GlobalAveragePool", ["er"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["logits"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(nodes, "branchy",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"input": x[i : i + 1]})[0] for i in range(len(x))])


def test_channels_shared_with_another_branch_stay_whole(tmp_path: Path) -> None:
    groups = {g.producer: g for g in find_groups(onnx.load(str(_branchy(tmp_path / "m.onnx"))))}
    assert (groups["expand"].prunable and groups["expand"].through == ["depthwise"]
            and groups["expand"].consumer == "project")
    assert groups["head"].prunable and groups["head"].consumer == "fc" and groups["head"].pooled_input == "er"
    assert groups["project"].skipped.startswith("reaches Add 'residual'")
    assert groups["shortcut"].skipped.startswith("reaches Add") and groups["side"].skipped.startswith("reaches Concat")


def test_pruning_cuts_whole_channels_and_the_graph_stays_consistent(tmp_path: Path) -> None:
    src = _branchy(tmp_path / "m.onnx")
    x = np.random.default_rng(1).uniform(-1, 1, (24, 3, 16, 16)).astype(np.float32)
    report = PASSES["onnx-prune"](src, tmp_path / "p.onnx", ratio=0.3, calibration=x)
    pruned = onnx.load(str(tmp_path / "p.onnx"))
    onnx.checker.check_model(pruned, full_check=True)
    weights = {i.name: numpy_helper.to_array(i).shape for i in pruned.graph.initializer}
    expand = weights["wa"][0]
    assert expand % 8 == 0 and expand < 32 and weights["wdw"][0] == weights["bdw"][0] == expand  # depthwise cut alike
    assert weights["wb"][1] == expand and weights["wb"][0] == 8  # project reads fewer channels, writes all 8
    assert weights["wc"] == (8, 3, 1, 1) and weights["wd"] == (8, 3, 1, 1)  # the residual and concat branches are whole
    assert weights["we"][0] == weights["wf"][1]  # the head's channels and the Gemm's inputs agree
    depthwise = next(n for n in pruned.graph.node if n.name == "depthwise")
    assert helper.get_attribute_value(next(a for a in depthwise.attribute if a.name == "group")) == expand
    assert _run(tmp_path / "p.onnx", x[:2]).shape == (2, 10)
    before, after = model_cost(src), model_cost(tmp_path / "p.onnx")
    assert report.details["macs_before"] == before.macs and report.details["macs_after"] == after.macs
    assert 1 - after.macs / before.macs >= 0.3 * 0.99 and after.params < before.params
    assert report.details["skipped"] == {"reaches Add": 2, "reaches Concat": 1}


def test_bad_requests_are_named(tmp_path: Path) -> None:
    src = _branchy(tmp_path / "m.onnx")
    x = np.random.default_rng(1).uniform(-1, 1, (24, 3, 16, 16)).astype(np.float32)
    with pytest.raises(ConversionError, match=r"ratio 1.5 is out of range; expected the fraction of MACs to remove"):
        PASSES["onnx-prune"](src, tmp_path / "p.onnx", ratio=1.5, calibration=x)
    with pytest.raises(ConversionError, match=r"at most \d+\.\d% of m.onnx's MACs can be removed .* asked for 90%"):
        PASSES["onnx-prune"](src, tmp_path / "p.onnx", ratio=0.9, calibration=x)
    with pytest.raises(ConversionError, match=r"3 calibration samples; at least 8"):
        PASSES["onnx-prune"](src, tmp_path / "p.onnx", ratio=0.2, calibration=x[:3])
    assert not (tmp_path / "p.onnx").exists()


def test_least_squares_recovers_a_pruned_pretrained_classifier(zoo, photo_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """EfficientNet-Lite0 (ImageNet weights), 20% of its MACs removed, on real photos: the re-fitted
    model stays closer to the original than the one with only the means folded in."""
    from edgekit.optimize.calibration import load_calibration
    from edgekit.optimize.validation import compare_outputs

    model = zoo("efficientnet-lite0")
    calib, held = load_calibration(photo_dir, preprocess=model.preprocess, input_shape=(1, 3, 224, 224)).split()
    reference = _run(model.onnx_path, held)
    results = {}
    for recover in (False, True):
        dst = tmp_path / f"p{recover}.onnx"
        report = PASSES["onnx-prune"](model.onnx_path, dst, ratio=0.2, calibration=calib, recover=recover,
                                      max_samples=48)
        assert report.details["macs_removed"] >= 0.2 * 0.99 and report.details["groups_pruned"] >= 4
        assert all(kept % 8 == 0 for kept, _ in report.details["channels"].values())
        results[recover] = compare_outputs(model.task, [[reference]], [[_run(dst, held)]])
    assert report.details["refitted_layers"] == report.details["groups_pruned"]  # every consumer here is pointwise
    assert results[True].details["mean_cosine"] > results[False].details["mean_cosine"]
    # measured 65 (50 without LS) on the benchmark photos: no training, no labels
    assert results[True].optimized >= 50.0


def test_optimize_prunes_then_quantizes_and_the_agent_runs_it(zoo, photo_dir: Path, video_file: Path, broker,  # type: ignore[no-untyped-def]
                                                             tmp_path: Path) -> None:
    """--prune 0.3 --precision int8: the pruned INT8 model ships, with the pruning in its report, and runs."""
    import json

    from device_agent.service.agent import Agent
    from device_agent.service.config import load_config
    from edgekit.optimize.pipeline import optimize
    from tests.device_agent.test_agent import write_config
    from tests.support.mqtt_broker import Collector

    model = zoo("efficientnet-lite0")
    result = optimize(model.onnx_path, target="x86-cpu", output=tmp_path / "b", precision="int8", prune=0.3,
                      calib=photo_dir, preprocess=model.preprocess, labels=model.task.labels, task="classification",
                      max_drop=100, max_samples=96)
    names = {c["name"]: c for c in result.report.to_json()["candidates"]}
    assert result.winner == "int8-pruned" and {"fp32", "fp32-pruned", "int8-pruned"} <= set(names)
    prune = names["int8-pruned"]["passes"][0]
    assert prune["name"] == "onnx-prune" and prune["macs_removed"] >= 0.3 * 0.99
    assert prune["macs_after"] < 0.71 * prune["macs_before"] and prune["params_after"] < prune["params_before"]
    assert names["fp32-pruned"]["value"] < 100.0  # validated against the original, not against itself
    manifest = json.loads((result.bundle / "manifest.json").read_text())
    assert manifest["precision"] == "int8" and manifest["performance"]["cost"]["macs"] < 0.71 * prune["macs_before"]
    collector = Collector(broker)
    agent = Agent(load_config(write_config(tmp_path / "agent", result.bundle, video_file, broker)))  # golden self test
    assert agent.run(max_frames=20) == 0
    assert collector.wait_for(lambda c: len(c.received("/results")) >= 20, timeout=10)
    assert {r["result"]["kind"] for r in collector.received("/results")} == {"classification"}
    collector.close()


def test_optimize_refuses_a_bad_prune_ratio(zoo, photo_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from edgekit.errors import UsageError
    from edgekit.optimize.pipeline import optimize

    with pytest.raises(UsageError, match=r"^prune 1.3 is out of range; expected the fraction of MACs to remove"):
        optimize(zoo("efficientnet-lite0").onnx_path, target="x86-cpu", output=tmp_path / "b", prune=1.3,
                 calib=photo_dir)
    assert not (tmp_path / "b").exists()


def test_trained_weights_go_back_into_the_onnx_model(tmp_path: Path) -> None:
    """write_parameters undoes what onnx_to_torch did to weights (a Gemm's layout): untouched, nothing moves."""
    torch = pytest.importorskip("torch")
    from converters.onnx_torch import onnx_to_torch, write_parameters

    model = onnx.load(str(_branchy(tmp_path / "m.onnx")))
    before = {i.name: numpy_helper.to_array(i).copy() for i in model.graph.initializer}
    module = onnx_to_torch(model)
    assert write_parameters(module, model) == len(before) == 12  # every weight and bias
    for init in model.graph.initializer:
        np.testing.assert_array_equal(numpy_helper.to_array(init), before[init.name])
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
    write_parameters(module, model)
    after = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    np.testing.assert_allclose(after["wf"], before["wf"] + 1.0, rtol=1e-6)  # the Gemm's [N, K] weight, same layout
    np.testing.assert_allclose(after["wdw"], before["wdw"] + 1.0, rtol=1e-6)


def test_the_fine_tuning_hook_trains_the_pruned_model_with_the_users_loss(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from edgekit.errors import UsageError
    from edgekit.optimize.finetune import FineTune
    from edgekit.optimize.pipeline import optimize

    src = _branchy(tmp_path / "m.onnx")
    x = np.random.default_rng(2).uniform(-1, 1, (40, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "calib.npy", x)
    teacher = _run(src, x)  # the user's "labels" here: the original's outputs (distillation, no labels needed)
    loader = [(x[i : i + 8], teacher[i : i + 8]) for i in range(0, len(x), 8)]
    spec = FineTune(loader, lambda out, target: torch.nn.functional.mse_loss(out, target), epochs=6, lr=3e-3)
    result = optimize(src, target="x86-cpu", output=tmp_path / "b", precision="fp32", prune=0.3, finetune=spec,
                      calib=tmp_path / "calib.npy", max_drop=100)
    names = {c["name"]: c for c in result.report.to_json()["candidates"]}
    passes = names["fp32-pruned"]["passes"]
    assert [p["name"] for p in passes[:2]] == ["onnx-prune", "finetune"]
    losses = passes[1]["loss_per_epoch"]
    assert len(losses) == 6 and losses[-1] < 0.8 * losses[0]  # it learned
    with pytest.raises(UsageError, match="give prune=RATIO too"):
        optimize(src, target="x86-cpu", output=tmp_path / "c", finetune=spec, calib=tmp_path / "calib.npy")
    with pytest.raises(UsageError, match="epochs 0 must be at least 1"):
        FineTune(loader, lambda out, target: out.sum(), epochs=0)


def test_a_pytorch_model_is_pruned_and_quantized_for_rpi5_and_the_agent_runs_it(photo_dir: Path, video_file: Path,
                                                                                 broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A PyTorch module in (exported to ONNX, then pruned as one), full-integer TFLite INT8 out."""
    torch = pytest.importorskip("torch")
    from device_agent.bundle.manifest import PreprocessSpec
    from device_agent.service.agent import Agent
    from device_agent.service.config import load_config
    from edgekit.optimize.pipeline import optimize
    from tests.device_agent.test_agent import write_config
    from tests.support.mqtt_broker import Collector

    class Block(torch.nn.Module):  # type: ignore[misc]
        def __init__(self, c: int, expand: int) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(
                torch.nn.Conv2d(c, c * expand, 1), torch.nn.BatchNorm2d(c * expand), torch.nn.ReLU6(),
                torch.nn.Conv2d(c * expand, c * expand, 3, padding=1, groups=c * expand), torch.nn.ReLU6(),
                torch.nn.Conv2d(c * expand, c, 1))

        def forward(self, x):  # type: ignore[no-untyped-def]
            return x + self.body(x)

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.ReLU6(), Block(16, 6), Block(16, 6),
                              torch.nn.Conv2d(16, 64, 1), torch.nn.ReLU6(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    spec = PreprocessSpec(size_wh=(96, 96), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    result = optimize(net, example_input=torch.zeros(1, 3, 96, 96), target="rpi5", output=tmp_path / "b",
                      precision="int8", prune=0.3, calib=photo_dir, preprocess=spec, task="classification",
                      max_drop=100, max_samples=80)
    names = {c["name"]: c for c in result.report.to_json()["candidates"]}
    assert result.winner == "int8-pruned" and result.manifest.model.format == "tflite"
    passes = [p["name"] for p in names["int8-pruned"]["passes"]]
    assert passes[0] == "onnx-prune" and "torch->tflite" in passes
    assert names["int8-pruned"]["passes"][0]["macs_removed"] >= 0.3 * 0.99
    collector = Collector(broker)
    agent = Agent(load_config(write_config(tmp_path / "agent", result.bundle, video_file, broker)))  # golden self test
    assert agent.run(max_frames=20) == 0
    assert collector.wait_for(lambda c: len(c.received("/results")) >= 20, timeout=10)
    collector.close()


def test_magnitude_sparsity_shrinks_the_compressed_download_only(tmp_path: Path) -> None:
    """NNCF's unstructured sparsity: half the weights zero, the same .onnx size, a smaller deflated one."""
    pytest.importorskip("nncf")
    from edgekit.errors import UsageError
    from edgekit.optimize.pipeline import optimize

    src = _branchy(tmp_path / "m.onnx")
    report = PASSES["onnx-sparsity"](src, tmp_path / "s.onnx", ratio=0.5)
    d = report.details
    assert d["layers"] == 7 and abs(d["weights_zero"] - 0.5) < 0.02  # global: 50 % of all conv/gemm weights
    assert d["bytes_after"] == d["bytes_before"] and d["deflated_after"] < 0.8 * d["deflated_before"]
    x = np.random.default_rng(3).uniform(-1, 1, (4, 3, 16, 16)).astype(np.float32)
    assert _run(tmp_path / "s.onnx", x).shape == (4, 10)
    np.save(tmp_path / "calib.npy", np.random.default_rng(4).uniform(-1, 1, (40, 3, 16, 16)).astype(np.float32))
    result = optimize(src, target="x86-cpu", output=tmp_path / "b", precision="auto", sparsity=0.5,
                      calib=tmp_path / "calib.npy", max_drop=100)
    names = {c["name"]: c for c in result.report.to_json()["candidates"]}
    assert {"fp32", "fp32-sparse"} <= set(names) and "fp32-pruned" not in names
    assert "download size only, no speedup" in names["fp32-sparse"]["note"]
    with pytest.raises(UsageError, match=r"^sparsity 1.0 is out of range"):
        optimize(src, target="x86-cpu", output=tmp_path / "c", sparsity=1.0, calib=tmp_path / "calib.npy")
