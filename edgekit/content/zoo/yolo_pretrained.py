"""``yolov8n-nudenet``: a real trained YOLOv8n detector in our own PyTorch module.

The random-weight ``yolov8n`` is fine for plumbing but says little about INT8 accuracy:
random networks amplify quantization noise, and their DFL box distributions are flat.
This entry is a network trained by someone else: the ``nudenet`` 3.4.2 wheel on PyPI ships
an Ultralytics 8.2.46 YOLOv8n export (``320n.onnx``, 320x320, 18 classes: faces, feet,
belly, armpits and other body parts, covered or exposed). We read its initializers (BatchNorm
already folded into the convolutions, Ultralytics' module names) into the ``yolov8n``
module of :mod:`edgekit.content.zoo.yolo`, with each BatchNorm an identity, so the result is a
plain ``torch.nn.Module`` that computes what the export computes (checked to 1e-4).

License: the weights are AGPL-3.0 (Ultralytics). EdgeKit never ships them: they are
downloaded from PyPI into the zoo cache when this entry is built, for tests and benchmarks.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import numpy as np

from device_agent.bundle.manifest import TaskSpec
from edgekit.content.zoo.pypi import WheelWeights
from edgekit.content.zoo.registry import ModelCard, register_model
from edgekit.content.zoo.yolo import PREPROCESS, yolov8n
from edgekit.errors import EdgeKitError

WEIGHTS = WheelWeights(
    package="nudenet==3.4.2",
    wheel="nudenet-3.4.2-py3-none-any.whl",
    member="nudenet/320n.onnx",
    sha256="c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f",
)
SCORE_THRESHOLD = 0.25
#: Largest ``max|ours - export|`` accepted on a photo, relative to the output's largest value.
MATCH_TOLERANCE = 1e-4

# Ultralytics' layer index in the YOLOv8 yaml -> our module path (see yolo_net.YOLOv8n).
_LAYERS = {
    "0": "stem.0", "1": "stem.1", "2": "stem.2", "3": "stem.3", "4": "p3", "5": "p4.0", "6": "p4.1",
    "7": "p5.0", "8": "p5.1", "9": "p5.2", "12": "top_down4", "15": "top_down3", "16": "down3",
    "18": "bottom_up4", "19": "down4", "21": "bottom_up5", "22": "detect",
}  # fmt: skip


def _our_name(name: str) -> tuple[str, str]:
    """``model.22.cv2.0.0.conv.weight`` -> (``detect.cv2.0.0.0``, ``weight``): the conv of a Conv block
    is our Sequential's item 0; a bare ``nn.Conv2d`` (the heads' last layer, the DFL) keeps its name."""
    match = re.fullmatch(r"model\.(\d+)\.(.+)\.(weight|bias)", name)
    if match is None or match.group(1) not in _LAYERS:
        raise EdgeKitError(f"unexpected initializer {name!r} in {WEIGHTS.member}; expected model.<layer>.<...>")
    layer, path, kind = match.groups()
    path = re.sub(r"(^|\.)conv$", r"\g<1>0", path)
    return f"{_LAYERS[layer]}.{path}" if path else _LAYERS[layer], kind


def load_pretrained() -> tuple[Any, list[str]]:
    """Our YOLOv8n module carrying the trained weights (eval mode), and the class names."""
    import onnx
    import torch
    from onnx import numpy_helper

    model_proto = onnx.load_from_string(WEIGHTS.fetch("yolov8n-nudenet"))
    names_text = next(p.value for p in model_proto.metadata_props if p.key == "names")
    names = ast.literal_eval(names_text)
    labels = [names[i] for i in range(len(names))]
    model = yolov8n(classes=len(labels)).eval()
    modules = dict(model.named_modules())
    loaded = 0
    with torch.no_grad():
        for init in model_proto.graph.initializer:
            if not init.name.startswith("model.") or init.name.startswith("model.22.dfl"):
                continue  # Ultralytics' constants, and the DFL's fixed arange (ours is the same)
            module_name, kind = _our_name(init.name)
            value = torch.from_numpy(numpy_helper.to_array(init).copy())
            module = modules[module_name]
            if isinstance(module, torch.nn.Conv2d) and (kind == "weight" or module.bias is not None):
                getattr(module, kind).copy_(value)
            else:  # a Conv block's folded bias: its BatchNorm becomes an identity that adds it
                bn = modules[module_name[:-1] + "1"]
                bn.weight.fill_(1.0)
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
                bn.bias.copy_(value)
            loaded += 1
    _check_matches(model, model_proto, loaded)
    return model, labels


def _check_matches(model: Any, model_proto: Any, loaded: int) -> None:
    """Run the module and the export on a real photo; they must agree."""
    import onnxruntime as ort
    import torch

    from edgekit.content.zoo.photos import sample_batch

    photo = sample_batch(PREPROCESS, count=1, seed=3)
    session = ort.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: photo})[0]
    with torch.no_grad():
        got = model(torch.from_numpy(photo)).numpy()
    error = float(np.abs(got - expected).max()) / max(1.0, float(np.abs(expected).max()))
    if got.shape != expected.shape or error > MATCH_TOLERANCE:
        raise EdgeKitError(f"yolov8n-nudenet: our module ({loaded} tensors loaded) differs from the export "
                           f"by {error:.3g} (relative; shapes {list(got.shape)} vs {list(expected.shape)})")


@register_model("yolov8n-nudenet")
def build_yolov8n_nudenet(onnx_path: Path, /, *, seed: int) -> ModelCard:
    """Real trained YOLOv8n, 320x320, 18 classes; ``seed`` is unused (nothing is random)."""
    import torch

    from converters import PASSES
    from edgekit.content.zoo.photos import sample_batch

    del seed
    model, labels = load_pretrained()
    example = torch.from_numpy(sample_batch(PREPROCESS, count=1))
    PASSES["torch->onnx"](model, onnx_path, example_input=example, output_names=("output0",))
    return ModelCard(
        preprocess=PREPROCESS,
        task=TaskSpec(kind="detection", decoder="yolov8", labels=labels, score_threshold=SCORE_THRESHOLD,
                      iou_threshold=0.45),
        pretrained=True,
        description="YOLOv8n 320x320 trained by NudeNet (Ultralytics 8.2.46; 18 classes: faces and body parts), "
        "AGPL-3.0 weights fetched from PyPI (nudenet==3.4.2) into our PyTorch module; output [1, 22, 2100]",
    )

