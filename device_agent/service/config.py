"""The agent's configuration file (TOML), validated once, at the edge.

Every table forbids unknown keys; an error names the key, the value and what was expected.
Relative paths are relative to the config file's folder, so a config and its bundle can
move together. ``edgekit-agent check-config FILE`` runs exactly this validation.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from device_agent.errors import ConfigError
from device_agent.nesting import nesting_depth
from device_agent.protocol.events import MAX_THUMBNAIL_BYTES
from device_agent.service.config_errors import explain
from device_agent.sources.runner import DEFAULT_BACKOFF_MAX_S
from device_agent.sources.types import DEFAULT_STALL_AFTER_S, default_read_timeout_s

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Table):
    uri: str = Field(
        description="camera index, /dev/videoN, rtsp:// or http:// URL, GStreamer pipeline, video file, image folder"
    )
    name: str | None = Field(default=None, description="name used in results and events (default: source-N)")
    loop: bool = Field(default=False, description="restart a video file or folder at its end")
    fps: float | None = Field(default=None, gt=0, description="pacing for files; absent: as fast as inference allows")
    # stall_after_s comes first: read_timeout_s is derived from it and checked against it.
    stall_after_s: float = Field(
        default=DEFAULT_STALL_AFTER_S, gt=0,
        description="no good frame for this long: stalled, reconnect (a live source is retried forever)",
    )
    read_timeout_s: float = Field(
        default=None, validate_default=True, gt=0,
        description="give up on an open or read after this long; default stall_after_s + 2 s, and it must be "
        "longer than stall_after_s so a stall is detected before a read gives up",
    )

    backoff_initial_s: float = Field(
        default=0.5, gt=0, description="first wait before reconnecting; doubles per attempt"
    )
    backoff_max_s: float = Field(
        default=DEFAULT_BACKOFF_MAX_S, gt=0,
        description="longest wait between reconnect attempts: a camera that returns streams again within this",
    )

    @field_validator("read_timeout_s", mode="before")
    @classmethod
    def _default_after_stall(cls, value: object, info: ValidationInfo) -> object:
        if value is not None:
            return value
        # An invalid stall_after_s is reported on its own key; derive from the default meanwhile.
        return default_read_timeout_s(info.data.get("stall_after_s", DEFAULT_STALL_AFTER_S))

    @field_validator("read_timeout_s")
    @classmethod
    def _longer_than_stall(cls, value: float, info: ValidationInfo) -> float:
        stall = info.data.get("stall_after_s")
        if stall is not None and not value > stall:
            raise ValueError(f"must be longer than stall_after_s ({stall:g}), so that a stall is detected before a "
                             "read gives up; leave it unset for stall_after_s + 2 s")
        return value


class TlsConfig(_Table):
    ca: Path = Field(description="CA certificate file that signed the broker's certificate")
    cert: Path | None = Field(default=None, description="client certificate (mutual TLS)")
    key: Path | None = Field(default=None, description="client private key (mutual TLS)")

    @model_validator(mode="after")
    def _cert_and_key(self) -> TlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("give both cert and key for a client certificate, or neither")
        return self


class MqttConfig(_Table):
    host: str = Field(default="127.0.0.1", description="broker host name or address")
    port: int = Field(default=1883, ge=1, le=65535, description="broker port")
    client_id: str | None = Field(default=None, description="MQTT client id (default: edgekit-<device_id>)")
    username: str | None = None
    password: str | None = Field(default=None, description="prefer password_file on a device")
    password_file: Path | None = Field(default=None, description="file whose first line is the password")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    protocol: Literal["5", "3.1.1"] = Field(default="5", description="MQTT protocol version")
    topic_root: str = Field(default="edgekit/v1", description="topics are <root>/<device_id>/...")
    tls: TlsConfig | None = None


class OutboxConfig(_Table):
    path: Path = Field(default=Path("state/outbox.db"), description="SQLite file that holds unacknowledged messages")
    max_rows: int = Field(default=100_000, ge=10, description="oldest rows are dropped past this, with a gap event")
    max_age_s: float = Field(default=7 * 86400, gt=0, description="rows older than this are dropped, with a gap event")


class PublishConfig(_Table):
    policy: Literal["every", "on-change", "rate"] = Field(
        default="every", description="every frame; only when the result changes; or at most max_per_second"
    )
    max_per_second: float = Field(default=5.0, gt=0, description="for policy 'rate'")
    metrics_interval_s: float = Field(default=10.0, gt=0, description="heartbeat period on the metrics topic")


class LogConfig(_Table):
    format: Literal["text", "json"] = Field(
        default="text", description="text lines, or one JSON object per line for log shippers (--log-format wins)"
    )
    summary_interval_s: float = Field(
        default=60.0, gt=0, description="seconds between summary lines (fps, latency, published, outbox, broker)"
    )


class CommandsConfig(_Table):
    dedup_window_s: float = Field(
        default=600.0, ge=0,
        description="a request_id seen this many seconds back gets its earlier reply again, not a second run "
                    "(kept in the outbox database, so across restarts); 0 turns this off")


class DriftConfig(_Table):
    """Drift detection (``device_agent/drift``): on by default when the bundle carries a baseline (drift.json)."""

    enabled: bool = Field(default=True, description="watch for drift when the bundle carries a baseline; false: never")
    window: int = Field(default=600, ge=10, le=100_000, description="rolling window, in frames")
    min_frames: int = Field(default=300, ge=10, description=(
        "frames in the window before any verdict (<= window); consecutive frames are alike, so a verdict needs "
        "enough of them to span the scene's own variety"))
    warn: float = Field(default=0.1, gt=0, description="PSI at which a signal is 'warn'")
    alert: float = Field(default=0.25, gt=0, description="PSI at which a signal is 'alert' (above warn)")
    p_value: float = Field(default=0.01, gt=0, lt=1,
                           description="the class mix must also differ at this significance (chi-square)")

    @model_validator(mode="after")
    def _ordered(self) -> DriftConfig:
        if self.min_frames > self.window:
            raise ValueError(f"min_frames ({self.min_frames}) must not exceed window ({self.window}): "
                             "the window never holds more frames than its size")
        if not self.alert > self.warn:
            raise ValueError(f"alert ({self.alert:g}) must be above warn ({self.warn:g})")
        return self


class ThumbnailsConfig(_Table):
    """Alert thumbnails (opt-in): a small JPEG of the frame that raised a rule's alert, on its ``alert`` event."""

    enabled: bool = Field(default=False, description="attach a thumbnail to raised alerts; off by default")
    max_side: int = Field(default=320, ge=64, le=1920,
                          description="longer side of the thumbnail in pixels (a smaller frame is not enlarged)")
    max_bytes: int = Field(default=24_000, ge=1_000, le=MAX_THUMBNAIL_BYTES, description=(
        "the JPEG never exceeds this: quality goes down in steps, then the image is scaled down; base64 makes it "
        f"4/3 larger on the wire, and at most {MAX_THUMBNAIL_BYTES} keeps the whole event under the "
        "agent's 64 KiB payload limit"))
    quality: int = Field(default=80, ge=1, le=100, description="JPEG quality of the first attempt (1-100)")
    min_interval_s: float = Field(default=10.0, ge=0, description=(
        "at most one thumbnail per this many seconds per device; a raised alert sooner says "
        "thumbnail_skipped = \"rate_limited\" instead; 0: no limit"))


class RuleConfig(_Table):
    name: str
    label: str = Field(description="class label that triggers the rule")
    min_score: float = Field(default=0.5, ge=0, le=1)
    zone: list[tuple[float, float]] | None = Field(
        default=None, description="polygon in frame pixels; a detection's box centre must lie inside"
    )
    consecutive: int = Field(default=1, ge=1, description="frames in a row before the event is raised")

    @field_validator("zone")
    @classmethod
    def _polygon(cls, zone: list[tuple[float, float]] | None) -> list[tuple[float, float]] | None:
        if zone is not None and len(zone) < 3:
            raise ValueError(f"a zone needs at least 3 points, got {len(zone)}")
        return zone


class AgentConfig(_Table):
    device_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="unique id; letters, digits, _ . -")
    bundle: Path = Field(description="bundle directory written by edgekit optimize")
    sources: list[SourceConfig] = Field(min_length=1)
    mqtt: MqttConfig = MqttConfig()
    outbox: OutboxConfig = OutboxConfig()
    publish: PublishConfig = PublishConfig()
    log: LogConfig = LogConfig()
    commands: CommandsConfig = CommandsConfig()
    rules: list[RuleConfig] = Field(default_factory=list)
    drift: DriftConfig = DriftConfig()
    thumbnails: ThumbnailsConfig = ThumbnailsConfig()
    threads: int | None = Field(default=None, ge=0, description="inference threads (default: the bundle's target)")

    def source_name(self, index: int) -> str:
        return self.sources[index].name or f"source-{index}"


def _resolve(config: AgentConfig, base: Path) -> AgentConfig:
    def rel(p: Path | None) -> Path | None:
        return None if p is None else (p if p.is_absolute() else base / p)

    def rel_uri(uri: str) -> str:
        looks_local = "://" not in uri and " ! " not in uri and not uri.isdigit() and not uri.startswith("/")
        return str(base / uri) if looks_local else uri

    mqtt = config.mqtt
    tls = mqtt.tls and mqtt.tls.model_copy(
        update={"ca": rel(mqtt.tls.ca), "cert": rel(mqtt.tls.cert), "key": rel(mqtt.tls.key)}
    )
    return config.model_copy(
        update={
            "bundle": rel(config.bundle),
            "sources": [s.model_copy(update={"uri": rel_uri(s.uri)}) for s in config.sources],
            "mqtt": mqtt.model_copy(update={"tls": tls, "password_file": rel(mqtt.password_file)}),
            "outbox": config.outbox.model_copy(update={"path": rel(config.outbox.path)}),
        }
    )


MAX_DEPTH = 8
"""Deepest nesting of tables and arrays a config may have; a real one reaches 4 (a rule's zone)."""
MAX_CONFIG_BYTES = 1 << 20


def load_config(path: Path | str) -> AgentConfig:
    """Read, validate and resolve a config file; raise :class:`ConfigError` naming the bad key.

    Any file content gives a :class:`ConfigError`, never another exception: the systemd unit
    runs ``check-config`` before every start, and a traceback there names nothing to fix.
    """
    file = Path(path)
    try:
        if not file.is_file():
            raise ConfigError(f"config file {str(file)!r} does not exist")
        with file.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except (OSError, ValueError) as exc:  # ENAMETOOLONG, EACCES, a NUL in the path
        raise ConfigError(f"cannot read config file {str(file)!r}: {exc}") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {str(file)!r} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read config file {str(file)!r}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
    except RecursionError as exc:  # tomllib parses nested arrays and inline tables recursively
        raise ConfigError(f"{file}: not valid TOML: nested more than {MAX_DEPTH} levels deep") from exc
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
    if nesting_depth(raw, MAX_DEPTH) > MAX_DEPTH:
        raise ConfigError(f"{file}: tables and arrays are nested more than {MAX_DEPTH} levels deep")
    try:
        config = AgentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{file}: {explain(exc)}") from exc
    try:
        config = _resolve(config, file.resolve().parent)
    except (OSError, RuntimeError) as exc:  # resolve(): a symlink loop, an unreadable folder
        raise ConfigError(f"cannot resolve the folder of config file {str(file)!r}: {exc}") from exc
    if config.mqtt.password_file is not None and config.mqtt.password is not None:
        raise ConfigError(f"{file}: key 'mqtt.password': give password or password_file, not both")
    check_files(config, where=f"{file}: ")
    return config


def check_files(config: AgentConfig, *, where: str = "") -> None:
    """The credential files a config names exist, are readable and non-empty; the password file is UTF-8.

    Checked at load time, not when the publisher first connects, so that ``check-config``
    fails for a file that would only make ``run`` fail later.
    """
    mqtt = config.mqtt
    if mqtt.password_file is not None:
        read_password_file(mqtt.password_file, where=where)
    if mqtt.tls is not None:
        for key, tls_file in (("ca", mqtt.tls.ca), ("cert", mqtt.tls.cert), ("key", mqtt.tls.key)):
            if tls_file is not None:
                _read_file(tls_file, f"mqtt.tls.{key}", where=where)


def _read_file(path: Path, key: str, *, where: str = "") -> bytes:
    """The bytes of a file a key names; :class:`ConfigError` naming the key if missing, unreadable or empty."""
    try:
        if not path.exists():
            raise ConfigError(f"{where}key '{key}': {str(path)!r} does not exist")
        if not path.is_file():
            raise ConfigError(f"{where}key '{key}': {str(path)!r} is not a regular file")
        data = path.read_bytes()
    except (OSError, ValueError) as exc:  # EACCES, ENAMETOOLONG, a NUL in the path
        raise ConfigError(f"{where}key '{key}': cannot read {str(path)!r}: {exc}") from exc
    if not data.strip():
        raise ConfigError(f"{where}key '{key}': {str(path)!r} is empty")
    return data


def read_password_file(path: Path, *, where: str = "") -> str:
    """The password: the first line of ``path``, stripped; :class:`ConfigError` naming ``mqtt.password_file``."""
    data = _read_file(path, "mqtt.password_file", where=where)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}key 'mqtt.password_file': {str(path)!r} is not UTF-8 text: {exc}") from exc
    password = text.splitlines()[0].strip() if text.splitlines() else ""
    if not password:
        raise ConfigError(f"{where}key 'mqtt.password_file': the first line of {str(path)!r} is empty")
    return password


def mqtt_password(config: AgentConfig) -> str | None:
    if config.mqtt.password_file is not None:
        return read_password_file(config.mqtt.password_file)
    return config.mqtt.password
