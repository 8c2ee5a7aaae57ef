from __future__ import annotations

import json

import pytest

from edgekit.errors import UsageError
from edgekit.monitor import MonitorState, parse_broker


def _msg(topic: str, seq: int, **body: object) -> tuple[str, bytes]:
    return f"edgekit/v1/cam-01/{topic}", json.dumps({"v": 1, "device": "cam-01", "seq": seq, **body}).encode()


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
                 json.dumps({"state": "online", "model": {"name": "m", "version": "2", "precision": "int8"}}).encode())
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
