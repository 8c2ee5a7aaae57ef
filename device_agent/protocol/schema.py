"""The JSON Schema of every message and command, generated from the models (never written by hand).

One schema per topic kind, as a consumer receives it (the wire model: body plus envelope), and
one per command. ``edgekit protocol schema`` writes them; ``docs/protocol/`` holds a copy that
a test keeps current.
"""

from __future__ import annotations

from typing import Any

from device_agent.protocol.commands import COMMANDS
from device_agent.protocol.wire import adapter

MESSAGE_KINDS = ("status", "results", "events", "metrics", "reply")
"""Topic kinds a device publishes, in the order of the contract table."""


def schema_files() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema: ``status.json`` ... ``reply.json``, then ``cmd-<name>.json`` per command."""
    files = {f"{kind}.json": _titled(_open(adapter(kind).json_schema(mode="validation")), kind)
             for kind in MESSAGE_KINDS}
    for name, model in sorted(COMMANDS.items()):
        files[f"cmd-{name}.json"] = _titled(model.model_json_schema(mode="validation"), f"cmd/{name}")
    return files


def _open(node: Any) -> Any:
    """The wire view of a message schema: ``additionalProperties: false`` dropped everywhere (a consumer accepts
    unknown fields, as :func:`device_agent.protocol.parse` does; the models forbid them only when a device builds
    one), and constant fields (``v``, an event's ``kind``) required: the builder fills them in, they always arrive."""
    if isinstance(node, dict):
        out = {k: _open(v) for k, v in node.items() if not (k == "additionalProperties" and v is False)}
        consts = [name for name, prop in out.get("properties", {}).items()
                  if isinstance(prop, dict) and "const" in prop]
        if consts:
            out["required"] = consts + [r for r in out.get("required", []) if r not in consts]
        return out
    if isinstance(node, list):
        return [_open(v) for v in node]
    return node


def _titled(schema: dict[str, Any], topic: str) -> dict[str, Any]:
    schema.setdefault("title", topic)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$comment": f"edgekit MQTT contract v1: payload of <root>/<device_id>/{topic}", **schema}
