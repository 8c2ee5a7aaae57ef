"""The agent's overhead, measured side by side in one run on the same model and threads.

1. End-to-end frames/s of `edgekit-agent` on a video (decode, preprocess, infer, decode,
   commit to the outbox, publish) vs a bare loop of ``runtime.run`` on frames that were
   preprocessed beforehand: the ratio is what the agent costs around the model.
2. Results/s through the durable outbox (SQLite WAL, group commit) at QoS 1 to a local
   Mosquitto vs plain paho QoS 1 publishes without persistence.
3. The agent's peak RSS (a separate process, so nothing else is counted).

    python benchmarks/agent_pipeline.py [--bundle DIR] [--seconds 10]

Writes benchmarks/results/agent_pipeline.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_bundle(work: Path) -> Path:
    from benchlib import models_dir

    from edgekit.content import samples
    from edgekit.content.zoo import build_model
    from edgekit.optimize.pipeline import optimize

    model = build_model("efficientnet-lite0", models_dir())
    samples.write_image_folder(work / "calib", count=120, seed=3)
    return optimize(model.onnx_path, target="x86-cpu", output=work / "bundle", precision="int8", calib=work / "calib",
                    preprocess=model.preprocess, labels=model.task.labels, task="classification", max_drop=100).bundle


def write_config(work: Path, bundle: Path, video: Path, port: int, threads: int) -> Path:
    config = work / "agent.toml"
    config.write_text(f'device_id = "bench"\nbundle = "{bundle}"\nthreads = {threads}\n\n'
                      f'[[sources]]\nuri = "{video}"\n\n'
                      f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n\n[outbox]\npath = "{work / "outbox.db"}"\n\n'
                      '[publish]\nmetrics_interval_s = 5\n')
    return config


def bare_loop_fps(bundle: Path, video: Path, threads: int) -> float:
    from device_agent.bundle.verify import load_bundle
    from device_agent.pipeline.preprocess import preprocess
    from device_agent.runtimes import create_runtime

    b = load_bundle(bundle)
    runtime = create_runtime(b.manifest.target.runtime, b.model_path, threads=threads)
    cap, tensors = cv2.VideoCapture(str(video)), []
    while (frame := cap.read())[0]:
        tensors.append(preprocess(frame[1], b.manifest.preprocess)[0])  # type: ignore[arg-type]
    for t in tensors[:5]:
        runtime.run([t])
    start = time.perf_counter()
    for t in tensors:
        runtime.run([t])
    return len(tensors) / (time.perf_counter() - start)


AGENT_PROBE = """
import resource, sys, time
from device_agent.service.agent import Agent
from device_agent.service.config import load_config
agent = Agent(load_config(sys.argv[1]))
start = time.perf_counter(); agent.run(); elapsed = time.perf_counter() - start
print(agent.frames_done, elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def outbox_rate(port: int, work: Path, count: int) -> float:
    from device_agent.transport.committer import Committer
    from device_agent.transport.outbox import Outbox
    from device_agent.transport.publisher import MqttSettings, Publisher

    outbox = Outbox(work / "rate.db", device_id="rate")
    publisher = Publisher(MqttSettings(host="127.0.0.1", port=port, client_id="rate"), outbox, device_id="rate",
                          status_body={})
    publisher.start()
    publisher.wait_connected(10)
    body = {"result": {"kind": "classification", "classifications": [{"class_id": 1, "label": "x", "score": 0.5}]}}
    committer = Committer(outbox, on_commit=publisher.notify).start()  # the agent's own path: group commit
    start = time.perf_counter()
    for _ in range(count):
        committer.put("edgekit/v1/rate/results", body)
    committer.close()
    while outbox.depth():
        time.sleep(0.001)
    elapsed = time.perf_counter() - start
    publisher.stop()
    return count / elapsed


def paho_rate(port: int, count: int) -> float:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(100)
    client.connect("127.0.0.1", port)
    client.loop_start()
    payload = json.dumps({"v": 1, "seq": 1, "result": {"kind": "classification"}}).encode()
    start = time.perf_counter()
    infos = [client.publish("edgekit/v1/paho/results", payload, qos=1) for _ in range(count)]
    for info in infos:
        info.wait_for_publish(30)
    elapsed = time.perf_counter() - start
    client.loop_stop()
    client.disconnect()
    return count / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, help="bundle to run (default: EfficientNet-Lite0 INT8 built here)")
    parser.add_argument("--seconds", type=float, default=10.0, help="video length at 30 fps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    from edgekit.content import samples

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle = args.bundle or build_bundle(work)
        video = samples.write_video(work / "street.mp4", seconds=args.seconds, fps=30, size_wh=(640, 480))
        port = free_port()
        broker = subprocess.Popen([sys.executable, "-m", "edgekit.fleet.demo_broker", "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        try:
            bare = bare_loop_fps(bundle, video, args.threads)
            config = write_config(work, bundle, video, port, args.threads)
            probe = subprocess.run([sys.executable, "-c", AGENT_PROBE, str(config)],
                                   capture_output=True, text=True, check=True)
            frames, elapsed, peak_mb = probe.stdout.split()[-3:]
            agent_fps = int(frames) / float(elapsed)
            outbox = outbox_rate(port, work, args.messages)
            plain = paho_rate(port, args.messages)
        finally:
            broker.terminate()
    result = {
        "bundle": str(bundle), "threads": args.threads, "frames": int(frames),
        "agent_fps": agent_fps, "bare_loop_fps": bare, "agent_vs_bare": agent_fps / bare,
        "outbox_results_per_s": outbox, "plain_paho_qos1_per_s": plain, "outbox_vs_paho": outbox / plain,
        "agent_peak_rss_mb": float(peak_mb),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "agent_pipeline.json").write_text(json.dumps(result, indent=2) + "\n")
    table = Table("measure", "agent", "reference", "ratio",
                  title="edgekit-agent overhead (one run, same model and threads)")
    table.add_row("frames/s on a 640x480 video", f"{agent_fps:.1f}", f"{bare:.1f} (bare runtime.run loop)",
                  f"{agent_fps / bare:.2f}")
    table.add_row("results/s at QoS 1", f"{outbox:.0f} (durable outbox)", f"{plain:.0f} (plain paho)",
                  f"{outbox / plain:.2f}")
    table.add_row("peak RSS MB", f"{float(peak_mb):.0f}", "", "")
    Console(width=120).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
