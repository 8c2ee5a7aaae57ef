"""A real Mosquitto broker for tests, plus a subscriber that records what it receives.

``Broker`` runs ``mosquitto -c <generated conf>`` on a free 127.0.0.1 port in a temp dir, with
optional password file, ACL file, TLS (certificates made with the ``openssl`` CLI),
persistence, and the dynamic-security plugin (the one way Mosquitto 2.0 refuses a SUBACK:
its acl_file only filters deliveries). ``stop()`` is a SIGKILL (a crash); ``start()`` again
reuses the same port; ``freeze()``/``thaw()`` (SIGSTOP/SIGCONT) make a half-open link.

Without mosquitto the fixtures skip with install instructions, except under ``CI=true``,
where a missing broker is a failure: CI must not silently skip the reliability tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.tools import find_tool, unavailable

MOSQUITTO = os.environ.get("MOSQUITTO", "/usr/sbin/mosquitto")


def _dynsec_plugin() -> str:
    """Where Debian/Ubuntu, a local build or Homebrew put Mosquitto's dynamic-security plugin."""
    name = "mosquitto_dynamic_security.so"
    folders = [Path("/usr/lib") / f"{os.uname().machine}-linux-gnu", Path("/usr/lib"), Path("/usr/local/lib"),
               Path("/opt/homebrew/lib")]
    found = [folder / name for folder in folders if (folder / name).is_file()]
    return os.environ.get("MOSQUITTO_DYNSEC") or str(found[0] if found else folders[0] / name)


DYNSEC_PLUGIN = _dynsec_plugin()
INSTALL_HINT = "install it with: sudo apt-get install mosquitto mosquitto-clients (or brew install mosquitto)"


def require_mosquitto() -> str:
    """Path of the mosquitto binary; skip the test (fail under CI=true) when it is missing."""
    return find_tool(MOSQUITTO, "mosquitto") or unavailable(
        f"the MQTT tests need the Mosquitto broker ({MOSQUITTO} not found); {INSTALL_HINT}")


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (False): tests wait on the
    condition they assert, never on a neighbouring one or a fixed sleep."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_password_line(user: str, password: str, *, salt: bytes | None = None, iterations: int = 101) -> str:
    """A password-file line in mosquitto 2.0's ``$7$`` format (PBKDF2-HMAC-SHA512)."""
    salt = salt or os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, dklen=64)
    return f"{user}:$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def make_certificates(folder: Path) -> dict[str, Path]:
    """A test CA and a server certificate for 127.0.0.1/localhost, made with the openssl CLI."""
    folder.mkdir(parents=True, exist_ok=True)
    p = {n: folder / n for n in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt", "ext.cnf")}

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=edgekit-test-ca",
        "-keyout", str(p["ca.key"]), "-out", str(p["ca.crt"]),
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", str(p["server.key"]), "-out", str(p["server.csr"]))
    p["ext.cnf"].write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    run("x509", "-req", "-in", str(p["server.csr"]), "-CA", str(p["ca.crt"]), "-CAkey", str(p["ca.key"]),
        "-CAcreateserial", "-days", "2", "-out", str(p["server.crt"]), "-extfile", str(p["ext.cnf"]))
    return p


class Broker:
    """One mosquitto process; ``stop()`` kills it (SIGKILL), ``start()`` brings it back on the same port."""

    def __init__(
        self,
        workdir: Path,
        *,
        users: dict[str, str] | None = None,
        tls: bool = False,
        persistence: bool = False,
        use_mosquitto_passwd: bool = True,
        acl: str | None = None,
        debug_log: bool = False,
        dynsec: dict[str, Any] | None = None,
        max_queued_messages: int | None = None,
    ) -> None:
        """``acl``: acl_file text (``user cam`` / ``topic write edgekit/v1/cam-01/results`` lines).
        ``debug_log``: log every packet (``Denied PUBLISH from ...``, to count attempts).
        ``dynsec``: ``{"users": {name: password}, "default": {"subscribe": False, ...}}`` runs the
        dynamic-security plugin with those clients (no roles) and that ``defaultACLAccess``.
        ``max_queued_messages``: per client, beyond those in flight (Mosquitto's default, 1000, caps what
        a persistent session keeps for a client that is away)."""
        self.use_mosquitto_passwd = use_mosquitto_passwd
        self.binary = require_mosquitto()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.certs = make_certificates(self.workdir / "certs") if tls else None
        self.log = self.workdir / "mosquitto.log"
        self.persistence = persistence
        self._proc: subprocess.Popen[bytes] | None = None
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if users else 'true'}",
            f"log_dest file {self.log}",
            "log_type all" if debug_log else "log_type error\nlog_type warning\nlog_type notice\nlog_type information",
            f"user {_current_user()}",
        ]
        if users:
            lines.append(f"password_file {self._password_file(users)}")
        if self.certs:
            lines += [f"cafile {self.certs['ca.crt']}", f"certfile {self.certs['server.crt']}",
                      f"keyfile {self.certs['server.key']}"]
        if acl is not None:  # mosquitto acl_file text, e.g. "topic readwrite edgekit/v1/#"
            (self.workdir / "acl").write_text(acl)
            lines.append(f"acl_file {self.workdir / 'acl'}")
        if dynsec is not None:
            lines += [f"plugin {DYNSEC_PLUGIN}", f"plugin_opt_config_file {self._dynsec_file(dynsec)}"]
        if max_queued_messages is not None:
            lines.append(f"max_queued_messages {max_queued_messages}")
        if persistence:
            lines += ["persistence true", f"persistence_location {self.workdir}/", "autosave_interval 1"]
        self.conf = self.workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def _password_file(self, users: dict[str, str]) -> Path:
        path = self.workdir / "passwd"
        tool = shutil.which("mosquitto_passwd") if self.use_mosquitto_passwd else None
        if tool:
            path.write_text("")
            for user, password in users.items():
                subprocess.run([tool, "-b", str(path), user, password], check=True, capture_output=True)
        else:  # same format, made here (checked against mosquitto 2.0.11 by the tests)
            path.write_text("".join(mosquitto_password_line(u, pw) + "\n" for u, pw in users.items()))
        path.chmod(0o600)
        return path

    def _dynsec_file(self, dynsec: dict[str, Any]) -> Path:
        if not Path(DYNSEC_PLUGIN).is_file():
            pytest.skip(f"the Mosquitto dynamic-security plugin is not installed ({DYNSEC_PLUGIN})")
        clients = []
        for user, password in dynsec.get("users", {}).items():
            salt = os.urandom(12)
            digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101, dklen=64)
            clients.append({"username": user, "password": base64.b64encode(digest).decode(),
                            "salt": base64.b64encode(salt).decode(), "iterations": 101, "roles": []})
        default = {"publishClientSend": True, "publishClientReceive": True, "subscribe": True, "unsubscribe": True,
                   **dynsec.get("default", {})}
        path = self.workdir / "dynamic-security.json"
        path.write_text(json.dumps({"clients": clients, "roles": [], "groups": [], "defaultACLAccess": default}))
        return path

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> Broker:
        if self.running:
            return self
        # Our own listener, not just an open port: two test processes can draw the same free port,
        # and a broker of the other one would answer the connect while ours failed to bind.
        opened = f"listen socket on port {self.port}."
        before = self._log_text().count(opened)
        self._proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                log = self.log.read_text() if self.log.exists() else ""
                raise RuntimeError(f"mosquitto exited with {self._proc.returncode}: {err}\n{log}")
            if self._log_text().count(opened) <= before:
                time.sleep(0.02)
                continue
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                if self._proc.poll() is None:
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout}s")

    def _log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def freeze(self) -> None:
        """SIGSTOP: connections stay open but nothing is read or acknowledged until ``stop()``."""
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after ``freeze()``."""
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """SIGKILL: no clean shutdown, no final persistence save."""
        if self._proc is not None:
            if self._proc.poll() is None:
                os.kill(self._proc.pid, signal.SIGKILL)
            self._proc.wait(5)
            if self._proc.stderr:
                self._proc.stderr.close()
            self._proc = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


class Collector:
    """Subscribes to ``edgekit/v1/#`` with QoS 1 and records every message; reconnects by itself.

    ``persistent=True`` keeps an MQTT 3.1.1 session (clean_session=False) under a fixed client id,
    so a broker with persistence queues messages for it while it is away.
    """

    def __init__(self, broker: Broker, *, client_id: str = "collector", persistent: bool = False,
                 tls_ca: str | None = None, username: str | None = None, password: str | None = None) -> None:
        self.messages: list[tuple[str, dict[str, Any], bool]] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311, clean_session=not persistent)
        if tls_ca:
            self.client.tls_set(ca_certs=tls_ca)
        if username:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.on_connect = lambda c, *_: c.subscribe("edgekit/v1/#", qos=1)
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *_: self._subscribed.clear()
        self.client.connect_async(broker.host, broker.port, keepalive=5)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("collector could not subscribe")

    def _on_message(self, _c: Any, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((msg.topic, json.loads(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    def received(self, topic_suffix: str) -> list[dict[str, Any]]:
        with self._cond:
            return [body for topic, body, _ in self.messages if topic.endswith(topic_suffix)]

    def seqs(self, topic_suffix: str) -> list[int]:
        """Sorted distinct seqs received on topics ending with ``topic_suffix`` (duplicates dropped)."""
        return sorted({body["seq"] for body in self.received(topic_suffix)})

    def wait_for(self, predicate: Callable[[Collector], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
        return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A running anonymous broker on a free port, killed after the test."""
    with Broker(tmp_path / "broker") as b:
        yield b


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    """``broker_factory(users=..., tls=..., persistence=...)`` -> a started broker, killed after the test."""
    made: list[Broker] = []

    def make(**kwargs: Any) -> Broker:
        b = Broker(tmp_path / f"broker{len(made)}", **kwargs).start()
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()
