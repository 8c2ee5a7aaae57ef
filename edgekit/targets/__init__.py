"""Target profiles: data, not code.

The built-in profiles are the TOML files beside this module. A user adds one by dropping
``NAME.toml`` into a folder named by ``EDGEKIT_TARGETS_PATH`` (``os.pathsep``-separated) or
``~/.config/edgekit/targets``, or by passing the path of a ``.toml`` file as the target.
A user profile with a built-in name replaces the built-in.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from device_agent.service.config_errors import explain
from edgekit.errors import TargetError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUILTIN_DIR = Path(__file__).parent
Precision = Literal["int8", "fp16", "fp32"]


class TargetProfile(BaseModel):
    """What suits one device class."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="the name given to --target")
    description: str = Field(description="one line a person reads in `edgekit targets`")
    runtime: Literal["onnxruntime", "tflite"] = Field(description="the runtime the device runs")
    providers: list[str] = Field(default_factory=list, description="execution providers / delegates, preferred first")
    precisions: list[Precision] = Field(min_length=1, description="precisions to try, preferred first")
    threads: int = Field(ge=0, description="inference threads; 0 lets the runtime choose")
    opset_max: int = Field(ge=7, description="highest ONNX opset the device's runtime takes")
    layout: Literal["NCHW", "NHWC"] = Field(description="input layout the runtime prefers")
    int8_io_required: bool = Field(description="true for NPUs that take only int8 inputs and outputs")
    peak_gops: dict[Precision, float] = Field(
        default_factory=dict, description="peak compute per precision in GOP/s; empty: detect at run time"
    )


def _search_dirs() -> list[Path]:
    dirs = [BUILTIN_DIR, Path.home() / ".config" / "edgekit" / "targets"]
    extra = os.environ.get("EDGEKIT_TARGETS_PATH", "")
    dirs += [Path(p) for p in extra.split(os.pathsep) if p]
    return dirs


def load_profile_file(path: Path) -> TargetProfile:
    """Read and validate one profile file; errors name the file and the bad key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TargetError(f"cannot read target profile {str(path)!r}: {exc}") from exc
    try:
        return TargetProfile.model_validate(raw)
    except ValidationError as exc:
        raise TargetError(f"target profile {str(path)!r} is invalid: {explain(exc)}") from exc


def available_targets() -> dict[str, TargetProfile]:
    """Every profile that can be named, later search folders overriding earlier ones."""
    profiles: dict[str, TargetProfile] = {}
    for folder in _search_dirs():
        if folder.is_dir():
            for file in sorted(folder.glob("*.toml")):
                profile = load_profile_file(file)
                profiles[profile.name] = profile
    return profiles


def get_target(name_or_path: str) -> TargetProfile:
    """A profile by name, or by the path of a ``.toml`` profile file."""
    if name_or_path.endswith(".toml"):
        path = Path(name_or_path)
        if not path.is_file():
            raise TargetError(f"target profile file {name_or_path!r} does not exist")
        return load_profile_file(path)
    profiles = available_targets()
    if name_or_path not in profiles:
        raise TargetError(f"unknown target {name_or_path!r}; expected one of: {', '.join(sorted(profiles))}")
    return profiles[name_or_path]
