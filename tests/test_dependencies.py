"""The dependencies a fresh machine gets are the ones CI tested.

pyproject.toml gives every requirement a tested range with an upper bound; constraints.txt (the
lock, ``make lock``) pins every package exactly, inside those ranges; scripts/setup.sh installs
from it. The agent's extras install exactly one runtime each, and the installer's boards name
only extras that exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from device_agent.install.board import BOARD_KINDS, RUNTIME_EXTRAS, board_for

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
EXTRAS: dict[str, list[str]] = PYPROJECT["project"]["optional-dependencies"]
RUNTIMES = {"onnxruntime", "onnxruntime-gpu", "ai-edge-litert", "tflite-runtime"}


def _requirements() -> list[tuple[str, Requirement]]:
    """Every third-party requirement in pyproject.toml, with where it is declared."""
    found = [("build-system", Requirement(r)) for r in PYPROJECT["build-system"]["requires"]]
    found += [("dependencies", Requirement(r)) for r in PYPROJECT["project"]["dependencies"]]
    found += [(f"[{extra}]", Requirement(r)) for extra, reqs in EXTRAS.items() for r in reqs]
    return [(where, req) for where, req in found if canonicalize_name(req.name) != "edgekit"]


def _lock() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for number, raw in enumerate((ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        assert match, f"constraints.txt:{number}: {raw!r} is not an exact pin NAME==VERSION"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"constraints.txt:{number}: {name} pinned twice"
        pins[name] = Version(match.group(2))
    return pins


@pytest.mark.parametrize(("where", "req"), _requirements(), ids=lambda v: str(v))
def test_every_requirement_has_a_tested_range_with_an_upper_bound(where: str, req: Requirement) -> None:
    assert any(s.operator in ("<", "<=", "==", "~=") for s in req.specifier), (
        f"{where} {req}: give it an upper bound just above the version tested (constraints.txt)")
    assert any(s.operator in (">=", "==", "~=") for s in req.specifier), f"{where} {req}: no lower bound"


def test_the_lock_pins_every_requirement_inside_its_range() -> None:
    lock = _lock()
    assert "edgekit" not in lock, "the editable project itself is not pinned"
    checked = 0
    for where, req in _requirements():
        name = canonicalize_name(req.name)
        if req.marker is not None and not req.marker.evaluate({"python_version": "3.11"}):
            continue  # tomli: Python < 3.11 only; the lock is resolved for 3.11
        if where == "build-system" and name not in lock:
            continue
        assert name in lock, f"{where} {req}: not pinned in constraints.txt; regenerate it: make lock"
        assert req.specifier.contains(lock[name], prereleases=True), (
            f"{where} {req}: constraints.txt pins {name}=={lock[name]}, outside the range")
        checked += 1
    assert checked >= 25


def test_the_lock_says_how_it_is_made_and_setup_and_ci_install_from_it() -> None:
    lines = (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
    header = "\n".join(lines[:next(i for i, line in enumerate(lines) if not line.startswith("#"))])
    assert "make lock" in header and "scripts/lock.py" in header and "PyPI" in header
    assert re.search(r"^lock:\n\t.*scripts/lock\.py", (ROOT / "Makefile").read_text(), re.MULTILINE)
    setup = (ROOT / "scripts/setup.sh").read_text()
    assert "LOCK=${EDGEKIT_CONSTRAINTS-constraints.txt}" in setup and 'lock=(-c "$LOCK")' in setup
    installs = [line for line in setup.splitlines() if re.search(r"pip install .*(TORCH|\.\[all\]|pip$)", line)]
    assert len(installs) == 3 and all('${lock[@]+"${lock[@]}"}' in line for line in installs), installs
    assert "scripts/setup.sh" in (ROOT / ".ci/run").read_text()


def test_all_installs_every_extra() -> None:
    (everything,) = EXTRAS["all"]
    req = Requirement(everything)
    assert canonicalize_name(req.name) == "edgekit"
    assert req.extras == set(EXTRAS) - {"all"}


def test_the_agent_extras_hold_exactly_one_runtime_each() -> None:
    def names(extra: str) -> set[str]:
        return {canonicalize_name(Requirement(r).name) for r in EXTRAS[extra]}

    assert not names("agent") & RUNTIMES, "[agent] is the agent without a runtime: a Pi installs only LiteRT"
    assert names("onnx") == {"onnxruntime"} and names("tflite") == {"ai-edge-litert"}
    assert set(RUNTIME_EXTRAS) == {"onnx", "tflite"}


@pytest.mark.parametrize("kind", BOARD_KINDS)
@pytest.mark.parametrize("runtime", [None, *RUNTIME_EXTRAS])
def test_every_board_installs_extras_that_exist(kind, runtime) -> None:  # type: ignore[no-untyped-def]
    extras = board_for(kind, runtime=runtime).extras
    assert set(extras) <= set(EXTRAS) and extras[0] == "agent"
    assert len(set(extras) & set(RUNTIME_EXTRAS)) == 1, extras
