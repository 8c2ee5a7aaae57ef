"""Reading and verifying a bundle: the directory ``edgekit optimize`` writes.

Checks, in order, each with its own name in the error: ``manifest-present``,
``manifest-json`` (not UTF-8, not JSON, nested too deep), ``schema``, ``manifest-fields``,
``file-present`` (also a listed name that points outside the bundle), ``file-symlink`` (a
listed file that is a symlink, or lies under one), ``file-size``, ``file-sha256``,
``unlisted-file``, ``model-listed``, ``golden-missing`` (every bundle ``edgekit optimize``
writes carries ``golden.npz``, so one without it has been tampered with), ``external-data``
(an ONNX tensor stored in a file outside the bundle, or in one the manifest does not list),
``drift-baseline`` (a listed ``drift.json`` that is not a valid drift baseline).
With the model loaded (:mod:`device_agent.bundle.selftest`): ``model-load``, ``model-io`` (the model's
real inputs and outputs match the manifest), ``golden-format``, ``golden-mismatch``.

Any bytes in any file give one of these errors, never another exception: a bundle arrives
over the network, and the device must say what is wrong with it rather than crash.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from device_agent.bundle.manifest import Manifest, parse_manifest
from device_agent.bundle.onnx_external import external_data_locations
from device_agent.drift.baseline import DRIFT_FILE, DriftBaseline, parse_baseline
from device_agent.errors import BundleError

MANIFEST = "manifest.json"
GOLDEN = "golden.npz"
MAX_MANIFEST_BYTES = 16 << 20
"""A real manifest is a few kB (baseline statistics, anchors); more is not a manifest we read."""
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
    drift: DriftBaseline | None = None  # drift.json, when the bundle lists one

    @property
    def model_path(self) -> Path:
        return self.root / self.manifest.model.file


def load_bundle(path: Path | str, *, check_model_io: bool = True) -> Bundle:
    """Read ``path`` and verify every file; raise :class:`BundleError` naming the failed check.

    ``check_model_io`` (the default) also loads the model and runs the golden self-test, as the
    agent does before it starts; only tools that merely read the manifest turn it off.
    """
    bundle = read_bundle(path)
    if check_model_io:
        from device_agent.bundle.selftest import verify_model  # loads a runtime: imported only when asked

        verify_model(bundle)
    return bundle


def read_bundle(path: Path | str) -> Bundle:
    """Every check that does not load the model (see the module docstring)."""
    root = Path(path)
    manifest = parse_manifest(_read_manifest(root), where=str(root / MANIFEST))
    _verify_files(root, manifest)
    if manifest.model.file not in manifest.files:
        raise BundleError("model-listed", f"model file {manifest.model.file!r} is not among the listed files")
    if manifest.files[manifest.model.file].sha256 != manifest.model.sha256:
        raise BundleError("model-listed", "model.sha256 disagrees with the files table")
    if GOLDEN not in manifest.files:
        raise BundleError("golden-missing", f"the bundle carries no {GOLDEN}: every bundle edgekit optimize writes has "
                          "one, and the device self-tests the model on it before it runs")
    if manifest.model.format == "onnx":
        _verify_external_data(root, manifest)
    return Bundle(root, manifest, _read_drift(root, manifest))


def _read_drift(root: Path, manifest: Manifest) -> DriftBaseline | None:
    """The drift baseline a bundle lists (already size- and sha256-checked), or None: ``drift-baseline``."""
    if DRIFT_FILE not in manifest.files:
        return None
    if manifest.files[DRIFT_FILE].size_bytes > MAX_MANIFEST_BYTES:
        raise BundleError("drift-baseline", f"{DRIFT_FILE} is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        return parse_baseline((root / DRIFT_FILE).read_bytes())
    except OSError as exc:
        raise BundleError("drift-baseline", f"cannot read {DRIFT_FILE}: {exc}") from exc


def _read_manifest(root: Path) -> bytes:
    manifest_path = root / MANIFEST
    try:
        if not root.is_dir():
            raise BundleError("manifest-present", f"{str(root)!r} is not a bundle directory")
        if not manifest_path.is_file():
            raise BundleError("manifest-present", f"{str(root)!r} has no {MANIFEST}")
        with manifest_path.open("rb") as fh:
            data = fh.read(MAX_MANIFEST_BYTES + 1)
    except (OSError, ValueError) as exc:  # ENAMETOOLONG, EACCES, a NUL in the path
        raise BundleError("manifest-present", f"cannot read {str(manifest_path)!r}: {exc}") from exc
    if len(data) > MAX_MANIFEST_BYTES:
        raise BundleError("manifest-json", f"{MANIFEST} is larger than {MAX_MANIFEST_BYTES} bytes")
    return data


def _inside(root: Path, name: str) -> Path:
    """``root / name`` for a listed name, refusing names that leave the bundle or are not file names."""
    pure = PurePosixPath(name)
    if not name or "\\" in name or pure.is_absolute() or ".." in pure.parts or Path(name).is_absolute():
        raise BundleError("file-present", f"file name {name!r} points outside the bundle")
    if "\0" in name or any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        raise BundleError("file-present", f"file name {name!r} is not a valid file name")
    return root / name


def _check_no_symlink(root: Path, name: str) -> None:
    """Refuse a listed file that is a symlink or lies under one inside the bundle.

    The bundle's own folder may be a symlink (``bundles/current -> v3``); what is inside may not,
    because a link can make the device read, and trust, a file the manifest never hashed.
    """
    here = root
    for part in PurePosixPath(name).parts:
        here = here / part
        try:
            mode = os.lstat(here).st_mode
        except FileNotFoundError:
            return  # file-present says so
        except (OSError, ValueError) as exc:
            raise BundleError("file-present", f"cannot read {name!r}: {exc}") from exc
        if stat.S_ISLNK(mode):
            try:
                target = os.readlink(here)
            except OSError as exc:
                target = f"<unreadable: {exc}>"
            raise BundleError("file-symlink", f"{name!r} is (or lies under) a symlink to {target!r}; a bundle holds "
                              "plain files only")


def _verify_files(root: Path, manifest: Manifest) -> None:
    for name, entry in sorted(manifest.files.items()):
        file = _inside(root, name)
        _check_no_symlink(root, name)
        try:
            if not file.is_file():
                raise BundleError("file-present", f"{name!r} is listed in the manifest but missing")
            size = file.stat().st_size
            if size != entry.size_bytes:
                raise BundleError("file-size", f"{name!r} is {size} bytes, the manifest says {entry.size_bytes}")
            digest = sha256_file(file)
        except OSError as exc:
            raise BundleError("file-present", f"cannot read {name!r}: {exc}") from exc
        if digest != entry.sha256:
            raise BundleError("file-sha256", f"{name!r} has sha256 {digest}, the manifest says {entry.sha256}")
    listed = set(manifest.files) | {MANIFEST}
    unlisted = [name for name in _all_files(root) if name not in listed and not name.endswith(".sig")]
    if unlisted:
        raise BundleError("unlisted-file", f"files not in the manifest: {', '.join(unlisted)}")


def _all_files(root: Path) -> list[str]:
    """Every non-directory entry under ``root`` (symlinks included, not followed), as POSIX paths."""
    found: list[str] = []

    def fail(exc: OSError) -> None:
        raise BundleError("unlisted-file", f"cannot list the bundle's files: {exc}") from exc

    for folder, dirs, files in os.walk(root, onerror=fail):
        # os.walk lists a symlink to a folder among dirs and does not follow it: report it as a file
        entries = files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]
        for entry in entries:
            found.append(Path(folder, entry).relative_to(root).as_posix())
    return sorted(found)


def _verify_external_data(root: Path, manifest: Manifest) -> None:
    """ONNX tensors stored in other files must name files of this bundle (:mod:`device_agent.bundle.onnx_external`)."""
    try:
        data = (root / manifest.model.file).read_bytes()
    except OSError as exc:
        raise BundleError("file-present", f"cannot read {manifest.model.file!r}: {exc}") from exc
    locations = external_data_locations(data)
    model_dir = PurePosixPath(manifest.model.file).parent
    for location in locations or ():
        pure = PurePosixPath(location)
        name = (model_dir / pure).as_posix()
        if (not location or "\\" in location or "\0" in location or pure.is_absolute() or ".." in pure.parts
                or name not in manifest.files):
            where = "outside the bundle" if (pure.is_absolute() or ".." in pure.parts) else "not listed in the manifest"
            raise BundleError("external-data", f"{manifest.model.file!r} keeps tensor data in {location!r}, {where}; "
                              "a bundle's model may only refer to files the manifest lists and hashes")


def verify_model_io(bundle: Bundle) -> None:
    """Load the model with its runtime and check its inputs and outputs against the manifest."""
    from device_agent.bundle.selftest import verify_model_io as verify

    verify(bundle)
