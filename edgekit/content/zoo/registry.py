"""The zoo registry: named models that EdgeKit builds itself for tests and demos.

Each entry lives in its own module and registers a builder under a name. A builder
writes one ONNX file and returns a :class:`ModelCard` saying how to feed the model and
how to read its output. :func:`build_model` caches the file next to a JSON sidecar, so
a second build of the same name, seed and entry version is a file read.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from device_agent.bundle.manifest import PreprocessSpec, TaskSpec
from device_agent.registry import Registry
from edgekit.errors import MissingDependencyError, UsageError

#: Bump when the sidecar layout changes; old caches are then rebuilt, not misread.
SIDECAR_FORMAT = 1


@dataclass(frozen=True)
class ModelCard:
    """What a builder returns besides the file: how to feed the model and read its output."""

    preprocess: PreprocessSpec
    task: TaskSpec
    pretrained: bool
    description: str


@dataclass(frozen=True)
class ZooModel:
    """A built zoo model: the ONNX file and the specs a bundle needs to run it."""

    name: str
    onnx_path: Path
    preprocess: PreprocessSpec
    task: TaskSpec
    pretrained: bool
    description: str


class Builder(Protocol):
    def __call__(self, onnx_path: Path, /, *, seed: int) -> ModelCard: ...


@dataclass(frozen=True)
class ZooEntry:
    """A registered model: its name, the builder, and a version that invalidates caches."""

    name: str
    build: Builder
    version: str


ZOO: Registry[ZooEntry] = Registry("zoo model", plural="models")


def register_model(name: str, *, version: str = "1") -> Callable[[Builder], Builder]:
    """Register a builder under ``name``; bump ``version`` when its output changes."""

    def decorate(fn: Builder) -> Builder:
        ZOO.register(name, ZooEntry(name=name, build=fn, version=version))
        return fn

    return decorate


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_cached(entry: ZooEntry, onnx_path: Path, sidecar: Path, seed: int) -> ZooModel | None:
    """The cached model when the sidecar matches this entry, seed and file; else ``None``."""
    if not (onnx_path.is_file() and sidecar.is_file()):
        return None
    try:
        meta: dict[str, Any] = json.loads(sidecar.read_text())
        expected = (SIDECAR_FORMAT, entry.name, entry.version, seed)
        if (meta["format"], meta["name"], meta["version"], meta["seed"]) != expected:
            return None
        if meta["onnx_sha256"] != _sha256(onnx_path):
            return None
        return ZooModel(
            name=entry.name,
            onnx_path=onnx_path,
            preprocess=PreprocessSpec.model_validate(meta["preprocess"]),
            task=TaskSpec.model_validate(meta["task"]),
            pretrained=bool(meta["pretrained"]),
            description=str(meta["description"]),
        )
    except (ValueError, KeyError, TypeError):  # a damaged sidecar means: build again
        return None


def build_model(name: str, out_dir: Path, *, seed: int = 0) -> ZooModel:
    """Build the zoo model ``name`` into ``out_dir/<name>.onnx`` (or reuse a matching cache).

    ``seed`` fixes random initialisation for models without pretrained weights, so the
    same name and seed always give the same file. Raises :class:`UsageError` for an
    unknown name and :class:`MissingDependencyError` when torch is missing.
    """
    entry = ZOO.lookup(name, UsageError)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path, sidecar = out_dir / f"{name}.onnx", out_dir / f"{name}.json"
    cached = _load_cached(entry, onnx_path, sidecar, seed)
    if cached is not None:
        return cached
    if importlib.util.find_spec("torch") is None:
        raise MissingDependencyError(module="torch", extra="torch", purpose=f"building the zoo model {name!r}")
    # The sidecar goes first and comes back last, so a half-built file is never reused.
    sidecar.unlink(missing_ok=True)
    card = entry.build(onnx_path, seed=seed)
    meta = {
        "format": SIDECAR_FORMAT,
        "name": name,
        "version": entry.version,
        "seed": seed,
        "onnx_sha256": _sha256(onnx_path),
        "preprocess": card.preprocess.model_dump(mode="json"),
        "task": card.task.model_dump(mode="json"),
        "pretrained": card.pretrained,
        "description": card.description,
    }
    sidecar.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return ZooModel(
        name=name,
        onnx_path=onnx_path,
        preprocess=card.preprocess,
        task=card.task,
        pretrained=card.pretrained,
        description=card.description,
    )
