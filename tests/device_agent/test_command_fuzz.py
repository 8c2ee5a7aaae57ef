"""Fuzzing the command parser: whatever bytes arrive on ``cmd/<name>``, only CommandError comes out.

A command topic is open to any client that may publish there, and a retained payload comes
back at every start, so one bad message must never take the agent down. Four generators,
5,000 cases in all (about 15 s on a loaded 2-core machine, most of it Hypothesis drawing
examples): 2,000 arbitrary byte strings, 1,000 each of deeply nested JSON, random JSON
values, and near-valid commands with mutated fields and bytes. The ``@example`` cases
are the crashers found so far, kept as regression cases.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="fuzzing needs hypothesis: pip install 'edgekit[dev]'")
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from device_agent.errors import CommandError  # noqa: E402
from device_agent.protocol.commands import (  # noqa: E402
    MAX_DEPTH,
    REQUEST_ID_PATTERN,
    Command,
    parse_command,
    request_id_of,
)


def fuzz(cases: int) -> Any:
    return settings(max_examples=cases, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NAMES = st.sampled_from(["bench", "format-disk", "", "bench/x", "\u00e9"])

NESTED_50KB = b"[" * 25_000 + b"]" * 25_000  # RecursionError in json.loads: the agent exited 1
NESTED_WITH_ID = b'{"v":1,"request_id":"deep","x":' + b"[" * 20_000 + b"]" * 20_000 + b"}"
REGRESSIONS = [
    NESTED_50KB,
    b"{" * 50_000,
    b'{"a":' * 10_000,
    NESTED_WITH_ID,
    b"\xff\xfe" + '{"v":1,"request_id":"utf16"}'.encode("utf-16-le"),  # json.loads(bytes) would guess UTF-16
    b'{"v":1,"request_id":"r","model_sha256":"\\ud800"}',  # a lone surrogate
    b'{"v":1,"request_id":"r","runs":' + b"1" * 5000 + b"}",  # past int()'s digit limit
    b'{"v":1,"request_id":"r","duration_s":NaN}',
    b"\x00not json",
    b"",
]


def check(name: str, payload: bytes) -> None:
    """The property: a Command or a CommandError, and any request_id offered is a safe topic level."""
    rid = request_id_of(payload)
    assert rid is None or re.fullmatch(REQUEST_ID_PATTERN, rid)
    try:
        command = parse_command(name, payload)
    except CommandError as exc:
        assert exc.request_id is None or re.fullmatch(REQUEST_ID_PATTERN, exc.request_id)
        assert str(exc).startswith(f"command {name!r}: ")
        return
    assert isinstance(command, Command) and command.request_id == rid


@pytest.mark.parametrize("payload", REGRESSIONS, ids=lambda p: f"{p[:12]!r}...{len(p)}B")
def test_known_crashers_are_command_errors(payload: bytes) -> None:
    with pytest.raises(CommandError):
        parse_command("bench", payload)
    check("bench", payload)


def test_a_too_deep_command_still_names_its_request_id() -> None:
    with pytest.raises(CommandError, match=rf"nested 20001 levels deep; at most {MAX_DEPTH}") as err:
        parse_command("bench", NESTED_WITH_ID)
    assert err.value.request_id == "deep" == request_id_of(NESTED_WITH_ID)
    # a nested key: not it
    assert request_id_of(b'{"x":{"request_id":"inner"},"y":' + b"[" * 100 + b"]" * 100 + b"}") is None
    assert request_id_of(b'["request_id":"a",' + b"[" * 100 + b"]" * 100 + b"]") is None  # not an object


@fuzz(2000)
@given(name=NAMES, payload=st.binary(max_size=3000))
@example(name="bench", payload=NESTED_50KB)
@example(name="format-disk", payload=NESTED_WITH_ID)
def test_arbitrary_bytes(name: str, payload: bytes) -> None:
    check(name, payload)


@st.composite
def nested(draw: st.DrawFn) -> bytes:
    """Arrays and objects nested 1-3,000 deep, closed or not, with a request_id before or after."""
    depth = draw(st.integers(1, 3000))
    opens = draw(st.lists(st.sampled_from(["[", '{"k":', '{"request_id":"n",', "[1,"]), min_size=1, max_size=4))
    body = "".join(opens[i % len(opens)] for i in range(depth))
    closes = "".join("]" if opens[i % len(opens)].startswith("[") else "}" for i in reversed(range(depth)))
    inner = draw(st.sampled_from(["0", '"x"', "null", "", '"unterminated']))
    text = body + inner + closes[: draw(st.integers(0, len(closes)))]
    if draw(st.booleans()):
        text = '{"v":1,"request_id":"outer","x":' + text + "}"
    return text.encode()


@fuzz(1000)
@given(name=NAMES, payload=nested())
def test_deeply_nested_json(name: str, payload: bytes) -> None:
    check(name, payload)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=12,
)


@fuzz(1000)
@given(name=NAMES, value=JSON_VALUES)
def test_random_json_values(name: str, value: Any) -> None:
    check(name, json.dumps(value).encode())


ANY_VALUE = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats() | st.text(max_size=70)
             | st.lists(st.integers(), max_size=3))
ID_CHARS = "abcXYZ019_.-"
FIELDS = {"runs": st.integers(-5, 200_000) | ANY_VALUE, "duration_s": st.floats(-1, 400) | ANY_VALUE,
          "warmup": st.integers(-1, 10) | ANY_VALUE, "threads": st.integers(-1, 2000) | ANY_VALUE,
          "profile": st.booleans() | ANY_VALUE, "samples": st.booleans() | ANY_VALUE,
          "model_sha256": st.text("0123456789abcdef", min_size=63, max_size=65) | ANY_VALUE, "bogus": ANY_VALUE}


@st.composite
def near_valid(draw: st.DrawFn) -> bytes:
    """A bench command with some fields right, some wrong, some extra, sometimes byte-mangled."""
    body: dict[str, Any] = {"v": draw(st.sampled_from([1, 1, 1, 2, "1", True, None])),
                            "request_id": draw(st.text(ID_CHARS, min_size=1, max_size=66) | st.text(max_size=80))}
    for key in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=4, unique=True)):
        body[key] = draw(FIELDS[key])
    if draw(st.booleans()):
        body.pop(draw(st.sampled_from(["v", "request_id"])))
    payload = bytearray(json.dumps(body, allow_nan=True).encode())
    for _ in range(draw(st.integers(0, 3))):  # flip, cut or insert a byte
        at = draw(st.integers(0, max(0, len(payload) - 1)))
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip" and payload:
            payload[at] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del payload[at:]
        else:
            payload.insert(at, draw(st.integers(0, 255)))
    return bytes(payload)


@fuzz(1000)
@given(payload=near_valid())
@example(payload=b'{"v":1,"request_id":"r1","runs":5}')
def test_near_valid_commands(payload: bytes) -> None:
    check("bench", payload)
