"""Everything ``run`` checks before it starts, in one function that ``check-config`` calls too.

``edgekit-agent check-config`` is the systemd unit's ``ExecStartPre``: if it says ok and
``run`` then fails on something it could have seen, the service restarts in a loop with the
real reason buried in the journal. So the agent's constructor and ``check-config`` both call
:func:`preflight`, and there is no second list of checks to drift apart from the first:

- the credential and TLS files (:func:`device_agent.service.config.check_files`: readable, non-empty,
  a UTF-8 password);
- the bundle, every check (:mod:`device_agent.bundle.verify`), with the model loaded the way ``run``
  loads it (the config's threads, the target's providers) and the golden self-test run, and
  that it declares image preprocessing, since the agent feeds it camera frames;
- every source: a file or folder exists, a ``/dev/videoN`` node exists, a URL has a scheme,
  a host and a port in range (a camera index or a GStreamer pipeline can only be tried).

Nothing here connects to the broker or opens a camera: both can be down for a while without
the config being wrong, and the agent waits for them with backoff.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from urllib.parse import urlsplit

from device_agent.bundle.selftest import verify_model
from device_agent.bundle.verify import Bundle, read_bundle
from device_agent.errors import BundleError, ConfigError, SourceError
from device_agent.runtimes import Runtime
from device_agent.service.config import AgentConfig, check_files
from device_agent.sources.registry import local_path, source_kind

_HOST_OPTIONAL = {"udp", "srt"}  # listener mode: udp://@:1234, srt://:9000


@dataclass(frozen=True)
class Ready:
    """What preflight checked and loaded: the verified bundle and its self-tested runtime."""

    bundle: Bundle
    runtime: Runtime
    threads: int


def preflight(config: AgentConfig) -> Ready:
    """Run every check ``run`` needs before it starts; :class:`ConfigError` or :class:`BundleError` naming it."""
    check_files(config)
    bundle = read_bundle(config.bundle)
    manifest = bundle.manifest
    if manifest.preprocess is None:
        raise BundleError("preprocess", "the agent runs camera frames; this bundle declares no image preprocessing")
    threads = manifest.target.threads if config.threads is None else config.threads
    runtime = verify_model(bundle, threads=threads, providers=manifest.target.providers)
    for index, source in enumerate(config.sources):
        check_source(source.uri, key=f"sources.{index}.uri")
    return Ready(bundle, runtime, threads)


def check_source(uri: str, *, key: str) -> None:
    """What can be known of a source without opening it; :class:`ConfigError` naming ``key``."""
    try:
        kind = source_kind(uri)
        if kind == "v4l2":
            _check_device(uri)
        elif kind == "url":
            _check_url(uri)
        elif kind in ("video-file", "image-folder") and not os.access(local_path(uri), os.R_OK):
            raise SourceError(f"source URI {uri!r}: no permission to read it")
    except SourceError as exc:
        raise ConfigError(f"key '{key}': {exc}") from exc
    except (OSError, ValueError) as exc:  # ENAMETOOLONG, a NUL in the path
        raise ConfigError(f"key '{key}': source URI {uri!r}: {exc}") from exc


def _check_device(uri: str) -> None:
    node = uri.strip()
    try:
        mode = os.stat(node).st_mode
    except FileNotFoundError:
        raise SourceError(f"source URI {uri!r}: no such device node (is the camera plugged in?)") from None
    if not stat.S_ISCHR(mode):
        raise SourceError(f"source URI {uri!r} is not a character device (a V4L2 camera node)")


def _check_url(uri: str) -> None:
    parts = urlsplit(uri.strip())
    port = parts.port  # ValueError when not a number or outside 0-65535
    if not parts.hostname and parts.scheme.lower() not in _HOST_OPTIONAL:
        raise SourceError(f"source URI {uri!r} has no host; expected e.g. rtsp://camera.local:554/stream")
    if port is not None and not 1 <= port <= 65535:
        raise SourceError(f"source URI {uri!r}: port {port} is outside 1-65535")
    if parts.scheme.lower() in _HOST_OPTIONAL and port is None:
        raise SourceError(f"source URI {uri!r} has no port")
