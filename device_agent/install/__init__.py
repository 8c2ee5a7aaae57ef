"""Installing the agent on a device as a systemd service: ``edgekit-agent install`` / ``uninstall``.

- :mod:`.board`: which board this is (Raspberry Pi, Jetson, generic arm64 or x86) and the
  runtime that suits it.
- :mod:`.files`: the systemd unit, the sysusers/tmpfiles entries and the config template.
- :mod:`.plan`: the install and uninstall steps, each printable (``--dry-run``) and run
  against a root directory (``--root`` stages into a folder instead of ``/``).
"""

from device_agent.install.board import Board, detect_board
from device_agent.install.plan import (
    InstallOptions,
    Step,
    install_steps,
    run_steps,
    uninstall_steps,
)

__all__ = ["Board", "InstallOptions", "Step", "detect_board", "install_steps", "run_steps", "uninstall_steps"]
