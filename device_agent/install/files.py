"""What the installer writes: the systemd unit, the service user, the state directories and
the config template. Paths are absolute on the device; the installer prefixes ``--root``."""

from __future__ import annotations

from pathlib import PurePosixPath

SERVICE = "edgekit-agent.service"
USER = "edgekit"
PREFIX = PurePosixPath("/opt/edgekit-agent")  # the virtual environment
AGENT = PREFIX / "bin" / "edgekit-agent"
CONFIG = PurePosixPath("/etc/edgekit/agent.toml")
STATE = PurePosixPath("/var/lib/edgekit-agent")  # outbox and bundles: kept across upgrades
UNIT = PurePosixPath("/etc/systemd/system") / SERVICE
WANTS = PurePosixPath("/etc/systemd/system/multi-user.target.wants") / SERVICE
SYSUSERS = PurePosixPath("/usr/lib/sysusers.d/edgekit-agent.conf")
TMPFILES = PurePosixPath("/usr/lib/tmpfiles.d/edgekit-agent.conf")

#: systemd restarts a failed agent after this many seconds, at most BURST times per INTERVAL.
RESTART_SEC = 5
START_LIMIT_BURST = 5
START_LIMIT_INTERVAL_SEC = 300
#: The agent feeds the watchdog from its main loop every WATCHDOG_SEC / 2.
WATCHDOG_SEC = 30


def unit_text() -> str:
    """The systemd unit: notify + watchdog, restart on failure with a limit, hardened, journal logs."""
    return f"""[Unit]
Description=EdgeKit agent: runs a model bundle on camera frames and publishes every result over MQTT
Documentation=https://github.com/edgekit/edgekit#the-agent
After=network-online.target time-sync.target
Wants=network-online.target
StartLimitIntervalSec={START_LIMIT_INTERVAL_SEC}
StartLimitBurst={START_LIMIT_BURST}

[Service]
Type=notify
NotifyAccess=main
ExecStartPre={AGENT} check-config {CONFIG}
ExecStart={AGENT} run --config {CONFIG}
Restart=on-failure
RestartSec={RESTART_SEC}
WatchdogSec={WATCHDOG_SEC}
TimeoutStartSec=120
TimeoutStopSec=30
User={USER}
Group={USER}
SupplementaryGroups=video
StateDirectory=edgekit-agent
StateDirectoryMode=0750
WorkingDirectory={STATE}
Environment=PYTHONUNBUFFERED=1
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
ReadWritePaths={STATE}
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
SystemCallArchitectures=native
UMask=0027
StandardOutput=journal
StandardError=journal
SyslogIdentifier=edgekit-agent

[Install]
WantedBy=multi-user.target
"""


def sysusers_text() -> str:
    """``systemd-sysusers``: the system user, in the ``video`` group for V4L2 and CSI cameras."""
    return f"""# EdgeKit agent service user (edgekit-agent install)
u {USER} - "EdgeKit agent" {STATE} /usr/sbin/nologin
m {USER} video
"""


def tmpfiles_text() -> str:
    """``systemd-tmpfiles``: the state directories, owned by the service user."""
    return f"""# EdgeKit agent state: outbox and bundles, kept across upgrades (edgekit-agent install)
d {STATE} 0750 {USER} {USER} -
d {STATE}/outbox 0750 {USER} {USER} -
d {STATE}/bundles 0750 {USER} {USER} -
"""


def config_template(device_id: str, source: str, broker_host: str, broker_port: int) -> str:
    """The starting config: valid TOML, every path inside the state directory."""
    return f'''# EdgeKit agent configuration (written by edgekit-agent install; it never overwrites this file).
# Check it with: {AGENT} check-config {CONFIG}
device_id = "{device_id}"
bundle = "{STATE}/bundles/active"   # copy a bundle written by `edgekit optimize` here

[[sources]]
# USB camera: "/dev/video0"; Pi camera (libcamera): "libcamerasrc ! videoconvert ! appsink";
# Jetson CSI: "nvarguscamerasrc ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! appsink";
# network camera: "rtsp://user:pass@camera/stream"; or a video file / image folder
uri = "{source}"

[mqtt]
host = "{broker_host}"
port = {broker_port}

[outbox]
path = "{STATE}/outbox/outbox.db"   # unsent results survive reboots and broker outages here
'''
