"""The model zoo and the torch->onnx pass, on real tiny models built in tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
skimage_data = pytest.importorskip("skimage.data")

from converters import PASSES, ConversionError  # noqa: E402
from converters.torch_onnx import export_torch_to_onnx  # noqa: E402
from device_agent.pipeline.preprocess import preprocess  # noqa: E402
from edgekit.content.zoo import ZOO, ZooModel, build_model  # noqa: E402
from edgekit.errors import UsageError  # noqa: E402

CAT_CLASSES = {281, 282, 283, 284, 285}
CUP_CLASSES = {967, 968, 504}


def _run(model: ZooModel, photo_rgb: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model.onnx_path), providers=["CPUExecutionProvider"])
    x, _ = preprocess(np.ascontiguousarray(photo_rgb[..., ::-1]), model.preprocess)  # RGB -> BGR frame
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Honour an existing EDGEKIT_CACHE; otherwise one download per test session."""
    existing = os.environ.get("EDGEKIT_CACHE")
    return Path(existing) if existing else tmp_path_factory.mktemp("edgekit-cache")


# --- torch -> onnx -------------------------------------------------------------------


def _tiny_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4),
    )


def test_torch_export_matches_torch(tmp_path: Path) -> None:
    net, x = _tiny_net(), torch.randn(1, 3, 32, 32)
    report = export_torch_to_onnx(net, tmp_path / "tiny.onnx", example_input=x, output_names=("logits",))
    assert PASSES["torch->onnx"] is export_torch_to_onnx
    assert report.details["exporter"] in {"dynamo", "torchscript"}
    assert report.details["max_abs_diff"] < 1e-4
    assert report.details["param_count"] == sum(p.numel() for p in net.parameters())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.onnx"]  # no external data beside it
    session = ort.InferenceSession(str(tmp_path / "tiny.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 3, 32, 32]  # static shapes
    got = session.run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, net.eval()(x).detach().numpy(), atol=1e-4)


def test_torch_export_rejects_a_non_module(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="torch.nn.Module"):
        export_torch_to_onnx(lambda t: t, tmp_path / "x.onnx", example_input=torch.zeros(1, 3))


# --- registry ----------------------------------------------------------------------------


def test_unknown_zoo_name_lists_the_known_names(tmp_path: Path) -> None:
    assert {"efficientnet-lite0", "mobilenetv2", "mobilenetv3-small", "yolov8n"} <= set(ZOO)
    with pytest.raises(UsageError, match=r"known models: .*mobilenetv2.*yolov8n"):
        build_model("resnet-9000", tmp_path)


# --- models ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mobilenetv2", "mobilenetv3-small"])
def test_mobilenets_build_and_run(name: str, tmp_path: Path) -> None:
    model = build_model(name, tmp_path, seed=0)
    assert model.onnx_path == tmp_path / f"{name}.onnx" and not model.pretrained
    assert model.task.kind == "classification" and len(model.task.labels) == 1000
    logits = _run(model, skimage_data.coffee())
    assert logits.shape == (1, 1000) and np.isfinite(logits).all()
    assert logits.std() > 1e-3  # calibrated BatchNorm: the output is not collapsed
    # The cache: a second build reuses the file, and the sidecar restores the specs.
    mtime = model.onnx_path.stat().st_mtime_ns
    again = build_model(name, tmp_path, seed=0)
    assert again == model and again.onnx_path.stat().st_mtime_ns == mtime


def test_yolov8n_has_the_ultralytics_layout(tmp_path: Path) -> None:
    model = build_model("yolov8n", tmp_path, seed=0)
    assert model.task.decoder == "yolov8" and len(model.task.labels) == 80
    assert model.preprocess.resize == "letterbox" and model.preprocess.size_wh == (320, 320)
    hits = []
    for photo in (skimage_data.astronaut(), skimage_data.coffee(), skimage_data.chelsea()):
        out = _run(model, photo)
        assert out.shape == (1, 84, 2100)
        box_cxcywh, scores = out[0, :4], out[0, 4:]
        assert (box_cxcywh[2:] > 0).all()  # widths and heights
        assert ((scores >= 0) & (scores <= 1)).all()
        hits.append(int((scores.max(0) > model.task.score_threshold).sum()))
    assert sum(hits) >= 1 and max(hits) < 500, hits  # a handful, not nothing and not everything


@pytest.mark.slow
@pytest.mark.parametrize(("name", "side"), [("efficientnet-lite0", 224), ("efficientnet-lite1", 240),
                                            ("efficientnet-lite2", 260)])
def test_efficientnet_lite_classifies_real_photos(
    name: str, side: int, tmp_path: Path, zoo_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each variant's weights load strictly into the scaled network (a wrong width or repeat
    count fails the load) and the result names a cat and a coffee cup in real photos."""
    monkeypatch.setenv("EDGEKIT_CACHE", str(zoo_cache))
    model = build_model(name, tmp_path)
    assert model.pretrained and model.task.labels[281] == "tabby" and model.task.labels[967] == "espresso"
    assert model.preprocess.size_wh == (side, side)
    cat = _run(model, skimage_data.chelsea())
    cup = _run(model, skimage_data.coffee())
    assert cat.shape == (1, 1000)
    assert int(cat.argmax()) in CAT_CLASSES, model.task.labels[int(cat.argmax())]
    assert int(cup.argmax()) in CUP_CLASSES, model.task.labels[int(cup.argmax())]
