"""Writing a bundle: all or nothing.

The bundle is assembled in a scratch directory beside the destination and moved into
place with one rename, so a failure at any step leaves no half-written bundle behind.
An existing *bundle* at the destination is replaced; any other existing directory with
files in it is refused rather than clobbered.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from device_agent.bundle.manifest import FileEntry, Manifest
from device_agent.bundle.verify import MANIFEST, load_bundle, sha256_file
from edgekit import __version__
from edgekit.errors import OptionsError
from edgekit.paths import os_error_cause


def destination_problem(output: Path) -> str | None:
    """Why ``output`` cannot become a bundle (checked before any work), or None."""
    if output.exists() and not output.is_dir():
        return f"{str(output)!r} exists and is a file; expected a directory for the bundle"
    if output.is_dir() and any(output.iterdir()) and not (output / MANIFEST).is_file():
        return (f"{str(output)!r} is a non-empty directory that is not a bundle; "
                "refusing to overwrite it: choose a new or empty directory")
    return None


def scratch_dir(output: Path) -> Path:
    """A scratch directory on the destination's filesystem (so the final move is a rename).

    Raises :class:`~edgekit.errors.OptionsError` (field ``output``) naming the path and the system's
    reason when it cannot be made (``/proc/x``, a file in the way, a folder we may not write in)."""
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{output.name}.tmp-", dir=output.parent))
    except OSError as exc:
        raise OptionsError([("output", f"{str(output)!r} cannot be created: {os_error_cause(exc)}")]) from exc


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def write_bundle(
    output: Path,
    *,
    staging: Path,
    model_file: Path,
    model_name: str,
    manifest_fields: Mapping[str, Any],
    report: Mapping[str, Any],
    golden: Mapping[str, np.ndarray],
    extra_files: Mapping[str, str] | None = None,
) -> Manifest:
    """Assemble the bundle in ``staging`` (an empty directory) and move it to ``output``.

    ``manifest_fields`` are all the manifest's fields except ``files``, ``model.sha256``,
    ``created`` and ``toolkit_version``, which are computed here. ``extra_files`` (name -> text, e.g.
    ``drift.json``) are written beside the model and listed in ``files`` like it.
    """
    shutil.copy2(model_file, staging / model_name)
    (staging / "report.json").write_text(json.dumps(report, indent=2, default=_jsonable) + "\n", encoding="utf-8")
    # golden's keys are tensor names ("input", "output_N"), never savez's own allow_pickle
    np.savez(staging / "golden.npz", **golden)  # type: ignore[arg-type]
    for name, text in (extra_files or {}).items():
        (staging / name).write_text(text, encoding="utf-8")
    files = {
        p.name: FileEntry(sha256=sha256_file(p), size_bytes=p.stat().st_size)
        for p in sorted(staging.iterdir())
        if p.is_file() and p.name != MANIFEST
    }
    fields = dict(manifest_fields)
    fields["model"] = {**fields["model"], "file": model_name, "sha256": files[model_name].sha256}
    fields.update(created=utc_now(), toolkit_version=__version__, files=files)
    manifest = Manifest.model_validate(fields)
    (staging / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
    load_bundle(staging)  # the device's own checks, before anything is moved into place
    if output.exists():
        old = output.with_name(f".{output.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        output.rename(old)
        staging.rename(output)
        shutil.rmtree(old)
    else:
        staging.rename(output)
    return manifest


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} into report.json")
