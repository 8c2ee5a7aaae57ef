"""One exception tree per package, each class with its exit code (style.md, item 5).

- every class in ``edgekit/errors.py``, ``converters/errors.py`` and ``device_agent/errors.py``
  derives from its package's root, carries an int ``exit_code`` (1 the work failed, 2 bad usage
  or bad input) and is drawn in its module's docstring with the code the docstring states;
- no other module of the three packages defines an exception class (:data:`ALLOWED`
  lists the exceptions, each with its reason);
- the one ``MissingDependencyError`` is caught by every package's root;
- both CLIs catch only the roots and exit with the class's own ``exit_code``.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import inspect
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import converters.errors
import device_agent.errors
import edgekit.errors

ROOT = Path(__file__).resolve().parents[1]
TREES: dict[str, tuple[ModuleType, type[Exception]]] = {
    "device_agent": (device_agent.errors, device_agent.errors.AgentError),
    "converters": (converters.errors, converters.errors.ConversionError),
    "edgekit": (edgekit.errors, edgekit.errors.EdgeKitError),
}
EXIT_CODES = {1, 2}

ALLOWED: dict[str, str] = {
    "device_agent/bundle/onnx_external.py::_Malformed":
        "private control flow of the protobuf walk: raised and caught inside the module, never reaches a caller",
    "device_agent/command_line.py::UsageExit":
        "argparse's own exit (a SystemExit, status 2) carrying its message so main() can also answer --json; "
        "not an error of the tree: nothing catches it as one",
    "device_agent/transport/outbox_db.py::_Corrupt":
        "private control flow of the outbox: signals a corrupt database to the recovery path in the same module",
}
"""Exception classes defined outside an errors module, with the reason they may be."""


def _classes(module: ModuleType) -> list[type[BaseException]]:
    return [c for _, c in inspect.getmembers(module, inspect.isclass)
            if issubclass(c, BaseException) and c.__module__ == module.__name__]


def _instance(cls: type[BaseException]) -> BaseException:
    """An instance whatever the constructor: every required argument gets a string."""
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name != "self" and p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    # an error that lists its problems (OptionsError, BenchOptionsError) gets none: an empty list is valid
    args = [() if p.name == "problems" else f"<{p.name}>" for p in params if p.kind != p.KEYWORD_ONLY]
    kwargs = {p.name: f"<{p.name}>" for p in params if p.kind == p.KEYWORD_ONLY}
    return cls(*args, **kwargs)


ALL_CLASSES = [(package, cls) for package, (module, _) in TREES.items() for cls in _classes(module)]


@pytest.mark.parametrize(("package", "cls"), ALL_CLASSES, ids=[f"{p}.{c.__name__}" for p, c in ALL_CLASSES])
def test_every_class_derives_from_its_root_and_carries_an_exit_code(package: str, cls: type[BaseException]) -> None:
    _, root = TREES[package]
    assert issubclass(cls, root), f"{cls.__name__} must derive from {root.__name__}"
    assert type(cls.exit_code) is int and cls.exit_code in EXIT_CODES, cls  # type: ignore[attr-defined]
    assert _instance(cls).exit_code == cls.exit_code  # type: ignore[attr-defined]


@pytest.mark.parametrize("package", list(TREES))
def test_the_docstring_draws_the_whole_tree_with_its_exit_codes(package: str) -> None:
    module, _ = TREES[package]
    doc = module.__doc__ or ""
    for cls in _classes(module):
        line = next((line for line in doc.splitlines() if re.search(rf"(^|\s){cls.__name__}\s", line)), None)
        assert line is not None, f"{cls.__name__} is not drawn in the docstring of {module.__name__}"
        stated = re.search(r"\bexit (\d)\b", line)
        if stated:
            assert cls.exit_code == int(stated.group(1)), line  # type: ignore[attr-defined]


def _exception_bases() -> set[str]:
    names = {n for n, c in vars(builtins).items() if isinstance(c, type) and issubclass(c, BaseException)}
    return names | {cls.__name__ for _, cls in ALL_CLASSES}


def _exception_classes_in(source: str, known: set[str]) -> dict[str, str]:
    """Class name -> the base that makes it an exception, for the exception classes ``source`` defines."""
    local, found = set(known), {}  # a class deriving from one found in the same file is one too
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        bases = [b.id if isinstance(b, ast.Name) else b.attr for b in node.bases
                 if isinstance(b, (ast.Name, ast.Attribute))]
        hit = next((b for b in bases if b in local or b.endswith(("Error", "Exception"))), None)
        if hit:
            local.add(node.name)
            found[node.name] = hit
    return found


def _stray_exception_classes() -> dict[str, str]:
    """``path::Class`` -> its base, for every exception class defined outside an errors module."""
    known, found = _exception_bases(), {}
    for package in TREES:
        for file in sorted((ROOT / package).rglob("*.py")):
            if file.name != "errors.py":
                for name, base in _exception_classes_in(file.read_text(encoding="utf-8"), known).items():
                    found[f"{file.relative_to(ROOT).as_posix()}::{name}"] = base
    return found


def test_no_exception_class_outside_the_errors_modules() -> None:
    stray = _stray_exception_classes()
    unexplained = {k: v for k, v in stray.items() if k not in ALLOWED}
    assert not unexplained, f"define these in the package's errors.py (or list them in ALLOWED with why): {unexplained}"
    stale = sorted(set(ALLOWED) - set(stray))
    assert not stale, f"no longer defined, remove from ALLOWED: {stale}"


def test_the_stray_class_finder_sees_plain_chained_and_qualified_bases() -> None:
    source = ("class A(ValueError): pass\nclass B(A): pass\nclass C(errors.AgentError): pass\n"
              "class D: pass\nclass E(BaseModel): pass\ndef f():\n    class G(KeyError): pass\n")
    assert _exception_classes_in(source, _exception_bases()) == {
        "A": "ValueError", "B": "A", "C": "AgentError", "G": "KeyError"}


@pytest.mark.parametrize("package", list(TREES))
def test_one_missing_dependency_error_caught_by_every_root(package: str) -> None:
    module, root = TREES[package]
    cls = module.MissingDependencyError
    with pytest.raises(root) as info:
        raise cls("tflite_runtime", "tflite", "running a TFLite model")
    assert isinstance(info.value, device_agent.errors.MissingDependencyError)
    assert str(info.value) == ("running a TFLite model needs the Python module 'tflite_runtime', which is not "
                               "installed; install it with: pip install 'edgekit[tflite]'")
    assert info.value.exit_code == 2 and info.value.module == "tflite_runtime" and info.value.extra == "tflite"


def _raising(exc: BaseException) -> Any:
    def command(*_args: object) -> int:
        raise exc
    return command


@pytest.mark.parametrize(("package", "cls"), ALL_CLASSES, ids=[f"{p}.{c.__name__}" for p, c in ALL_CLASSES])
def test_the_host_cli_exits_with_the_class_exit_code(package: str, cls: type[BaseException],
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from edgekit.cli import main as host_cli

    monkeypatch.setattr(host_cli.COMMANDS["targets"], "run", _raising(_instance(cls)))
    assert host_cli.main(["targets"]) == cls.exit_code  # type: ignore[attr-defined]
    assert f"{cls.__name__}: " in capsys.readouterr().err


@pytest.mark.parametrize("cls", _classes(device_agent.errors), ids=lambda c: c.__name__)
def test_the_agent_cli_exits_with_the_class_exit_code(cls: type[BaseException], monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from device_agent import cli as agent_cli

    add_parser, _ = agent_cli.COMMANDS["verify"]
    monkeypatch.setitem(agent_cli.COMMANDS, "verify", (add_parser, _raising(_instance(cls))))
    assert agent_cli.main(["verify", "bundle"]) == cls.exit_code  # type: ignore[attr-defined]
    assert capsys.readouterr().err.startswith(f"{cls.__name__}: ")


def test_the_agent_cli_registers_every_sub_command_in_its_table() -> None:
    from device_agent import cli as agent_cli

    sub = next(a for a in agent_cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(agent_cli.COMMANDS)
