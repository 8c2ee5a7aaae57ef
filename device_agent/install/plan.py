"""The install and uninstall steps, run against a root directory.

Every step says what it will do before doing it, so ``--dry-run`` prints the whole plan and
changes nothing. ``--root DIR`` stages the install into a folder (an image being built, a
test): files land under DIR and nothing is asked of the running system. On a live system
(root ``/`` with systemd running) the unit is enabled and, when the config and its bundle
check out, started. Installing again upgrades: the virtual environment's packages and the
unit are refreshed, the config, the outbox and the bundles are kept.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path, PurePosixPath

from device_agent import __version__
from device_agent.errors import InstallError
from device_agent.install import files
from device_agent.install.board import Board


@dataclass(frozen=True)
class Step:
    name: str
    detail: str
    action: Callable[[], str | None]  # returns a note for the output, or None


@dataclass(frozen=True)
class InstallOptions:
    board: Board
    root: Path = Path("/")
    package: str = ""  # pip requirement or path of the agent package; default: where this one came from
    onnxruntime_wheel: str | None = None  # Jetson: NVIDIA's onnxruntime-gpu wheel (path or URL)
    index_url: str | None = None  # Jetson: an index that serves onnxruntime-gpu for this JetPack
    venv: bool = True  # create the virtual environment and install the packages
    device_id: str = "edgekit-device"
    source: str = "/dev/video0"
    broker: tuple[str, int] = ("127.0.0.1", 1883)
    start: bool = True
    python: str = field(default_factory=lambda: sys.executable)


def default_package() -> str:
    """The agent package to install: the source folder this one runs from, else this version from PyPI."""
    try:
        direct = metadata.distribution("edgekit").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        direct = None
    if direct:
        url: str = json.loads(direct).get("url", "")
        if url.startswith("file://") and Path(url[7:]).is_dir():
            return url[7:]
    return f"edgekit=={__version__}"


def requirement(package: str, extras: tuple[str, ...]) -> str:
    """``package`` with ``extras``: ``/src`` -> ``/src[agent,onnx]``, ``edgekit==1`` -> ``edgekit[agent,onnx]==1``."""
    wanted = ",".join(extras)
    if package.startswith((".", "/")) or Path(package).exists():
        return f"{package}[{wanted}]"
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?(.*)", package)
    if match is None:
        raise InstallError(f"--package {package!r} is neither a path nor a requirement like 'edgekit==0.1.0'")
    return f"{match.group(1)}[{wanted}]{match.group(3)}"


def _at(root: Path, path: PurePosixPath) -> Path:
    return root / str(path).lstrip("/")


def _run(cmd: list[str], what: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise InstallError(f"{what} failed ({' '.join(cmd)}, exit {proc.returncode}):\n{tail}")
    return proc.stdout


def _live(root: Path) -> bool:
    """Installing into the running system (not a staging root)."""
    return root.resolve() == Path("/")


def _systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()


def _write(path: Path, text: str, *, keep: bool = False, mode: int = 0o644) -> str:
    if keep and path.exists():
        return f"kept the existing {path}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return f"wrote {path}"


def install_steps(o: InstallOptions) -> list[Step]:
    """Every step of an install (or upgrade) with these options, in order."""
    root = o.root
    venv = _at(root, files.PREFIX)
    python = venv / "bin" / "python"
    package = o.package or default_package()
    steps = []

    def check_python() -> str:
        version = _run([o.python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                       "asking Python its version")
        if tuple(int(v) for v in version.split(".")[:2]) < (3, 10):
            raise InstallError(f"Python {version.strip()} at {o.python} is too old; the agent needs 3.10 or newer")
        return f"Python {version.strip()} at {o.python}"

    steps.append(Step("board", o.board.describe(), lambda: None))
    steps.append(Step("python", f"check Python >= 3.10 ({o.python})", check_python))
    if o.venv:
        def make_venv() -> str:
            if python.is_file():
                return f"upgrading the existing environment {venv}"
            _run([o.python, "-m", "venv", str(venv)], f"creating the virtual environment {venv}")
            return f"created {venv}"

        steps.append(Step("venv", f"virtual environment {venv}", make_venv))
        req = requirement(package, o.board.extras)
        steps.append(Step("packages", f"pip install --upgrade {req!r} into {venv}",
                          lambda: _run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", req],
                                       f"installing {req}") and None))
        if o.board.runtime == "onnxruntime-gpu":
            steps.append(_jetson_runtime(o, python))
    steps.append(Step("user", f"service user {files.USER!r} in group video ({_at(root, files.SYSUSERS)})",
                      lambda: _make_user(root)))
    steps.append(Step("state", f"state directories {_at(root, files.STATE)}/{{outbox,bundles}}",
                      lambda: _make_state(root)))
    config = _at(root, files.CONFIG)
    steps.append(Step("config", f"{config} from the template, unless it exists (root:{files.USER} 0640)",
                      lambda: _make_config(o, config)))
    unit = _at(root, files.UNIT)
    steps.append(Step("unit", f"systemd unit {unit}", lambda: _write(unit, files.unit_text())))
    steps.append(Step("enable", f"enable {files.SERVICE}" + (" and start it if the config checks out"
                                                             if o.start else ""), lambda: _enable(o)))
    return steps


def _jetson_runtime(o: InstallOptions, python: Path) -> Step:
    """onnxruntime-gpu comes from NVIDIA (JetPack-specific wheels), never from PyPI."""
    if o.onnxruntime_wheel:
        source = o.onnxruntime_wheel
        install = [str(python), "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps", source]
    elif o.index_url:
        source = f"onnxruntime-gpu from {o.index_url}"
        install = [str(python), "-m", "pip", "install", "--quiet", "--extra-index-url", o.index_url, "onnxruntime-gpu"]
    else:
        return Step("gpu-runtime", "onnxruntime-gpu: no --onnxruntime-wheel or --index-url given", lambda: (
            "WARNING: no GPU runtime: the agent will use CPU onnxruntime. PyPI has no Jetson build of "
            "onnxruntime-gpu; download NVIDIA's wheel for your JetPack (Jetson Zoo, or the jetson-ai-lab index) "
            "and run install again with --onnxruntime-wheel FILE or --index-url URL"))

    def replace() -> str:
        _run([str(python), "-m", "pip", "uninstall", "--quiet", "-y", "onnxruntime"], "removing CPU onnxruntime")
        _run(install, f"installing {source}")
        return f"onnxruntime-gpu installed from {source} (TensorRT and CUDA providers)"

    return Step("gpu-runtime", f"replace CPU onnxruntime with onnxruntime-gpu ({source})", replace)


def _make_user(root: Path) -> str:
    note = _write(_at(root, files.SYSUSERS), files.sysusers_text())
    if not _live(root):
        return note + "; the user is created on the device's first boot by systemd-sysusers"
    if shutil.which("systemd-sysusers"):
        _run(["systemd-sysusers", str(files.SYSUSERS)], "creating the service user")
        return note + f"; user {files.USER!r} ready"
    if subprocess.run(["getent", "passwd", files.USER], capture_output=True, check=False).returncode == 0:
        return note + f"; user {files.USER!r} exists"
    if shutil.which("useradd") is None:
        raise InstallError("neither systemd-sysusers nor useradd is available to create the service user")
    _run(["useradd", "--system", "--user-group", "--home-dir", str(files.STATE), "--no-create-home",
          "--shell", "/usr/sbin/nologin", files.USER], "creating the service user")
    if subprocess.run(["getent", "group", "video"], capture_output=True, check=False).returncode == 0:
        _run(["usermod", "-a", "-G", "video", files.USER], "adding the service user to the video group")
    return note + f"; user {files.USER!r} created with useradd"


def _service_ids() -> tuple[int, int] | None:
    import pwd

    try:
        user = pwd.getpwnam(files.USER)
    except KeyError:
        return None
    return user.pw_uid, user.pw_gid


def _make_config(o: InstallOptions, config: Path) -> str:
    """The template, readable by the service user's group only (it may hold broker credentials)."""
    note = _write(config, files.config_template(o.device_id, o.source, *o.broker), keep=True, mode=0o640)
    ids = _service_ids() if _live(o.root) else None
    if ids is not None and note.startswith("wrote"):
        os.chown(config, 0, ids[1])
    return note


def _make_state(root: Path) -> str:
    _write(_at(root, files.TMPFILES), files.tmpfiles_text())
    state = _at(root, files.STATE)
    kept = state.exists()
    for sub in ("outbox", "bundles"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    if _live(root):
        ids = _service_ids()
        for path in (state, state / "outbox", state / "bundles"):
            path.chmod(0o750)
            if ids is not None:
                os.chown(path, *ids)
    return f"{'kept' if kept else 'created'} {state} (outbox and bundles survive upgrades)"


def _enable(o: InstallOptions) -> str:
    wants = _at(o.root, files.WANTS)
    if not (_live(o.root) and _systemd_running()):
        wants.parent.mkdir(parents=True, exist_ok=True)
        if wants.is_symlink() or wants.exists():
            wants.unlink()
        wants.symlink_to(str(files.UNIT))
        why = "staging root" if not _live(o.root) else "systemd is not running here (a chroot or container)"
        return f"enabled for the next boot ({why}): {wants} -> {files.UNIT}"
    _run(["systemctl", "daemon-reload"], "reloading systemd")
    _run(["systemctl", "enable", files.SERVICE], f"enabling {files.SERVICE}")
    if not o.start:
        return f"enabled; start it with: systemctl start {files.SERVICE}"
    check = subprocess.run([str(files.AGENT), "check-config", str(files.CONFIG)], capture_output=True, text=True,
                           check=False)
    if check.returncode != 0:
        return (f"enabled, not started: {check.stderr.strip() or check.stdout.strip()}; edit {files.CONFIG}, copy a "
                f"bundle to {files.STATE}/bundles/active, then: systemctl restart {files.SERVICE}")
    _run(["systemctl", "restart", files.SERVICE], f"starting {files.SERVICE}")
    return f"started; follow it with: journalctl -u {files.SERVICE} -f"


def uninstall_steps(root: Path = Path("/"), *, purge: bool = False) -> list[Step]:
    """Remove the service; with ``purge`` also the environment, the config and the state (unsent results too)."""
    steps = []
    if _live(root) and _systemd_running():
        steps.append(Step("stop", f"systemctl disable --now {files.SERVICE}", lambda: _run(
            ["systemctl", "disable", "--now", files.SERVICE], f"stopping {files.SERVICE}") and None))
    for path in (files.WANTS, files.UNIT, files.SYSUSERS, files.TMPFILES):
        target = _at(root, path)
        steps.append(Step("remove", str(target), partial(_remove, target)))
    if _live(root) and _systemd_running():
        steps.append(Step("reload", "systemctl daemon-reload", lambda: _run(["systemctl", "daemon-reload"],
                                                                             "reloading systemd") and None))
    kept = [_at(root, p) for p in (files.PREFIX, files.CONFIG.parent, files.STATE)]
    if purge:
        for target in kept:
            steps.append(Step("purge", f"{target} (with --purge: unsent results in the outbox are lost)",
                              partial(_remove, target)))
    else:
        steps.append(Step("keep", "kept: " + ", ".join(map(str, kept)) + " (--purge removes them)", lambda: None))
    return steps


def _remove(path: Path) -> str:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    else:
        return f"{path}: not there"
    return f"removed {path}"


def run_steps(steps: list[Step], *, dry_run: bool, echo: Callable[[str], None]) -> None:
    """Say each step, then do it (unless ``dry_run``), with its note."""
    for i, step in enumerate(steps, 1):
        echo(f"[{i}/{len(steps)}] {step.name}: {step.detail}")
        if dry_run:
            continue
        note = step.action()
        if note:
            echo(f"      {note}")
    if dry_run:
        echo("dry run: nothing was changed")
