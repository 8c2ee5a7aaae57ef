"""The external programs tests depend on (Mosquitto, PostgreSQL, Prometheus, Chromium): found, or the test
skipped saying how to install them, except under ``CI=true``, where a missing one fails the test: CI must
run every test that needs a real part."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest


def find_tool(default: str | None, *names: str) -> str | None:
    """``default`` if it is a file, else the first of ``names`` on the PATH, else None."""
    if default and Path(default).is_file():
        return default
    return next((found for name in names if (found := shutil.which(name))), None)


def unavailable(message: str) -> NoReturn:
    """Skip the test for a missing tool, or fail it under ``CI=true``."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: a test's missing tool is a failure)")
    pytest.skip(message)
