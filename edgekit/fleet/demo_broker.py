"""A local MQTT broker for the demo: Mosquitto when installed, else the pure-Python amqtt.

    python -m edgekit.fleet.demo_broker --port 1883

Prints the MQTT protocol version the agent should speak ("5" for Mosquitto, "3.1.1" for
amqtt, which has no MQTT 5) on its first line, then runs until killed. Only loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None)


def run_mosquitto(binary: str, port: int) -> int:
    conf = Path(tempfile.mkdtemp(prefix="edgekit-broker-")) / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    print("5", flush=True)
    proc = subprocess.Popen([binary, "-c", str(conf)])
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    return proc.wait()


def run_amqtt(port: int) -> int:
    try:
        from amqtt.broker import Broker
    except ImportError:
        print("no broker: install Mosquitto (apt install mosquitto) or amqtt (pip install amqtt)", file=sys.stderr)
        return 2
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "sys_interval": 0,
        "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
        "topic-check": {"enabled": False},
    }
    print("3.1.1", flush=True)

    async def serve() -> None:
        broker = Broker(config)
        await broker.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await broker.shutdown()

    asyncio.run(serve())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--embedded", action="store_true", help="use amqtt even when Mosquitto is installed")
    args = parser.parse_args(argv)
    binary = None if args.embedded else mosquitto_binary()
    return run_mosquitto(binary, args.port) if binary else run_amqtt(args.port)


if __name__ == "__main__":
    raise SystemExit(main())
