"""What this CPU can compute at best: its peak operations per second, for roofline figures.

Why: a measured MACs/s means little alone; set against the CPU's peak it says how much of
the machine a model uses. The peak is a paper figure from the ISA features in
``/proc/cpuinfo``, the maximum clock and a per-core table of operations per cycle (one MAC is
two operations):

==========  =========  ==========================================================================
family      precision  ops/cycle per core
==========  =========  ==========================================================================
x86         fp32       64 with ``avx512f`` (16 lanes x 2 FMA units, 2 units assumed); 32 with
                       ``avx2`` + ``fma`` (8 lanes x 2 units); 8 otherwise (SSE)
x86         fp16       2 x fp32 with ``avx512_fp16``; else as fp32 (fp16 is computed in fp32)
x86         int8       256 with ``avx512_vnni`` (64 MACs per VPDPBUSD x 2 units assumed); 128 with
                       ``avx_vnni``; 64 with ``avx2`` (VPMADDUBSW); 16 otherwise. AMX
                       (``amx_int8``) is ignored: onnxruntime and LiteRT do not use it for these
                       models
arm64       fp32       16 (2 x 128-bit FMA pipes, assumed for every core: right for
                       Cortex-A72/A76-class cores, optimistic for A53/A55)
arm64       fp16       32 with ``fphp``/``asimdhp``; else as fp32
arm64       int8       128 with ``i8mm`` (SMMLA); 64 with ``asimddp`` (SDOT); 32 otherwise
armv7, ...  any        no entry: the peak is unknown (``None``)
==========  =========  ==========================================================================

peak GOPS = ops/cycle per core x threads (at most the cores) x the maximum clock in GHz. The
clock is ``cpuinfo_max_freq`` from sysfs, else ``cpu MHz`` from ``/proc/cpuinfo`` (in a VM
that is the nominal clock, not the turbo), else unknown and so is the peak. A device's
target profile can state its peak instead: :func:`peak_from_profile`.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRECISIONS = ("fp32", "fp16", "int8")

_CPUINFO = Path("/proc/cpuinfo")
_MAX_FREQ_KHZ = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")

# ISA features worth reporting, in the order reported.
_RELEVANT_FEATURES = (
    "sse4_2", "avx", "avx2", "fma", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "amx_int8", "amx_bf16", "neon", "vfpv4", "asimd", "fphp", "asimdhp", "asimddp", "i8mm", "bf16", "sve", "sve2",
)

# Arm Ltd. ("CPU implementer : 0x41") core part numbers.
ARM_PARTS = {
    0xD03: "Cortex-A53",
    0xD04: "Cortex-A35",
    0xD05: "Cortex-A55",
    0xD07: "Cortex-A57",
    0xD08: "Cortex-A72",
    0xD0B: "Cortex-A76",
    0xD41: "Cortex-A78",
    0xD42: "Cortex-A78AE",
    0xD44: "Cortex-X1",
}

_X86 = {"x86_64", "amd64", "i386", "i686", "x86"}
_ARM64 = {"aarch64", "arm64"}


@dataclass(frozen=True)
class Peak:
    """A peak compute rate and how it was derived."""

    gops: float
    """Peak giga-operations per second (1 MAC = 2 operations)."""
    precision: str
    """``fp32``, ``fp16`` or ``int8``: the precision asked for."""
    source: str
    """How the figure was derived, in words, for the figure's caption."""


@dataclass(frozen=True)
class CpuInfo:
    """This CPU as far as a roofline needs it."""

    model: str
    """Model name, e.g. ``Intel(R) Xeon(R) ...`` or ``Cortex-A72 (Raspberry Pi 4 ...)``; ``unknown``."""
    arch: str
    """``platform.machine()``: ``x86_64``, ``aarch64``, ``armv7l``, ..."""
    cores: int
    """Logical CPUs this process may run on."""
    max_ghz: float | None
    """Maximum clock in GHz; ``None`` when unknown."""
    features: tuple[str, ...]
    """The ISA features found that matter for the peak (``avx512f``, ``asimddp``, ...)."""

    def peak_gops(self, precision: str, threads: int | None = None) -> Peak | None:
        """Peak for ``precision`` on ``threads`` threads (all cores when ``None`` or 0).

        ``None`` when the clock is unknown or the table has no entry for this architecture.
        """
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        if threads is not None and threads < 0:
            raise ValueError(f"threads must be 0 or more, got {threads}")
        per_core = _ops_per_cycle(self.arch, set(self.features), precision)
        if per_core is None or self.max_ghz is None:
            return None
        ops, basis = per_core
        used = min(threads or self.cores, self.cores)
        return Peak(
            gops=ops * used * self.max_ghz,
            precision=precision,
            source=(
                f"detected: {used} core{'s' if used != 1 else ''} x {self.max_ghz:.2f} GHz x "
                f"{ops} {precision.upper()} ops/cycle ({basis})"
            ),
        )

    def to_json(self) -> dict[str, Any]:
        peak_json: dict[str, dict[str, Any] | None] = {}
        for precision in PRECISIONS:
            peak = self.peak_gops(precision)
            peak_json[precision] = None if peak is None else {"gops": peak.gops, "source": peak.source}
        return {
            "model": self.model,
            "arch": self.arch,
            "cores": self.cores,
            "max_ghz": self.max_ghz,
            "features": list(self.features),
            "peak_gops": peak_json,
        }


def _ops_per_cycle(arch: str, features: set[str], precision: str) -> tuple[int, str] | None:
    """Operations per cycle per core and the reason, from the table in the module docstring."""
    family = arch.lower()
    if family in _X86:
        if precision == "fp16" and "avx512_fp16" in features:
            return 128, "AVX512-FP16 FMA, 2 units assumed"
        if precision in ("fp32", "fp16"):
            if "avx512f" in features:
                return 64, "AVX-512 FMA, 2 units assumed"
            if "avx2" in features and "fma" in features:
                return 32, "AVX2 FMA, 2 units"
            return 8, "SSE"
        if "avx512_vnni" in features:
            return 256, "AVX512-VNNI, 2 units assumed; AMX ignored"
        if "avx_vnni" in features:
            return 128, "AVX-VNNI, 2 units assumed"
        if "avx2" in features:
            return 64, "AVX2 VPMADDUBSW, 2 units assumed"
        return 16, "SSE"
    if family in _ARM64:
        if precision == "fp16" and features & {"fphp", "asimdhp"}:
            return 32, "NEON FP16 FMA, 2 x 128-bit pipes assumed"
        if precision in ("fp32", "fp16"):
            return 16, "NEON FMA, 2 x 128-bit pipes assumed"
        if "i8mm" in features:
            return 128, "I8MM SMMLA, 2 pipes assumed"
        if "asimddp" in features:
            return 64, "SDOT, 2 pipes assumed"
        return 32, "NEON multiply-accumulate, 2 pipes assumed"
    return None


def detect_cpu(
    cpuinfo_text: str | None = None,
    *,
    machine: str | None = None,
    max_khz: int | None = None,
    cores: int | None = None,
) -> CpuInfo:
    """Describe this CPU, or the one in a recorded ``/proc/cpuinfo``.

    With no arguments, reads ``/proc/cpuinfo``, ``platform.machine()``, the sysfs maximum
    clock of cpu0 and the CPUs this process may use. With ``cpuinfo_text`` given nothing is
    read from this machine: what is not passed is taken from the text (the architecture from
    its flags, the cores from its ``processor`` lines, the clock from ``cpu MHz``), so tests
    can feed recordings from other boards.
    """
    if cpuinfo_text is None:
        cpuinfo_text = _read(_CPUINFO) or ""
        machine = machine or platform.machine()
        if max_khz is None:
            max_khz = _int(_read(_MAX_FREQ_KHZ))
        if cores is None:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    fields = _fields(cpuinfo_text)
    features = set(" ".join(fields.get("flags", []) + fields.get("Features", [])).split())
    arch = machine or _arch_from_text(fields, features)
    if cores is None:
        cores = len(fields.get("processor", [])) or 1
    if max_khz is not None and max_khz > 0:
        max_ghz: float | None = max_khz / 1e6
    else:
        mhz = _float(fields.get("cpu MHz", [None])[0])
        max_ghz = mhz / 1e3 if mhz else None
    return CpuInfo(
        model=_model(fields),
        arch=arch,
        cores=max(cores, 1),
        max_ghz=max_ghz,
        features=tuple(f for f in _RELEVANT_FEATURES if f in features),
    )


def peak_from_profile(
    peak_gops: Mapping[str, float],
    precision: str,
    *,
    target: str,
    threads: int | None = None,
    cores: int | None = None,
) -> Peak | None:
    """Peak from a target profile's ``peak_gops`` (figures for the whole device, per precision).

    Scaled by ``min(threads, cores) / cores`` when both are given; fp16 falls back to the fp32
    figure when the profile has none. ``None`` when no figure fits.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    chain = ("fp16", "fp32") if precision == "fp16" else (precision,)
    found = next((p for p in chain if peak_gops.get(p)), None)
    if found is None:
        return None
    gops = float(peak_gops[found])
    source = f"target profile {target}"
    if found != precision:
        source += f" ({found} figure: the profile states no {precision} peak)"
    if threads and cores:
        used = min(threads, cores)
        gops *= used / cores
        source += f", scaled to {used} of {cores} cores"
    return Peak(gops=gops, precision=precision, source=source)


def mixed_peak(peaks: Mapping[str, Peak | None], macs_by_precision: Mapping[str, int]) -> Peak | None:
    """The peak of a model whose MACs run in several precisions (an INT8 model with float layers).

    At peak, each precision's MACs take ``2 x macs / peak`` seconds; the model's peak is all its
    operations over the sum of those times (a MAC-weighted harmonic mean), so a 90 % INT8 model is
    not set against the pure INT8 figure. ``None`` when a precision with MACs has no peak.
    """
    counted = {p: n for p, n in macs_by_precision.items() if n > 0}
    known = {p: peak for p in counted if (peak := peaks.get(p)) is not None}
    if not counted or len(known) < len(counted):
        return None
    if len(known) == 1:
        return next(iter(known.values()))
    total = sum(counted.values())
    seconds = sum(2 * n / (known[p].gops * 1e9) for p, n in counted.items())
    parts = ", ".join(f"{100.0 * n / total:.1f}% of MACs {p} at {known[p].gops:.0f} GOP/s"
                      for p, n in counted.items())
    basis = "; ".join(dict.fromkeys(known[p].source for p in counted))
    return Peak(gops=2 * total / seconds / 1e9, precision="+".join(counted),
                source=f"weighted by the precision mix computed ({parts}); {basis}")


def _fields(text: str) -> dict[str, list[str]]:
    """Every ``key : value`` line of ``/proc/cpuinfo``, values in order of appearance."""
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), []).append(value.strip())
    return fields


def _model(fields: Mapping[str, list[str]]) -> str:
    parts = []
    implementers = fields.get("CPU implementer", [])
    for i, part in enumerate(fields.get("CPU part", [])):
        implementer = implementers[i] if i < len(implementers) else "0x41"
        name = ARM_PARTS.get(_int(part) or -1) if _int(implementer) == 0x41 else None
        if name and name not in parts:
            parts.append(name)
    board = (fields.get("Model") or fields.get("Hardware") or [""])[0]
    if parts:
        return " + ".join(parts) + (f" ({board})" if board else "")
    names = fields.get("model name") or fields.get("Processor") or [board]
    return names[0] or "unknown"


def _arch_from_text(fields: Mapping[str, list[str]], features: set[str]) -> str:
    if "flags" in fields:
        return "x86_64" if "lm" in features else "i686"
    architecture = (fields.get("CPU architecture") or [""])[0]
    if architecture == "8" or "asimd" in features:
        return "aarch64"
    return "armv7l" if architecture else "unknown"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _int(text: str | None) -> int | None:
    try:
        return int(text.strip(), 0) if text else None
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None
