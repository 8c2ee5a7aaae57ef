"""edgekit-agent install / uninstall into a staging root: every file, a real virtual environment,
and a unit that systemd-analyze verify accepts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from device_agent.cli import main
from device_agent.install import detect_board, files
from device_agent.install.board import BoardKind, RuntimeExtra, board_for
from device_agent.service.config import load_config

REPO = Path(__file__).resolve().parents[2]


def _install(root: Path, *extra: str) -> int:
    return main(["install", "--root", str(root), "--device-id", "cam-07", "--broker", "mqtt.local:1883",
                 "--source", "/dev/video2", *extra])


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full install for a Raspberry Pi into a staging root: venv with the agent and LiteRT, config, unit."""
    root = tmp_path_factory.mktemp("root")
    assert _install(root, "--board", "raspberry-pi", "--package", str(REPO)) == 0
    return root


def test_board_detection_from_the_device_tree_and_l4t(tmp_path: Path) -> None:
    pi = tmp_path / "pi"
    (pi / "proc/device-tree").mkdir(parents=True)
    (pi / "proc/device-tree/model").write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")
    board = detect_board(pi, machine="aarch64")
    assert (board.kind, board.runtime, board.extras) == ("raspberry-pi", "tflite", ("agent", "tflite"))
    assert board.model == "Raspberry Pi 5 Model B Rev 1.0"
    jetson = tmp_path / "jetson"
    (jetson / "etc").mkdir(parents=True)
    (jetson / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic\n")
    board = detect_board(jetson, machine="aarch64")
    assert (board.kind, board.runtime) == ("jetson", "onnxruntime-gpu") and "L4T R36.4.0" in board.model
    assert detect_board(tmp_path / "none", machine="aarch64").kind == "arm64"
    assert detect_board(tmp_path / "none", machine="x86_64").runtime == "onnxruntime"


@pytest.mark.parametrize(("kind", "runtime", "extras", "engine"), [
    ("raspberry-pi", None, ("agent", "tflite"), "tflite"),
    ("jetson", None, ("agent", "onnx"), "onnxruntime-gpu"),
    ("arm64", None, ("agent", "onnx"), "onnxruntime"),
    ("x86_64", None, ("agent", "onnx"), "onnxruntime"),
    ("other", None, ("agent", "onnx"), "onnxruntime"),
    ("raspberry-pi", "onnx", ("agent", "onnx"), "onnxruntime"),
    ("jetson", "tflite", ("agent", "tflite"), "tflite"),
    ("x86_64", "tflite", ("agent", "tflite"), "tflite"),
])
def test_each_board_installs_the_agent_and_exactly_one_runtime(kind: BoardKind, runtime: RuntimeExtra | None,
                                                               extras: tuple[str, ...], engine: str) -> None:
    board = board_for(kind, runtime=runtime)
    assert (board.extras, board.runtime) == (extras, engine)
    assert f"edgekit[{','.join(extras)}]" in board.describe()


def test_detection_takes_the_runtime_override(tmp_path: Path) -> None:
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.5\0")
    board = detect_board(tmp_path, machine="aarch64", runtime="onnx")
    assert (board.kind, board.runtime, board.extras) == ("raspberry-pi", "onnxruntime", ("agent", "onnx"))
    assert board.model == "Raspberry Pi 4 Model B Rev 1.5"


def test_the_runtime_flag_picks_the_extra_the_installer_installs(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "r"
    assert _install(root, "--dry-run", "--board", "raspberry-pi", "--package", "edgekit==0.1.0") == 0
    out = capsys.readouterr().out
    assert "'edgekit[agent,tflite]==0.1.0'" in out and "gpu-runtime" not in out
    assert _install(root, "--dry-run", "--board", "raspberry-pi", "--runtime", "onnx",
                    "--package", "edgekit==0.1.0") == 0
    out = capsys.readouterr().out
    assert "'edgekit[agent,onnx]==0.1.0'" in out and "runtime onnxruntime, edgekit[agent,onnx]" in out
    assert _install(root, "--dry-run", "--board", "jetson", "--runtime", "tflite", "--package", "edgekit==0.1.0") == 0
    out = capsys.readouterr().out  # LiteRT on a Jetson: no onnxruntime-gpu to swap in
    assert "'edgekit[agent,tflite]==0.1.0'" in out and "gpu-runtime" not in out
    assert not root.exists()
    with pytest.raises(SystemExit) as info:
        main(["install", "--runtime", "tensorrt"])
    assert info.value.code == 2 and "--runtime" in capsys.readouterr().err


def test_every_file_of_the_staged_install(staged: Path) -> None:
    config = staged / "etc/edgekit/agent.toml"
    parsed = tomllib.loads(config.read_text())
    assert parsed["device_id"] == "cam-07" and parsed["mqtt"] == {"host": "mqtt.local", "port": 1883}
    assert parsed["sources"] == [{"uri": "/dev/video2"}]
    assert parsed["bundle"] == "/var/lib/edgekit-agent/bundles/active"
    assert parsed["outbox"]["path"] == "/var/lib/edgekit-agent/outbox/outbox.db"
    assert config.stat().st_mode & 0o777 == 0o640
    unit = (staged / "etc/systemd/system/edgekit-agent.service").read_text()
    for line in ("Type=notify", "WatchdogSec=30", "Restart=on-failure", "StartLimitBurst=5", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "ReadWritePaths=/var/lib/edgekit-agent", "SupplementaryGroups=video",
                 "User=edgekit", "StandardOutput=journal",
                 "ExecStart=/opt/edgekit-agent/bin/edgekit-agent run --config /etc/edgekit/agent.toml",
                 "WantedBy=multi-user.target"):
        assert line in unit.splitlines(), line
    wants = staged / "etc/systemd/system/multi-user.target.wants/edgekit-agent.service"
    assert wants.is_symlink() and str(wants.readlink()) == "/etc/systemd/system/edgekit-agent.service"
    assert ("u edgekit - \"EdgeKit agent\" /var/lib/edgekit-agent"
            in (staged / "usr/lib/sysusers.d/edgekit-agent.conf").read_text())
    assert ("d /var/lib/edgekit-agent/outbox 0750 edgekit edgekit"
            in (staged / "usr/lib/tmpfiles.d/edgekit-agent.conf").read_text())
    assert (staged / "var/lib/edgekit-agent/outbox").is_dir() and (staged / "var/lib/edgekit-agent/bundles").is_dir()
    # a real environment: the agent runs, and a Raspberry Pi gets LiteRT
    agent = staged / "opt/edgekit-agent/bin/edgekit-agent"
    out = subprocess.run([str(agent), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("edgekit-agent ")
    python = staged / "opt/edgekit-agent/bin/python"
    subprocess.run([str(python), "-c", "import ai_edge_litert.interpreter, cv2, paho.mqtt"], check=True)


def test_a_staged_raspberry_pi_has_one_runtime(staged: Path) -> None:
    """edgekit[agent,tflite]: LiteRT, and no onnxruntime that a TFLite bundle would never use."""
    python = staged / "opt/edgekit-agent/bin/python"
    probe = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('onnxruntime'))"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "None"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_unit(staged: Path) -> None:
    # the staging root stands for an OS image: give it the base units (sysinit.target, ...) that one has
    units = staged / "usr/lib/systemd/system"
    units.mkdir(parents=True, exist_ok=True)
    for target in Path("/usr/lib/systemd/system").glob("*.target"):
        if not (units / target.name).exists():
            shutil.copy(target, units / target.name)
    proc = subprocess.run(["systemd-analyze", "verify", f"--root={staged}", files.SERVICE],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "edgekit-agent" not in proc.stderr  # no warning about our unit either


def test_installing_again_upgrades_and_keeps_config_outbox_and_bundles(staged: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "r"
    shutil.copytree(staged / "etc", root / "etc", symlinks=True)
    config = root / "etc/edgekit/agent.toml"
    config.write_text(config.read_text().replace('device_id = "cam-07"', 'device_id = "renamed"'))
    outbox = root / "var/lib/edgekit-agent/outbox/outbox.db"
    bundle = root / "var/lib/edgekit-agent/bundles/active/manifest.json"
    for path in (outbox, bundle):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("keep me")
    unit = root / "etc/systemd/system/edgekit-agent.service"
    unit.write_text("stale")
    assert _install(root, "--no-venv") == 0
    assert 'device_id = "renamed"' in config.read_text()
    assert outbox.read_text() == "keep me" and bundle.read_text() == "keep me"
    assert "Type=notify" in unit.read_text()  # the unit is ours: refreshed
    out = capsys.readouterr().out
    assert f"kept the existing {config}" in out and "kept " in out


def test_dry_run_prints_every_step_and_changes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "r"
    assert _install(root, "--dry-run", "--board", "jetson", "--onnxruntime-wheel", "ort_gpu.whl") == 0
    out = capsys.readouterr().out
    assert not root.exists()
    for name in ("board", "python", "venv", "packages", "gpu-runtime", "config", "user", "state", "unit", "enable"):
        assert f"] {name}: " in out, name
    assert "onnxruntime-gpu (ort_gpu.whl)" in out and "NVIDIA Jetson" in out and "dry run: nothing was changed" in out


def test_uninstall_keeps_data_unless_purged(staged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "r"
    assert _install(root, "--no-venv") == 0
    assert main(["uninstall", "--root", str(root)]) == 0
    assert not (root / "etc/systemd/system/edgekit-agent.service").exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants/edgekit-agent.service").is_symlink()
    assert not (root / "usr/lib/sysusers.d/edgekit-agent.conf").exists()
    assert (root / "etc/edgekit/agent.toml").is_file() and (root / "var/lib/edgekit-agent/outbox").is_dir()
    assert main(["uninstall", "--root", str(root), "--purge"]) == 0
    assert not (root / "etc/edgekit").exists() and not (root / "var/lib/edgekit-agent").exists()
    assert "unsent results in the outbox are lost" in capsys.readouterr().out


def test_the_template_config_is_valid_once_a_bundle_is_there(staged: Path, tmp_path: Path) -> None:
    text = (staged / "etc/edgekit/agent.toml").read_text().replace("/var/lib/edgekit-agent", str(tmp_path))
    path = tmp_path / "agent.toml"
    path.write_text(text)
    config = load_config(path)  # every key of the template is one the agent knows
    assert config.device_id == "cam-07" and config.outbox.path == tmp_path / "outbox/outbox.db"


def test_bad_install_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["install", "--broker", "nohost"])
    assert info.value.code == 2 and "expected HOST:PORT" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["install", "--board", "beaglebone"])
    assert info.value.code == 2


def test_the_agent_help_documents_install() -> None:
    out = subprocess.run([sys.executable, "-m", "device_agent.cli", "install", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "/opt/edgekit-agent" in out and "--root" in out and "--dry-run" in out and "--onnxruntime-wheel" in out
    assert "--runtime {onnx,tflite}" in out
