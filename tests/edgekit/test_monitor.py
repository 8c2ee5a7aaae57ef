from __future__ import annotations

import json

import pytest

from edgekit.errors import UsageError
from edgekit.fleet.monitor import MonitorState, parse_broker
from tests.support.protocol_samples import message, status


def _msg(topic: str, seq: int, **body: object) -> tuple[str, bytes]:
    """A whole message of the contract (the monitor parses through it) with ``body``'s fields."""
    return f"edgekit/v1/cam-01/{topic}", json.dumps(message(topic, seq, **body)).encode()


def test_duplicates_dropped_and_gaps_counted() -> None:
    state = MonitorState()
    for seq in (1, 2, 2, 3, 6):
        state.handle(*_msg("results", seq))
    view = state.devices["cam-01"]
    assert (view.results, view.duplicates, view.missing) == (4, 1, 2)  # 4 and 5 never came


def test_an_announced_gap_is_not_counted_missing() -> None:
    state = MonitorState()
    state.handle(*_msg("results", 1))
    state.handle(*_msg("events", 5, kind="gap", first_seq=2, last_seq=4, count=3, reason="overflow"))
    assert state.devices["cam-01"].missing == 0


def test_status_metrics_and_alerts_fill_the_view() -> None:
    state = MonitorState()
    state.handle("edgekit/v1/cam-01/status",
                 status(state="online", model={"name": "m", "version": "2", "precision": "int8"}))
    state.handle(*_msg("metrics", 1, fps=9.5, outbox_depth=3, latency_ms={"infer": {"p50": 4.2}}))
    state.handle(*_msg("events", 2, kind="alert", state="raised", rule="person-in-zone", label="person", score=0.91))
    view = state.devices["cam-01"]
    assert view.online and view.model == "m v2 int8" and view.fps == 9.5 and view.outbox_depth == 3
    assert view.infer_p50_ms == 4.2 and view.last_alert == "person-in-zone (person 0.91)"
    assert state.handle("other/topic/x/y", b"{}") is None


def test_bad_broker_argument() -> None:
    with pytest.raises(UsageError, match="expected HOST:PORT"):
        parse_broker("localhost")
    assert parse_broker("127.0.0.1:1883") == ("127.0.0.1", 1883)


def test_a_malformed_message_is_an_error_record_not_a_crash() -> None:
    state = MonitorState()
    state.handle(*_msg("results", 1))
    bad = [state.handle("edgekit/v1/cam-01/results", b"not json"),
           state.handle(*_msg("metrics", 2, fps="fast")),
           state.handle(*_msg("events", 3, kind="alert", state="exploded"))]
    assert [r["kind"] for r in bad if r] == ["error", "error", "error"]
    assert "not JSON" in bad[0]["error"] and "fps" in bad[1]["error"] and "state" in bad[2]["error"]
    assert all(r["v"] == 1 for r in bad if r)  # every --json line is a versioned document, errors too
    view = state.devices["cam-01"]
    assert (view.results, view.malformed, view.fps) == (1, 3, None)
    assert state.handle("edgekit/v1/cam-01/cmd/bench", b"{}") is None  # commands are not device messages


def test_a_newer_agents_extra_fields_are_kept() -> None:
    state = MonitorState()
    record = state.handle(*_msg("results", 1, frame={"exposure_ms": 8.0}, new_field=1))
    assert record is not None and record["new_field"] == 1 and record["frame"]["exposure_ms"] == 8.0
    assert state.devices["cam-01"].malformed == 0


def test_watch_folds_what_a_broker_delivers_and_stops_when_asked(broker) -> None:  # type: ignore[no-untyped-def]
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from edgekit.fleet.monitor import watch
    from tests.support.mqtt_broker import wait_until

    records: list[dict[str, object]] = []
    stop = threading.Event()
    state = MonitorState()
    thread = threading.Thread(target=watch, args=(f"{broker.host}:{broker.port}",),
                              kwargs={"device": "cam-01", "on_record": records.append, "state": state, "stop": stop})
    thread.start()
    try:
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.connect(broker.host, broker.port)
        client.loop_start()
        try:  # the subscription may not be granted yet: send until one record arrives
            for seq in range(1, 50):
                client.publish(*_msg("results", seq), qos=1).wait_for_publish(5)
                if wait_until(lambda: bool(records), 0.1):
                    break
        finally:
            client.disconnect()
            client.loop_stop()
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert records and records[0]["device"] == "cam-01" and records[0]["kind"] == "results"
    assert state.devices["cam-01"].results == len(records)
