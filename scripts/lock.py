#!/usr/bin/env python3
"""Regenerate constraints.txt, the lock scripts/setup.sh and CI install from: ``make lock``.

Run it on the environment the tests just passed in (``.venv``, or ``EDGEKIT_VENV``); to move a
dependency, widen its range in pyproject.toml, ``pip install --upgrade --upgrade-strategy eager
-e '.[all]'`` there, run the gate and the tests, then lock::

    scripts/lock.py [--venv .venv] [--output constraints.txt] [--index-url https://pypi.org/simple]

1. Every package of that environment is pinned ``==`` (``pip list``, the editable project left
   out); a local build's label goes (``torch 2.13.0+cpu`` -> ``torch==2.13.0``, which pip matches
   with either build).
2. ``edgekit[all]`` is resolved against the index alone (no pip.conf, no local wheels: what a
   fresh machine sees) in a throwaway virtual environment, constrained to those pins. Nothing is
   installed (``pip install --dry-run --report``; metadata only, about a minute). The resolution
   fails if a tested version is not on the index, and it adds what the index's builds need
   beyond the tested environment (PyPI's torch wheel and its CUDA libraries), pinned too.

Needs network access to the index. The lock is resolved for this Python and platform (CPython
3.11 on Linux x86-64 here); elsewhere pip ignores the pins of packages it does not install.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def normalize(name: str) -> str:
    """PEP 503 name: ``Jinja2`` -> ``jinja2``, ``typing_extensions`` -> ``typing-extensions``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def tested_pins(venv: Path) -> dict[str, str]:
    """``{name: version}`` of every package installed in ``venv`` but the editable project."""
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json", "--exclude-editable"],
                         capture_output=True, text=True, check=True).stdout
    return {normalize(p["name"]): p["version"].split("+")[0] for p in json.loads(out)}


def resolve(pins: dict[str, str], index_url: str, python: str) -> dict[str, str]:
    """``{name: version}`` that ``pip install -e '.[all]'`` gets from ``index_url`` alone under ``pins``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
    env["PIP_CONFIG_FILE"] = os.devnull  # no pip.conf: no local index, wheel folder or site constraint
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    with tempfile.TemporaryDirectory(prefix="edgekit-lock-") as tmp:
        constraints = Path(tmp) / "tested.txt"
        constraints.write_text("".join(f"{n}=={v}\n" for n, v in sorted(pins.items())))
        venv = Path(tmp) / "venv"
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--index-url", index_url]
        if "pip" in pins:
            subprocess.run([*pip, f"pip=={pins['pip']}"], env=env, check=True)
        report = Path(tmp) / "report.json"
        subprocess.run([*pip, "--dry-run", "--ignore-installed", "--report", str(report), "-c", str(constraints),
                        "--build-constraint", str(constraints), "-e", f"{ROOT}[all]"], env=env, check=True)
        installs = json.loads(report.read_text())["install"]
    return {normalize(i["metadata"]["name"]): i["metadata"]["version"] for i in installs if not i.get("is_direct")}


def render(pins: dict[str, str], resolved: dict[str, str], python: str) -> str:
    version = subprocess.run([python, "-c", "import platform; print(platform.python_implementation(), "
                              "platform.python_version(), platform.system(), platform.machine())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    lines = [
        "# The lock: every package `pip install -c constraints.txt -e '.[all]'` installs, pinned to the",
        "# version the tests passed with. scripts/setup.sh and CI (.ci/run) install from it. Do not edit it;",
        "# to move a dependency, change its range in pyproject.toml, then in .venv",
        "#   pip install --upgrade --upgrade-strategy eager -e '.[all]'   (the newest within the ranges)",
        "#   make lint test && make lock     (scripts/lock.py: the tested .venv, resolved against PyPI alone)",
        f"# Resolved for {version}; elsewhere pip ignores the pins of packages it does not install.",
        "# The editable project itself is not pinned.",
    ]
    for name in sorted(set(pins) | set(resolved)):
        if name in resolved:
            extra = "" if name in pins else "  # not in the tested environment: PyPI's build of a dependency needs it"
            lines.append(f"{name}=={resolved[name]}{extra}")
        elif name == "pip":
            lines.append(f"pip=={pins[name]}  # the installer setup.sh upgrades to")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--venv", type=Path, default=Path(os.environ.get("EDGEKIT_VENV", ROOT / ".venv")))
    parser.add_argument("--output", type=Path, default=ROOT / "constraints.txt")
    parser.add_argument("--index-url", default="https://pypi.org/simple")
    args = parser.parse_args(argv)
    if not (args.venv / "bin" / "python").is_file():
        parser.error(f"{args.venv} is not a virtual environment: run scripts/setup.sh and the tests first")
    python = str((args.venv / "bin" / "python").resolve())  # the base interpreter of the tested venv
    pins = tested_pins(args.venv)
    resolved = resolve(pins, args.index_url, python)
    changed = {n: (pins[n], v) for n, v in resolved.items() if n in pins and pins[n] != v}
    if changed:  # cannot happen under -c; a guard against a pip that ignores constraints
        sys.exit(f"lock: the resolution moved tested pins: {changed}")
    dropped = sorted(set(pins) - set(resolved) - {"pip"})
    args.output.write_text(render(pins, resolved, python))
    print(f"lock: wrote {args.output} ({len(resolved) + ('pip' in pins)} pins"
          + (f"; not needed by edgekit[all], left out: {', '.join(dropped)}" if dropped else "") + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
