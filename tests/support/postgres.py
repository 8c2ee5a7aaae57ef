"""A throwaway PostgreSQL cluster for tests: ``initdb`` and ``pg_ctl`` in a temp dir, on a free port.

Debian's ``postgresql`` package (scripts/setup.sh installs it) puts the binaries under
``/usr/lib/postgresql/<major>/bin``; the newest is used. PostgreSQL refuses to run as root, so
as root the cluster runs as the ``postgres`` user (``runuser -u postgres --``) in a temp dir it
owns. Without the binaries the fixture skips with the reason, except under ``CI=true``, where
it fails: CI must run the PostgreSQL store's tests.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from tests.support.mqtt_broker import free_port
from tests.support.tools import unavailable


@dataclass(frozen=True)
class PostgresCluster:
    url: str
    port: int
    data_dir: Path


def pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` with ``pg_ctl``, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _unavailable(reason: str) -> NoReturn:
    unavailable(f"{reason}; install it with: apt-get install postgresql (scripts/setup.sh does)")


def start_cluster(root: Path, *, durable: bool = False) -> PostgresCluster:
    """Initialise and start a cluster under ``root`` (trust auth on 127.0.0.1); fsync off unless ``durable``
    (tests throw it away; a benchmark that compares write rates with SQLite's fsynced commits needs it on)."""
    binaries = pg_bin()
    if binaries is None:
        _unavailable("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/pg_ctl)")
    prefix: list[str] = []
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no 'postgres' user to run the server as")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    subprocess.run([*prefix, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "-E", "UTF8", "--no-sync"], check=True, capture_output=True, text=True)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    if not durable:
        options += " -c fsync=off -c full_page_writes=off"
    started = subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                              str(root / "server.log"), "-w", "-t", "60", "start"],
                             check=False, capture_output=True, text=True)
    if started.returncode != 0:
        log = (root / "server.log").read_text(errors="replace") if (root / "server.log").exists() else ""
        raise RuntimeError(f"pg_ctl start failed: {started.stdout}{started.stderr}\n{log[-2000:]}")
    return PostgresCluster(f"postgresql://postgres@127.0.0.1:{port}/postgres", port, data)


def stop_cluster(cluster: PostgresCluster) -> None:
    binaries = pg_bin()
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if binaries is not None:
        subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(cluster.data_dir), "-m", "immediate", "-w",
                        "stop"], check=False, capture_output=True)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One cluster for the session; tests that need a clean database create their own in it."""
    root = Path(tempfile.mkdtemp(prefix="edgekit-pg-"))
    try:
        cluster = start_cluster(root)
        try:
            yield cluster
        finally:
            stop_cluster(cluster)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(cluster: PostgresCluster, name: str) -> str:
    """A new empty database ``name`` in ``cluster`` (dropped first if it exists); returns its URL."""
    import psycopg

    with psycopg.connect(cluster.url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return cluster.url.rsplit("/", 1)[0] + f"/{name}"
