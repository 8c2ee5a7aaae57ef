"""Kept importable: the commands moved into the contract package, :mod:`device_agent.protocol.commands`."""

from __future__ import annotations

from device_agent.protocol.commands import (
    COMMANDS,
    MAX_DEPTH,
    MAX_PAYLOAD_BYTES,
    REQUEST_ID_PATTERN,
    BenchCommand,
    Command,
    CommandError,
    command,
    parse_command,
    request_id_of,
)

__all__ = ["COMMANDS", "MAX_DEPTH", "MAX_PAYLOAD_BYTES", "REQUEST_ID_PATTERN", "BenchCommand", "Command",
           "CommandError", "command", "parse_command", "request_id_of"]
