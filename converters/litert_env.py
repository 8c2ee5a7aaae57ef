"""The isolated Python environment that converts PyTorch programs to TFLite (litert-torch).

Why a separate environment: ``litert-torch`` 0.10 pulls JAX and pins ``typing-extensions<4.13``
(through ``xdsl``), which would silently downgrade pydantic and typing-extensions in the
environment EdgeKit itself runs in. So the converter lives in a virtual environment of its
own, created on first use, with the *same* torch version as the host (a ``torch.export``
program file is only read back by the version that wrote it), and is called as a subprocess.

Location: ``$EDGEKIT_LITERT_ENV`` or ``~/.cache/edgekit/envs/litert-torch-<ver>-torch-<ver>``.
Set ``EDGEKIT_LITERT_PYTHON`` to use an interpreter you manage yourself. About 2 GB on disk;
creating it takes a minute or two and happens once.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from converters.errors import ConversionError, MissingDependencyError

LITERT_TORCH = "litert-torch==0.10.0"
_STAMP = ".edgekit-ready"


def _torch_version() -> str:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("torch", "torch", "converting to TFLite (from a PyTorch program)") from exc
    return str(torch.__version__).split("+")[0]


def env_dir() -> Path:
    """Where the environment lives (created or not)."""
    override = os.environ.get("EDGEKIT_LITERT_ENV")
    if override:
        return Path(override).expanduser()
    name = f"{LITERT_TORCH.replace('==', '-')}-torch-{_torch_version()}"
    return Path.home() / ".cache" / "edgekit" / "envs" / name


def _python(root: Path) -> Path:
    return root / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def litert_python(*, log: Callable[[str], None] | None = None) -> Path:
    """The interpreter of a ready environment, created first if needed (once; concurrent callers wait)."""
    manual = os.environ.get("EDGEKIT_LITERT_PYTHON")
    if manual:
        path = Path(manual).expanduser()
        if not path.is_file():
            raise ConversionError(f"EDGEKIT_LITERT_PYTHON={manual!r} does not exist; expected a Python with "
                                  f"{LITERT_TORCH} and torch=={_torch_version()} installed")
        return path
    root = env_dir()
    python = _python(root)
    if (root / _STAMP).is_file() and python.is_file():
        return python
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits here, then finds the stamp
        if (root / _STAMP).is_file() and python.is_file():
            return python
        _create(root, log or (lambda _message: None))
    return python


def _create(root: Path, log: Callable[[str], None]) -> None:
    torch = f"torch=={_torch_version()}"
    log(f"creating the TFLite converter environment in {root} ({LITERT_TORCH}, {torch}; about 2 GB, once)")
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    python = str(_python(root))
    for step in ([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                 [python, "-m", "pip", "install", "--quiet", torch, LITERT_TORCH]):
        proc = subprocess.run(step, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise ConversionError(f"could not create the TFLite converter environment in {root}: "
                                  f"'{' '.join(step[2:])}' failed:\n{tail}")
    (root / _STAMP).write_text(f"{torch} {LITERT_TORCH}\n", encoding="utf-8")
    log("TFLite converter environment ready")


def run_worker(worker: Path, request: dict[str, Any], *, what: str,
               log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run a standalone ``worker`` script in the environment with one JSON ``request``; its JSON answer.

    A failure is a :class:`ConversionError` that says ``what`` failed and ends with the worker's
    last lines of error output."""
    python = litert_python(log=log)
    proc = subprocess.run([str(python), str(worker), json.dumps(request)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-12:]) or "no output"
        raise ConversionError(f"{what} failed:\n{tail}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
