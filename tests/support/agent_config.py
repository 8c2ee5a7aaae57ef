"""The agent configuration the integration tests run with: one device, one video, the test's broker and
an outbox in the test's folder, plus whatever tables a test adds (rules, drift, thumbnails...)."""

from __future__ import annotations

from pathlib import Path

from tests.support.mqtt_broker import Broker


def seen_rules(classes: int = 10) -> str:
    """One rule per class index that fires on any score: every frame raises an alert."""
    return "".join(f'[[rules]]\nname = "seen-{c}"\nlabel = "{c}"\nmin_score = 0.0\n\n' for c in range(classes))


def write_agent_config(folder: Path, *, device: str, bundle: Path, video: Path, broker: Broker,
                       source: str = "", extra: str = "") -> Path:
    """``folder/agent.toml``; ``source``: more keys of the ``[[sources]]`` table (``loop = true``...),
    ``extra``: more tables after the common ones."""
    path = folder / "agent.toml"
    path.write_text(f"""device_id = "{device}"
bundle = "{bundle}"

[[sources]]
uri = "{video}"
{source}
[mqtt]
host = "{broker.host}"
port = {broker.port}

[outbox]
path = "{folder / 'outbox.db'}"

{extra}""")
    return path
