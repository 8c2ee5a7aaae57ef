"""The hub's /metrics: real contract messages into a real SQLite store, then HubMetrics, then the
exposition parsed with prometheus_client's own parser (and, once, scraped by a real Prometheus).

Also the Grafana dashboard shipped in deploy/grafana: its JSON and provisioning YAML parse, and
every PromQL query in it names only metrics a real exposition contains.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from device_agent.protocol import Received, parse
from edgekit.fleet.hub.metrics import OTHER_CLASS, HubMetrics
from edgekit.fleet.hub.store import Store, store_from_url
from tests.support import protocol_samples as samples
from tests.support.mqtt_broker import wait_until
from tests.support.prometheus import Prometheus, require_prometheus, serve_exposition

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
T0 = 1.7e9


def msg(topic: str, seq: int, *, device: str = "cam-01", **fields: Any) -> Received:
    payload = {**samples.message(topic, seq, device=device, **fields), "ts": T0 + seq}
    return parse(f"edgekit/v1/{device}/{topic}", json.dumps(payload).encode())


def detections(seq: int, labels: Sequence[str], *, infer_ms: float = 12.0, device: str = "cam-01") -> Received:
    boxes = [{"class_id": i, "label": label, "score": 0.8, "box_xyxy": [0.0, 0.0, 10.0, 10.0]}
             for i, label in enumerate(labels)]
    return msg("results", seq, device=device, latency_ms={"infer": infer_ms, "preprocess": 1.0},
               result={"decoder": "yolov8", "kind": "detection", "classifications": [], "detections": boxes})


def heartbeat(seq: int, *, device: str = "cam-01", fps: float = 14.5, **fields: Any) -> Received:
    drift = {"brightness_mean": {"counts": [3, 5], "edges": [0.5], "score": 0.31, "state": "alert"},
             "class_mix": {"counts": [4, 1], "labels": ["cat", "other"], "score": None, "state": "ok"}}
    return msg("metrics", seq, device=device, fps=fps, outbox_depth=7, outbox_oldest_age_s=2.5, drift=drift, **fields)


def status(device: str = "cam-01", **fields: Any) -> Received:
    return parse(f"edgekit/v1/{device}/status", samples.status(device=device, **fields))


def scrape(metrics: HubMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the exposition as ``{(name, labels): value}``, read by prometheus_client's parser."""
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain; version=")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def value(samples_: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return samples_.get((name, frozenset(labels.items())))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with store_from_url(f"sqlite:///{tmp_path / 'hub.db'}") as opened:
        yield opened


def feed(store: Store, metrics: HubMetrics, messages: list[Received]) -> None:
    """What the hub's ingest does: commit the batch, then tell the observer."""
    metrics.observe(messages, store.ingest(messages))


def fleet_batch() -> list[Received]:
    results = [detections(1, ["person", "car"]), detections(2, ["person"], infer_ms=40.0),
               msg("results", 3, latency_ms={"infer": 3.0})]  # a classification: top-1 "cat"
    gap = msg("events", 5, kind="gap", first_seq=4, last_seq=4, count=1)
    return [status(), *results, gap, heartbeat(7)]


def test_fresh_messages_are_counted_and_a_redelivery_changes_nothing(store: Store) -> None:
    metrics = HubMetrics(store, cache_s=0.0)
    feed(store, metrics, fleet_batch())
    first = scrape(metrics)
    assert value(first, "edgekit_device_fps", device="cam-01") == 14.5
    assert value(first, "edgekit_device_results_total", device="cam-01") == 3
    assert value(first, "edgekit_device_inference_latency_seconds_count", device="cam-01") == 3
    assert value(first, "edgekit_device_inference_latency_seconds_sum", device="cam-01") == pytest.approx(0.055)
    assert value(first, "edgekit_device_inference_latency_seconds_bucket", device="cam-01", le="0.02") == 2
    assert value(first, "edgekit_device_detections_total", device="cam-01", **{"class": "person"}) == 2
    assert value(first, "edgekit_device_detections_total", device="cam-01", **{"class": "car"}) == 1
    assert value(first, "edgekit_device_classifications_total", device="cam-01", **{"class": "cat"}) == 1
    assert value(first, "edgekit_device_events_total", device="cam-01", kind="gap") == 1
    assert value(first, "edgekit_hub_messages_stored_total", kind="results") == 3
    assert value(first, "edgekit_hub_duplicates_dropped_total") == 0

    feed(store, metrics, fleet_batch())  # the broker redelivers the whole batch
    again = scrape(metrics)
    counted = [k for k in first if k[0].endswith(("_total", "_count", "_sum", "_bucket"))
               and not k[0].startswith("edgekit_hub_duplicates")]
    assert {k: again[k] for k in counted} == {k: first[k] for k in counted}
    assert value(again, "edgekit_hub_duplicates_dropped_total") == 5  # every message but the status


def test_state_gauges_are_read_from_the_store_so_a_restarted_hub_has_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    with store_from_url(url) as store:
        feed(store, HubMetrics(store), [*fleet_batch(), status("cam-02", state="offline")])
    with store_from_url(url) as store:  # the hub restarted: no message observed by this process
        seen = scrape(HubMetrics(store))
    assert value(seen, "edgekit_device_fps", device="cam-01") == 14.5
    assert value(seen, "edgekit_device_frames_total", device="cam-01") == 10
    assert value(seen, "edgekit_device_outbox_pending", device="cam-01") == 7
    assert value(seen, "edgekit_device_outbox_oldest_age_seconds", device="cam-01") == 2.5
    assert value(seen, "edgekit_device_seq_lost", device="cam-01") == 1  # seq 4, announced by the gap event
    assert value(seen, "edgekit_device_seq_missing", device="cam-01") == 1  # seq 6: neither received nor lost
    assert value(seen, "edgekit_device_online", device="cam-01") == 1
    assert value(seen, "edgekit_device_online", device="cam-02") == 0
    assert value(seen, "edgekit_device_last_seen_timestamp_seconds", device="cam-01") == pytest.approx(
        time.time(), abs=60)
    assert value(seen, "edgekit_device_model_info", device="cam-01", model="tiny", version="1", precision="fp32",
                 agent="0.1.0") == 1
    assert value(seen, "edgekit_device_drift_score", device="cam-01", signal="brightness_mean") == 0.31
    assert value(seen, "edgekit_device_drift_state", device="cam-01", signal="brightness_mean") == 2
    assert value(seen, "edgekit_device_drift_state", device="cam-01", signal="class_mix") == 0
    assert value(seen, "edgekit_device_drift_score", device="cam-01", signal="class_mix") is None  # no score yet
    assert value(seen, "edgekit_hub_messages_stored_total", kind="metrics") == 1
    assert value(seen, "edgekit_device_results_total", device="cam-01") is None  # process counters start again
    assert value(seen, "edgekit_hub_store_up") == 1


def test_classes_are_capped_per_device_and_the_rest_counted_as_other(store: Store) -> None:
    metrics = HubMetrics(store, max_classes=2)
    feed(store, metrics, [detections(1, ["a", "b", "c"]), detections(2, ["d", "a"]),
                          detections(1, ["x"], device="cam-02")])
    seen = scrape(metrics)
    per_class = {dict(k[1])["class"]: v for k, v in seen.items()
                 if k[0] == "edgekit_device_detections_total" and ("device", "cam-01") in k[1]}
    assert per_class == {"a": 2, "b": 1, OTHER_CLASS: 2}  # c and d came after the cap
    assert value(seen, "edgekit_device_detections_total", device="cam-02", **{"class": "x"}) == 1  # its own cap


def test_a_scrape_reads_the_store_at_most_once_per_cache_period(store: Store) -> None:
    metrics = HubMetrics(store, cache_s=3600.0)
    feed(store, metrics, [heartbeat(1, fps=5.0)])
    assert value(scrape(metrics), "edgekit_device_fps", device="cam-01") == 5.0
    feed(store, metrics, [heartbeat(2, fps=9.0)])
    assert value(scrape(metrics), "edgekit_device_fps", device="cam-01") == 5.0  # cached
    assert value(scrape(HubMetrics(store)), "edgekit_device_fps", device="cam-01") == 9.0


def test_seq_gaps_are_read_with_the_rest_of_the_store_once_per_cache_period(store: Store) -> None:
    clock = [100.0]
    metrics = HubMetrics(store, cache_s=1.0, clock=lambda: clock[0])
    feed(store, metrics, [detections(1, ["person"]), detections(3, ["person"])])
    assert value(scrape(metrics), "edgekit_device_seq_missing", device="cam-01") == 1
    feed(store, metrics, [detections(5, ["person"])])
    clock[0] += 0.5
    assert value(scrape(metrics), "edgekit_device_seq_missing", device="cam-01") == 1  # the read at 100 serves
    clock[0] += 0.5
    assert value(scrape(metrics), "edgekit_device_seq_missing", device="cam-01") == 2  # a second later: read again
    feed(store, metrics, [detections(4, ["person"]), msg("events", 7, kind="gap", first_seq=6, last_seq=6, count=1)])
    clock[0] += 1.0
    seen = scrape(metrics)
    assert value(seen, "edgekit_device_seq_missing", device="cam-01") == 1  # only 2: 4 came, 6 announced lost
    assert value(seen, "edgekit_device_seq_lost", device="cam-01") == 1


def test_a_store_that_fails_leaves_the_process_metrics_served(tmp_path: Path) -> None:
    store = store_from_url(f"sqlite:///{tmp_path / 'hub.db'}")
    metrics = HubMetrics(store, cache_s=0.0)
    feed(store, metrics, [detections(1, ["person"])])
    metrics.rejected("results")
    metrics.batch_committed(0.004)
    store.close()
    seen = scrape(metrics)
    assert value(seen, "edgekit_hub_store_up") == 0
    assert value(seen, "edgekit_device_results_total", device="cam-01") == 1
    assert value(seen, "edgekit_hub_messages_rejected_total", kind="results") == 1
    assert value(seen, "edgekit_hub_ingest_batch_seconds_count") == 1


# -- the Grafana dashboard


def exported_names(store: Store) -> set[str]:
    """Every sample name (``_bucket``, ``_total``... included) of an exposition where every family has samples."""
    metrics = HubMetrics(store)
    feed(store, metrics, fleet_batch())
    metrics.rejected("results")
    metrics.batch_committed(0.01)
    names = {name for name, _ in scrape(metrics)}
    assert "edgekit_device_outbox_oldest_age_seconds" in names and "edgekit_hub_ingest_batch_seconds_bucket" in names
    return names


PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
                "unless", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers left once strings, label matchers, ranges,
    grouping clauses, function calls and keywords are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    found = re.findall(r"(?<![\w$.])([A-Za-z_:][\w:]*)\b(?!\s*\()", text)
    return {name for name in found if name.lower() not in PROMQL_WORDS}


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    panels = [p for top in dashboard["panels"] for p in (top, *top.get("panels", []))]
    queries = [t["expr"] for p in panels for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query["query"] if isinstance(query, dict) else query)
            assert inner, f"variable {variable['name']}: expected label_values(<expr>, <label>)"
            queries.append(inner.group(1))
    return queries


def test_metric_names_found_in_promql() -> None:
    assert metric_names('histogram_quantile(0.95, sum by (device, le) (rate(edgekit_a_bucket{device=~"$device"}'
                        "[$__rate_interval])))") == {"edgekit_a_bucket"}
    assert metric_names("time() - edgekit_b_seconds or vector(0)") == {"edgekit_b_seconds"}
    assert metric_names("count(up == 2)") == {"up"}


def test_every_dashboard_query_names_only_metrics_the_hub_exports(store: Store) -> None:
    dashboard = json.loads((GRAFANA / "edgekit-fleet.json").read_text())
    queries = dashboard_queries(dashboard)
    assert len(queries) >= 20
    exported = exported_names(store)
    unknown = {(q, name) for q in queries for name in metric_names(q) if name not in exported}
    assert unknown == set()
    assert all(metric_names(q) for q in queries), "a query that reads no metric"
    used = {name for q in queries for name in metric_names(q)}
    families = {re.sub(r"_(bucket|count|sum)$", "", n) for n in used}
    for wanted in ("edgekit_device_fps", "edgekit_device_inference_latency_seconds", "edgekit_device_detections_total",
                   "edgekit_device_outbox_pending", "edgekit_device_seq_missing", "edgekit_device_drift_score",
                   "edgekit_device_online", "edgekit_device_model_info"):
        assert wanted in families, f"the dashboard shows no {wanted}"
    assert "device" in {v["name"] for v in dashboard["templating"]["list"]}


def test_grafana_provisioning_points_at_the_dashboard_and_a_prometheus() -> None:
    yaml = pytest.importorskip("yaml")  # PyYAML: locked (amqtt, dev extra) but not a direct dependency
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "edgekit.yaml").read_text())
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "edgekit.yaml").read_text())
    assert datasources["apiVersion"] == 1 and providers["apiVersion"] == 1
    assert [d["type"] for d in datasources["datasources"]] == ["prometheus"]
    assert providers["providers"][0]["type"] == "file" and providers["providers"][0]["options"]["path"]
    dashboard = json.loads((GRAFANA / "edgekit-fleet.json").read_text())
    source = next(v for v in dashboard["templating"]["list"] if v["type"] == "datasource")
    assert source["query"] == "prometheus"  # the provisioned Prometheus is the one picked by default


# -- a real Prometheus


def test_a_real_prometheus_scrapes_the_exposition_and_runs_every_dashboard_query(store: Store,
                                                                                  tmp_path: Path) -> None:
    binary = require_prometheus()
    metrics = HubMetrics(store)
    feed(store, metrics, fleet_batch())
    metrics.rejected("results")
    metrics.batch_committed(0.01)
    queries = [q.replace("$device", ".*").replace("$__rate_interval", "5s")
               for q in dashboard_queries(json.loads((GRAFANA / "edgekit-fleet.json").read_text()))]
    with serve_exposition(metrics.exposition) as target:
        prometheus = Prometheus(binary, target, tmp_path)
        try:
            def fps() -> list[dict[str, Any]]:
                return prometheus.query("edgekit_device_fps")

            assert wait_until(lambda: bool(fps()), 25), f"no edgekit_device_fps scraped:\n{prometheus.output()}"
            [sample] = fps()
            assert sample["metric"]["device"] == "cam-01" and float(sample["value"][1]) == 14.5
            assert prometheus.query('edgekit_device_results_total{device="cam-01"}')[0]["value"][1] == "3"
            answers: dict[str, dict[str, Any]] = {}

            def every_query_shows_something() -> bool:  # rate() needs two scrapes in its range
                answers.update((q, prometheus.evaluate(q)) for q in queries)
                return all(a["status"] == "success" and a["data"]["result"] for a in answers.values())

            assert wait_until(every_query_shows_something, 15), {
                q: a.get("error") or "no series" for q, a in answers.items()
                if a["status"] != "success" or not a["data"]["result"]}
        finally:
            prometheus.stop()
