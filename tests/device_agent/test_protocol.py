"""The MQTT contract as code: topics, exact building, tolerant parsing, named errors, schema, README."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from device_agent.errors import ProtocolError
from device_agent.protocol import (
    ENVELOPE_FIELDS,
    CameraEvent,
    CommandEvent,
    GapEvent,
    Metrics,
    Reply,
    Result,
    Status,
    Topic,
    Topics,
    body_of,
    parse,
    parse_topic,
)
from device_agent.protocol.schema import schema_files
from edgekit.cli.main import main
from tests.support.protocol_samples import message, status

ROOT = Path(__file__).resolve().parents[2]
ENVELOPE = {"v": 1, "device": "cam-01", "seq": 5, "boot": "b1", "ts": 1.7e9}


def _wire(body: dict[str, object]) -> bytes:
    return json.dumps({**body, **ENVELOPE}).encode()


def test_topics_are_built_and_parsed_back() -> None:
    t = Topics("cam-01")
    assert [t.status, t.results, t.events, t.metrics, t.cmd("bench"), t.reply("r1")] == [
        "edgekit/v1/cam-01/status", "edgekit/v1/cam-01/results", "edgekit/v1/cam-01/events",
        "edgekit/v1/cam-01/metrics", "edgekit/v1/cam-01/cmd/bench", "edgekit/v1/cam-01/reply/r1"]
    assert t.suffix("reply/r1") == t.reply("r1") and t.suffix("events") == t.events
    assert parse_topic(t.reply("r1")) == Topic("cam-01", "reply", "r1")
    assert parse_topic(t.metrics) == Topic("cam-01", "metrics")
    assert Topics("d", root="site/a").status == "site/a/d/status" and parse_topic("site/a/d/status", "site/a")
    for foreign in ("other/x/y", "edgekit/v1/cam-01", "edgekit/v1/cam-01/results/x", "edgekit/v1/cam-01/reply",
                    "edgekit/v1/cam-01/logs"):
        assert parse_topic(foreign) is None, foreign
    with pytest.raises(ValueError, match="needs name"):
        t.of("reply")


def test_building_is_exact() -> None:
    with pytest.raises(ValidationError, match="bogus"):
        CameraEvent.model_validate({"source": "s", "from": "a", "to": "b", "reason": "r", "attempt": 0, "bogus": 1})
    with pytest.raises(ValidationError, match="attempt"):
        CameraEvent(source="s", from_="a", to="b", reason="r", attempt="1")  # type: ignore[arg-type]  # strict
    with pytest.raises(ValidationError, match="reason"):
        GapEvent(first_seq=1, last_seq=2, count=2, ranges=[[1, 2]], reason="because")  # type: ignore[arg-type]


def test_nullable_fields_stay_and_omitted_ones_go() -> None:
    busy = body_of(CommandEvent(state="busy", command="bench", request_id=None, reason="full"))
    assert busy == {"kind": "command", "state": "busy", "command": "bench", "request_id": None, "reason": "full"}
    assert body_of(Reply(request_id="r1", state="running", command="bench")) == {
        "request_id": "r1", "state": "running", "command": "bench"}
    camera = CameraEvent(source="s", from_="starting", to="streaming", reason="r", attempt=0)
    assert body_of(camera)["from"] == "starting"


def test_parse_returns_the_typed_message_and_keeps_unknown_fields() -> None:
    received = parse("edgekit/v1/cam-01/results", json.dumps(message("results", 3, frame={"new": 1}, extra=2)).encode())
    assert isinstance(received.message, Result) and received.envelope is not None and received.envelope.seq == 3
    assert received.payload()["frame"]["new"] == 1 and received.payload()["extra"] == 2
    event = parse("edgekit/v1/cam-01/events", _wire(body_of(CameraEvent(source="s", from_="a", to="b", reason="r",
                                                                        attempt=1))))
    assert isinstance(event.message, CameraEvent) and event.message.from_ == "a"
    online = parse("edgekit/v1/cam-01/status", status())
    assert isinstance(online.message, Status) and online.envelope is None
    assert isinstance(parse("edgekit/v1/cam-01/metrics", json.dumps(message("metrics", 1)).encode()).message, Metrics)


def test_status_says_the_bundles_measured_fps_and_an_older_status_without_it_still_parses() -> None:
    with_fps = parse("edgekit/v1/cam-01/status", status(measured_fps=250.0))
    assert isinstance(with_fps.message, Status) and with_fps.message.measured_fps == 250.0
    older = parse("edgekit/v1/cam-01/status", status())
    assert isinstance(older.message, Status) and older.message.measured_fps is None
    assert "measured_fps" not in body_of(older.message)  # omitted, not null, when unknown


@pytest.mark.parametrize(("topic", "payload", "names"), [
    ("edgekit/v1/cam-01/results", b"{not json", ["results", "not JSON"]),
    ("edgekit/v1/cam-01/events", _wire({"kind": "volcano"}), ["'volcano'", "kind"]),
    ("edgekit/v1/cam-01/events", _wire({"kind": "gap", "first_seq": "1"}), ["first_seq"]),
    ("edgekit/v1/cam-01/results", json.dumps({**message("results", 1), "seq": "7"}).encode(), ["seq"]),
    ("edgekit/v1/cam-01/results", json.dumps({k: v for k, v in message("results", 1).items() if k != "boot"}).encode(),
     ["boot", "required"]),
    ("edgekit/v1/cam-02/results", json.dumps(message("results", 1)).encode(), ["'cam-01'", "'cam-02'"]),
    ("edgekit/v1/cam-01/reply/r2", _wire({"request_id": "r1", "state": "done", "command": "bench"}), ["'r1'", "'r2'"]),
    ("edgekit/v1/cam-01/cmd/bench", b"{}", ["parse_command"]),
    ("elsewhere/cam-01/results", b"{}", ["not a topic of the contract"]),
    ("edgekit/v1/cam-01/results", b"[" * 100_000, ["results"]),
])
def test_a_message_that_breaks_the_contract_is_a_named_protocol_error(topic: str, payload: bytes,
                                                                        names: list[str]) -> None:
    with pytest.raises(ProtocolError) as err:
        parse(topic, payload)
    assert err.value.topic == topic
    for name in names:
        assert name in str(err.value)


def test_schema_command_prints_or_writes_every_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    expected = ["status.json", "results.json", "events.json", "metrics.json", "reply.json", "cmd-bench.json"]
    assert main(["protocol", "schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == expected
    assert main(["protocol", "schema", "--output", str(tmp_path / "s")]) == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(expected)
    assert json.loads((tmp_path / "s" / "events.json").read_text()) == printed["events.json"]
    assert printed["cmd-bench.json"]["additionalProperties"] is False  # a device runs only what it understands
    assert '"additionalProperties": false' not in json.dumps(printed["results.json"])  # a consumer keeps unknown fields


def test_every_field_is_described() -> None:
    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for name, prop in (node.get("properties") or {}).items():
                assert prop.get("description"), f"{where}.{name} has no description"
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for value in node:
                walk(value, where)
    for name, schema in schema_files().items():
        walk(schema, name)


def test_committed_schema_files_are_current() -> None:
    folder = ROOT / "docs" / "protocol"
    files = schema_files()
    assert sorted(p.name for p in folder.glob("*.json")) == sorted(files), \
        "run: edgekit protocol schema --output docs/protocol"
    for name, schema in files.items():
        assert json.loads((folder / name).read_text()) == schema, f"docs/protocol/{name} is stale: run " \
            "edgekit protocol schema --output docs/protocol"


def _readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("### MQTT contract (v1)")
    return text[start:text.index("\n### ", start + 1)]


def _top_level_names(text: str) -> set[str]:
    """Backticked names outside parentheses (those inside name nested fields or states)."""
    return set(re.findall(r"`([^`]+)`", re.sub(r"\([^()]*\)", "", text)))


def _schema_fields(schema: dict[str, object], *, envelope: bool) -> set[str]:
    names = set(schema["properties"])  # type: ignore[call-overload]
    return names if envelope else names - set(ENVELOPE_FIELDS)


def test_the_readme_lists_every_topic_and_event_kind_with_its_fields() -> None:
    section, files = _readme_section(), schema_files()
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([^`]+)` \|[^|]*\| (.*) \|$", section, re.M)}
    topic_files = {"status": "status.json", "results": "results.json", "metrics": "metrics.json",
                   "reply/<request_id>": "reply.json", "cmd/bench": "cmd-bench.json"}
    assert set(rows) == set(topic_files) | {"events"}, rows.keys()
    for topic, file in topic_files.items():
        whole = topic in ("status", "cmd/bench")  # status has its own header; a command has no envelope
        assert _top_level_names(rows[topic]) == _schema_fields(files[file], envelope=whole), topic
    assert _top_level_names(rows["events"]) == {"kind"}
    assert all(f"`{name}`" in section for name in ENVELOPE_FIELDS)
    kinds = {d["properties"]["kind"]["const"]: d for d in files["events.json"]["$defs"].values()
             if "kind" in d.get("properties", {})}
    listed = {m.group(1): m.group(2) for m in re.finditer(r"^- `([a-z]+)`: (.*)$", section, re.M)}
    assert set(listed) == set(kinds), "the README's event kinds are not the schema's"
    for kind, line in listed.items():
        assert _top_level_names(line) == _schema_fields(kinds[kind], envelope=False) - {"kind"}, kind
