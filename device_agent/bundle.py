"""Reading and verifying a bundle: the directory ``edgekit optimize`` writes.

Checks, in order, each with its own name in the error: ``manifest-present``,
``manifest-json``, ``schema``, ``manifest-fields``, ``file-present``, ``file-size``,
``file-sha256``, ``unlisted-file``, ``model-listed``, ``model-io`` (the model's real
inputs and outputs match the manifest).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from device_agent.errors import BundleError
from device_agent.manifest import Manifest, TensorSpec, parse_manifest

MANIFEST = "manifest.json"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk."""

    root: Path
    manifest: Manifest

    @property
    def model_path(self) -> Path:
        return self.root / self.manifest.model.file


def load_bundle(path: Path | str, *, check_model_io: bool = True) -> Bundle:
    """Read ``path`` and verify every file; raise :class:`BundleError` naming the failed check."""
    root = Path(path)
    if not root.is_dir():
        raise BundleError("manifest-present", f"{str(root)!r} is not a bundle directory")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise BundleError("manifest-present", f"{str(root)!r} has no {MANIFEST}")
    manifest = parse_manifest(manifest_path.read_text(encoding="utf-8"), where=str(manifest_path))
    _verify_files(root, manifest)
    if manifest.model.file not in manifest.files:
        raise BundleError("model-listed", f"model file {manifest.model.file!r} is not among the listed files")
    if manifest.files[manifest.model.file].sha256 != manifest.model.sha256:
        raise BundleError("model-listed", "model.sha256 disagrees with the files table")
    bundle = Bundle(root, manifest)
    if check_model_io:
        verify_model_io(bundle)
    return bundle


def _verify_files(root: Path, manifest: Manifest) -> None:
    for name, entry in sorted(manifest.files.items()):
        file = root / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise BundleError("file-present", f"file name {name!r} points outside the bundle")
        if not file.is_file():
            raise BundleError("file-present", f"{name!r} is listed in the manifest but missing")
        size = file.stat().st_size
        if size != entry.size_bytes:
            raise BundleError("file-size", f"{name!r} is {size} bytes, the manifest says {entry.size_bytes}")
        digest = sha256_file(file)
        if digest != entry.sha256:
            raise BundleError("file-sha256", f"{name!r} has sha256 {digest}, the manifest says {entry.sha256}")
    listed = set(manifest.files) | {MANIFEST}
    extra = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    unlisted = [name for name in extra if name not in listed and not name.endswith(".sig")]
    if unlisted:
        raise BundleError("unlisted-file", f"files not in the manifest: {', '.join(unlisted)}")


def verify_model_io(bundle: Bundle) -> None:
    """Load the model with its runtime and check its inputs and outputs against the manifest."""
    from device_agent.runtimes import create_runtime

    runtime = create_runtime(bundle.manifest.target.runtime, bundle.model_path)
    _match("input", bundle.manifest.inputs, runtime.inputs)
    _match("output", bundle.manifest.outputs, runtime.outputs)


def _match(kind: str, declared: list[TensorSpec], actual: tuple) -> None:  # actual: tuple[TensorInfo, ...]
    if len(declared) != len(actual):
        raise BundleError("model-io", f"the manifest lists {len(declared)} {kind}s, the model has {len(actual)}")
    for spec, info in zip(declared, actual):
        if spec.name != info.name:
            raise BundleError("model-io", f"{kind} name: manifest {spec.name!r}, model {info.name!r}")
        shape_ok = len(spec.shape) == len(info.shape) and all(
            m == -1 or m == s for s, m in zip(spec.shape, info.shape)
        )
        if not shape_ok:
            raise BundleError("model-io", f"{kind} {spec.name!r} shape: manifest {spec.shape}, model {list(info.shape)}")
        if spec.dtype != info.dtype:
            raise BundleError("model-io", f"{kind} {spec.name!r} dtype: manifest {spec.dtype}, model {info.dtype}")
