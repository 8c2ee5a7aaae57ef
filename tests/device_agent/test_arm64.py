"""The agent on arm64, emulated: a Debian bookworm arm64 root (debootstrap; the base of Raspberry Pi
OS) run under QEMU user-mode emulation. One installer command, then the agent loads a Raspberry
Pi bundle and publishes results to a broker on this machine.

Run by ``scripts/test-arm64.sh`` (``make test-arm64``), which builds or reuses the root and sets
``EDGEKIT_ARM64_ROOT``; skipped otherwise. Verified only under emulation: no real Pi or Jetson.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from edgekit.content import samples
from edgekit.optimize.pipeline import optimize
from tests.support.mqtt_broker import Broker, Collector
from tests.support.tinymodels import tiny_classifier

ROOT = os.environ.get("EDGEKIT_ARM64_ROOT", "")
pytestmark = pytest.mark.skipif(not ROOT, reason="needs the emulated arm64 root: run scripts/test-arm64.sh")

#: A clean environment inside the root; the CA bundle is this machine's (copied in by the script).
ENV = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8",
       "PIP_CERT=/etc/ssl/certs/ca-certificates.crt", "PIP_DISABLE_PIP_VERSION_CHECK=1"]


def chroot(*cmd: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["chroot", ROOT, *ENV, *cmd], capture_output=True, text=True, timeout=timeout, check=False)


def test_one_command_installs_an_agent_that_publishes_on_arm64(broker: Broker, photo_dir: Path, tmp_path: Path) -> None:
    root = Path(ROOT)
    assert chroot("uname", "-m", timeout=60).stdout.strip() == "aarch64"
    started = time.monotonic()
    install = chroot("sh", "/opt/src/edgekit/scripts/install-agent.sh", "--board", "raspberry-pi",
                     "--device-id", "pi-emu", "--broker", f"127.0.0.1:{broker.port}",
                     "--source", "/opt/test/street.mp4", "--no-start", timeout=1800)
    print(f"installer under emulation: {time.monotonic() - started:.0f} s\n{install.stdout}")
    assert install.returncode == 0, install.stdout + install.stderr
    assert "wrote /etc/edgekit/agent.toml" in install.stdout and "user 'edgekit' created" in install.stdout
    assert (root / "etc/systemd/system/multi-user.target.wants/edgekit-agent.service").is_symlink()
    machine = chroot("/opt/edgekit-agent/bin/python", "-c",
                     "import platform, ai_edge_litert.interpreter; print(platform.machine())", timeout=300)
    assert machine.stdout.strip() == "aarch64", machine.stderr  # LiteRT's aarch64 build, as on a Pi

    # what a user then does: put a Raspberry Pi bundle where the config points, and a video to read
    made = optimize(tiny_classifier(tmp_path / "tiny.onnx", size=32), target="rpi5", output=tmp_path / "b",
                    precision="int8", calib=photo_dir, max_drop=100)
    # the int8 family is static and dynamic INT8; the faster on this machine ships (a coin toss on a tiny model)
    assert made.manifest.precision in ("int8", "int8-dynamic"), made.manifest.precision
    shutil.copytree(made.bundle, root / "var/lib/edgekit-agent/bundles/active")
    samples.write_video(root / "opt/test/street.mp4", seconds=3, fps=10, size_wh=(320, 240))
    check = chroot("/opt/edgekit-agent/bin/edgekit-agent", "check-config", "/etc/edgekit/agent.toml", timeout=600)
    assert check.returncode == 0 and check.stdout.startswith("ok: pi-emu"), check.stdout + check.stderr

    collector = Collector(broker)
    started = time.monotonic()
    run = chroot("runuser", "-u", "edgekit", "--", "/opt/edgekit-agent/bin/edgekit-agent", "run",
                 "--config", "/etc/edgekit/agent.toml", "--max-frames", "20", timeout=1200)
    print(f"agent run under emulation: {time.monotonic() - started:.0f} s")
    assert run.returncode == 0, run.stderr[-3000:]
    assert collector.wait_for(lambda c: len(c.received("/results")) >= 20, timeout=30)
    results = collector.received("/results")
    assert {r["model"]["precision"] for r in results} == {made.manifest.precision}
    assert all(r["result"]["kind"] == "classification" for r in results)
    assert any(topic.startswith("edgekit/v1/pi-emu/") for topic, _, _ in collector.messages)
    outbox = root / "var/lib/edgekit-agent/outbox/outbox.db"
    assert outbox.is_file() and outbox.stat().st_uid == (root / "var/lib/edgekit-agent").stat().st_uid != 0
    collector.close()
