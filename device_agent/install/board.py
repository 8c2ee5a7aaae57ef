"""Which board the agent is being installed on, and the runtime that suits it.

- Raspberry Pi: the device tree's model string (``/proc/device-tree/model``, e.g.
  ``Raspberry Pi 5 Model B Rev 1.0``): LiteRT (``ai-edge-litert``) with XNNPACK.
- Jetson: L4T's release file (``/etc/nv_tegra_release``, e.g. ``# R36 (release), REVISION:
  4.0``): onnxruntime-gpu with the TensorRT and CUDA providers. NVIDIA builds those wheels
  for each JetPack, and PyPI has none, so the installer takes a wheel path or an index URL.
- Anything else: generic ``arm64`` or ``x86_64`` with CPU onnxruntime.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

BoardKind = Literal["raspberry-pi", "jetson", "arm64", "x86_64", "other"]
BOARD_KINDS: tuple[BoardKind, ...] = ("raspberry-pi", "jetson", "arm64", "x86_64", "other")


@dataclass(frozen=True)
class Board:
    kind: BoardKind
    model: str  # what identified it, for the installer's output
    runtime: Literal["tflite", "onnxruntime-gpu", "onnxruntime"]
    extras: tuple[str, ...]  # the edgekit extras to install

    def describe(self) -> str:
        return f"{self.model} ({self.kind}): runtime {self.runtime}"


def _read(path: Path) -> str:
    try:
        return path.read_bytes().replace(b"\0", b"").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def board_for(kind: BoardKind, model: str = "") -> Board:
    """The board of a given kind (``--board`` overrides detection)."""
    if kind == "raspberry-pi":
        return Board(kind, model or "Raspberry Pi", "tflite", ("agent", "tflite"))
    if kind == "jetson":
        return Board(kind, model or "NVIDIA Jetson", "onnxruntime-gpu", ("agent",))
    return Board(kind, model or kind, "onnxruntime", ("agent",))


def detect_board(root: Path = Path("/"), machine: str | None = None) -> Board:
    """Detect the board from files under ``root`` and the CPU architecture."""
    model = _read(root / "proc/device-tree/model") or _read(root / "sys/firmware/devicetree/base/model")
    if model.lower().startswith("raspberry pi"):
        return board_for("raspberry-pi", model)
    l4t = _read(root / "etc/nv_tegra_release")
    if l4t:
        match = re.search(r"R(\d+) \(release\), REVISION: ([\d.]+)", l4t)
        release = f"L4T R{match.group(1)}.{match.group(2)}" if match else "L4T"
        return board_for("jetson", f"NVIDIA Jetson ({release}{', ' + model if model else ''})")
    arch = (machine or platform.machine()).lower()
    if arch in ("aarch64", "arm64"):
        return board_for("arm64", f"arm64 board{' ' + model if model else ''}")
    if arch in ("x86_64", "amd64"):
        return board_for("x86_64", "x86-64 machine")
    return board_for("other", arch)
