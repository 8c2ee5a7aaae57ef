"""What the hub sustains: results stored per second, its memory, and the dashboard's queries at scale.

1. **store**: batches of real contract messages (parsed beforehand, as the ingest thread has them)
   committed by :meth:`Store.ingest` into SQLite (WAL, synchronous=FULL) and PostgreSQL (fsync on,
   a throwaway cluster from ``tests/support/postgres.py``), rounds interleaved between the two.
2. **broker**: a burst of ``--burst`` results from 10 simulated devices, published at QoS 1 to a real
   Mosquitto while the hub is away (its persistent session queues them), then a real ``edgekit hub``
   process started (SQLite and PostgreSQL in turn): the time from its start until ``/api/stats``
   counts every one (start-up included; ``steady`` from the first stored result on), and its peak
   RSS (``VmHWM``).
3. **queries**: 100 devices and ``--results`` stored results (a million by default) in each store,
   then the fleet page's reads (``devices``, ``stats`` with every device's missing seqs), one
   device's latest results, and ``GET /`` and ``GET /api/devices`` from the hub's HTTP server.

Writes ``benchmarks/results/hub_ingest.json`` and prints tables. Needs Mosquitto and PostgreSQL
(``scripts/setup.sh`` installs both). Run: ``python benchmarks/hub_ingest.py [--results N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the broker and PostgreSQL helpers live with the tests

from device_agent.protocol import Received, parse
from edgekit.fleet.hub.metrics import HubMetrics
from edgekit.fleet.hub.store import Store, store_from_url
from edgekit.fleet.hub.web import create_app
from tests.support import protocol_samples as samples
from tests.support.asgi_server import free_port, get, serving
from tests.support.hub_publisher import Publisher
from tests.support.mqtt_broker import Broker, wait_until
from tests.support.postgres import fresh_database, start_cluster, stop_cluster

ROOT = Path(__file__).resolve().parent.parent
T0 = 1.7e9
DEVICES = 100
BATCH = 500


def raw_result(device: str, seq: int, ts: float) -> tuple[str, bytes]:
    """One result as a device publishes it: its topic and JSON payload."""
    payload = {**samples.message("results", seq, device=device), "boot": "boot-1", "ts": ts}
    return f"edgekit/v1/{device}/results", json.dumps(payload).encode()


def parsed_batches(count: int, devices: int, *, first_seq: int = 1) -> Iterator[list[Received]]:
    """``count`` results spread over ``devices`` devices (every device's seqs in order), in batches."""
    per_device = max(1, count // devices)
    for start in range(first_seq, first_seq + per_device, BATCH // devices or 1):
        batch = []
        for d in range(devices):
            device = f"cam-{d:03d}"
            for seq in range(start, min(start + (BATCH // devices or 1), first_seq + per_device)):
                batch.append(parse(*raw_result(device, seq, T0 + seq)))
        yield batch


def store_rate(store: Store, batches: list[list[Received]]) -> float:
    start = time.perf_counter()
    for batch in batches:
        store.ingest(batch)
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


def timed_ms(work: Callable[[], Any], repeat: int = 5) -> dict[str, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1e3)
    return {"min_ms": round(min(times), 2), "median_ms": round(statistics.median(times), 2)}


@contextmanager
def postgres() -> Iterator[Callable[[str], str]]:
    """A durable throwaway cluster in a temp dir of its own (the server's user must own it); yields
    ``database(name) -> url``."""
    root = Path(tempfile.mkdtemp(prefix="edgekit-hub-bench-pg-"))
    try:
        cluster = start_cluster(root, durable=True)
        try:
            yield lambda name: fresh_database(cluster, name)
        finally:
            stop_cluster(cluster)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_store(urls: dict[str, Callable[[str], str]], rounds: int, per_round: int) -> dict[str, Any]:
    """Interleaved rounds: each round, each backend stores ``per_round`` new results."""
    stores = {name: store_from_url(url("rate")) for name, url in urls.items()}
    rates: dict[str, list[float]] = {name: [] for name in stores}
    try:
        for r in range(rounds):
            batches = list(parsed_batches(per_round, 10, first_seq=1 + r * per_round // 10))
            for name, store in stores.items():
                rates[name].append(store_rate(store, batches))
    finally:
        for store in stores.values():
            store.close()
    return {name: {"median_per_s": round(statistics.median(v)), "max_per_s": round(max(v)), "rounds": len(v)}
            for name, v in rates.items()}


def bench_queries(urls: dict[str, Callable[[str], str]], results: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, url in urls.items():
        with store_from_url(url("fleet")) as store:
            start = time.perf_counter()
            for batch in parsed_batches(results, DEVICES):
                store.ingest(batch)
            seeded = time.perf_counter() - start
            metrics = HubMetrics(store)
            with serving(create_app(store, metrics=metrics)) as base:
                out[name] = {
                    "results": store.stats().results_stored, "seed_s": round(seeded, 1),
                    "devices()": timed_ms(store.devices), "stats()": timed_ms(store.stats),
                    "seq_accounts()": timed_ms(store.seq_accounts),
                    "results(device, 100)": timed_ms(lambda store=store: store.results(device="cam-050", limit=100)),
                    "GET / (fleet page)": timed_ms(lambda base=base: get(base + "/")),
                    "GET /api/devices": timed_ms(lambda base=base: get(base + "/api/devices")),
                    "GET /devices/cam-050": timed_ms(lambda base=base: get(base + "/devices/cam-050")),
                    "GET /metrics": timed_ms(lambda base=base: get(base + "/metrics")),
                }
    return out


def _stored(base: str) -> int:
    with urllib.request.urlopen(base + "/api/stats", timeout=10) as response:
        return int(json.load(response)["results_stored"])


def _answers(url: str) -> bool:
    try:
        return get(url)[0] == 200
    except OSError:  # not listening yet
        return False


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def start_hub(broker: Broker, db: str, work: Path, tag: str) -> tuple[subprocess.Popen[bytes], str]:
    """``edgekit hub`` in its own process, as in production; returns it and its base URL once subscribed."""
    port = free_port()
    log = work / f"hub-{tag}.log"
    with log.open("a") as out:
        hub = subprocess.Popen([sys.executable, "-m", "edgekit.cli.main", "hub", "--broker",
                                f"{broker.host}:{broker.port}", "--db", db, "--http", f"127.0.0.1:{port}",
                                "--client-id", f"bench-{tag}"], stdout=out, stderr=out,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    starts = log.read_text().count("edgekit hub starting")
    if not wait_until(lambda: log.read_text().count("subscribed at ") >= starts, 60):
        raise RuntimeError(f"edgekit hub did not subscribe: {log.read_text()[-2000:]}")
    base = f"http://127.0.0.1:{port}"
    if not wait_until(lambda: _answers(base + "/healthz"), 60):
        raise RuntimeError(f"edgekit hub's HTTP did not answer: {log.read_text()[-2000:]}")
    return hub, base


def burst_once(broker: Broker, db: str, count: int, work: Path, tag: str) -> dict[str, float]:
    """``count`` results from 10 devices queued by the broker while the hub is away (its persistent session
    made first), then the hub started: the time until it stored them all is its own rate, not the publisher's."""
    hub, _ = start_hub(broker, db, work, tag)
    hub.send_signal(signal.SIGTERM)
    hub.wait(60)
    publisher = Publisher(broker, client_id=f"burst-{tag}")
    publisher.results([f"cam-{d:02d}" for d in range(10)], range(1, count // 10 + 1))
    if not publisher.wait(300):
        raise RuntimeError("the broker did not take the burst")
    publisher.close()
    start = time.perf_counter()
    hub, base = start_hub(broker, db, work, tag)
    try:
        first: tuple[float, int] | None = None  # (when, how many) at the first poll that found any stored
        while (stored := _stored(base)) < count:
            if first is None and stored:
                first = (time.perf_counter(), stored)
            if time.perf_counter() - start > 600:
                raise RuntimeError(f"the burst was not stored: {stored} of {count}")
            time.sleep(0.05)
        end = time.perf_counter()
        steady = (count - first[1]) / (end - first[0]) if first is not None and end > first[0] else float("nan")
        return {"stored_per_s": round(count / (end - start)), "steady_per_s": round(steady),
                "until_stored_s": round(end - start, 2), "hub_peak_rss_mb": _peak_rss_mb(hub.pid)}
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(60)


def bench_broker(urls: dict[str, Callable[[str], str]], count: int, rounds: int) -> dict[str, Any]:
    """Interleaved: each round, a fresh hub and store per backend takes the same burst through Mosquitto."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
    work = Path(tempfile.mkdtemp(prefix="edgekit-hub-burst-"))
    try:
        with Broker(work / "broker", max_queued_messages=10 * count) as broker:
            for r in range(rounds):
                for name, url in urls.items():
                    runs[name].append(burst_once(broker, url(f"burst{r}"), count, work, f"{name}{r}"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {name: {"messages": count, "rounds": len(v),
                   **{key: statistics.median(run[key] for run in v) for key in v[0]}} for name, v in runs.items()}


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=int, default=1_000_000, help="results stored for the query timings")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the store write rate")
    parser.add_argument("--per-round", type=int, default=10_000, help="results per round and backend")
    parser.add_argument("--burst", type=int, default=20_000, help="results in the burst through the broker")
    parser.add_argument("--burst-rounds", type=int, default=2, help="interleaved rounds of the burst")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgekit-hub-bench-"))
    try:
        with postgres() as database:
            urls: dict[str, Callable[[str], str]] = {
                "sqlite": lambda name: f"sqlite:///{work / (name + '.db')}", "postgresql": database}
            result = {"benchmark": "hub_ingest", "store": bench_store(urls, args.rounds, args.per_round),
                      "broker": bench_broker(urls, args.burst, args.burst_rounds),
                      "queries": bench_queries(urls, args.results)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(__file__).parent / "results" / "hub_ingest.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{'store':12} {'results/s (median)':>20} {'max':>10}")
    for name, row in result["store"].items():
        print(f"{name:12} {row['median_per_s']:20} {row['max_per_s']:10}")
    print(f"\n{'burst through Mosquitto to edgekit hub':40} {'stored/s':>9} {'steady/s':>9} {'until stored s':>15} "
          f"{'peak RSS MB':>12}")
    for name, row in result["broker"].items():
        print(f"{name + ' (' + str(row['messages']) + ' results)':40} {row['stored_per_s']:9.0f} "
              f"{row['steady_per_s']:9.0f} {row['until_stored_s']:15.2f} {row['hub_peak_rss_mb']:12.1f}")
    print(f"\n{'query (' + str(args.results) + ' results, 100 devices)':44} " + " ".join(f"{n:>16}" for n in urls))
    names = [k for k in next(iter(result["queries"].values())) if k not in ("results", "seed_s")]
    for query in names:
        print(f"{query:44} " + " ".join(f"{result['queries'][n][query]['median_ms']:13.1f} ms" for n in urls))
    return result


if __name__ == "__main__":
    main()
