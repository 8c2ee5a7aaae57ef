"""The YOLOv8n network itself (width 0.25, depth 0.33), as PyTorch modules.

Split from :mod:`edgekit.content.zoo.yolo` (the zoo entry: labels, preprocessing, biases,
export) so the network reads as a network, block by block, instead of classes nested in a
100-line function. It imports torch at module level: import it only while building a model
(``yolo.yolov8n`` does), so listing the zoo needs no torch. The module and attribute names
follow Ultralytics' layout, which :mod:`edgekit.content.zoo.yolo_pretrained` maps weights onto.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

REG_MAX = 16
STRIDES = (8, 16, 32)


def _anchors(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres ``[2, N]`` and strides ``[1, N]`` for every level, in Ultralytics order."""
    points, strides = [], []
    for stride in STRIDES:
        n = size // stride
        ys, xs = np.meshgrid(np.arange(n) + 0.5, np.arange(n) + 0.5, indexing="ij")
        points.append(np.stack([xs.ravel(), ys.ravel()]))
        strides.append(np.full((1, n * n), stride))
    return np.concatenate(points, 1).astype(np.float32), np.concatenate(strides, 1).astype(np.float32)


class Conv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False), nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03),
            nn.SiLU(),
        )


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool) -> None:
        super().__init__()
        self.cv1, self.cv2, self.add = Conv(c, c, 3), Conv(c, c, 3), shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    def __init__(self, c_in: int, c_out: int, n: int = 1, shortcut: bool = False) -> None:
        super().__init__()
        self.c = c_out // 2
        self.cv1, self.cv2 = Conv(c_in, 2 * self.c), Conv((2 + n) * self.c, c_out)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.cv1, self.cv2 = Conv(c_in, c_in // 2), Conv(c_in // 2 * 4, c_out)
        self.m = nn.MaxPool2d(5, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        y.extend(self.m(y[-1]) for _ in range(3))
        return self.cv2(torch.cat(y, 1))


class Detect(nn.Module):
    """Box regression with DFL and class scores per level, decoded in the graph to ``[B, 4 + classes, N]``."""

    anchors: torch.Tensor  # buffers, registered in __init__
    strides: torch.Tensor

    def __init__(self, channels: tuple[int, ...], classes: int, size: int) -> None:
        super().__init__()
        c2, c3 = max(16, channels[0] // 4, REG_MAX * 4), max(channels[0], min(classes, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(c, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * REG_MAX, 1)) for c in channels
        )
        self.cv3 = nn.ModuleList(
            nn.Sequential(Conv(c, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, classes, 1)) for c in channels
        )
        self.dfl = nn.Conv2d(REG_MAX, 1, 1, bias=False).requires_grad_(False)
        self.dfl.weight.data[:] = torch.arange(REG_MAX, dtype=torch.float32).view(1, REG_MAX, 1, 1)
        points, strides = _anchors(size)
        self.register_buffer("anchors", torch.from_numpy(points)[None])
        self.register_buffer("strides", torch.from_numpy(strides)[None])

    def class_logits(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Pre-sigmoid class scores ``[B, classes, N]``, used to set the biases."""
        return torch.cat([head(f).flatten(2) for head, f in zip(self.cv3, feats)], 2)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        b = feats[0].shape[0]
        box = torch.cat([head(f).flatten(2) for head, f in zip(self.cv2, feats)], 2)
        # DFL: each side is the expectation of a 16-bin distribution, in stride units.
        dist = self.dfl(box.view(b, 4, REG_MAX, -1).transpose(2, 1).softmax(1)).view(b, 4, -1)
        lt, rb = dist.chunk(2, 1)
        x1y1, x2y2 = self.anchors - lt, self.anchors + rb
        xywh = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * self.strides
        return torch.cat((xywh, self.class_logits(feats).sigmoid()), 1)


class YOLOv8n(nn.Module):
    """YOLOv8n: backbone (stem, p3-p5 with SPPF), PAN neck, decoupled head with the export decode."""

    def __init__(self, classes: int, size: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(Conv(3, 16, 3, 2), Conv(16, 32, 3, 2), C2f(32, 32, 1, True), Conv(32, 64, 3, 2))
        self.p3 = C2f(64, 64, 2, True)
        self.p4 = nn.Sequential(Conv(64, 128, 3, 2), C2f(128, 128, 2, True))
        self.p5 = nn.Sequential(Conv(128, 256, 3, 2), C2f(256, 256, 1, True), SPPF(256, 256))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.top_down4, self.top_down3 = C2f(384, 128), C2f(192, 64)
        self.down3, self.bottom_up4 = Conv(64, 64, 3, 2), C2f(192, 128)
        self.down4, self.bottom_up5 = Conv(128, 128, 3, 2), C2f(384, 256)
        self.detect = Detect((64, 128, 256), classes, size)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3 = self.p3(self.stem(x))
        c4 = self.p4(c3)
        c5 = self.p5(c4)
        n4 = self.top_down4(torch.cat((self.up(c5), c4), 1))
        n3 = self.top_down3(torch.cat((self.up(n4), c3), 1))
        o4 = self.bottom_up4(torch.cat((self.down3(n3), n4), 1))
        o5 = self.bottom_up5(torch.cat((self.down4(o4), c5), 1))
        return [n3, o4, o5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.detect(self.features(x))
