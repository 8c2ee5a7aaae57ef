"""Which board the agent is being installed on, and the one runtime that suits it.

The agent installs as ``edgekit[agent]`` plus exactly one runtime extra: ``tflite`` (LiteRT)
or ``onnx`` (onnxruntime). ``--runtime`` overrides the board's choice.

- Raspberry Pi: the device tree's model string (``/proc/device-tree/model``, e.g.
  ``Raspberry Pi 5 Model B Rev 1.0``): ``tflite``, LiteRT (``ai-edge-litert``) with XNNPACK.
- Jetson: L4T's release file (``/etc/nv_tegra_release``, e.g. ``# R36 (release), REVISION:
  4.0``): ``onnx``, then onnxruntime-gpu with the TensorRT and CUDA providers in place of the
  CPU build. NVIDIA builds those wheels for each JetPack, and PyPI has none, so the installer
  takes a wheel path or an index URL.
- Anything else: generic ``arm64`` or ``x86_64``: ``onnx``, CPU onnxruntime.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

BoardKind = Literal["raspberry-pi", "jetson", "arm64", "x86_64", "other"]
BOARD_KINDS: tuple[BoardKind, ...] = ("raspberry-pi", "jetson", "arm64", "x86_64", "other")
RuntimeExtra = Literal["onnx", "tflite"]
RUNTIME_EXTRAS: tuple[RuntimeExtra, ...] = ("onnx", "tflite")
"""The edgekit extras that each install one inference runtime (``--runtime``)."""


@dataclass(frozen=True)
class Board:
    kind: BoardKind
    model: str  # what identified it, for the installer's output
    runtime: Literal["tflite", "onnxruntime-gpu", "onnxruntime"]
    extras: tuple[str, ...]  # the edgekit extras to install: "agent" and one of RUNTIME_EXTRAS

    def describe(self) -> str:
        return f"{self.model} ({self.kind}): runtime {self.runtime}, edgekit[{','.join(self.extras)}]"


def _read(path: Path) -> str:
    try:
        return path.read_bytes().replace(b"\0", b"").decode("utf-8", "replace").strip()
    except OSError:
        return ""


_NAMES: dict[BoardKind, str] = {"raspberry-pi": "Raspberry Pi", "jetson": "NVIDIA Jetson"}


def board_for(kind: BoardKind, model: str = "", runtime: RuntimeExtra | None = None) -> Board:
    """The board of a given kind (``--board`` overrides detection), with the runtime extra that
    suits it: ``tflite`` on a Raspberry Pi, ``onnx`` elsewhere, unless ``runtime`` says otherwise."""
    extra: RuntimeExtra = runtime or ("tflite" if kind == "raspberry-pi" else "onnx")
    name = model or _NAMES.get(kind, kind)
    if extra == "tflite":
        return Board(kind, name, "tflite", ("agent", "tflite"))
    return Board(kind, name, "onnxruntime-gpu" if kind == "jetson" else "onnxruntime", ("agent", "onnx"))


def detect_board(root: Path = Path("/"), machine: str | None = None, runtime: RuntimeExtra | None = None) -> Board:
    """Detect the board from files under ``root`` and the CPU architecture; ``runtime`` overrides its runtime."""
    model = _read(root / "proc/device-tree/model") or _read(root / "sys/firmware/devicetree/base/model")
    if model.lower().startswith("raspberry pi"):
        return board_for("raspberry-pi", model, runtime)
    l4t = _read(root / "etc/nv_tegra_release")
    if l4t:
        match = re.search(r"R(\d+) \(release\), REVISION: ([\d.]+)", l4t)
        release = f"L4T R{match.group(1)}.{match.group(2)}" if match else "L4T"
        return board_for("jetson", f"NVIDIA Jetson ({release}{', ' + model if model else ''})", runtime)
    arch = (machine or platform.machine()).lower()
    if arch in ("aarch64", "arm64"):
        return board_for("arm64", f"arm64 board{' ' + model if model else ''}", runtime)
    if arch in ("x86_64", "amd64"):
        return board_for("x86_64", "x86-64 machine", runtime)
    return board_for("other", arch, runtime)
