"""The hub's JSON API and dashboard HTML over a real uvicorn, on SQLite and on a real PostgreSQL.

The store is seeded with real contract messages parsed by :func:`device_agent.protocol.parse`
(the helpers of tests/edgekit/test_hub_store.py), as the hub's ingest stores them.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest

from device_agent.protocol import Received
from edgekit.fleet.hub.store import Alert, Store
from edgekit.fleet.hub.web import create_app
from edgekit.fleet.hub.web.charts import line_chart, per_class
from edgekit.fleet.hub.web.counts import open_alerts
from edgekit.fleet.hub.web.pages import parse_since
from edgekit.fleet.hub.web.thumbnail import render as render_thumbnail
from tests.edgekit import test_hub_store as contract
from tests.edgekit.test_hub_store import T0, msg, result, status
from tests.support.asgi_server import get, get_json, serving

open_store, store, postgres_cluster = contract.open_store, contract.store, contract.postgres_cluster  # the fixtures

EVIL = "<script>alert(1)</script>"


def drift(brightness: str, score: float | None) -> dict[str, Any]:
    return {"brightness": {"counts": [3, 5, 2], "edges": [0.3, 0.6], "score": score, "state": brightness},
            "class_mix": {"counts": [7, 3], "labels": ["person", "other"], "score": 0.02, "state": "ok"}}


def thumbnail() -> dict[str, Any]:
    image = np.zeros((48, 64, 3), np.uint8)
    image[10:30, 20:50] = (40, 200, 40)
    ok, jpeg = cv2.imencode(".jpg", image)
    assert ok
    return {"media_type": "image/jpeg", "width": 64, "height": 48, "data": base64.b64encode(jpeg.tobytes()).decode(),
            "boxes": [{"label": "person", "score": 0.91, "box": [20, 10, 50, 30]}]}


def detection(label: str, score: float = 0.8) -> dict[str, Any]:
    return {"class_id": 0 if label == "person" else 2, "label": label, "score": score, "box_xyxy": [1, 2, 30, 40]}


def fleet_messages() -> list[Received]:
    """cam-01: online, 12 heartbeats (its brightness drifting to alert), 28 results, a rule alert with a
    thumbnail, a gap event and one seq missing; cam-02: offline, one result and one heartbeat."""
    out = [status(ts=T0), status(device="cam-02", ts=T0, state="offline")]
    for i in range(12):
        state, score = ("alert", 0.4) if i >= 10 else ("warn", 0.15) if i >= 8 else ("ok", 0.01 * i)
        out.append(msg("metrics", i + 1, ts=T0 + 10 * i, fps=10.0 + i % 3, outbox_depth=i,
                       latency_ms={"infer": {"p50": 4.0 + i / 10, "p90": 6.0, "p95": 7.0 + i / 10, "p99": 9.0}},
                       drift=drift(state, score)))
    for s in range(13, 41):
        found = [detection("person"), detection("car")] if s % 2 else [detection("person")]
        out.append(result(s, ts=T0 + 4 * (s - 13), result={"kind": "detection", "decoder": "yolov8",
                                                            "classifications": [], "detections": found}))
    out.append(msg("events", 41, kind="alert", ts=T0 + 110, rule=EVIL, thumbnail=thumbnail()))
    out.append(msg("events", 42, kind="gap", ts=T0 + 111, first_seq=43, last_seq=44, count=2, reason="overflow"))
    out += [result(45, ts=T0 + 112), result(47, ts=T0 + 113)]  # seq 46 is missing
    out += [result(1, device="cam-02", ts=T0 + 5), msg("metrics", 2, device="cam-02", ts=T0 + 6, fps=3.0)]
    return out


def seed(target: Store) -> Store:
    target.ingest(fleet_messages(), received_at=T0 + 120)
    target.ingest([result(40, ts=T0 + 4 * 27)], received_at=T0 + 121)  # a redelivery: dropped, counted
    target.record_alert(Alert(device="cam-01", kind="drift", ts=T0 + 115, detail={"signal": "brightness", "psi": 0.4}))
    return target


class FakeExposer:
    def exposition(self) -> tuple[bytes, str]:
        return b"# TYPE edgekit_up gauge\nedgekit_up 1\n", "text/plain; version=0.0.4; charset=utf-8"


@pytest.fixture
def base(store: Store) -> Iterator[str]:
    with serving(create_app(seed(store), metrics=FakeExposer())) as url:
        yield url


def test_devices_list_the_fleet_table(base: str) -> None:
    code, devices = get_json(f"{base}/api/devices")
    assert code == 200 and [d["id"] for d in devices] == ["cam-01", "cam-02"]
    cam1, cam2 = devices
    assert cam1["online"] is True and cam2["online"] is False
    assert cam1["model"] == {"name": "tiny", "version": "1", "precision": "fp32"} and cam1["agent"] == "0.1.0"
    assert cam1["fps"] == 12.0 and cam1["latency_ms"] == {"p50": pytest.approx(5.1), "p95": pytest.approx(8.1)}
    assert cam1["outbox"] == {"pending": 11, "oldest_age_s": None}
    assert cam1["drift_state"] == "alert" and cam2["drift_state"] is None
    assert cam1["open_alerts"] == 2 and cam2["open_alerts"] == 0  # the rule alert and the hub's drift alert
    assert cam1["missing_seqs"] == 1 and cam2["missing_seqs"] == 0
    assert cam1["last_seen"] == pytest.approx(T0 + 121)


def missing_column(page: bytes) -> dict[str, str]:
    """The fleet page's missing-seqs cell (its last column) per device."""
    rows = re.findall(r'<tr><td><a href="/devices/([^"]+)">.*?<td class="num">([^<]*)</td></tr>', page.decode())
    return dict(rows)


def test_new_seqs_change_the_missing_counts_on_the_very_next_request(base: str, store: Store) -> None:
    assert missing_column(get(f"{base}/")[2]) == {"cam-01": "1", "cam-02": "0"}
    store.ingest([result(49, ts=T0 + 130), result(4, device="cam-02", ts=T0 + 131)], received_at=T0 + 132)
    _, devices = get_json(f"{base}/api/devices")  # no cache in between: 48 and cam-02's 3 are missing now
    assert [(d["id"], d["missing_seqs"]) for d in devices] == [("cam-01", 2), ("cam-02", 1)]
    assert missing_column(get(f"{base}/")[2]) == {"cam-01": "2", "cam-02": "1"}
    _, cam1 = get_json(f"{base}/api/devices/cam-01")
    assert cam1["missing_seqs"] == 2 and cam1["seqs"]["missing"] == [[46, 46], [48, 48]]
    store.ingest([result(48, ts=T0 + 133)], received_at=T0 + 134)  # the late one arrives
    _, devices = get_json(f"{base}/api/devices")
    assert [(d["id"], d["missing_seqs"]) for d in devices] == [("cam-01", 1), ("cam-02", 1)]


def test_one_device_with_its_history_and_an_unknown_one_is_a_json_404(base: str) -> None:
    code, cam1 = get_json(f"{base}/api/devices/cam-01")
    assert code == 200 and cam1["id"] == "cam-01" and cam1["missing_seqs"] == 1
    assert [p["ts"] for p in cam1["series"]] == [pytest.approx(T0 + 10 * i) for i in range(12)]  # oldest first
    assert cam1["series"][-1]["drift_scores"] == {"brightness": 0.4, "class_mix": 0.02}
    assert [e["kind"] for e in cam1["events"]] == ["gap", "alert"]
    assert cam1["events"][1]["payload"]["thumbnail"]["width"] == 64
    assert cam1["results"][0]["seq"] == 47 and cam1["seqs"] == {"received": 44, "missing": [[46, 46]],
                                                                  "lost": [[43, 44]]}
    code, error = get_json(f"{base}/api/devices/nope")
    assert code == 404 and "'nope'" in error["error"]


def test_results_events_and_alerts_filter_and_page(base: str) -> None:
    code, body = get_json(f"{base}/api/results?device=cam-01&limit=5")
    assert code == 200 and [r["seq"] for r in body["results"]] == [47, 45, 40, 39, 38]
    row = body["results"][2]
    assert row["device"] == "cam-01" and row["model"]["name"] == "tiny" and row["ts"] == pytest.approx(T0 + 108)
    assert [d["label"] for d in row["result"]["detections"]] == ["person"] and row["frame"]["source"] == "cam"
    _, since = get_json(f"{base}/api/results?since={T0 + 112}")
    assert [r["seq"] for r in since["results"]] == [47, 45]
    _, events = get_json(f"{base}/api/events?device=cam-01&kind=alert")
    assert [(e["seq"], e["payload"]["rule"]) for e in events["events"]] == [(41, EVIL)]
    _, alerts = get_json(f"{base}/api/alerts")
    assert [(a["device"], a["kind"], a["state"]) for a in alerts["alerts"]] == [("cam-01", "drift", "raised"),
                                                                                ("cam-01", "rule", "raised")]
    _, drift_only = get_json(f"{base}/api/alerts?kind=drift&device=cam-01&since={T0}&limit=1")
    assert drift_only["alerts"][0]["detail"] == {"signal": "brightness", "psi": 0.4}


def test_stats_health_and_metrics(base: str) -> None:
    code, stats = get_json(f"{base}/api/stats")
    assert code == 200
    assert (stats["results_stored"], stats["duplicates_dropped"], stats["missing"], stats["lost"]) == (31, 1, 1, 2)
    assert (stats["events_stored"], stats["metrics_stored"], stats["devices"]) == (2, 13, 2)
    code, health = get_json(f"{base}/healthz")
    assert code == 200 and health["status"] == "ok"
    code, content_type, body = get(f"{base}/metrics")
    assert code == 200 and content_type.startswith("text/plain") and b"edgekit_up 1" in body


@pytest.mark.parametrize(("query", "parameter"), [
    ("/api/results?limit=-1", "limit"), ("/api/results?since=abc", "since"), ("/api/events?limit=abc", "limit"),
    ("/api/alerts?since=nan", "since"), ("/api/results?limit=100000", "limit"), ("/api/events?device=", "device"),
])
def test_a_bad_query_value_is_a_json_422_naming_the_parameter(base: str, query: str, parameter: str) -> None:
    code, error = get_json(base + query)
    assert code == 422 and error["error"].startswith(f"invalid request: {parameter}:")
    assert [d["parameter"] for d in error["detail"]] == [parameter]


def test_openapi_documents_every_endpoint_and_no_cdn_docs(base: str) -> None:
    code, spec = get_json(f"{base}/openapi.json")
    assert code == 200
    assert {"/api/devices", "/api/devices/{device_id}", "/api/results", "/api/events", "/api/alerts", "/api/stats",
            "/healthz", "/metrics"} <= set(spec["paths"])
    assert "/" not in spec["paths"]  # the dashboard's HTML is not part of the API
    schemas = spec["components"]["schemas"]
    assert {"DeviceOut", "DeviceDetailOut", "ResultsOut", "AlertOut", "StatsOut"} <= set(schemas)
    assert {"seq", "device", "ts", "model", "result"} <= set(schemas["ResultOut"]["properties"])
    assert {"name": "limit", "in": "query"}.items() <= spec["paths"]["/api/results"]["get"]["parameters"][2].items()
    assert get(f"{base}/docs")[0] == 404 and get(f"{base}/redoc")[0] == 404


def test_the_pages_name_every_device_and_escape_what_devices_send(base: str) -> None:
    code, content_type, body = get(f"{base}/")
    page = body.decode()
    assert code == 200 and content_type.startswith("text/html")
    assert 'href="/devices/cam-01"' in page and 'href="/devices/cam-02"' in page and "tiny 1 (fp32)" in page
    code, _, device = get(f"{base}/devices/cam-01")
    assert code == 200 and "<polyline" in device.decode() and 'src="data:image/jpeg;base64,' in device.decode()
    code, _, events = get(f"{base}/events?device=cam-01&kind=alert")
    assert code == 200 and EVIL not in events.decode() and "&lt;script&gt;" in events.decode()
    assert get(f"{base}/events?since=yesterday")[0] == 400
    assert get(f"{base}/devices/nope")[0] == 404
    _, _, alerts = get(f"{base}/alerts?kind=drift")
    assert "brightness" in alerts.decode() and "rule" not in alerts.decode().split("<tbody>")[1]


def test_charts_break_lines_at_gaps_and_count_classes_per_bucket() -> None:
    svg = line_chart("fps <x>", {"a": [(0.0, 1.0), (1.0, None), (2.0, 3.0), (3.0, 4.0)]}, unit="fps")
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 1 and "fps &lt;x&gt;" in svg
    assert "no data yet" in line_chart("empty", {"a": []})
    det = {"result": {"detections": [{"label": "car"}, {"label": "person"}]}}
    cls = {"result": {"classifications": [{"label": "cat", "score": 0.2}, {"label": "dog", "score": 0.7}]}}
    counts = per_class([(0.0, det), (9.0, det), (9.5, cls)], start=0.0, end=10.0, buckets=2)
    assert counts == {"car": [(2.5, 1), (7.5, 1)], "person": [(2.5, 1), (7.5, 1)], "dog": [(2.5, 0), (7.5, 1)]}


def test_a_thumbnail_is_shown_only_when_it_is_a_well_formed_image() -> None:
    good = thumbnail()
    shown = render_thumbnail({"thumbnail": {**good, "boxes": [{"label": EVIL, "score": 0.5, "box": [1, 2, 3, 4]}]}})
    assert shown.startswith('<span class="thumb"') and "<rect" in shown and EVIL not in shown
    for bad in ({**good, "media_type": "text/html"}, {**good, "data": 'x" onerror="alert(1)'}, {**good, "width": 0},
                {**good, "height": "48"}, "not a dict"):
        assert render_thumbnail({"thumbnail": bad}) == ""
    assert render_thumbnail({}) == ""


def test_since_in_forms_and_which_alerts_are_open() -> None:
    assert parse_since("") is None and parse_since(" 1700000000.5 ") == 1700000000.5
    assert parse_since("2023-11-14T22:13:20") == 1700000000.0 == parse_since("2023-11-14T23:13:20+01:00")
    with pytest.raises(ValueError):
        parse_since("yesterday")
    raised = Alert("cam", "rule", 1.0, "raised", {"rule": "a"})
    cleared = Alert("cam", "rule", 2.0, "cleared", {"rule": "a"})
    other = Alert("cam", "rule", 1.5, "raised", {"rule": "b"})
    assert open_alerts([cleared, other, raised]) == [other]
    assert open_alerts([raised]) == [raised]
    # two cohorts' alerts on one signal are two alerts, as the alert engine keys them (not one per signal)
    tiny = Alert("*", "drift", 3.0, "raised", {"key": "tiny@1:brightness", "signal": "brightness"})
    big = Alert("*", "drift", 2.0, "raised", {"key": "big@1:brightness", "signal": "brightness"})
    assert open_alerts([tiny, big]) == [tiny, big]


def test_drift_state_is_pending_until_a_signal_has_a_verdict() -> None:
    from edgekit.fleet.hub.web.views import drift_state

    def metrics(*signals: tuple[str, float | None]) -> dict[str, Any]:
        return {"drift": {f"s{i}": {"state": state, "score": score} for i, (state, score) in enumerate(signals)}}

    assert drift_state(None) is None and drift_state({"fps": 1.0}) is None
    assert drift_state(metrics(("ok", None), ("ok", None))) == "pending"  # fewer frames than min_frames: no verdict
    assert drift_state(metrics(("ok", 0.02), ("ok", None))) == "ok"
    assert drift_state(metrics(("ok", 0.02), ("alert", 0.4), ("warn", 0.12))) == "alert"


# -- drift per cohort (model version) --------------------------------------------------------------

COHORT = ("cam-a", "cam-b")


def cohort_window(brightness: list[int]) -> dict[str, Any]:
    """A heartbeat's drift with the counts and the baseline's, as an agent with a baseline sends it."""
    shifted = brightness[0] > 60
    return {"brightness": {"counts": brightness, "edges": [100.0], "baseline_counts": [500, 500],
                           "score": 0.6 if shifted else 0.0, "state": "alert" if shifted else "ok"},
            "class_mix": {"counts": [60, 40], "labels": ["person", "other"], "baseline_counts": [600, 400],
                          "score": 0.0, "state": "ok"}}


def cohort_messages() -> list[Received]:
    """cam-a and cam-b run tiny 2: six heartbeats each, 10 s apart; from the fourth on both windows shift
    the same way (towards the dark bin), so the cohort goes from ok to alert; the class mix stays put."""
    out = [status(device=d, ts=T0, model={"version": "2"}) for d in COHORT]
    for i in range(6):
        window = cohort_window([85, 15] if i >= 3 else [50, 50])
        out += [msg("metrics", i + 1, device=d, ts=T0 + 10 * i, fps=5.0, drift=window) for d in COHORT]
    return out


@pytest.fixture
def cohort_base(store: Store) -> Iterator[str]:
    seed(store).ingest(cohort_messages(), received_at=T0 + 130)
    with serving(create_app(store)) as url:
        yield url


def test_cohorts_merge_the_latest_windows_of_one_model_versions_devices(cohort_base: str) -> None:
    code, body = get_json(f"{cohort_base}/api/cohorts")
    assert code == 200 and (body["warn"], body["alert"], body["min_devices"]) == (0.1, 0.25, 2)
    tiny1, tiny2 = body["cohorts"]
    # cam-01's heartbeats carry no baseline_counts (nothing to merge), cam-02 is offline: tiny@1 is not judged
    assert (tiny1["name"], tiny1["devices"], tiny1["state"], tiny1["signals"]) == ("tiny@1", ["cam-01"], "pending", {})
    assert (tiny2["name"], tiny2["model"], tiny2["version"], tiny2["devices"]) == ("tiny@2", "tiny", "2", list(COHORT))
    brightness, mix = tiny2["signals"]["brightness"], tiny2["signals"]["class_mix"]
    assert brightness["counts"] == [170, 30] and brightness["baseline_counts"] == [500, 500]
    assert brightness["frames"] == 200 and brightness["psi"] > 0.25 and brightness["state"] == "alert"
    assert brightness["devices"] == list(COHORT) and brightness["edges"] == [100.0]
    assert mix["counts"] == [120, 80] and mix["state"] == "ok" and mix["labels"] == ["person", "other"]
    assert mix["p_value"] is not None and mix["p_value"] > 0.5
    assert tiny2["state"] == "alert"


def test_a_cohort_over_time_counts_each_device_once_per_bucket(cohort_base: str, store: Store) -> None:
    code, cohort = get_json(f"{cohort_base}/api/cohorts/tiny@2")
    assert code == 200 and cohort["members"] == list(COHORT) and cohort["state"] == "alert"
    series = cohort["series"]
    assert [p["ts"] for p in series] == [pytest.approx(T0 + 10 * i) for i in range(6)]  # oldest first
    assert [p["devices"] for p in series] == [2] * 6
    assert [p["states"]["brightness"] for p in series] == ["ok"] * 3 + ["alert"] * 3
    assert series[0]["psi"]["brightness"] == pytest.approx(0.0, abs=1e-3)
    # one bucket over the whole hour: each device's newest window (alert), not its six windows summed (warn)
    from edgekit.fleet.hub.alerts.rules import AlertRules
    from edgekit.fleet.hub.web.cohorts import series as cohort_series

    members = [d for d in store.devices() if d.id in COHORT]
    [point] = cohort_series(store, members, AlertRules(), buckets=1)
    assert point.devices == 2 and point.states["brightness"] == "alert" and point.ts == pytest.approx(T0 + 50)
    code, error = get_json(f"{cohort_base}/api/cohorts/tiny@9")
    assert code == 404 and "'tiny@9'" in error["error"]
    _, spec = get_json(f"{cohort_base}/openapi.json")
    assert {"/api/cohorts", "/api/cohorts/{name}"} <= set(spec["paths"])
    assert {"counts", "baseline_counts", "frames", "psi", "state"} <= set(
        spec["components"]["schemas"]["CohortSignalOut"]["properties"])


def test_the_fleet_page_shows_drift_by_model_version_without_reading_metrics_history(
        cohort_base: str, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_history(**_: Any) -> list[Any]:
        raise AssertionError("the fleet page read the metrics history")

    monkeypatch.setattr(store, "metrics", no_history)
    code, _, body = get(f"{cohort_base}/")
    page = body.decode()
    assert code == 200 and "<h2>Drift by model version</h2>" in page
    cohort_rows = page.split("<h2>Drift by model version</h2>", 1)[1].split("<tbody>", 1)[1]
    tiny2 = re.search(r'<tr><td><a href="/cohorts/tiny@2">tiny@2</a>.*?</tr>', cohort_rows)
    assert tiny2 is not None and '<span class="alert">alert</span>' in tiny2.group()
    assert re.search(r'<span class="alert" title="alert">0\.\d{3}</span>', tiny2.group())  # brightness PSI
    assert '<span class="ok" title="ok">0.000</span>' in tiny2.group()  # class mix PSI
    monkeypatch.undo()
    code, _, cohort = get(f"{cohort_base}/cohorts/tiny@2")
    assert code == 200 and 'aria-label="Cohort drift (PSI) per signal"' in cohort.decode()
    assert "<polyline" in cohort.decode() and 'href="/devices/cam-a"' in cohort.decode()
    assert get(f"{cohort_base}/cohorts/nope@1")[0] == 404
