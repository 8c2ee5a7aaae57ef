"""``mobilenetv2`` and ``mobilenetv3-small``: torchvision-layout MobileNets, random weights.

There are no pretrained weights here on purpose (no downloads): weights are drawn from a
fixed seed and BatchNorm statistics are recalibrated on real photos, which is enough for
latency, size and FP32-vs-INT8 agreement studies. MobileNetV3-Small is in the zoo because
its HardSwish and squeeze-excite layers often run slower in INT8 than in FP32.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from device_agent.bundle.manifest import PreprocessSpec, TaskSpec
from edgekit.content.zoo.registry import ModelCard, register_model

INPUT_WH = (224, 224)
CLASSES = 1000
PREPROCESS = PreprocessSpec(
    size_wh=INPUT_WH, resize="center-crop", layout="NCHW", color="RGB",
    scale=1.0 / 255.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), crop_fraction=0.875,
)

# MobileNetV2 inverted residual stages: expand ratio t, channels c, repeats n, stride s.
V2_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

# MobileNetV3-Small: kernel, expanded, out, squeeze-excite, activation ("RE"/"HS"), stride.
V3_SMALL = [
    (3, 16, 16, True, "RE", 2), (3, 72, 24, False, "RE", 2), (3, 88, 24, False, "RE", 1),
    (5, 96, 40, True, "HS", 2), (5, 240, 40, True, "HS", 1), (5, 240, 40, True, "HS", 1),
    (5, 120, 48, True, "HS", 1), (5, 144, 48, True, "HS", 1), (5, 288, 96, True, "HS", 2),
    (5, 576, 96, True, "HS", 1), (5, 576, 96, True, "HS", 1),
]


def _divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of 8 without losing more than 10% (torchvision's rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn_act(c_in: int, c_out: int, k: int, *, stride: int = 1, groups: int = 1,
                 act: Callable[[], Any] | None, eps: float = 1e-5) -> Any:
    from torch import nn

    layers = [nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=False),
              nn.BatchNorm2d(c_out, eps=eps)]
    return nn.Sequential(*layers, *([act()] if act is not None else []))


def mobilenet_v2(classes: int = CLASSES) -> Any:
    """MobileNetV2, width 1.0: ``features`` (inverted residuals) then ``classifier``."""
    import torch
    from torch import nn

    class InvertedResidual(nn.Module):
        def __init__(self, c_in: int, c_out: int, stride: int, expand: int) -> None:
            super().__init__()
            mid = c_in * expand
            layers = [_conv_bn_act(c_in, mid, 1, act=nn.ReLU6)] if expand != 1 else []
            layers += [_conv_bn_act(mid, mid, 3, stride=stride, groups=mid, act=nn.ReLU6),
                       _conv_bn_act(mid, c_out, 1, act=None)]
            self.conv = nn.Sequential(*layers)
            self.residual = stride == 1 and c_in == c_out

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.conv(x) if self.residual else self.conv(x)

    features: list[nn.Module] = [_conv_bn_act(3, 32, 3, stride=2, act=nn.ReLU6)]
    c_in = 32
    for t, c, n, s in V2_STAGES:
        for i in range(n):
            features.append(InvertedResidual(c_in, c, s if i == 0 else 1, t))
            c_in = c
    features.append(_conv_bn_act(c_in, 1280, 1, act=nn.ReLU6))
    return nn.Sequential(
        nn.Sequential(*features), nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Dropout(0.2), nn.Linear(1280, classes)
    )


def mobilenet_v3_small(classes: int = CLASSES) -> Any:
    """MobileNetV3-Small: HardSwish, squeeze-excite with a hard sigmoid gate, 1024-wide head."""
    import torch
    from torch import nn

    class SqueezeExcite(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            squeezed = _divisible(channels // 4)
            self.fc1, self.fc2 = nn.Conv2d(channels, squeezed, 1), nn.Conv2d(squeezed, channels, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            scale = torch.nn.functional.adaptive_avg_pool2d(x, 1)
            return x * nn.functional.hardsigmoid(self.fc2(torch.relu(self.fc1(scale))))

    class Block(nn.Module):
        def __init__(self, c_in: int, k: int, mid: int, c_out: int, se: bool, act: str, stride: int) -> None:
            super().__init__()
            act_cls = nn.Hardswish if act == "HS" else nn.ReLU
            layers = [_conv_bn_act(c_in, mid, 1, act=act_cls, eps=1e-3)] if mid != c_in else []
            layers.append(_conv_bn_act(mid, mid, k, stride=stride, groups=mid, act=act_cls, eps=1e-3))
            layers += [SqueezeExcite(mid)] if se else []
            layers.append(_conv_bn_act(mid, c_out, 1, act=None, eps=1e-3))
            self.block = nn.Sequential(*layers)
            self.residual = stride == 1 and c_in == c_out

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.block(x) if self.residual else self.block(x)

    features: list[nn.Module] = [_conv_bn_act(3, 16, 3, stride=2, act=nn.Hardswish, eps=1e-3)]
    c_in = 16
    for k, mid, c_out, se, act, stride in V3_SMALL:
        features.append(Block(c_in, k, mid, c_out, se, act, stride))
        c_in = c_out
    features.append(_conv_bn_act(c_in, 6 * c_in, 1, act=nn.Hardswish, eps=1e-3))
    return nn.Sequential(
        nn.Sequential(*features), nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
        nn.Linear(6 * c_in, 1024), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(1024, classes),
    )


def _build(factory: Callable[[], Any], onnx_path: Path, *, seed: int, description: str) -> ModelCard:
    """Seeded init, BatchNorm recalibration on real photos, export; shared by both MobileNets."""
    import torch

    from converters import PASSES
    from edgekit.content.zoo.photos import recalibrate_batchnorm, sample_batch

    torch.manual_seed(seed)
    model = factory()
    batch = sample_batch(PREPROCESS, count=32, seed=seed)
    recalibrate_batchnorm(model, batch)
    PASSES["torch->onnx"](model, onnx_path, example_input=torch.from_numpy(batch[:1]), output_names=("logits",))
    return ModelCard(
        preprocess=PREPROCESS,
        task=TaskSpec(kind="classification", decoder="softmax-topk", labels=[f"class_{i}" for i in range(CLASSES)]),
        pretrained=False,
        description=description,
    )


@register_model("mobilenetv2")
def build_mobilenetv2(onnx_path: Path, /, *, seed: int) -> ModelCard:
    """MobileNetV2 1.0/224, random weights from ``seed``, BatchNorm calibrated on real photos."""
    return _build(mobilenet_v2, onnx_path, seed=seed,
                  description="MobileNetV2 1.0 224x224, random weights (seeded), BatchNorm calibrated on photos")


@register_model("mobilenetv3-small")
def build_mobilenetv3_small(onnx_path: Path, /, *, seed: int) -> ModelCard:
    """MobileNetV3-Small 224, random weights; HardSwish + SE, often slower in INT8 than FP32."""
    return _build(mobilenet_v3_small, onnx_path, seed=seed,
                  description="MobileNetV3-Small 224x224, random weights (seeded), HardSwish + SE; "
                  "often slower in INT8 than FP32")
